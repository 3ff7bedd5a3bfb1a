//! qnet's integration tests, one binary (libtorch is linked once): the CLI driven end to end,
//! the environment against Gymnasium's fixtures, models and records against PyTorch,
//! TensorBoard and rliable, and the crate's architecture.

mod acrobot_parity;
mod architecture;
mod cartpole_parity;
mod cartpole_reset;
mod classic_golden;
mod cli_errors;
mod common;
mod config;
mod export;
mod gym_bridge;
mod hostile;
mod interop;
mod limits;
mod messages;
mod mountaincar_parity;
mod paths;
mod render;
mod report;
mod resume;
mod safety;
mod sizes;
mod solved;
mod sweep;
mod tensorboard;
mod train;
