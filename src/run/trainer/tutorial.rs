//! The tutorial's procedure, kept for comparison: each iteration collects whole episodes
//! with a constant epsilon into a fresh memory until it holds more than `min_memory`
//! transitions, then fits every stored transition once, in order, `batch_size` at a time
//! (one, as the tutorial does), bootstrapping from the network being trained.

use anyhow::{Context, Result};

use super::{Sink, Stop, Trainer};
use crate::config::StepCounting;
use crate::env::OBS_DIM;
use crate::learn::replay::{Minibatch, ROW};

impl Trainer<'_> {
    /// Runs the remaining iterations; says why it stopped (a stop request is honoured
    /// between iterations, so a checkpoint never holds a half-collected memory).
    pub(super) fn run_tutorial(&mut self) -> Result<Stop> {
        let n = self.cfg.env.n_envs;
        let tutorial = self.cfg.train.tutorial.clone();
        let mut actions = vec![0i64; n];
        let mut obs = vec![0.0f32; n * OBS_DIM];
        // The memory outgrows min_memory by at most one vector step's worth of episodes.
        let mut memory: Vec<f32> = Vec::new();
        let rows = tutorial.min_memory + n * self.cfg.env.max_episode_steps as usize;
        memory.try_reserve(rows * ROW).with_context(|| {
            format!("cannot allocate the tutorial's memory of {rows} transitions")
        })?;
        while self.state.tutorial_iterations < tutorial.iterations {
            if self.stop_requested() {
                return Ok(Stop::Interrupted);
            }
            // Collect: whole episodes until the counter passes min_memory. The text counts
            // transitions; the code adds len(memory) after every episode.
            memory.clear();
            let mut counter = 0usize;
            while counter <= tutorial.min_memory {
                let epsilon = self.epsilon();
                let ended =
                    self.collect_step(&mut obs, &mut actions, Sink::Memory(&mut memory), epsilon)?;
                let held = memory.len() / ROW;
                for _ in 0..ended {
                    counter = match tutorial.step_counting {
                        StepCounting::Text => held,
                        StepCounting::Code => counter + held,
                    };
                }
                self.report();
            }

            // Fit: every transition once, in collection order.
            let batch_rows = self.cfg.replay.batch_size * ROW;
            for rows in memory.chunks(batch_rows) {
                let batch = Minibatch::from_rows(rows, None)?;
                self.learner.update(&batch, self.lr())?;
                self.state.gradient_updates += 1;
            }
            self.state.tutorial_iterations += 1;

            if let Some(stop) = self.after_step()? {
                return Ok(stop);
            }
        }
        Ok(Stop::Budget)
    }
}
