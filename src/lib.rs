//! qnet: Deep Q-Networks on CartPole-v1, in Rust on libtorch through tch.

pub mod agent;
pub mod atomic;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
pub mod env;
pub mod eval;
pub mod export;
pub mod memory;
pub mod metrics;
pub mod optim;
pub mod plot;
pub mod progress;
pub mod qnet;
pub mod records;
pub mod replay;
pub mod rng;
pub mod schedule;
pub mod sum_tree;
pub mod tensorboard;
pub mod trainer;
pub mod video;
