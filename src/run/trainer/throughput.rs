//! `qnet bench throughput`: the two halves of the training loop timed apart, through the
//! algorithm's own code (the acting step and the training phase the runs use).

use std::time::Instant;

use anyhow::Result;
use tch::Device;

use super::algorithm::Algorithm;
use crate::config::Config;
use crate::env::Resolved;
use crate::run::preflight::Placement;

/// Rates of the two halves of the loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    /// Env steps per second of acting (epsilon-greedy at the schedule's final epsilon,
    /// env step, transitions into the replay buffer).
    pub env_steps_per_second: f64,
    /// Gradient updates per second (sample, update, priorities).
    pub updates_per_second: f64,
    /// What computed them ([`crate::learn::agent::Learner::kernel`]).
    pub kernel: &'static str,
}

/// Waits for queued CUDA work so timings include it.
fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// Fills a fresh algorithm of `cfg` on `env` and `placement` to `learning_starts` (at least a batch)
/// with random actions, then times `seconds` of acting and `seconds` of training phases.
pub fn measure(
    cfg: &Config,
    env: &Resolved,
    placement: Placement,
    seconds: f64,
) -> Result<Throughput> {
    let mut algorithm = Algorithm::new(cfg, env, placement)?;
    let fill = cfg
        .replay
        .batch_size
        .max(cfg.replay.learning_starts as usize)
        .min(cfg.replay.capacity);
    while algorithm.replay.len() < fill {
        algorithm.act(1.0)?;
    }
    let epsilon = cfg.exploration.end;
    let start = Instant::now();
    let before = algorithm.state.env_steps;
    while start.elapsed().as_secs_f64() < seconds {
        algorithm.act(epsilon)?;
    }
    synchronize(placement.train);
    let env_steps_per_second =
        (algorithm.state.env_steps - before) as f64 / start.elapsed().as_secs_f64();

    algorithm.learn()?;
    synchronize(placement.train);
    let start = Instant::now();
    let before = algorithm.state.gradient_updates;
    while start.elapsed().as_secs_f64() < seconds {
        algorithm.learn()?;
        synchronize(placement.train);
    }
    let updates_per_second =
        (algorithm.state.gradient_updates - before) as f64 / start.elapsed().as_secs_f64();
    Ok(Throughput {
        env_steps_per_second,
        updates_per_second,
        kernel: algorithm.learner.kernel(),
    })
}

/// Env steps per second of `n` envs of `env` stepped together for about `seconds`, after a
/// warm-up, with action `(t * 7 + i * 3) % n_actions` for env `i` at step `t` (the pattern
/// `bench/peers/gym_loop.py` steps Gymnasium with).
pub fn env_steps_per_second(env: &Resolved, n: usize, seconds: f64) -> Result<f64> {
    let mut envs = env.batch(0..n, 0)?;
    envs.reset_all()?;
    let n_actions = env.spec().n_actions;
    let mut actions = vec![0i64; n];
    let mut step = |t: usize| {
        for (i, action) in actions.iter_mut().enumerate() {
            *action = ((t * 7 + i * 3) % n_actions) as i64;
        }
        envs.step(&actions)
    };
    for t in 0..100 {
        step(t)?;
    }
    let start = Instant::now();
    let mut t = 100;
    while start.elapsed().as_secs_f64() < seconds {
        step(t)?;
        t += 1;
    }
    Ok(((t - 100) * n) as f64 / start.elapsed().as_secs_f64())
}
