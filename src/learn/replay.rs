//! Experience replay: a fixed-capacity ring of transitions, sampled uniformly or in
//! proportion to priorities (Schaul et al., 2016).
//!
//! A transition is stored as one row of `ROW` floats: observation, the observation it
//! bootstraps from, action, reward (an n-step return when `agent.n_step > 1`), and the
//! bootstrap's weight `gamma^k (1 - terminated)` for a transition of `k` steps (zero when the
//! episode terminated, so nothing else about termination needs storing). The ring is
//! allocated once at full capacity; adding and sampling allocate nothing per transition.
//!
//! Storage is either host memory or a tensor on the training device
//! (`replay.device: cuda`): then minibatches are gathered on the device with one
//! `index_select`, and new transitions are staged on the host and uploaded in one copy
//! before the next sample. Priorities live in a host [`SumTree`] either way.

use std::borrow::Cow;

use anyhow::{bail, Context, Result};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::env::OBS_DIM;
use crate::learn::qfunction::Rows;
use crate::learn::state::{Checkpointed, Part};
use crate::learn::sum_tree::SumTree;

/// Floats per stored transition.
pub const ROW: usize = 2 * OBS_DIM + 3;
const ACTION: usize = 2 * OBS_DIM;
const REWARD: usize = ACTION + 1;
const BOOTSTRAP: usize = ACTION + 2;

/// One transition as the acting loop hands it over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition<'a> {
    /// Observation the action was taken in.
    pub obs: &'a [f32],
    /// Observation to bootstrap from (the episode's true last one if it ended).
    pub next_obs: &'a [f32],
    /// Action taken.
    pub action: i64,
    /// Reward received (the discounted sum of the window's rewards for n-step returns).
    pub reward: f32,
    /// The episode ended in a terminal state: no bootstrap.
    pub terminated: bool,
    /// Discount of the bootstrap: `gamma^k` for a window of `k` steps.
    pub discount: f32,
}

impl Transition<'_> {
    /// Writes the transition as one `ROW`-float row.
    pub fn write_row(&self, out: &mut [f32]) {
        out[..OBS_DIM].copy_from_slice(self.obs);
        out[OBS_DIM..ACTION].copy_from_slice(self.next_obs);
        out[ACTION] = self.action as f32;
        out[REWARD] = self.reward;
        out[BOOTSTRAP] = if self.terminated { 0.0 } else { self.discount };
    }
}

/// A minibatch as sampling hands it to the learner.
#[derive(Debug, Clone, Copy)]
pub enum Minibatch<'a> {
    /// `[B, ROW]` rows gathered into host memory, and prioritized replay's importance
    /// weights `[B]`: what host storage, or any storage training on the CPU, gives. The host
    /// kernel reads them in place ([`Minibatch::parts`]); the ops path makes tensors of them.
    Rows {
        /// The rows, `ROW` values each.
        rows: &'a [f32],
        /// Importance weights, one per row (prioritized replay only).
        weights: Option<&'a [f32]>,
    },
    /// Tensors on the training device (device storage training there).
    Tensors(&'a Batch),
}

/// A minibatch of host rows read in place, column by column.
#[derive(Debug, Clone, Copy)]
pub struct Parts<'a> {
    /// `[B, OBS_DIM]`.
    pub obs: Rows<'a>,
    /// `[B, OBS_DIM]`.
    pub next_obs: Rows<'a>,
    /// `[B, 1]`: the actions, as the rows store them (whole numbers as floats).
    pub actions: Rows<'a>,
    /// `[B, 1]`.
    pub rewards: Rows<'a>,
    /// `[B, 1]`: `gamma^k (1 - terminated)`.
    pub bootstrap: Rows<'a>,
    /// `[B]` importance-sampling weights (prioritized replay only).
    pub weights: Option<&'a [f32]>,
}

impl<'a> Minibatch<'a> {
    /// The rows' columns, read in place; `None` for a minibatch of tensors.
    pub fn parts(&self) -> Result<Option<Parts<'a>>> {
        let &Minibatch::Rows { rows, weights } = self else {
            return Ok(None);
        };
        let n = rows.len() / ROW;
        if rows.len() != n * ROW || weights.is_some_and(|w| w.len() != n) {
            bail!(
                "a minibatch of {} floats with {:?} weights is not whole {ROW}-float rows \
                 with a weight each",
                rows.len(),
                weights.map(<[f32]>::len)
            );
        }
        let column = |start: usize, cols: usize| Rows::strided(&rows[start..], n, cols, ROW);
        Ok(Some(Parts {
            obs: column(0, OBS_DIM),
            next_obs: column(OBS_DIM, OBS_DIM),
            actions: column(ACTION, 1),
            rewards: column(REWARD, 1),
            bootstrap: column(BOOTSTRAP, 1),
            weights,
        }))
    }

    /// The minibatch as tensors on `device`.
    pub fn to_batch(&self, device: Device) -> Result<Batch> {
        match *self {
            Minibatch::Rows { rows, weights } => {
                let n = (rows.len() / ROW) as i64;
                let tensor = Tensor::from_slice(rows)
                    .f_view([n, ROW as i64])?
                    .f_to_device(device)?;
                let mut batch = Batch::from_rows(&tensor);
                batch.weights = weights
                    .map(|w| Tensor::from_slice(w).f_to_device(device))
                    .transpose()?;
                Ok(batch)
            }
            Minibatch::Tensors(batch) => Ok(batch.shallow_clone()),
        }
    }
}

/// The TD errors `Q(s, a) - y` of an update, where it computed them: what prioritized
/// replay turns into priorities.
#[derive(Debug)]
pub enum TdErrors<'a> {
    /// The host kernel's.
    Host(&'a [f32]),
    /// `[B]`, detached, on the training device.
    Tensor(Tensor),
}

impl TdErrors<'_> {
    /// The errors in host memory: the host kernel's as they are, a tensor's copied from its
    /// device.
    pub fn values(&self) -> Result<Cow<'_, [f32]>> {
        match self {
            TdErrors::Host(errors) => Ok(Cow::Borrowed(errors)),
            TdErrors::Tensor(t) => {
                let host = t.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
                let values = Vec::<f32>::try_from(&host).context("reading TD errors")?;
                Ok(Cow::Owned(values))
            }
        }
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
    /// `[B]` float: `gamma^k (1 - terminated)`, the weight of the bootstrap `Q(s', a')`.
    pub bootstrap: Tensor,
    /// `[B]` float importance-sampling weights (prioritized replay only).
    pub weights: Option<Tensor>,
}

impl Batch {
    /// The same tensors, shared.
    fn shallow_clone(&self) -> Self {
        Batch {
            obs: self.obs.shallow_clone(),
            next_obs: self.next_obs.shallow_clone(),
            actions: self.actions.shallow_clone(),
            rewards: self.rewards.shallow_clone(),
            bootstrap: self.bootstrap.shallow_clone(),
            weights: self.weights.as_ref().map(Tensor::shallow_clone),
        }
    }

    /// Splits a `[B, ROW]` tensor of rows into a minibatch (views, no copies but the actions).
    fn from_rows(rows: &Tensor) -> Self {
        Batch {
            obs: rows.narrow(1, 0, OBS_DIM as i64),
            next_obs: rows.narrow(1, OBS_DIM as i64, OBS_DIM as i64),
            actions: rows.narrow(1, ACTION as i64, 1).to_kind(Kind::Int64),
            rewards: rows.select(1, REWARD as i64),
            bootstrap: rows.select(1, BOOTSTRAP as i64),
            weights: None,
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

/// Prioritized replay's state: the priorities `p_i^alpha` by slot, and the largest given so
/// far (what a new transition starts with, so that it is replayed at least once soon).
#[derive(Debug)]
struct Priorities {
    tree: SumTree,
    alpha: f64,
    eps: f64,
    max: f64,
}

/// What a checkpoint keeps of a replay buffer besides its arrays.
#[derive(Debug, Serialize, Deserialize)]
struct ReplayState {
    /// The next slot to write.
    next: usize,
    /// Prioritized replay's largest priority so far.
    max_priority: Option<f64>,
}

/// The stored rows in slot order (`len * ROW` floats).
const ROWS: &str = "rows";
/// Prioritized replay: each slot's priority.
const PRIORITIES: &str = "priorities";

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
    priorities: Option<Priorities>,
    indices: Vec<i64>,
    slots: Vec<usize>,
    /// The last minibatch's rows in host memory (CPU training)...
    gathered: Vec<f32>,
    /// ...its importance weights (prioritized replay)...
    weights: Vec<f32>,
    /// ...or its tensors on the training device (device storage training there).
    batch: Option<Batch>,
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
    /// An empty ring for `capacity` transitions, kept on `storage_device`, whose
    /// minibatches are used on `train_device`; prioritized when `prioritization` is given.
    pub fn new(
        capacity: usize,
        storage_device: Device,
        train_device: Device,
        prioritization: Option<Prioritization>,
    ) -> Result<Self> {
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
            len: 0,
            next: 0,
            train_device,
            priorities,
            indices: Vec::new(),
            slots: Vec::new(),
            gathered: Vec::new(),
            weights: Vec::new(),
            batch: None,
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

    /// Adds a transition, overwriting the oldest when full; it gets the largest priority
    /// given so far.
    pub fn push(&mut self, t: Transition<'_>) -> Result<()> {
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
                .view([staged_slots.len() as i64, ROW as i64])
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
        match &self.storage {
            Storage::Host(rows) => {
                for &index in &self.indices {
                    let start = index as usize * ROW;
                    self.gathered.extend_from_slice(&rows[start..start + ROW]);
                }
            }
            Storage::Device { rows, .. } => {
                let index = Tensor::from_slice(&self.indices).to_device(rows.device());
                let gathered = rows.f_index_select(0, &index)?;
                if self.train_device != Device::Cpu {
                    let mut batch = Batch::from_rows(&gathered.f_to_device(self.train_device)?);
                    batch.weights = prioritized
                        .then(|| Tensor::from_slice(&self.weights).f_to_device(self.train_device))
                        .transpose()?;
                    return Ok(Minibatch::Tensors(self.batch.insert(batch)));
                }
                self.gathered.resize(batch_size * ROW, 0.0);
                gathered
                    .f_to_device(Device::Cpu)?
                    .f_copy_data(&mut self.gathered, batch_size * ROW)?;
            }
        }
        Ok(Minibatch::Rows {
            rows: &self.gathered,
            weights: prioritized.then_some(self.weights.as_slice()),
        })
    }

    /// Prioritized replay: sets the priorities of the last sample's transitions from their
    /// TD errors `[B]`; nothing for uniform replay.
    pub fn update_priorities(&mut self, td_errors: &TdErrors<'_>) -> Result<()> {
        let Some(p) = &mut self.priorities else {
            return Ok(());
        };
        let errors = td_errors.values()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_pcg::Pcg64;

    fn push_numbered(buffer: &mut ReplayBuffer, n: usize) -> Result<()> {
        for i in 0..n {
            let v = i as f32;
            buffer.push(Transition {
                obs: &[v; OBS_DIM],
                next_obs: &[v + 0.5; OBS_DIM],
                action: (i % 2) as i64,
                reward: v,
                terminated: i % 3 == 0,
                discount: 0.5 + 0.01 * v,
            })?;
        }
        Ok(())
    }

    fn uniform(capacity: usize) -> Result<ReplayBuffer> {
        ReplayBuffer::new(capacity, Device::Cpu, Device::Cpu, None)
    }

    fn prioritized(capacity: usize) -> Result<ReplayBuffer> {
        let p = Prioritization {
            alpha: 1.0,
            eps: 1e-6,
        };
        ReplayBuffer::new(capacity, Device::Cpu, Device::Cpu, Some(p))
    }

    #[test]
    fn ring_overwrites_the_oldest() -> Result<()> {
        let mut buffer = uniform(4)?;
        push_numbered(&mut buffer, 6)?;
        assert_eq!(buffer.len(), 4);
        let part = buffer.save_part()?;
        let rewards: Vec<f32> = part
            .f32s(ROWS)?
            .chunks_exact(ROW)
            .map(|r| r[REWARD])
            .collect();
        assert_eq!(rewards, [4.0, 5.0, 2.0, 3.0]);
        assert_eq!(part.state::<ReplayState>()?.next, 2);
        Ok(())
    }

    #[test]
    fn samples_are_consistent_rows_and_cover_the_buffer() -> Result<()> {
        let mut buffer = uniform(100)?;
        push_numbered(&mut buffer, 10)?;
        let mut rng = Pcg64::seed_from_u64(3);
        let mut seen = [false; 10];
        for _ in 0..50 {
            let batch = buffer.sample(8, &mut rng, 0.0)?.to_batch(Device::Cpu)?;
            assert_eq!(batch.obs.size(), [8, OBS_DIM as i64]);
            assert_eq!(batch.actions.size(), [8, 1]);
            assert!(batch.weights.is_none());
            for b in 0..8 {
                let v = batch.obs.double_value(&[b, 0]);
                let i = v as usize;
                seen[i] = true;
                assert_eq!(batch.next_obs.double_value(&[b, 3]), v + 0.5);
                assert_eq!(batch.rewards.double_value(&[b]), v);
                assert_eq!(batch.actions.int64_value(&[b, 0]), (i % 2) as i64);
                // Terminated transitions do not bootstrap.
                let bootstrap = if i % 3 == 0 {
                    0.0
                } else {
                    f64::from(0.5 + 0.01 * i as f32)
                };
                assert_eq!(batch.bootstrap.double_value(&[b]), bootstrap);
            }
        }
        assert!(
            seen.iter().all(|&s| s),
            "uniform sampling missed a transition"
        );
        Ok(())
    }

    /// The columns the host kernel reads in place are the tensors the ops path makes.
    #[test]
    fn a_minibatchs_parts_are_its_tensors_columns() -> Result<()> {
        let mut buffer = prioritized(20)?;
        push_numbered(&mut buffer, 20)?;
        let sampled = buffer.sample(6, &mut Pcg64::seed_from_u64(4), 0.5)?;
        let batch = sampled.to_batch(Device::Cpu)?;
        let parts = sampled.parts()?.expect("host rows");
        let column = |t: &Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float).reshape([-1]));
        let read = |rows: Rows<'_>, cols: usize| -> Vec<f32> {
            (0..rows.rows())
                .flat_map(|r| (0..cols).map(move |c| rows.at(r, c)))
                .collect()
        };
        assert_eq!(read(parts.obs, OBS_DIM), column(&batch.obs)?);
        assert_eq!(read(parts.next_obs, OBS_DIM), column(&batch.next_obs)?);
        assert_eq!(read(parts.actions, 1), column(&batch.actions)?);
        assert_eq!(read(parts.rewards, 1), column(&batch.rewards)?);
        assert_eq!(read(parts.bootstrap, 1), column(&batch.bootstrap)?);
        let weights = batch.weights.as_ref().map(column).transpose()?;
        assert_eq!(parts.weights.map(<[f32]>::to_vec), weights);
        // Rows that are not whole, or weights that do not match them, are refused.
        let ragged = Minibatch::Rows {
            rows: &[0.0; ROW + 1],
            weights: None,
        };
        assert!(ragged.parts().is_err());
        let unweighted = Minibatch::Rows {
            rows: &[0.0; 2 * ROW],
            weights: Some(&[1.0]),
        };
        assert!(unweighted.parts().is_err());
        Ok(())
    }

    #[test]
    fn its_checkpoint_part_round_trips_and_samples_identically() -> Result<()> {
        for make in [uniform, prioritized] {
            let mut a = make(7)?;
            push_numbered(&mut a, 12)?;
            let mut b = make(7)?;
            b.load_part(&a.save_part()?)?;
            assert_eq!(a.save_part()?, b.save_part()?);
            push_numbered(&mut a, 3)?;
            push_numbered(&mut b, 3)?;
            assert_eq!(a.save_part()?, b.save_part()?);
            let batch_a = a
                .sample(16, &mut Pcg64::seed_from_u64(1), 0.5)?
                .to_batch(Device::Cpu)?;
            let batch_b = b
                .sample(16, &mut Pcg64::seed_from_u64(1), 0.5)?
                .to_batch(Device::Cpu)?;
            assert!(batch_a.obs.equal(&batch_b.obs));
            // A part that cannot come from a buffer of this size is refused.
            let mut small = make(3)?;
            assert!(small.load_part(&a.save_part()?).is_err());
        }
        // Priorities and no priorities do not mix.
        let mut with = prioritized(7)?;
        push_numbered(&mut with, 2)?;
        assert!(uniform(7)?.load_part(&with.save_part()?).is_err());
        Ok(())
    }

    #[test]
    fn device_storage_code_path_matches_host_storage() -> Result<()> {
        // Exercised on the CPU through the Device variant's staging and index_copy_ path,
        // uniform and prioritized (priorities stay on the host either way).
        for make in [uniform, prioritized] {
            let mut host = make(5)?;
            let mut staged = make(5)?;
            staged.storage = Storage::Device {
                rows: Tensor::zeros([5, ROW as i64], (Kind::Float, Device::Cpu)),
                staged: Vec::new(),
                staged_slots: Vec::new(),
            };
            push_numbered(&mut host, 13)?;
            push_numbered(&mut staged, 13)?;
            assert_eq!(host.save_part()?, staged.save_part()?);
            let mut r1 = Pcg64::seed_from_u64(9);
            let mut r2 = Pcg64::seed_from_u64(9);
            for _ in 0..3 {
                // Training on the CPU, both hand over rows in host memory.
                let (
                    Minibatch::Rows { rows, weights },
                    Minibatch::Rows {
                        rows: staged_rows,
                        weights: staged_weights,
                    },
                ) = (
                    host.sample(16, &mut r1, 0.5)?,
                    staged.sample(16, &mut r2, 0.5)?,
                )
                else {
                    panic!("a CPU-trained minibatch came as tensors");
                };
                assert_eq!((rows, weights), (staged_rows, staged_weights));
                // The rewards as TD errors, from the host and from a tensor.
                let errors: Vec<f32> = rows.chunks_exact(ROW).map(|r| r[REWARD]).collect();
                host.update_priorities(&TdErrors::Host(&errors))?;
                staged.update_priorities(&TdErrors::Tensor(Tensor::from_slice(&errors)))?;
            }
            assert_eq!(host.save_part()?, staged.save_part()?);
        }
        Ok(())
    }

    /// New transitions start at the largest priority; updates set `(|d| + eps)^alpha`; a
    /// sample follows the priorities, and its weights are `(N P(i))^-beta` over their max.
    #[test]
    fn prioritized_sampling_follows_td_errors() -> Result<()> {
        let mut buffer = prioritized(4)?;
        push_numbered(&mut buffer, 4)?;
        let mut rng = Pcg64::seed_from_u64(5);
        // All at priority 1: a stratified batch of 4 takes each slot once, weights 1.
        let weights = match buffer.sample(4, &mut rng, 1.0)? {
            Minibatch::Rows { weights, .. } => weights.map(<[f32]>::to_vec),
            Minibatch::Tensors(_) => None,
        };
        let mut drawn: Vec<usize> = buffer.slots.clone();
        drawn.sort_unstable();
        assert_eq!(drawn, [0, 1, 2, 3]);
        assert_eq!(weights, Some(vec![1.0; 4]));
        // TD errors 1, 3, 0, 4 (in the order drawn, which is slot order).
        buffer.update_priorities(&TdErrors::Host(&[1.0, 3.0, 0.0, 4.0]))?;
        let p = buffer.priorities.as_ref().expect("prioritized");
        assert!((p.tree.get(1).unwrap_or(0.0) - (3.0 + 1e-6)).abs() < 1e-9);
        assert_eq!(p.max, 4.0 + 1e-6);
        // 80k samples: frequencies within 1% of p_i / sum p (slot 2 has only eps).
        let mut counts = [0usize; 4];
        for _ in 0..20_000 {
            buffer.sample(4, &mut rng, 1.0)?;
            for &slot in &buffer.slots {
                counts[slot] += 1;
            }
        }
        let total: f64 = [1.0, 3.0, 0.0, 4.0].iter().map(|e| e + 1e-6).sum();
        for (slot, error) in [1.0, 3.0, 0.0, 4.0].iter().enumerate() {
            let expected = (error + 1e-6) / total;
            let got = counts[slot] as f64 / 80_000.0;
            assert!(
                (got - expected).abs() < 0.01,
                "slot {slot}: {got} vs {expected}"
            );
        }
        // Weights: slot 1 and slot 3 drawn together; w ~ p^-beta, normalised by the max.
        buffer.slots = vec![1, 3];
        let p = buffer.priorities.as_ref().expect("prioritized");
        let mut w = Vec::new();
        importance_weights(p, &buffer.slots, 4, 1.0, &mut w)?;
        assert!(
            (w[0] - 1.0).abs() < 1e-6 && (f64::from(w[1]) - 3.0 / 4.0).abs() < 1e-6,
            "{w:?}"
        );
        // A new transition starts at the largest priority.
        push_numbered(&mut buffer, 1)?;
        let p = buffer.priorities.as_ref().expect("prioritized");
        assert_eq!(p.tree.get(0), Some(4.0 + 1e-6));
        // A NaN TD error is an error, not a corrupt tree.
        buffer.sample(2, &mut rng, 1.0)?;
        assert!(buffer
            .update_priorities(&TdErrors::Host(&[f32::NAN, 1.0]))
            .is_err());
        // As many errors as the minibatch had transitions, or an error.
        buffer.sample(2, &mut rng, 1.0)?;
        assert!(buffer.update_priorities(&TdErrors::Host(&[1.0])).is_err());
        Ok(())
    }
}
