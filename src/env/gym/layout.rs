//! Where each field lies in the memory a worker shares with qnet (`worker.py` reads the same
//! offsets, sent to it when it attaches).

use serde::Serialize;

/// Header words: each on a 64-byte line of its own, so the two processes' writes never
/// share a cache line.
pub(super) const REQUEST: usize = 0;
/// The operation of the request ([`OP_STEP`] or [`OP_CONTROL`]).
pub(super) const OPERATION: usize = 64;
/// The sequence number of the last request the worker has answered.
pub(super) const REPLY: usize = 128;
/// 0 when that answer is a success, [`STATUS_ERROR`] when the worker raised.
pub(super) const STATUS: usize = 192;
/// Non-zero while the worker sleeps on its wake-up pipe.
pub(super) const WORKER_SLEEPING: usize = 256;
/// Non-zero while qnet sleeps on its wake-up pipe.
pub(super) const QNET_SLEEPING: usize = 320;
/// Bytes of the header.
const HEADER_BYTES: usize = 384;

/// A step of every env.
pub(super) const OP_STEP: u64 = 1;
/// A request on the control channel.
pub(super) const OP_CONTROL: u64 = 2;
/// The worker raised; its error follows on the control channel.
pub(super) const STATUS_ERROR: u64 = 1;

/// Offsets of the per-env arrays, for `n` envs of `obs_size` floats each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Layout {
    /// `n` int64 actions.
    pub actions: usize,
    /// `n * obs_size` float32 observations.
    pub obs: usize,
    /// `n * obs_size` float32 observations that ended episodes.
    pub final_obs: usize,
    /// `n` float64 rewards.
    pub rewards: usize,
    /// `n` uint8 flags.
    pub terminated: usize,
    /// `n` uint8 flags.
    pub truncated: usize,
    /// Total bytes, a multiple of 64.
    #[serde(skip)]
    pub size: usize,
}

impl Layout {
    /// The layout for `n` envs of `obs_size` floats; `None` if it would not fit in memory.
    pub fn new(n: usize, obs_size: usize) -> Option<Self> {
        let mut at = HEADER_BYTES;
        let mut field = |bytes: usize| -> Option<usize> {
            let start = at;
            at = at.checked_add(bytes)?.checked_next_multiple_of(64)?;
            Some(start)
        };
        let obs_bytes = n.checked_mul(obs_size)?.checked_mul(4)?;
        Some(Self {
            actions: field(n.checked_mul(8)?)?,
            obs: field(obs_bytes)?,
            final_obs: field(obs_bytes)?,
            rewards: field(n.checked_mul(8)?)?,
            terminated: field(n)?,
            truncated: field(n)?,
            size: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_aligned_apart_and_inside() {
        let layout = Layout::new(3, 5).expect("fits");
        let fields = [
            (layout.actions, 24),
            (layout.obs, 60),
            (layout.final_obs, 60),
            (layout.rewards, 24),
            (layout.terminated, 3),
            (layout.truncated, 3),
        ];
        let mut end = HEADER_BYTES;
        for (start, bytes) in fields {
            assert!(start >= end && start % 64 == 0, "{layout:?}");
            end = start + bytes;
        }
        assert!(layout.size >= end && layout.size % 64 == 0);
        assert_eq!(Layout::new(usize::MAX / 2, 4), None);
    }
}
