//! A replay buffer in a checkpoint: its rows in slot order, its priorities, and where the ring
//! stands.

use std::borrow::Cow;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::{zeroed, ReplayBuffer, RowLayout, Storage};
use crate::learn::state::{Checkpointed, Part};
use crate::learn::sum_tree::SumTree;

/// What a checkpoint keeps of a replay buffer besides its arrays.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct ReplayState {
    /// The next slot to write.
    pub(super) next: usize,
    /// Prioritized replay's largest priority so far.
    max_priority: Option<f64>,
    /// Floats per row: the [`RowLayout`]'s, or (absent) the folded layout's one fewer, whose
    /// last value is `gamma^k (1 - terminated)`.
    #[serde(default)]
    row_floats: Option<usize>,
}

/// Rows of the folded layout (one float fewer than `layout`'s) as rows of `layout`: a
/// transition whose bootstrap weight is 0 reads as terminated (its target is the reward
/// either way), any other as not terminated with that weight as its discount.
fn unfold(folded: &[f32], layout: RowLayout) -> Vec<f32> {
    let folded_floats = layout.floats() - 1;
    let mut rows = Vec::with_capacity(folded.len() / folded_floats * layout.floats());
    for row in folded.chunks_exact(folded_floats) {
        let bootstrap = row[folded_floats - 1];
        rows.extend_from_slice(&row[..folded_floats - 1]);
        rows.push(bootstrap);
        rows.push(if bootstrap == 0.0 { 1.0 } else { 0.0 });
    }
    rows
}

/// Checks what a minibatch relies on: each row's action is one of `0..n_actions`, its
/// termination flag 0 or 1, its discount in `[0, 1]`.
fn check_rows(rows: &[f32], layout: RowLayout, n_actions: usize) -> Result<()> {
    let (action_at, terminated_at) = (layout.action(), layout.terminated());
    let (discount_at, reward_at) = (layout.discount(), layout.reward());
    for (index, row) in rows.chunks_exact(layout.floats()).enumerate() {
        let action = row[action_at];
        if !(action >= 0.0 && action < n_actions as f32 && action.fract() == 0.0) {
            bail!("its replay row {index} has action {action}, not one of 0..{n_actions}");
        }
        let terminated = row[terminated_at];
        if !(terminated == 0.0 || terminated == 1.0) {
            bail!("its replay row {index} has a termination flag of {terminated}");
        }
        let (discount, reward) = (row[discount_at], row[reward_at]);
        if !(0.0..=1.0).contains(&discount) || !reward.is_finite() {
            bail!("its replay row {index} has discount {discount} and reward {reward}");
        }
    }
    Ok(())
}

/// The stored rows in slot order (`len` rows of the buffer's layout).
pub(super) const ROWS: &str = "rows";
/// Prioritized replay: each slot's priority.
const PRIORITIES: &str = "priorities";

impl Checkpointed for ReplayBuffer {
    fn save_part(&mut self) -> Result<Part> {
        self.flush()?;
        let floats = self.layout.floats();
        let mut rows = zeroed(Some(self.len * floats), "a copy of the replay buffer")?;
        match &self.storage {
            Storage::Host(storage) => rows.copy_from_slice(&storage[..self.len * floats]),
            Storage::Device { rows: storage, .. } => {
                let host = storage
                    .f_narrow(0, 0, self.len as i64)?
                    .f_to_device(Device::Cpu)?;
                host.f_copy_data(&mut rows, self.len * floats)?;
            }
        }
        let mut part = Part::new(&ReplayState {
            next: self.next,
            max_priority: self.priorities.as_ref().map(|p| p.max),
            row_floats: Some(floats),
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
        let floats = self.layout.floats();
        let folded = floats - 1;
        let rows = match state.row_floats.unwrap_or(folded) {
            n if n == floats => Cow::Borrowed(part.f32s(ROWS)?),
            n if n == folded && part.f32s(ROWS)?.len() % folded == 0 => {
                Cow::Owned(unfold(part.f32s(ROWS)?, self.layout))
            }
            n if n == folded => bail!("its replay rows are not whole {folded}-value rows"),
            other => bail!("its replay rows have {other} values each, not {floats}"),
        };
        check_rows(&rows, self.layout, self.n_actions)?;
        let (next, len) = (state.next, rows.len() / floats);
        let consistent = rows.len() % floats == 0
            && len <= self.capacity
            && next < self.capacity
            && (len == self.capacity || next == len % self.capacity);
        if !consistent {
            bail!(
                "the checkpoint's replay buffer ({} values, next slot {next}) does not fit a \
                 {}-transition buffer of {floats}-value rows",
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
            Storage::Host(storage) => storage[..rows.len()].copy_from_slice(&rows),
            Storage::Device {
                rows: storage,
                staged,
                staged_slots,
            } => {
                staged.clear();
                staged_slots.clear();
                if len > 0 {
                    let values = Tensor::from_slice(&rows)
                        .f_view([len as i64, floats as i64])?
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
