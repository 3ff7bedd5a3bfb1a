//! What a run leaves on disk: the model files PyTorch opens (`model.pt`,
//! `model.safetensors`, and `model_best.*` for the best evaluation) and the resumable
//! training checkpoint.

pub mod training;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use tch::Tensor;

use crate::atomic::remove_if_exists;
use crate::config::{Activation, Config};
use crate::env::{N_ACTIONS, OBS_DIM};
use crate::export::{self, MlpWeights};
use crate::qnet::QNetwork;

/// Which pair of model files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFiles {
    /// `model.pt` / `model.safetensors`: the weights at the last checkpoint (the end of
    /// training, once it is complete).
    Final,
    /// `model_best.pt` / `model_best.safetensors`: the weights at the periodic evaluation
    /// with the highest mean return.
    Best,
}

impl ModelFiles {
    /// The file name without extension.
    pub fn stem(self) -> &'static str {
        match self {
            ModelFiles::Final => "model",
            ModelFiles::Best => "model_best",
        }
    }

    /// `<dir>/<stem>.pt`, the TorchScript file.
    pub fn torchscript(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pt", self.stem()))
    }

    /// Removes both files from `dir`, if there.
    pub fn remove(self, dir: &Path) -> Result<()> {
        remove_if_exists(&self.torchscript(dir))?;
        remove_if_exists(&dir.join(format!("{}.safetensors", self.stem())))
    }
}

/// Writes the `files` pair into `dir` from parameters `flat` laid out like `net`'s, with
/// metadata that says what the network is and where it came from.
pub fn save_model(
    dir: &Path,
    files: ModelFiles,
    cfg: &Config,
    net: &QNetwork,
    flat: &Tensor,
    env_step: u64,
) -> Result<()> {
    let weights = MlpWeights {
        layers: net.layer_views(flat),
        activation: net.activation(),
    };
    export::save_model_files(dir, files.stem(), &weights, &model_metadata(cfg, env_step)?)
}

/// The metadata both model files carry.
pub fn model_metadata(cfg: &Config, env_step: u64) -> Result<BTreeMap<String, String>> {
    let activation = match cfg.network.activation {
        Activation::Relu => "relu",
        Activation::Tanh => "tanh",
    };
    Ok(BTreeMap::from([
        ("obs_dim".to_owned(), OBS_DIM.to_string()),
        ("n_actions".to_owned(), N_ACTIONS.to_string()),
        (
            "hidden".to_owned(),
            serde_json::to_string(&cfg.network.hidden)?,
        ),
        ("activation".to_owned(), activation.to_owned()),
        ("env_id".to_owned(), cfg.env.id.clone()),
        ("env_step".to_owned(), env_step.to_string()),
        ("seed".to_owned(), cfg.seed.to_string()),
        (
            "qnet_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("config".to_owned(), cfg.to_yaml()?),
    ]))
}
