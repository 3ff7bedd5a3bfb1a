//! Experience replay: a fixed-capacity ring of transitions, sampled uniformly or in
//! proportion to priorities (Schaul et al., 2016).
//!
//! A transition is stored as one row of floats ([`RowLayout`]): observation, the observation it
//! bootstraps from, action, reward (an n-step return when `agent.n_step > 1`), the discount
//! `gamma^k` of a transition of `k` steps, and whether the episode terminated. Actions are
//! checked when stored (and when a checkpoint is read), so a minibatch's actions are valid.
//! The ring is allocated once at full capacity; adding and sampling allocate nothing per
//! transition.
//!
//! Storage is either host memory or a tensor on the training device
//! (`replay.device: cuda`): then minibatches are gathered on the device with one
//! `index_select`, and new transitions are staged on the host and uploaded in one copy
//! before the next sample. Priorities live in a host [`SumTree`] either way.

use anyhow::{bail, Context, Result};
use rand::RngExt;
use tch::{Device, Kind, Tensor};

use crate::learn::sum_tree::SumTree;

mod checkpoint;
mod minibatch;
#[cfg(test)]
mod tests;

pub use minibatch::{Batch, Columns, Minibatch, RowLayout, Transition};

#[derive(Debug)]
enum Storage {
    Host(Vec<f32>),
    Device {
        rows: Tensor,
        staged: Vec<f32>,
        staged_slots: Vec<i64>,
    },
}

/// Prioritized replay's state: the priorities `p_i^alpha` by slot, and the largest given so
/// far (what a new transition starts with, so that it is replayed at least once soon).
#[derive(Debug)]
struct Priorities {
    tree: SumTree,
    alpha: f64,
    eps: f64,
    max: f64,
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
    /// How a transition is stored.
    layout: RowLayout,
    /// Actions are `0..n_actions`.
    n_actions: usize,
    len: usize,
    next: usize,
    train_device: Device,
    priorities: Option<Priorities>,
    indices: Vec<i64>,
    slots: Vec<usize>,
    /// The last minibatch's rows in host memory (CPU training)...
    gathered: Vec<f32>,
    /// ...its importance weights (prioritized replay)...
    weights: Vec<f32>,
    /// ...or its rows on the training device (device storage training there).
    device_rows: Option<Tensor>,
}

/// How prioritized replay turns TD errors into priorities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prioritization {
    /// Exponent alpha.
    pub alpha: f64,
    /// Added to |TD error|.
    pub eps: f64,
}

impl ReplayBuffer {
    /// An empty ring for `capacity` transitions of `obs_dim`-float observations and actions
    /// `0..n_actions`, kept on `storage_device`, whose minibatches are used on
    /// `train_device`; prioritized when `prioritization` is given.
    pub fn new(
        capacity: usize,
        (obs_dim, n_actions): (usize, usize),
        storage_device: Device,
        train_device: Device,
        prioritization: Option<Prioritization>,
    ) -> Result<Self> {
        if capacity == 0 {
            bail!("replay.capacity must be at least 1");
        }
        let layout = RowLayout::new(obs_dim);
        let floats = layout.floats();
        let storage = match storage_device {
            Device::Cpu => {
                Storage::Host(zeroed(capacity.checked_mul(floats), "the replay buffer")?)
            }
            device => Storage::Device {
                rows: Tensor::f_zeros([capacity as i64, floats as i64], (Kind::Float, device))
                    .with_context(|| {
                        format!("allocating a {capacity}-transition replay buffer on {device:?}")
                    })?,
                staged: Vec::new(),
                staged_slots: Vec::new(),
            },
        };
        let priorities = match prioritization {
            Some(p) => Some(Priorities {
                tree: SumTree::new(capacity).context("allocating replay priorities")?,
                alpha: p.alpha,
                eps: p.eps,
                max: 1.0,
            }),
            None => None,
        };
        Ok(Self {
            storage,
            capacity,
            layout,
            n_actions,
            len: 0,
            next: 0,
            train_device,
            priorities,
            indices: Vec::new(),
            slots: Vec::new(),
            gathered: Vec::new(),
            weights: Vec::new(),
            device_rows: None,
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

    /// How a transition is stored.
    pub fn layout(&self) -> RowLayout {
        self.layout
    }

    /// True for prioritized replay, which takes the TD errors of each minibatch back.
    pub fn is_prioritized(&self) -> bool {
        self.priorities.is_some()
    }

    /// Adds a transition, overwriting the oldest when full; it gets the largest priority
    /// given so far.
    pub fn push(&mut self, t: Transition<'_>) -> Result<()> {
        let d = self.layout.obs_dim();
        if t.obs.len() != d || t.next_obs.len() != d {
            bail!(
                "a transition with observations of {} and {} values, not {d}",
                t.obs.len(),
                t.next_obs.len()
            );
        }
        if !(0..self.n_actions as i64).contains(&t.action) {
            bail!(
                "action {} is not one of the env's actions 0..{}",
                t.action,
                self.n_actions
            );
        }
        let slot = self.next;
        let (layout, floats) = (self.layout, self.layout.floats());
        let row = |out: &mut [f32]| t.write_row(layout, out);
        match &mut self.storage {
            Storage::Host(rows) => row(&mut rows[slot * floats..(slot + 1) * floats]),
            Storage::Device {
                staged,
                staged_slots,
                ..
            } => {
                let start = staged.len();
                staged.resize(start + floats, 0.0);
                row(&mut staged[start..]);
                staged_slots.push(slot as i64);
            }
        }
        if let Some(p) = &mut self.priorities {
            p.tree.set(slot, p.max)?;
        }
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        Ok(())
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
            let capacity = rows.size()[0];
            let mut values = Tensor::from_slice(staged)
                .view([staged_slots.len() as i64, self.layout.floats() as i64])
                .to_device(device);
            let mut slots = Tensor::from_slice(staged_slots).to_device(device);
            // A slot staged twice (capacity smaller than the staged count) keeps the newest:
            // index_copy_ with duplicates is unordered, so drop older duplicates first.
            if staged_slots.len() as i64 > capacity {
                let keep = staged_slots.len() as i64 - capacity;
                values = values.narrow(0, keep, capacity);
                slots = slots.narrow(0, keep, capacity);
            }
            let _ = rows.f_index_copy_(0, &slots, &values)?;
            staged.clear();
            staged_slots.clear();
        }
        Ok(())
    }

    /// Draws `batch_size` transitions (with replacement) using `rng`: uniformly, or in
    /// proportion to priority with importance-sampling weights of exponent `beta`. Host
    /// storage, and any storage training on the CPU, gather the rows into host memory;
    /// device storage training on its device gathers tensors there.
    pub fn sample(
        &mut self,
        batch_size: usize,
        rng: &mut impl rand::Rng,
        beta: f64,
    ) -> Result<Minibatch<'_>> {
        if self.len == 0 {
            bail!("cannot sample from an empty replay buffer");
        }
        self.indices.clear();
        let prioritized = match &self.priorities {
            None => {
                let len = self.len;
                self.indices
                    .extend((0..batch_size).map(|_| rng.random_range(0..len) as i64));
                false
            }
            Some(p) => {
                p.tree.sample_stratified(batch_size, rng, &mut self.slots)?;
                self.indices.extend(self.slots.iter().map(|&s| s as i64));
                importance_weights(p, &self.slots, self.len, beta, &mut self.weights)?;
                true
            }
        };
        self.flush()?;
        self.gathered.clear();
        let floats = self.layout.floats();
        match &self.storage {
            Storage::Host(rows) => {
                for &index in &self.indices {
                    let start = index as usize * floats;
                    self.gathered
                        .extend_from_slice(&rows[start..start + floats]);
                }
            }
            Storage::Device { rows, .. } => {
                let index = Tensor::from_slice(&self.indices).to_device(rows.device());
                let gathered = rows.f_index_select(0, &index)?;
                if self.train_device != Device::Cpu {
                    let rows = self.device_rows.insert(gathered);
                    let weights = prioritized.then_some(self.weights.as_slice());
                    return Ok(Minibatch::on_device(rows, weights, self.layout));
                }
                self.gathered.resize(batch_size * floats, 0.0);
                gathered
                    .f_to_device(Device::Cpu)?
                    .f_copy_data(&mut self.gathered, batch_size * floats)?;
            }
        }
        Minibatch::from_rows(
            &self.gathered,
            prioritized.then_some(self.weights.as_slice()),
            self.layout,
        )
    }

    /// Prioritized replay: sets the priorities of the last sample's transitions from their
    /// TD errors `Q(s, a) - y`; nothing for uniform replay.
    pub fn update_priorities(&mut self, errors: &[f32]) -> Result<()> {
        let Some(p) = &mut self.priorities else {
            return Ok(());
        };
        if errors.len() != self.slots.len() {
            bail!(
                "{} TD errors for a minibatch of {} transitions",
                errors.len(),
                self.slots.len()
            );
        }
        for (&slot, &error) in self.slots.iter().zip(errors.iter()) {
            let error = f64::from(error);
            let priority = (error.abs() + p.eps).powf(p.alpha);
            p.tree.set(slot, priority).with_context(|| {
                format!("the TD error {error} gives no usable priority (is training diverging?)")
            })?;
            p.max = p.max.max(priority);
        }
        Ok(())
    }
}

/// Importance-sampling weights `(N P(i))^-beta` of sampled `slots`, divided by the largest
/// in the batch so that they only scale updates down.
fn importance_weights(
    p: &Priorities,
    slots: &[usize],
    len: usize,
    beta: f64,
    out: &mut Vec<f32>,
) -> Result<()> {
    let total = p.tree.total();
    let weights: Vec<f64> = slots
        .iter()
        .map(|&slot| {
            let probability = p.tree.get(slot).unwrap_or(0.0) / total;
            (len as f64 * probability).powf(-beta)
        })
        .collect();
    let max = weights.iter().copied().fold(0.0, f64::max);
    if !(max.is_finite() && max > 0.0) {
        bail!("prioritized replay drew a transition of zero probability");
    }
    out.clear();
    out.extend(weights.iter().map(|w| (w / max) as f32));
    Ok(())
}
