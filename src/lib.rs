//! qnet: Deep Q-Networks on CartPole-v1, in Rust on libtorch through tch.

pub mod config;
pub mod env;
pub mod plot;
pub mod rng;
pub mod schedule;
pub mod video;
