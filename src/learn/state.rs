//! A learning component's resumable state: the [`Part`] it hands to a checkpoint and takes
//! back through [`Checkpointed`]. The run's checkpoint file stores parts; what they mean
//! stays with the component that made them.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// One component's share of a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The component's small state (counters, RNG states, positions), as JSON.
    pub state: String,
    /// Named flat f32 arrays.
    pub f32s: BTreeMap<String, Vec<f32>>,
    /// Named flat f64 arrays.
    pub f64s: BTreeMap<String, Vec<f64>>,
}

impl Part {
    /// A part holding `state` as JSON, with no arrays yet.
    pub fn new(state: &impl Serialize) -> Result<Self> {
        Ok(Self {
            state: serde_json::to_string(state).context("encoding a checkpoint part's state")?,
            f32s: BTreeMap::new(),
            f64s: BTreeMap::new(),
        })
    }

    /// The state, decoded.
    pub fn state<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.state).context("decoding its state")
    }

    /// The f32 array `name`.
    pub fn f32s(&self, name: &str) -> Result<&[f32]> {
        self.f32s
            .get(name)
            .map(Vec::as_slice)
            .with_context(|| format!("it has no '{name}' array"))
    }
}

/// A component of a training run that hands its state to a checkpoint and takes it back.
pub trait Checkpointed {
    /// Its state now (flushing whatever it buffers first).
    fn save_part(&mut self) -> Result<Part>;
    /// Takes back a part that a like-configured component saved.
    fn load_part(&mut self, part: &Part) -> Result<()>;
}

/// A tensor's values as f32 on the host, for a checkpoint part.
pub fn host_values(tensor: &Tensor) -> Result<Vec<f32>> {
    let host = tensor
        .f_to_device(Device::Cpu)?
        .f_to_kind(Kind::Float)?
        .f_contiguous()?;
    let n = host.numel();
    let mut values = Vec::new();
    values
        .try_reserve_exact(n)
        .with_context(|| format!("cannot allocate a host copy of {n} values"))?;
    values.resize(n, 0.0);
    host.f_copy_data(&mut values, n)?;
    Ok(values)
}
