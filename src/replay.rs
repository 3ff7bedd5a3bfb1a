//! Experience replay: a fixed-capacity ring of transitions, sampled uniformly.
//!
//! A transition is stored as one row of `ROW` floats (observation, next observation,
//! action, reward, terminated, truncated: terminated and truncated apart, because only
//! termination stops the bootstrap). The ring is allocated once at full capacity; adding
//! and sampling allocate nothing per transition.
//!
//! Storage is either host memory or a tensor on the training device
//! (`replay.device: cuda`): then minibatches are gathered on the device with one
//! `index_select`, and new transitions are staged on the host and uploaded in one copy
//! before the next sample.

use anyhow::{bail, Context, Result};
use rand::RngExt;
use tch::{Device, Kind, Tensor};

use crate::env::OBS_DIM;

/// Floats per stored transition.
pub const ROW: usize = 2 * OBS_DIM + 4;
const ACTION: usize = 2 * OBS_DIM;
const REWARD: usize = ACTION + 1;
const TERMINATED: usize = ACTION + 2;
const TRUNCATED: usize = ACTION + 3;

/// One transition as the acting loop hands it over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition<'a> {
    /// Observation the action was taken in.
    pub obs: &'a [f32],
    /// Observation after the step (the episode's last one if it ended).
    pub next_obs: &'a [f32],
    /// Action taken.
    pub action: i64,
    /// Reward received.
    pub reward: f32,
    /// The episode ended in a terminal state (no bootstrap).
    pub terminated: bool,
    /// The episode hit the time limit (bootstrap from `next_obs`).
    pub truncated: bool,
}

impl Transition<'_> {
    /// Writes the transition as one `ROW`-float row.
    pub fn write_row(&self, out: &mut [f32]) {
        out[..OBS_DIM].copy_from_slice(self.obs);
        out[OBS_DIM..ACTION].copy_from_slice(self.next_obs);
        out[ACTION] = self.action as f32;
        out[REWARD] = self.reward;
        out[TERMINATED] = f32::from(u8::from(self.terminated));
        out[TRUNCATED] = f32::from(u8::from(self.truncated));
    }
}

/// A minibatch on the training device.
#[derive(Debug)]
pub struct Batch {
    /// `[B, OBS_DIM]` float.
    pub obs: Tensor,
    /// `[B, OBS_DIM]` float.
    pub next_obs: Tensor,
    /// `[B, 1]` int64.
    pub actions: Tensor,
    /// `[B]` float.
    pub rewards: Tensor,
    /// `[B]` float, 1.0 where the episode terminated.
    pub terminated: Tensor,
}

impl Batch {
    /// Splits a `[B, ROW]` tensor of rows into a minibatch (views, no copies but the actions).
    pub fn from_rows(rows: &Tensor) -> Self {
        Batch {
            obs: rows.narrow(1, 0, OBS_DIM as i64),
            next_obs: rows.narrow(1, OBS_DIM as i64, OBS_DIM as i64),
            actions: rows.narrow(1, ACTION as i64, 1).to_kind(Kind::Int64),
            rewards: rows.select(1, REWARD as i64),
            terminated: rows.select(1, TERMINATED as i64),
        }
    }
}

#[derive(Debug)]
enum Storage {
    Host(Vec<f32>),
    Device {
        rows: Tensor,
        staged: Vec<f32>,
        staged_slots: Vec<i64>,
    },
}

/// `len` zeros, or an error (never an abort) when `len` overflowed or cannot be allocated.
fn zeroed(len: Option<usize>, what: &str) -> Result<Vec<f32>> {
    let mut values = Vec::new();
    len.and_then(|len| values.try_reserve_exact(len).ok().map(|()| len))
        .map(|len| values.resize(len, 0.0))
        .with_context(|| format!("cannot allocate {what} ({len:?} floats)"))?;
    Ok(values)
}

/// The replay ring.
#[derive(Debug)]
pub struct ReplayBuffer {
    storage: Storage,
    capacity: usize,
    len: usize,
    next: usize,
    train_device: Device,
    indices: Vec<i64>,
    gathered: Vec<f32>,
}

impl ReplayBuffer {
    /// An empty ring for `capacity` transitions, kept on `storage_device`, whose
    /// minibatches are used on `train_device`.
    pub fn new(capacity: usize, storage_device: Device, train_device: Device) -> Result<Self> {
        if capacity == 0 {
            bail!("replay.capacity must be at least 1");
        }
        let storage = match storage_device {
            Device::Cpu => Storage::Host(zeroed(capacity.checked_mul(ROW), "the replay buffer")?),
            device => Storage::Device {
                rows: Tensor::f_zeros([capacity as i64, ROW as i64], (Kind::Float, device))
                    .with_context(|| {
                        format!("allocating a {capacity}-transition replay buffer on {device:?}")
                    })?,
                staged: Vec::new(),
                staged_slots: Vec::new(),
            },
        };
        Ok(Self {
            storage,
            capacity,
            len: 0,
            next: 0,
            train_device,
            indices: Vec::new(),
            gathered: Vec::new(),
        })
    }

    /// Transitions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first transition.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum transitions held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Adds a transition, overwriting the oldest when full.
    pub fn push(&mut self, t: Transition<'_>) {
        let slot = self.next;
        let row = |out: &mut [f32]| t.write_row(out);
        match &mut self.storage {
            Storage::Host(rows) => row(&mut rows[slot * ROW..(slot + 1) * ROW]),
            Storage::Device {
                staged,
                staged_slots,
                ..
            } => {
                let start = staged.len();
                staged.resize(start + ROW, 0.0);
                row(&mut staged[start..]);
                staged_slots.push(slot as i64);
            }
        }
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Uploads staged transitions to device storage (no-op for host storage).
    fn flush(&mut self) -> Result<()> {
        if let Storage::Device {
            rows,
            staged,
            staged_slots,
        } = &mut self.storage
        {
            if staged_slots.is_empty() {
                return Ok(());
            }
            let device = rows.device();
            let values = Tensor::from_slice(staged)
                .view([staged_slots.len() as i64, ROW as i64])
                .to_device(device);
            let slots = Tensor::from_slice(staged_slots).to_device(device);
            // A slot staged twice (capacity smaller than the staged count) keeps the newest:
            // index_copy_ with duplicates is unordered, so drop older duplicates first.
            if staged_slots.len() > rows.size()[0] as usize {
                let keep = staged_slots.len() - rows.size()[0] as usize;
                let values = values.narrow(0, keep as i64, rows.size()[0]);
                let slots = slots.narrow(0, keep as i64, rows.size()[0]);
                let _ = rows.f_index_copy_(0, &slots, &values)?;
            } else {
                let _ = rows.f_index_copy_(0, &slots, &values)?;
            }
            staged.clear();
            staged_slots.clear();
        }
        Ok(())
    }

    /// Draws `batch_size` transitions uniformly (with replacement) using `rng`.
    pub fn sample(&mut self, batch_size: usize, rng: &mut impl rand::Rng) -> Result<Batch> {
        if self.len == 0 {
            bail!("cannot sample from an empty replay buffer");
        }
        self.indices.clear();
        let len = self.len;
        self.indices
            .extend((0..batch_size).map(|_| rng.random_range(0..len) as i64));
        self.flush()?;
        let rows = match &self.storage {
            Storage::Host(rows) => {
                self.gathered.clear();
                for &index in &self.indices {
                    let start = index as usize * ROW;
                    self.gathered.extend_from_slice(&rows[start..start + ROW]);
                }
                Tensor::from_slice(&self.gathered)
                    .view([batch_size as i64, ROW as i64])
                    .to_device(self.train_device)
            }
            Storage::Device { rows, .. } => {
                let index = Tensor::from_slice(&self.indices).to_device(rows.device());
                rows.f_index_select(0, &index)?.to_device(self.train_device)
            }
        };
        Ok(Batch::from_rows(&rows))
    }

    /// The stored rows in slot order (`len() * ROW` floats) and the next slot to write,
    /// for checkpoints.
    pub fn snapshot(&mut self) -> Result<(Vec<f32>, usize)> {
        self.flush()?;
        let mut out = zeroed(Some(self.len * ROW), "a copy of the replay buffer")?;
        match &self.storage {
            Storage::Host(rows) => out.copy_from_slice(&rows[..self.len * ROW]),
            Storage::Device { rows, .. } => {
                let host = rows
                    .f_narrow(0, 0, self.len as i64)?
                    .f_to_device(Device::Cpu)?;
                host.f_copy_data(&mut out, self.len * ROW)?;
            }
        }
        let rows = out;
        Ok((rows, self.next))
    }

    /// Refills the buffer from a [`ReplayBuffer::snapshot`] of a buffer of the same capacity.
    pub fn restore(&mut self, rows: &[f32], next: usize) -> Result<()> {
        let len = rows.len() / ROW;
        let consistent = rows.len() % ROW == 0
            && len <= self.capacity
            && next < self.capacity
            && (len == self.capacity || next == len % self.capacity);
        if !consistent {
            bail!(
                "the checkpoint's replay buffer ({} values, next slot {next}) does not fit a \
                 {}-transition buffer of {ROW}-value rows",
                rows.len(),
                self.capacity
            );
        }
        match &mut self.storage {
            Storage::Host(storage) => storage[..rows.len()].copy_from_slice(rows),
            Storage::Device {
                rows: storage,
                staged,
                staged_slots,
            } => {
                staged.clear();
                staged_slots.clear();
                if len > 0 {
                    let values = Tensor::from_slice(rows)
                        .view([len as i64, ROW as i64])
                        .to_device(storage.device());
                    storage.narrow(0, 0, len as i64).f_copy_(&values)?;
                }
            }
        }
        self.len = len;
        self.next = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    fn push_numbered(buffer: &mut ReplayBuffer, n: usize) {
        for i in 0..n {
            let v = i as f32;
            buffer.push(Transition {
                obs: &[v; OBS_DIM],
                next_obs: &[v + 0.5; OBS_DIM],
                action: (i % 2) as i64,
                reward: v,
                terminated: i % 3 == 0,
                truncated: i % 5 == 0,
            });
        }
    }

    #[test]
    fn ring_overwrites_the_oldest() -> Result<()> {
        let mut buffer = ReplayBuffer::new(4, Device::Cpu, Device::Cpu)?;
        push_numbered(&mut buffer, 6);
        assert_eq!(buffer.len(), 4);
        let (rows, next) = buffer.snapshot()?;
        let rewards: Vec<f32> = rows.chunks_exact(ROW).map(|r| r[REWARD]).collect();
        assert_eq!(rewards, [4.0, 5.0, 2.0, 3.0]);
        assert_eq!(next, 2);
        Ok(())
    }

    #[test]
    fn samples_are_consistent_rows_and_cover_the_buffer() -> Result<()> {
        let mut buffer = ReplayBuffer::new(100, Device::Cpu, Device::Cpu)?;
        push_numbered(&mut buffer, 10);
        let mut rng = Pcg64::seed_from_u64(3);
        let mut seen = [false; 10];
        for _ in 0..50 {
            let batch = buffer.sample(8, &mut rng)?;
            assert_eq!(batch.obs.size(), [8, OBS_DIM as i64]);
            assert_eq!(batch.actions.size(), [8, 1]);
            for b in 0..8 {
                let v = batch.obs.double_value(&[b, 0]);
                let i = v as usize;
                seen[i] = true;
                assert_eq!(batch.next_obs.double_value(&[b, 3]), v + 0.5);
                assert_eq!(batch.rewards.double_value(&[b]), v);
                assert_eq!(batch.actions.int64_value(&[b, 0]), (i % 2) as i64);
                let terminated = if i % 3 == 0 { 1.0 } else { 0.0 };
                assert_eq!(batch.terminated.double_value(&[b]), terminated);
            }
        }
        assert!(
            seen.iter().all(|&s| s),
            "uniform sampling missed a transition"
        );
        Ok(())
    }

    #[test]
    fn terminated_and_truncated_are_stored_apart() -> Result<()> {
        let mut buffer = ReplayBuffer::new(10, Device::Cpu, Device::Cpu)?;
        push_numbered(&mut buffer, 10);
        let (rows, _) = buffer.snapshot()?;
        // Transition 5 was truncated but not terminated.
        assert_eq!(rows[5 * ROW + TRUNCATED], 1.0);
        assert_eq!(rows[5 * ROW + TERMINATED], 0.0);
        Ok(())
    }

    #[test]
    fn snapshot_restore_round_trips_and_samples_identically() -> Result<()> {
        let mut a = ReplayBuffer::new(7, Device::Cpu, Device::Cpu)?;
        push_numbered(&mut a, 12);
        let mut b = ReplayBuffer::new(7, Device::Cpu, Device::Cpu)?;
        let (rows, next) = a.snapshot()?;
        b.restore(&rows, next)?;
        assert_eq!(a.snapshot()?, b.snapshot()?);
        push_numbered(&mut a, 3);
        push_numbered(&mut b, 3);
        assert_eq!(a.snapshot()?, b.snapshot()?);
        let batch_a = a.sample(16, &mut Pcg64::seed_from_u64(1))?;
        let batch_b = b.sample(16, &mut Pcg64::seed_from_u64(1))?;
        assert!(batch_a.obs.equal(&batch_b.obs));
        // A snapshot that cannot come from a buffer of this size is refused.
        let mut small = ReplayBuffer::new(3, Device::Cpu, Device::Cpu)?;
        assert!(small.restore(&rows, next).is_err());
        assert!(small.restore(&rows[..ROW + 1], 1).is_err());
        Ok(())
    }

    #[test]
    fn device_storage_code_path_matches_host_storage() -> Result<()> {
        // Exercised on the CPU through the Device variant's staging and index_copy_ path.
        let mut host = ReplayBuffer::new(5, Device::Cpu, Device::Cpu)?;
        let mut staged = ReplayBuffer::new(5, Device::Cpu, Device::Cpu)?;
        staged.storage = Storage::Device {
            rows: Tensor::zeros([5, ROW as i64], (Kind::Float, Device::Cpu)),
            staged: Vec::new(),
            staged_slots: Vec::new(),
        };
        push_numbered(&mut host, 13);
        push_numbered(&mut staged, 13);
        assert_eq!(host.snapshot()?, staged.snapshot()?);
        let mut r1 = Pcg64::seed_from_u64(9);
        let mut r2 = Pcg64::seed_from_u64(9);
        let a = host.sample(16, &mut r1)?;
        let b = staged.sample(16, &mut r2)?;
        assert!(a.obs.equal(&b.obs) && a.rewards.equal(&b.rewards));
        Ok(())
    }
}
