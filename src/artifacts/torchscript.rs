//! Loading a TorchScript `model.pt` to play it: `qnet eval --torchscript` and `qnet render
//! --torchscript`. Loading TorchScript runs the code the archive holds, so qnet does it only
//! when asked; [`crate::artifacts::safetensors`] reads the same network as data.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::{CModule, Device, Kind, TchError, Tensor};

use crate::artifacts::export::{libtorch_message, read_archive};

/// A Q-network loaded from a TorchScript file and checked to map `[B, obs_dim]` float32
/// observations to `[B, n_actions]` Q-values.
#[derive(Debug)]
pub struct QModel {
    module: CModule,
    path: PathBuf,
    device: Device,
    obs_dim: i64,
    n_actions: i64,
}

/// Loads the TorchScript Q-network at `path` onto `device` and probes it with a zero
/// observation batch `[1, obs_dim]` (float32), which must give a floating-point `[1, n_actions]`
/// result. Every failure (missing, empty, truncated or non-TorchScript file, a network of
/// other sizes) is an error naming the file and what was expected.
pub fn load_torchscript(
    path: &Path,
    device: Device,
    obs_dim: i64,
    n_actions: i64,
) -> Result<QModel> {
    let problem = |what: String| {
        anyhow!(
            "cannot use {} as a Q-network: {what}. It should be the model.pt that qnet writes \
             into a run directory (a TorchScript archive)",
            path.display()
        )
    };
    let archive = read_archive(path).map_err(|e| problem(format!("{e:#}")))?;
    let mut module =
        CModule::load_data_on_device(&mut archive.as_slice(), device).map_err(|e| {
            problem(format!(
                "libtorch cannot read it as TorchScript, so it is corrupt or not a TorchScript \
             module ({})",
                torch_message(&e)
            ))
        })?;
    module.f_set_eval().map_err(|e| {
        problem(format!(
            "cannot switch it to eval mode ({})",
            torch_message(&e)
        ))
    })?;
    let model = QModel {
        module,
        path: path.to_owned(),
        device,
        obs_dim,
        n_actions,
    };
    let zeros = Tensor::f_zeros([1, obs_dim], (Kind::Float, device))?;
    let _probe = model.forward_checked(&zeros).map_err(|e| {
        anyhow!(
            "{} does not fit this environment: {e}. Expected a Q-network taking {obs_dim} \
             observation values and returning {n_actions} Q-values",
            path.display()
        )
    })?;
    Ok(model)
}

impl QModel {
    /// Q-values `[B, n_actions]` (float32, on the model's device) of observations `[B, obs_dim]`
    /// (any floating-point kind and device; converted as needed).
    pub fn q_values(&self, obs: &Tensor) -> Result<Tensor> {
        match obs.size().as_slice() {
            &[_, d] if d == self.obs_dim => {}
            s => bail!(
                "observations for {} must have shape [batch, {}], got {s:?}",
                self.path.display(),
                self.obs_dim
            ),
        }
        let obs = obs.f_to_device_(self.device, Kind::Float, false, false)?;
        self.forward_checked(&obs)
            .with_context(|| format!("Q-network {}", self.path.display()))
    }

    fn forward_checked(&self, obs: &Tensor) -> Result<Tensor> {
        let batch = obs.size().first().copied().unwrap_or(0);
        let out = tch::no_grad(|| self.module.forward_ts(&[obs]))
            .map_err(|e| anyhow!("forward failed: {}", torch_message(&e)))?;
        let kind = out.f_kind()?;
        let shape = out.size();
        if !is_float(kind) || shape != [batch, self.n_actions] {
            bail!(
                "forward on a float32 [{batch}, {}] input returned a {kind:?} tensor of shape \
                 {shape:?}, expected floating point [{batch}, {}]",
                self.obs_dim,
                self.n_actions
            );
        }
        Ok(out.f_to_device_(self.device, Kind::Float, false, false)?)
    }

    /// The underlying TorchScript module.
    pub fn module(&self) -> &CModule {
        &self.module
    }

    /// The file the module was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device the module runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Observation width the module was checked against.
    pub fn obs_dim(&self) -> i64 {
        self.obs_dim
    }

    /// Number of actions (Q-values per observation) the module was checked against.
    pub fn n_actions(&self) -> i64 {
        self.n_actions
    }
}

/// The useful part of a libtorch error.
fn torch_message(err: &TchError) -> String {
    libtorch_message(&err.to_string())
}

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Half | Kind::Float | Kind::Double | Kind::BFloat16
    )
}
