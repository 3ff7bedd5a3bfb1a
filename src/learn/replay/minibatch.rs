//! The row layout of a stored transition, and what sampling hands the learner: a minibatch
//! (host rows read in place, or tensors on the training device) and the TD errors it gives back.

use std::borrow::Cow;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::env::OBS_DIM;
use crate::learn::qfunction::Rows;

/// Floats per stored transition.
pub const ROW: usize = 2 * OBS_DIM + 3;
pub(super) const ACTION: usize = 2 * OBS_DIM;
pub(super) const REWARD: usize = ACTION + 1;
pub(super) const BOOTSTRAP: usize = ACTION + 2;

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
    pub(super) fn shallow_clone(&self) -> Self {
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
    pub(super) fn from_rows(rows: &Tensor) -> Self {
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
