//! The DQN procedure (Mnih et al., 2015): epsilon-greedy acting on batched envs into a
//! replay buffer (uniform or prioritized), minibatch TD updates every `train_freq` vector
//! steps, a target network refreshed every `target_update_every` env steps.

use anyhow::Result;

use super::{Sink, Stop, Trainer};
use crate::env::OBS_DIM;
use crate::learn::schedule::beta_at;

impl Trainer<'_> {
    /// Trains until the env-step budget is spent, it is solved, it diverges or a stop is
    /// requested; says which.
    pub(super) fn run_dqn(&mut self) -> Result<Stop> {
        let n = self.cfg.env.n_envs;
        let mut actions = vec![0i64; n];
        let mut obs = vec![0.0f32; n * OBS_DIM];
        while self.state.env_steps < self.cfg.train.total_env_steps {
            if self.stop_requested() {
                return Ok(Stop::Interrupted);
            }
            let epsilon = self.epsilon();
            self.collect_step(&mut obs, &mut actions, Sink::Replay, epsilon)?;

            // Target network: refreshed on env-step boundaries, as SB3 and CleanRL do.
            let (step, every) = (self.state.env_steps, self.cfg.agent.target_update_every);
            if self.state.next_target_at.fire(step, every) {
                self.learner.update_target()?;
            }

            // Learn: gradient_steps minibatch updates every train_freq vector steps.
            if self.state.env_steps > self.cfg.replay.learning_starts
                && self.state.vector_steps % self.cfg.train.train_freq == 0
            {
                self.learn()?;
            }

            if let Some(stop) = self.after_step()? {
                return Ok(stop);
            }
        }
        Ok(Stop::Budget)
    }

    /// One training phase: `gradient_steps` minibatch updates, each sampled (uniformly or by
    /// priority), applied, and fed back as priorities.
    pub(super) fn learn(&mut self) -> Result<()> {
        let (lr, beta) = (self.lr(), beta_at(&self.cfg.replay, self.state.env_steps));
        for _ in 0..self.cfg.train.gradient_steps {
            let batch =
                self.replay
                    .sample(self.cfg.replay.batch_size, &mut self.state.replay_rng, beta)?;
            self.learner.update(&batch, lr)?;
            if self.replay.is_prioritized() {
                self.replay.update_priorities(self.learner.td_errors()?)?;
            }
            self.state.gradient_updates += 1;
        }
        Ok(())
    }
}
