//! `qnet bench throughput`: the two halves of the training loop timed apart, through the
//! loop's own code (the acting step and the training phase the runs use).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result};
use tch::Device;

use super::{Sink, Start, Trainer};
use crate::config::Config;
use crate::env::OBS_DIM;
use crate::run::preflight::Placement;
use crate::run::progress::Progress;
use crate::run::provenance::this_command;
use crate::run::run_dir;

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

/// Times `cfg` on `placement` for `seconds` per half, in a scratch run directory removed
/// afterwards.
pub fn measure(cfg: &Config, placement: Placement, seconds: f64) -> Result<Throughput> {
    let dir = run_dir::unique(&std::env::temp_dir(), "-qnet-throughput");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let never = AtomicBool::new(false);
    let mut progress = Progress::Quiet;
    let measured = Trainer::new(
        cfg.clone(),
        placement,
        &dir,
        Start::Fresh,
        &mut progress,
        &never,
        this_command(),
    )
    .and_then(|mut trainer| trainer.throughput(seconds));
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    measured
}

/// Waits for queued CUDA work so timings include it.
fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

impl Trainer<'_> {
    /// Fills the replay buffer to `learning_starts` (at least a batch) with random actions,
    /// then times `seconds` of acting and `seconds` of training phases.
    fn throughput(&mut self, seconds: f64) -> Result<Throughput> {
        let n = self.cfg.env.n_envs;
        let mut actions = vec![0i64; n];
        let mut obs = vec![0.0f32; n * OBS_DIM];
        let fill = self
            .cfg
            .replay
            .batch_size
            .max(self.cfg.replay.learning_starts as usize)
            .min(self.cfg.replay.capacity);
        while self.replay.len() < fill {
            self.collect_step(&mut obs, &mut actions, Sink::Replay, 1.0)?;
        }
        let epsilon = self.cfg.exploration.end;
        let start = Instant::now();
        let before = self.state.env_steps;
        while start.elapsed().as_secs_f64() < seconds {
            self.collect_step(&mut obs, &mut actions, Sink::Replay, epsilon)?;
        }
        synchronize(self.device);
        let env_steps_per_second =
            (self.state.env_steps - before) as f64 / start.elapsed().as_secs_f64();

        self.learn()?;
        synchronize(self.device);
        let start = Instant::now();
        let before = self.state.gradient_updates;
        while start.elapsed().as_secs_f64() < seconds {
            self.learn()?;
            synchronize(self.device);
        }
        let updates_per_second =
            (self.state.gradient_updates - before) as f64 / start.elapsed().as_secs_f64();
        Ok(Throughput {
            env_steps_per_second,
            updates_per_second,
            kernel: self.learner.kernel(),
        })
    }
}
