//! N envs of any one environment stepped together, with auto-reset: the interface the
//! training loop and evaluation step, whichever environment `env.id` names (made by
//! [`super::registry::Resolved::batch`]).

use anyhow::Result;

use super::dynamics::EnvSpec;
use super::vec_env::VecEnv;

/// A batch of envs of one environment, with its spec.
#[derive(Debug)]
pub struct Envs {
    spec: EnvSpec,
    inner: Box<dyn VecEnv>,
}

impl Envs {
    /// The envs `inner` of the environment `spec` describes.
    pub fn new(spec: EnvSpec, inner: Box<dyn VecEnv>) -> Self {
        Self { spec, inner }
    }

    /// The environment's sizes and limits.
    pub fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    /// Number of envs.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True for a batch of zero envs.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Checks a batch read from a file against what its run asks for: `n` envs, each
    /// array whole, truncating after `max_episode_steps`. The error says what differs.
    pub fn check(&self, n: usize, max_episode_steps: u32) -> Result<(), String> {
        let (whole, limit) = (self.inner.is_whole(), self.inner.max_episode_steps());
        if self.len() != n {
            Err(format!("hold {} envs; the config asks for {n}", self.len()))
        } else if !whole {
            Err(format!(
                "are not whole: their per-env arrays do not all hold {n} envs"
            ))
        } else if limit != max_episode_steps {
            Err(format!(
                "truncate episodes after {limit} steps; the config's time limit is \
                 {max_episode_steps}"
            ))
        } else {
            Ok(())
        }
    }

    /// Starts a fresh episode in every env; returns the flat observations.
    pub fn reset_all(&mut self) -> Result<&[f32]> {
        self.inner.reset_all()?;
        Ok(self.inner.obs())
    }

    /// Steps every env with its action, resetting those whose episode ends. Errors, leaving
    /// every env unchanged, on a wrong number of actions, an invalid action, or before the
    /// first [`Envs::reset_all`]; a Python environment's error is its exception.
    pub fn step(&mut self, actions: &[i64]) -> Result<()> {
        self.inner.step(actions)
    }

    /// Observations after the last step, flat; for envs that just ended, the first
    /// observation of their new episode.
    pub fn obs(&self) -> &[f32] {
        self.inner.obs()
    }

    /// Flat observations that ended episodes (meaningful where an episode just ended).
    pub fn final_obs(&self) -> &[f32] {
        self.inner.final_obs()
    }

    /// Rewards of the last step, one per env.
    pub fn rewards(&self) -> &[f32] {
        self.inner.rewards()
    }

    /// Per env: the last step ended its episode in a terminal state.
    pub fn terminated(&self) -> &[bool] {
        self.inner.terminated()
    }

    /// Per env: the last step ended its episode at the time limit.
    pub fn truncated(&self) -> &[bool] {
        self.inner.truncated()
    }

    /// Per env: length of the episode that just ended; meaningful only where it ended.
    pub fn episode_lengths(&self) -> &[u32] {
        self.inner.episode_lengths()
    }

    /// The envs' state as JSON, for a checkpoint (read back by
    /// [`super::registry::Resolved::restore`]); `None` where it cannot be saved (a Python
    /// environment's).
    pub fn to_json(&self) -> Option<serde_json::Result<String>> {
        self.inner.to_json()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::env::registry::resolve;

    /// A batch goes through a checkpoint (JSON) and comes back as the same environment, on
    /// the same episodes.
    #[test]
    fn a_batch_round_trips_as_its_own_environment() -> anyhow::Result<()> {
        for id in ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"] {
            let mut cfg = Config::default().env;
            cfg.id = id.parse().map_err(anyhow::Error::msg)?;
            let resolved = resolve(&cfg)?;
            let mut envs = resolved.batch(0..4, 11)?;
            envs.reset_all()?;
            let actions = vec![1i64; 4];
            for _ in 0..5 {
                envs.step(&actions)?;
            }
            let json = envs.to_json().expect("a Rust env's state")?;
            let mut back = resolved.restore(&json)?;
            assert_eq!(back.spec().id, id);
            back.check(4, resolved.time_limit())
                .map_err(anyhow::Error::msg)?;
            for _ in 0..5 {
                envs.step(&actions)?;
                back.step(&actions)?;
                assert_eq!(envs.obs(), back.obs());
            }
        }
        Ok(())
    }
}
