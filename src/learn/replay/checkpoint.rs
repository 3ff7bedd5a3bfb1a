//! A replay buffer in a checkpoint: its rows in slot order, its priorities, and where the ring
//! stands.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::{zeroed, ReplayBuffer, Storage, ROW};
use crate::learn::state::{Checkpointed, Part};
use crate::learn::sum_tree::SumTree;

/// What a checkpoint keeps of a replay buffer besides its arrays.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReplayState {
    /// The next slot to write.
    pub(super) next: usize,
    /// Prioritized replay's largest priority so far.
    max_priority: Option<f64>,
}

/// The stored rows in slot order (`len * ROW` floats).
pub(super) const ROWS: &str = "rows";
/// Prioritized replay: each slot's priority.
const PRIORITIES: &str = "priorities";

impl Checkpointed for ReplayBuffer {
    fn save_part(&mut self) -> Result<Part> {
        self.flush()?;
        let mut rows = zeroed(Some(self.len * ROW), "a copy of the replay buffer")?;
        match &self.storage {
            Storage::Host(storage) => rows.copy_from_slice(&storage[..self.len * ROW]),
            Storage::Device { rows: storage, .. } => {
                let host = storage
                    .f_narrow(0, 0, self.len as i64)?
                    .f_to_device(Device::Cpu)?;
                host.f_copy_data(&mut rows, self.len * ROW)?;
            }
        }
        let mut part = Part::new(&ReplayState {
            next: self.next,
            max_priority: self.priorities.as_ref().map(|p| p.max),
        })?;
        part.f32s.insert(ROWS.to_owned(), rows);
        if let Some(p) = &self.priorities {
            part.f64s
                .insert(PRIORITIES.to_owned(), p.tree.leaves().to_vec());
        }
        Ok(part)
    }

    /// Refills the buffer from the part of a buffer like this one.
    fn load_part(&mut self, part: &Part) -> Result<()> {
        let state: ReplayState = part.state()?;
        let rows = part.f32s(ROWS)?;
        let (next, len) = (state.next, rows.len() / ROW);
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
        match (
            &mut self.priorities,
            part.f64s.get(PRIORITIES),
            state.max_priority,
        ) {
            (Some(p), Some(leaves), Some(max)) if leaves.len() == self.capacity => {
                p.tree = SumTree::from_leaves(leaves).context("restoring replay priorities")?;
                p.max = max;
            }
            (None, None, None) => {}
            _ => bail!(
                "the checkpoint's replay priorities do not match replay.prioritized and \
                 replay.capacity"
            ),
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
                        .f_view([len as i64, ROW as i64])?
                        .f_to_device(storage.device())?;
                    storage.narrow(0, 0, len as i64).f_copy_(&values)?;
                }
            }
        }
        self.len = len;
        self.next = next;
        Ok(())
    }
}
