//! File formats a run writes, one per file; none knows the training loop.

pub mod export;
pub mod plot;
pub mod safetensors;
pub mod tensorboard;
pub mod torchscript;
pub mod video;
