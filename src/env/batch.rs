//! N environments of any [`Dynamics`] stepped together, with auto-reset.
//!
//! Env `i` behaves exactly like
//! `Single::<D>::with_max_episode_steps(env_seed(seed, i), max_episode_steps)` that is reset
//! by its owner whenever an episode ends: same dynamics, same RNG draws, same flags. When an
//! episode ends the env resets in the same call, and the observation that ended it is kept
//! in [`Batch::final_obs`] because a DQN target needs it to bootstrap a truncated episode
//! (Gymnasium's "final_obs" / SB3's `terminal_observation`).

use rand::SeedableRng;

use super::dynamics::{env_seed, Dynamics, EnvRng};
use super::single::checked_action;
use super::EnvError;

/// N envs with dynamics `D`; [`Batch::step`] allocates nothing.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
// `Dynamics` already requires the state to be (de)serializable; `D` itself holds no data.
#[serde(bound = "")]
// The fields are visible to `env` for `cartpole_arrays`, which builds a batch from another
// stored form.
pub struct Batch<D: Dynamics> {
    pub(super) states: Vec<D::State>,
    pub(super) rngs: Vec<EnvRng>,
    pub(super) elapsed_steps: Vec<u32>,
    pub(super) max_episode_steps: u32,
    pub(super) obs: Vec<f32>,
    pub(super) final_obs: Vec<f32>,
    pub(super) rewards: Vec<f32>,
    pub(super) terminated: Vec<bool>,
    pub(super) truncated: Vec<bool>,
    pub(super) episode_lengths: Vec<u32>,
    // Stepping before the first `reset_all` is refused, like a single env's first step.
    pub(super) started: bool,
}

impl<D: Dynamics> Batch<D> {
    /// `n` envs seeded with [`env_seed`]`(seed, i)`, truncating after `max_episode_steps`;
    /// call [`Batch::reset_all`] before stepping.
    pub fn new(n: usize, seed: u64, max_episode_steps: u32) -> Self {
        Self::of_envs(0..n, seed, max_episode_steps)
    }

    /// Envs number `envs.start` to `envs.end - 1` of the batch [`Batch::new`] would make
    /// with `seed`: the same initial states, a part at a time.
    pub fn of_envs(envs: std::ops::Range<usize>, seed: u64, max_episode_steps: u32) -> Self {
        let n = envs.len();
        let rngs: Vec<EnvRng> = envs
            .map(|i| EnvRng::seed_from_u64(env_seed(seed, i)))
            .collect();
        // Placeholders until `reset_all`, drawn from clones so the envs' own streams are untouched.
        let states = rngs
            .iter()
            .map(|rng| D::initial_state(&mut rng.clone()))
            .collect();
        let obs_dim = D::SPEC.obs_dim;
        Self {
            states,
            rngs,
            elapsed_steps: vec![0; n],
            max_episode_steps,
            obs: vec![0.0; n * obs_dim],
            final_obs: vec![0.0; n * obs_dim],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            episode_lengths: vec![0; n],
            started: false,
        }
    }

    /// Number of envs.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True for a batch of zero envs.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Whether every per-env array holds [`Batch::len`] envs (a batch read from a file may
    /// not).
    pub fn is_whole(&self) -> bool {
        let n = self.len();
        let obs = n * D::SPEC.obs_dim;
        [
            self.rngs.len(),
            self.elapsed_steps.len(),
            self.rewards.len(),
            self.terminated.len(),
            self.truncated.len(),
            self.episode_lengths.len(),
        ]
        .iter()
        .all(|&len| len == n)
            && self.obs.len() == obs
            && self.final_obs.len() == obs
    }

    /// The step count at which episodes are truncated.
    pub fn max_episode_steps(&self) -> u32 {
        self.max_episode_steps
    }

    /// Starts a fresh episode in every env; returns the flat `n * obs_dim` observations.
    pub fn reset_all(&mut self) -> &[f32] {
        for i in 0..self.len() {
            self.reset_env(i);
            self.terminated[i] = false;
            self.truncated[i] = false;
        }
        self.started = true;
        &self.obs
    }

    /// Steps every env with its action, resetting those whose episode ends; results are
    /// read through the accessors.
    ///
    /// Errors, leaving every env unchanged, when `actions.len() != self.len()`, when an
    /// action is outside `0..n_actions`, or before the first [`Batch::reset_all`].
    pub fn step(&mut self, actions: &[i64]) -> Result<(), EnvError> {
        let n = self.len();
        if actions.len() != n {
            return Err(EnvError::ActionCount {
                expected: n,
                got: actions.len(),
            });
        }
        // Validate everything first so an error never leaves the batch half stepped.
        for &action in actions {
            checked_action::<D>(action)?;
        }
        if !self.started {
            return Err(EnvError::NeedsReset);
        }
        for (i, &action) in actions.iter().enumerate() {
            // Checked above: 0 <= action < n_actions.
            self.step_env(i, action as usize);
        }
        Ok(())
    }

    /// Observations after the last call, flat `n * obs_dim`; for envs that just ended, the
    /// first observation of their new episode.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// Flat `n * obs_dim` observations that ended episodes: entries of env `i` are
    /// meaningful only where `terminated()[i] || truncated()[i]` after the last step.
    pub fn final_obs(&self) -> &[f32] {
        &self.final_obs
    }

    /// Rewards of the last step, one per env.
    pub fn rewards(&self) -> &[f32] {
        &self.rewards
    }

    /// Per env: the last step reached a terminal state.
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

    /// Full-precision state of env `index`, if it exists.
    pub fn state(&self, index: usize) -> Option<D::State> {
        self.states.get(index).copied()
    }

    /// Steps env `i`, which must exist, with a checked action; the single env's `step` plus
    /// its owner's reset.
    #[inline(always)]
    fn step_env(&mut self, i: usize, action: usize) {
        let obs_dim = D::SPEC.obs_dim;
        let (next, reward, terminated) = D::step(&self.states[i], action);
        let elapsed = self.elapsed_steps[i] + 1;
        // TimeLimit sets truncated whenever the limit is reached, even on a terminal step.
        let truncated = elapsed >= self.max_episode_steps;
        self.terminated[i] = terminated;
        self.truncated[i] = truncated;
        self.rewards[i] = reward;
        let slot = i * obs_dim..(i + 1) * obs_dim;
        if terminated || truncated {
            D::observe(&next, &mut self.final_obs[slot]);
            self.episode_lengths[i] = elapsed;
            self.reset_env(i);
        } else {
            self.states[i] = next;
            self.elapsed_steps[i] = elapsed;
            D::observe(&next, &mut self.obs[slot]);
        }
    }

    /// Draws a new initial state for env `i` from its own RNG, as `Single::reset` does.
    fn reset_env(&mut self, i: usize) {
        let obs_dim = D::SPEC.obs_dim;
        let state = D::initial_state(&mut self.rngs[i]);
        self.states[i] = state;
        self.elapsed_steps[i] = 0;
        D::observe(&state, &mut self.obs[i * obs_dim..(i + 1) * obs_dim]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Acrobot, CartPole, MountainCar, Single};
    use super::*;
    use rand::RngExt;

    /// Steps a batch and the single envs it stands for side by side, with random actions
    /// drawn by `action`, and counts the episode ends seen.
    fn batch_equals_single_envs<D: Dynamics>(
        n: usize,
        max_steps: u32,
        steps: usize,
        mut action: impl FnMut(&mut EnvRng, &D::State) -> i64,
    ) -> (usize, usize) {
        let seed = 77;
        let obs_dim = D::SPEC.obs_dim;
        let mut batch = Batch::<D>::new(n, seed, max_steps);
        let mut singles: Vec<Single<D>> = (0..n)
            .map(|i| Single::with_max_episode_steps(env_seed(seed, i), max_steps))
            .collect();
        let first: Vec<f32> = singles
            .iter_mut()
            .flat_map(|env| env.reset().to_vec())
            .collect();
        assert_eq!(batch.reset_all(), &first[..]);

        let mut action_rng = EnvRng::seed_from_u64(5);
        let mut actions = vec![0i64; n];
        let (mut terminations, mut truncations) = (0, 0);
        for _ in 0..steps {
            for (i, slot) in actions.iter_mut().enumerate() {
                *slot = action(&mut action_rng, &singles[i].state());
            }
            batch.step(&actions).expect("valid actions");
            for (i, env) in singles.iter_mut().enumerate() {
                let length = env.elapsed_steps() + 1;
                let outcome = env.step(actions[i]).expect("single episode is running");
                let slot = i * obs_dim..(i + 1) * obs_dim;
                assert_eq!(batch.terminated()[i], outcome.terminated);
                assert_eq!(batch.truncated()[i], outcome.truncated);
                assert_eq!(batch.rewards()[i], outcome.reward);
                if outcome.terminated || outcome.truncated {
                    terminations += usize::from(outcome.terminated);
                    truncations += usize::from(outcome.truncated);
                    assert_eq!(&batch.final_obs()[slot.clone()], env.obs());
                    assert_eq!(batch.episode_lengths()[i], length);
                    assert_eq!(&batch.obs()[slot], env.reset());
                } else {
                    assert_eq!(&batch.obs()[slot], env.obs());
                }
                assert_eq!(batch.state(i), Some(env.state()));
            }
        }
        (terminations, truncations)
    }

    #[test]
    fn cartpole_batch_equals_single_envs_step_for_step() {
        // Random pushes topple the pole in a few dozen steps; a limit of 60 cuts the longest.
        let (terminations, truncations) =
            batch_equals_single_envs::<CartPole>(8, 60, 3000, |rng, _| rng.random_range(0..2));
        assert!(
            terminations > 100 && truncations > 0,
            "{terminations} {truncations}"
        );
    }

    #[test]
    fn mountain_car_batch_equals_single_envs_step_for_step() {
        // Pushing along the velocity (with some noise) pumps energy and reaches the flag.
        let (terminations, truncations) =
            batch_equals_single_envs::<MountainCar>(8, 200, 3000, |rng, &[_, velocity]| {
                if rng.random::<f64>() < 0.2 {
                    rng.random_range(0..3)
                } else if velocity < 0.0 {
                    0
                } else {
                    2
                }
            });
        assert!(
            terminations > 50 && truncations > 0,
            "{terminations} {truncations}"
        );
    }

    #[test]
    fn acrobot_batch_equals_single_envs_step_for_step() {
        // Torque against the first link's swing pumps energy: the tip rises in about 100
        // steps, so a limit of 110 sees both episode ends.
        let (terminations, truncations) =
            batch_equals_single_envs::<Acrobot>(6, 110, 2000, |rng, &[_, _, dtheta1, _]| {
                if rng.random::<f64>() < 0.3 {
                    rng.random_range(0..3)
                } else if dtheta1 > 0.0 {
                    0
                } else {
                    2
                }
            });
        assert!(
            terminations > 20 && truncations > 0,
            "{terminations} {truncations}"
        );
    }

    /// A batch of three `D` envs refuses to step before `reset_all`, and refuses a wrong
    /// number of actions and each set of actions holding `bad` without changing anything.
    fn refuses_bad_steps<D: Dynamics>(bad: i64) {
        let mut batch = Batch::<D>::new(3, 1, D::SPEC.max_episode_steps);
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
        for (actions, action) in [([0, 1, bad], bad), ([bad, 1, 0], bad), ([-1, 1, 0], -1)] {
            assert_eq!(
                batch.step(&actions),
                Err(EnvError::ActionOutOfRange {
                    env: D::SPEC.id.to_string(),
                    action,
                    n_actions: D::SPEC.n_actions
                })
            );
        }
        assert_eq!(batch.obs(), before.obs());
        for i in 0..3 {
            assert_eq!(batch.state(i), before.state(i));
        }
        assert_eq!(batch.state(3), None);
    }

    #[test]
    fn bad_steps_are_rejected_and_change_nothing() {
        refuses_bad_steps::<MountainCar>(3);
        refuses_bad_steps::<CartPole>(2);
    }

    #[test]
    fn parts_and_serde_round_trip_continue_the_same_episodes() {
        let mut whole = Batch::<Acrobot>::new(5, 9, 500);
        let mut part = Batch::<Acrobot>::of_envs(2..5, 9, 500);
        whole.reset_all();
        part.reset_all();
        assert_eq!(&whole.obs()[2 * 6..], part.obs());
        let json = serde_json::to_string(&whole).expect("batch serializes");
        let mut restored: Batch<Acrobot> = serde_json::from_str(&json).expect("batch restores");
        for t in 0..300i64 {
            let actions: Vec<i64> = (0..5).map(|i| (t + i) % 3).collect();
            whole.step(&actions).expect("valid actions");
            restored.step(&actions).expect("valid actions");
            assert_eq!(whole.obs(), restored.obs());
        }
        assert_eq!(whole.state(4), restored.state(4));
    }
}
