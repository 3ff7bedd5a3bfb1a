//! What a run leaves on disk: the model files PyTorch opens (`model.pt`,
//! `model.safetensors`, and `model_best.*` for the best evaluation) and the resumable
//! training checkpoint.

pub mod training;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use tch::Tensor;

use crate::artifacts::export;
use crate::config::Config;
use crate::learn::qfunction::NetworkSpec;
use crate::platform::atomic::remove_if_exists;

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

    /// `<dir>/<stem>.safetensors`, the parameters as data.
    pub fn safetensors(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.safetensors", self.stem()))
    }

    /// Removes both files from `dir`, if there.
    pub fn remove(self, dir: &Path) -> Result<()> {
        remove_if_exists(&self.torchscript(dir))?;
        remove_if_exists(&self.safetensors(dir))
    }
}

/// Writes the `files` pair into `dir`: the network `spec` describes with parameters `flat`,
/// with metadata that says what it is and where it came from.
pub fn save_model(
    dir: &Path,
    files: ModelFiles,
    cfg: &Config,
    spec: &NetworkSpec,
    flat: &Tensor,
    env_step: u64,
) -> Result<()> {
    let metadata = model_metadata(cfg, spec, env_step)?;
    export::save_model_files(dir, files.stem(), spec, flat, &metadata)
}

/// The metadata both model files carry.
fn model_metadata(
    cfg: &Config,
    spec: &NetworkSpec,
    env_step: u64,
) -> Result<BTreeMap<String, String>> {
    Ok(BTreeMap::from([
        ("obs_dim".to_owned(), spec.obs_dim.to_string()),
        ("n_actions".to_owned(), spec.n_actions.to_string()),
        ("hidden".to_owned(), serde_json::to_string(&spec.hidden)?),
        ("activation".to_owned(), spec.activation.name().to_owned()),
        ("head".to_owned(), spec.head_name().to_owned()),
        ("env_id".to_owned(), cfg.env.id.to_string()),
        ("env_step".to_owned(), env_step.to_string()),
        ("seed".to_owned(), cfg.seed.to_string()),
        (
            "qnet_version".to_owned(),
            env!("CARGO_PKG_VERSION").to_owned(),
        ),
        ("config".to_owned(), cfg.to_yaml()?),
    ]))
}
