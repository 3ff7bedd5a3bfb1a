//! What the training loop and evaluation step: N envs of one environment stepped together,
//! with auto-reset and the final observations kept, whichever environment it is.

use std::fmt::Debug;

use anyhow::Result;

use super::batch::Batch;
use super::dynamics::Dynamics;

/// N envs stepped together: env `i` behaves as one env that its owner resets whenever an
/// episode ends, in the same step, keeping the observation that ended it apart.
pub trait VecEnv: Debug + Send {
    /// Number of envs.
    fn len(&self) -> usize;

    /// True for a batch of zero envs.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether every per-env array holds [`VecEnv::len`] envs (a batch read from a file may
    /// not).
    fn is_whole(&self) -> bool;

    /// The step count at which episodes are truncated.
    fn max_episode_steps(&self) -> u32;

    /// Starts a fresh episode in every env.
    fn reset_all(&mut self) -> Result<()>;

    /// Steps every env with its action, resetting those whose episode ends. A wrong number of
    /// actions, an invalid action or a step before the first [`VecEnv::reset_all`] is
    /// refused before any env moves.
    fn step(&mut self, actions: &[i64]) -> Result<()>;

    /// Observations after the last call, flat; for envs that just ended, the first
    /// observation of their new episode.
    fn obs(&self) -> &[f32];

    /// Flat observations that ended episodes (meaningful where an episode just ended).
    fn final_obs(&self) -> &[f32];

    /// Rewards of the last step, one per env.
    fn rewards(&self) -> &[f32];

    /// Per env: the last step ended its episode in a terminal state.
    fn terminated(&self) -> &[bool];

    /// Per env: the last step ended its episode at the time limit.
    fn truncated(&self) -> &[bool];

    /// Per env: length of the episode that just ended; meaningful only where it ended.
    fn episode_lengths(&self) -> &[u32];

    /// The envs' whole state as JSON, for a checkpoint; `None` for envs whose state cannot
    /// be saved (a Python environment's).
    fn to_json(&self) -> Option<serde_json::Result<String>>;
}

impl<D: Dynamics> VecEnv for Batch<D> {
    fn len(&self) -> usize {
        Batch::len(self)
    }

    fn is_whole(&self) -> bool {
        Batch::is_whole(self)
    }

    fn max_episode_steps(&self) -> u32 {
        Batch::max_episode_steps(self)
    }

    fn reset_all(&mut self) -> Result<()> {
        Batch::reset_all(self);
        Ok(())
    }

    fn step(&mut self, actions: &[i64]) -> Result<()> {
        Ok(Batch::step(self, actions)?)
    }

    fn obs(&self) -> &[f32] {
        Batch::obs(self)
    }

    fn final_obs(&self) -> &[f32] {
        Batch::final_obs(self)
    }

    fn rewards(&self) -> &[f32] {
        Batch::rewards(self)
    }

    fn terminated(&self) -> &[bool] {
        Batch::terminated(self)
    }

    fn truncated(&self) -> &[bool] {
        Batch::truncated(self)
    }

    fn episode_lengths(&self) -> &[u32] {
        Batch::episode_lengths(self)
    }

    fn to_json(&self) -> Option<serde_json::Result<String>> {
        Some(serde_json::to_string(self))
    }
}
