//! The row layout of a stored transition, and what sampling hands the learner: a minibatch of
//! rows, read in place as columns or made into tensors on the training device.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::env::OBS_DIM;
use crate::learn::rows::Rows;

/// Floats per stored transition.
pub const ROW: usize = 2 * OBS_DIM + 4;
pub(super) const ACTION: usize = 2 * OBS_DIM;
pub(super) const REWARD: usize = ACTION + 1;
pub(super) const DISCOUNT: usize = ACTION + 2;
pub(super) const TERMINATED: usize = ACTION + 3;

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
        out[DISCOUNT] = self.discount;
        out[TERMINATED] = if self.terminated { 1.0 } else { 0.0 };
    }
}

/// A sampled minibatch: `B` transitions as `ROW`-float rows, where sampling gathered them
/// (host memory, or the training device when the buffer lives there), and prioritized
/// replay's importance weights.
#[derive(Debug, Clone, Copy)]
pub struct Minibatch<'a> {
    rows: Gathered<'a>,
    weights: Option<&'a [f32]>,
}

/// Where a minibatch's rows are.
#[derive(Debug, Clone, Copy)]
enum Gathered<'a> {
    /// `[B, ROW]` floats, row-major, in host memory.
    Host(&'a [f32]),
    /// A `[B, ROW]` float tensor on the training device.
    Device(&'a Tensor),
}

/// A minibatch in host memory, read in place column by column.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// `[B, OBS_DIM]`.
    pub obs: Rows<'a>,
    /// `[B, OBS_DIM]`.
    pub next_obs: Rows<'a>,
    /// `[B, 1]`: the actions, whole numbers stored as floats, checked when stored.
    pub actions: Rows<'a>,
    /// `[B, 1]`.
    pub rewards: Rows<'a>,
    /// `[B, 1]`: `gamma^k` for a transition of `k` steps.
    pub discounts: Rows<'a>,
    /// `[B, 1]`: 1 where the episode terminated, else 0.
    pub terminated: Rows<'a>,
    /// `[B]` importance-sampling weights (prioritized replay only).
    pub weights: Option<&'a [f32]>,
}

impl<'a> Minibatch<'a> {
    /// Host rows (`ROW` floats each) and, for prioritized replay, a weight per row.
    pub fn from_rows(rows: &'a [f32], weights: Option<&'a [f32]>) -> Result<Self> {
        let n = rows.len() / ROW;
        if rows.len() != n * ROW || weights.is_some_and(|w| w.len() != n) {
            bail!(
                "a minibatch of {} floats with {:?} weights is not whole {ROW}-float rows \
                 with a weight each",
                rows.len(),
                weights.map(<[f32]>::len)
            );
        }
        Ok(Self {
            rows: Gathered::Host(rows),
            weights,
        })
    }

    /// Rows gathered on the training device, and host weights (one per row).
    pub(super) fn on_device(rows: &'a Tensor, weights: Option<&'a [f32]>) -> Self {
        Self {
            rows: Gathered::Device(rows),
            weights,
        }
    }

    /// The columns, read in place; `None` when the rows are on a device.
    pub fn host_columns(&self) -> Option<Columns<'a>> {
        let Gathered::Host(rows) = self.rows else {
            return None;
        };
        let n = rows.len() / ROW;
        let column = |start: usize, cols: usize| Rows::strided(&rows[start..], n, cols, ROW);
        Some(Columns {
            obs: column(0, OBS_DIM),
            next_obs: column(OBS_DIM, OBS_DIM),
            actions: column(ACTION, 1),
            rewards: column(REWARD, 1),
            discounts: column(DISCOUNT, 1),
            terminated: column(TERMINATED, 1),
            weights: self.weights,
        })
    }

    /// The minibatch as tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> Result<Batch> {
        let rows = match self.rows {
            Gathered::Host(rows) => {
                let n = (rows.len() / ROW) as i64;
                Tensor::from_slice(rows)
                    .f_view([n, ROW as i64])?
                    .f_to_device(device)?
            }
            Gathered::Device(rows) => rows.f_to_device(device)?,
        };
        let mut batch = Batch::from_rows(&rows);
        batch.weights = self
            .weights
            .map(|w| Tensor::from_slice(w).f_to_device(device))
            .transpose()?;
        Ok(batch)
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
    /// `[B]` float: `gamma^k` for a transition of `k` steps.
    pub discounts: Tensor,
    /// `[B]` float: 1 where the episode terminated, else 0.
    pub terminated: Tensor,
    /// `[B]` float importance-sampling weights (prioritized replay only).
    pub weights: Option<Tensor>,
}

impl Batch {
    /// Splits a `[B, ROW]` tensor of rows into a minibatch (views, no copies but the actions).
    fn from_rows(rows: &Tensor) -> Self {
        Batch {
            obs: rows.narrow(1, 0, OBS_DIM as i64),
            next_obs: rows.narrow(1, OBS_DIM as i64, OBS_DIM as i64),
            actions: rows.narrow(1, ACTION as i64, 1).to_kind(Kind::Int64),
            rewards: rows.select(1, REWARD as i64),
            discounts: rows.select(1, DISCOUNT as i64),
            terminated: rows.select(1, TERMINATED as i64),
            weights: None,
        }
    }
}
