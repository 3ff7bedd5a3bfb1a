//! The DQN procedure (Mnih et al., 2015): the algorithm's steps until the env-step budget is
//! spent, each followed by the run's bookkeeping.

use anyhow::Result;

use super::{Stop, Trainer};

impl Trainer<'_> {
    /// Trains until the env-step budget is spent, it is solved, it diverges or a stop is
    /// requested; says which.
    pub(super) fn run_dqn(&mut self) -> Result<Stop> {
        while self.env_steps() < self.cfg.train.total_env_steps {
            if self.stop_requested() {
                return Ok(Stop::Interrupted);
            }
            let ended = self.algorithm.step()?;
            self.record_episodes(&ended)?;
            if let Some(stop) = self.after_step()? {
                return Ok(stop);
            }
        }
        Ok(Stop::Budget)
    }
}
