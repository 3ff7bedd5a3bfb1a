//! N CartPole-v1 envs stepped together, stored as a struct of arrays, with auto-reset.
//!
//! Env `i` behaves exactly like
//! `CartPole::with_max_episode_steps(env_seed(seed, i), max_episode_steps)` that is reset
//! by its owner whenever an episode ends: same physics function, same RNG draws, same
//! flags. When an episode ends the env resets in the same call, and the observation that
//! ended it is kept in [`BatchedCartPole::final_obs`] because a DQN target needs it to
//! bootstrap a truncated episode (Gymnasium's "final_obs" / SB3's `terminal_observation`).

use rand::SeedableRng;

use super::cartpole::{euler_step, initial_state, is_terminal, observe, push_right};
use super::dynamics::{env_seed, EnvRng};
use super::{EnvError, OBS_DIM};

/// N CartPole-v1 envs as a struct of arrays; [`BatchedCartPole::step`] allocates nothing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BatchedCartPole {
    x: Vec<f64>,
    x_dot: Vec<f64>,
    theta: Vec<f64>,
    theta_dot: Vec<f64>,
    rngs: Vec<EnvRng>,
    elapsed_steps: Vec<u32>,
    max_episode_steps: u32,
    obs: Vec<f32>,
    final_obs: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    episode_lengths: Vec<u32>,
    // Stepping before the first `reset_all` is refused, like a scalar env's first step.
    started: bool,
}

impl BatchedCartPole {
    /// `n` envs seeded with [`env_seed`]`(seed, i)`, truncating after `max_episode_steps`;
    /// call [`BatchedCartPole::reset_all`] before stepping.
    pub fn new(n: usize, seed: u64, max_episode_steps: u32) -> Self {
        Self::of_envs(0..n, seed, max_episode_steps)
    }

    /// Envs number `envs.start` to `envs.end - 1` of the batch [`BatchedCartPole::new`] would
    /// make with `seed`: the same initial states, a part at a time.
    pub fn of_envs(envs: std::ops::Range<usize>, seed: u64, max_episode_steps: u32) -> Self {
        let n = envs.len();
        Self {
            x: vec![0.0; n],
            x_dot: vec![0.0; n],
            theta: vec![0.0; n],
            theta_dot: vec![0.0; n],
            rngs: envs
                .map(|i| EnvRng::seed_from_u64(env_seed(seed, i)))
                .collect(),
            elapsed_steps: vec![0; n],
            max_episode_steps,
            obs: vec![0.0; n * OBS_DIM],
            final_obs: vec![0.0; n * OBS_DIM],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            episode_lengths: vec![0; n],
            started: false,
        }
    }

    /// Number of envs.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// True for a batch of zero envs.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// Whether every per-env array holds [`BatchedCartPole::len`] envs (a batch read from a
    /// file may not).
    pub fn is_whole(&self) -> bool {
        let n = self.len();
        [
            self.x_dot.len(),
            self.theta.len(),
            self.theta_dot.len(),
            self.rngs.len(),
            self.elapsed_steps.len(),
            self.rewards.len(),
            self.terminated.len(),
            self.truncated.len(),
            self.episode_lengths.len(),
        ]
        .iter()
        .all(|&len| len == n)
            && self.obs.len() == n * OBS_DIM
            && self.final_obs.len() == n * OBS_DIM
    }

    /// The step count at which episodes are truncated.
    pub fn max_episode_steps(&self) -> u32 {
        self.max_episode_steps
    }

    /// Starts a fresh episode in every env; returns the flat `n * OBS_DIM` observations.
    pub fn reset_all(&mut self) -> &[f32] {
        for i in 0..self.len() {
            self.reset_env(i);
            self.terminated[i] = false;
            self.truncated[i] = false;
        }
        self.started = true;
        &self.obs
    }

    /// Steps every env with its action (0 = left, 1 = right), resetting those whose
    /// episode ends; results are read through the accessors.
    ///
    /// Errors, leaving every env unchanged, when `actions.len() != self.len()`, when an
    /// action is not 0 or 1, or before the first [`BatchedCartPole::reset_all`].
    pub fn step(&mut self, actions: &[i64]) -> Result<(), EnvError> {
        let n = self.len();
        if actions.len() != n {
            return Err(EnvError::ActionCount {
                expected: n,
                got: actions.len(),
            });
        }
        // Validate everything first so an error never leaves the batch half stepped.
        if let Some(&bad) = actions.iter().find(|&&action| push_right(action).is_err()) {
            return Err(EnvError::InvalidAction(bad));
        }
        if !self.started {
            return Err(EnvError::NeedsReset);
        }
        for (i, &action) in actions.iter().enumerate() {
            self.step_env(i, action == 1);
        }
        Ok(())
    }

    /// Observations after the last call, flat `n * OBS_DIM`; for envs that just ended,
    /// the first observation of their new episode.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// Flat `n * OBS_DIM` observations that ended episodes: entries of env `i` are
    /// meaningful only where `terminated()[i] || truncated()[i]` after the last step.
    pub fn final_obs(&self) -> &[f32] {
        &self.final_obs
    }

    /// Rewards of the last step, one per env (1.0 on every step, as CartPole-v1).
    pub fn rewards(&self) -> &[f32] {
        &self.rewards
    }

    /// Per env: the last step ended its episode by the pole falling or the cart leaving.
    pub fn terminated(&self) -> &[bool] {
        &self.terminated
    }

    /// Per env: the last step ended its episode at the time limit.
    pub fn truncated(&self) -> &[bool] {
        &self.truncated
    }

    /// Per env: length of the episode that just ended; meaningful only where it ended.
    pub fn episode_lengths(&self) -> &[u32] {
        &self.episode_lengths
    }

    /// Full-precision state `[x, x_dot, theta, theta_dot]` of env `index`, if it exists.
    pub fn state(&self, index: usize) -> Option<[f64; 4]> {
        Some([
            *self.x.get(index)?,
            *self.x_dot.get(index)?,
            *self.theta.get(index)?,
            *self.theta_dot.get(index)?,
        ])
    }

    /// Steps env `i`, which must exist; the scalar env's `step` plus its owner's reset.
    #[inline(always)]
    fn step_env(&mut self, i: usize, push_right: bool) {
        let state = [self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]];
        let next = euler_step(state, push_right);
        let terminated = is_terminal(next[0], next[2]);
        let elapsed = self.elapsed_steps[i] + 1;
        // TimeLimit sets truncated whenever the limit is reached, even on a terminal step.
        let truncated = elapsed >= self.max_episode_steps;
        self.terminated[i] = terminated;
        self.truncated[i] = truncated;
        self.rewards[i] = 1.0;
        let obs = observe(next);
        if terminated || truncated {
            self.final_obs[i * OBS_DIM..(i + 1) * OBS_DIM].copy_from_slice(&obs);
            self.episode_lengths[i] = elapsed;
            self.reset_env(i);
        } else {
            [self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]] = next;
            self.elapsed_steps[i] = elapsed;
            self.obs[i * OBS_DIM..(i + 1) * OBS_DIM].copy_from_slice(&obs);
        }
    }

    /// Draws a new initial state for env `i` from its own RNG, as `CartPole::reset` does.
    fn reset_env(&mut self, i: usize) {
        let state = initial_state(&mut self.rngs[i]);
        [self.x[i], self.x_dot[i], self.theta[i], self.theta_dot[i]] = state;
        self.elapsed_steps[i] = 0;
        self.obs[i * OBS_DIM..(i + 1) * OBS_DIM].copy_from_slice(&observe(state));
    }
}

#[cfg(test)]
mod tests {
    use super::super::CartPole;
    use super::*;
    use rand::RngExt;

    #[test]
    fn batch_equals_scalar_envs_step_for_step() {
        let (n, seed, max_steps) = (8, 77, 60);
        let mut batch = BatchedCartPole::new(n, seed, max_steps);
        let mut scalars: Vec<CartPole> = (0..n)
            .map(|i| CartPole::with_max_episode_steps(env_seed(seed, i), max_steps))
            .collect();
        let first: Vec<f32> = scalars.iter_mut().flat_map(|env| env.reset()).collect();
        assert_eq!(batch.reset_all(), &first[..]);

        let mut action_rng = EnvRng::seed_from_u64(5);
        let mut actions = vec![0i64; n];
        let (mut terminations, mut truncations) = (0, 0);
        for _ in 0..3000 {
            actions.fill_with(|| action_rng.random_range(0..2));
            batch.step(&actions).expect("valid actions");
            for (i, env) in scalars.iter_mut().enumerate() {
                let length = env.elapsed_steps() + 1;
                let step = env.step(actions[i]).expect("scalar episode is running");
                let slot = i * OBS_DIM..(i + 1) * OBS_DIM;
                assert_eq!(batch.terminated()[i], step.terminated);
                assert_eq!(batch.truncated()[i], step.truncated);
                assert_eq!(batch.rewards()[i], step.reward);
                if step.terminated || step.truncated {
                    terminations += usize::from(step.terminated);
                    truncations += usize::from(step.truncated);
                    assert_eq!(batch.final_obs()[slot.clone()], step.obs);
                    assert_eq!(batch.episode_lengths()[i], length);
                    assert_eq!(batch.obs()[slot], env.reset());
                } else {
                    assert_eq!(batch.obs()[slot], step.obs);
                }
                assert_eq!(batch.state(i), Some(env.state()));
            }
        }
        assert!(
            terminations > 100 && truncations > 0,
            "{terminations} {truncations}"
        );
    }

    #[test]
    fn bad_steps_are_rejected_and_change_nothing() {
        let mut batch = BatchedCartPole::new(3, 1, 500);
        assert_eq!(batch.step(&[0, 1, 0]), Err(EnvError::NeedsReset));
        batch.reset_all();
        let before = batch.clone();
        assert_eq!(
            batch.step(&[0, 1]),
            Err(EnvError::ActionCount {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(batch.step(&[0, 1, 2]), Err(EnvError::InvalidAction(2)));
        assert_eq!(batch.step(&[-1, 1, 0]), Err(EnvError::InvalidAction(-1)));
        assert_eq!(batch.obs(), before.obs());
        assert_eq!(batch.state(0), before.state(0));
        assert_eq!(batch.state(3), None);
    }
}
