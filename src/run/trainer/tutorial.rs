//! The tutorial's procedure, kept for comparison: each iteration collects whole episodes
//! with a constant epsilon into a fresh memory until it holds more than `min_memory`
//! transitions, then fits every stored transition once, in order, `batch_size` at a time
//! (one, as the tutorial does), bootstrapping from the network being trained.

use anyhow::{Context, Result};

use super::{Stop, Trainer};
use crate::config::StepCounting;

impl Trainer<'_> {
    /// Runs the remaining iterations; says why it stopped (a stop request is honoured
    /// between iterations, so a checkpoint never holds a half-collected memory).
    pub(super) fn run_tutorial(&mut self) -> Result<Stop> {
        let tutorial = self.cfg.train.tutorial.clone();
        // The memory outgrows min_memory by at most one vector step's worth of episodes.
        let mut memory: Vec<f32> = Vec::new();
        let rows = tutorial.min_memory + self.cfg.env.n_envs * self.env.time_limit() as usize;
        let floats = self.algorithm.replay.layout().floats();
        memory.try_reserve(rows * floats).with_context(|| {
            format!("cannot allocate the tutorial's memory of {rows} transitions")
        })?;
        while self.algorithm.state.tutorial_iterations < tutorial.iterations {
            if self.stop_requested() {
                return Ok(Stop::Interrupted);
            }
            // Collect: whole episodes until the counter passes min_memory. The text counts
            // transitions; the code adds len(memory) after every episode.
            memory.clear();
            let mut counter = 0usize;
            while counter <= tutorial.min_memory {
                let epsilon = self.algorithm.epsilon();
                let ended = self.algorithm.collect(epsilon, &mut memory)?;
                self.record_episodes(&ended)?;
                // A memory of millions of transitions takes as many episodes to collect:
                // their rows go to disk as they come, not all at the end of the iteration.
                self.records.flush_if_due()?;
                let held = memory.len() / floats;
                for _ in 0..ended.len() {
                    counter = match tutorial.step_counting {
                        StepCounting::Text => held,
                        StepCounting::Code => counter + held,
                    };
                }
                self.report();
            }

            // Fit: every transition once, in collection order.
            self.algorithm.fit(&memory)?;
            self.algorithm.state.tutorial_iterations += 1;

            if let Some(stop) = self.after_step()? {
                return Ok(stop);
            }
        }
        Ok(Stop::Budget)
    }
}
