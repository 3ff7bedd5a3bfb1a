//! What a run leaves on disk: the model files PyTorch opens (`model.pt`,
//! `model.safetensors`) and the resumable training checkpoint.

pub mod training;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::config::{Activation, Config};
use crate::env::{N_ACTIONS, OBS_DIM};
use crate::export::{self, MlpWeights};
use crate::qnet::QNetwork;

/// Writes `model.pt` and `model.safetensors` of `net` into `dir`, with metadata that says
/// what the network is and where it came from.
pub fn save_model(dir: &Path, cfg: &Config, net: &QNetwork, env_step: u64) -> Result<()> {
    let weights = MlpWeights {
        layers: net.layer_tensors(),
        activation: net.activation(),
    };
    export::save_model_files(dir, &weights, &model_metadata(cfg, env_step)?)
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
