//! qnet: Deep Q-Networks on CartPole-v1, in Rust on libtorch through tch.
//!
//! The crate is a few wings, and data flows one way through them:
//! `config` and `env` and `platform` at the bottom, `learn` and `artifacts` above them, `run`
//! above those, `many` above `run`, and `cli` on top. `tests/suite/architecture.rs` holds the table
//! of which wing may import which and fails on any import against it.

/// File formats, one per file: TorchScript and safetensors models, TensorBoard events, SVG
/// plots, GIF videos. Each knows its format and nothing of the training loop.
pub mod artifacts;
pub mod cli;
/// Experiment settings: raw YAML and `--set` overrides in, one validated [`config::Config`] out.
pub mod config;
/// The environments, each step for step Gymnasium's, batched stepping and frames.
pub mod env;
/// The algorithm: Q-functions, the TD update, the optimizer, replay, schedules, greedy
/// evaluation. No files, no terminal.
pub mod learn;
/// Many runs: sweeps on local workers or Slurm arrays, statistics across runs, reports.
pub mod many;
/// Operating system, CPU, CUDA and libtorch glue: devices, symbols, SIMD, atomic file
/// writes, time, random streams.
pub mod platform;
/// One run's life: the training loop, checkpoints, records, progress, provenance, preflight
/// size checks, starting and resuming.
pub mod run;
