//! The row layout of a stored transition, and what sampling hands the learner: a minibatch of
//! rows, read in place as columns or made into tensors on the training device.

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

use crate::learn::rows::Rows;

/// Where each value of a stored transition sits in its row, for observations of `obs_dim`
/// floats: observation, next observation, action, reward, discount `gamma^k`, terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLayout {
    obs_dim: usize,
}

impl RowLayout {
    /// The layout for observations of `obs_dim` floats.
    pub const fn new(obs_dim: usize) -> Self {
        Self { obs_dim }
    }

    /// Floats per observation.
    pub const fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Floats per row.
    pub const fn floats(&self) -> usize {
        2 * self.obs_dim + 4
    }

    /// Where the action is.
    pub(super) const fn action(&self) -> usize {
        2 * self.obs_dim
    }

    /// Where the reward is.
    pub(super) const fn reward(&self) -> usize {
        self.action() + 1
    }

    /// Where the discount `gamma^k` is.
    pub(super) const fn discount(&self) -> usize {
        self.action() + 2
    }

    /// Where the termination flag is.
    pub(super) const fn terminated(&self) -> usize {
        self.action() + 3
    }
}

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
    /// Writes the transition as one row of `layout` (`out` holds `layout.floats()` values;
    /// the caller checked the observations' lengths).
    pub fn write_row(&self, layout: RowLayout, out: &mut [f32]) {
        let d = layout.obs_dim();
        out[..d].copy_from_slice(self.obs);
        out[d..2 * d].copy_from_slice(self.next_obs);
        out[layout.action()] = self.action as f32;
        out[layout.reward()] = self.reward;
        out[layout.discount()] = self.discount;
        out[layout.terminated()] = if self.terminated { 1.0 } else { 0.0 };
    }
}

/// A sampled minibatch: `B` transitions as rows of one layout, where sampling gathered them
/// (host memory, or the training device when the buffer lives there), and prioritized
/// replay's importance weights.
#[derive(Debug, Clone, Copy)]
pub struct Minibatch<'a> {
    rows: Gathered<'a>,
    weights: Option<&'a [f32]>,
    layout: RowLayout,
}

/// Where a minibatch's rows are.
#[derive(Debug, Clone, Copy)]
enum Gathered<'a> {
    /// `[B, row floats]`, row-major, in host memory.
    Host(&'a [f32]),
    /// A `[B, row floats]` float tensor on the training device.
    Device(&'a Tensor),
}

/// A minibatch in host memory, read in place column by column.
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    /// `[B, obs_dim]`.
    pub obs: Rows<'a>,
    /// `[B, obs_dim]`.
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
    /// Host rows of `layout` and, for prioritized replay, a weight per row.
    pub fn from_rows(
        rows: &'a [f32],
        weights: Option<&'a [f32]>,
        layout: RowLayout,
    ) -> Result<Self> {
        let floats = layout.floats();
        let n = rows.len() / floats;
        if rows.len() != n * floats || weights.is_some_and(|w| w.len() != n) {
            bail!(
                "a minibatch of {} floats with {:?} weights is not whole {floats}-float rows \
                 with a weight each",
                rows.len(),
                weights.map(<[f32]>::len)
            );
        }
        Ok(Self {
            rows: Gathered::Host(rows),
            weights,
            layout,
        })
    }

    /// Rows of `layout` gathered on the training device, and host weights (one per row).
    pub(super) fn on_device(
        rows: &'a Tensor,
        weights: Option<&'a [f32]>,
        layout: RowLayout,
    ) -> Self {
        Self {
            rows: Gathered::Device(rows),
            weights,
            layout,
        }
    }

    /// The columns, read in place; `None` when the rows are on a device.
    pub fn host_columns(&self) -> Option<Columns<'a>> {
        let Gathered::Host(rows) = self.rows else {
            return None;
        };
        let (l, floats) = (self.layout, self.layout.floats());
        let n = rows.len() / floats;
        let column = |start: usize, cols: usize| Rows::strided(&rows[start..], n, cols, floats);
        Some(Columns {
            obs: column(0, l.obs_dim()),
            next_obs: column(l.obs_dim(), l.obs_dim()),
            actions: column(l.action(), 1),
            rewards: column(l.reward(), 1),
            discounts: column(l.discount(), 1),
            terminated: column(l.terminated(), 1),
            weights: self.weights,
        })
    }

    /// The minibatch as tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> Result<Batch> {
        let floats = self.layout.floats() as i64;
        let rows = match self.rows {
            Gathered::Host(rows) => Tensor::from_slice(rows)
                .f_view([rows.len() as i64 / floats, floats])?
                .f_to_device(device)?,
            Gathered::Device(rows) => rows.f_to_device(device)?,
        };
        let mut batch = Batch::from_rows(&rows, self.layout);
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
    /// `[B, obs_dim]` float.
    pub obs: Tensor,
    /// `[B, obs_dim]` float.
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
    /// Splits a `[B, row floats]` tensor of rows of `layout` into a minibatch (views, no
    /// copies but the actions).
    fn from_rows(rows: &Tensor, layout: RowLayout) -> Self {
        let d = layout.obs_dim() as i64;
        let at = |index: usize| index as i64;
        Batch {
            obs: rows.narrow(1, 0, d),
            next_obs: rows.narrow(1, d, d),
            actions: rows.narrow(1, at(layout.action()), 1).to_kind(Kind::Int64),
            rewards: rows.select(1, at(layout.reward())),
            discounts: rows.select(1, at(layout.discount())),
            terminated: rows.select(1, at(layout.terminated())),
            weights: None,
        }
    }
}
