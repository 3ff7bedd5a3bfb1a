//! One environment of any [`Dynamics`] with its own seeded RNG and Gymnasium's `TimeLimit`:
//! what `gymnasium.make(id)` returns, stepped one action at a time.

use rand::SeedableRng;

use super::dynamics::{Dynamics, EnvRng};
use super::EnvError;

/// What one step returns besides the observation (read through [`Single::obs`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Reward of the step, as Gymnasium gives it.
    pub reward: f32,
    /// The environment reached a terminal state: no bootstrapping past this step.
    pub terminated: bool,
    /// The time limit ended the episode: the learner should still bootstrap.
    pub truncated: bool,
}

/// Maps an action to an index below `D::SPEC.n_actions`, or says why it is not one.
#[inline]
pub(crate) fn checked_action<D: Dynamics>(action: i64) -> Result<usize, EnvError> {
    match usize::try_from(action) {
        Ok(index) if index < D::SPEC.n_actions => Ok(index),
        _ => Err(EnvError::ActionOutOfRange {
            env: D::SPEC.id.to_string(),
            action,
            n_actions: D::SPEC.n_actions,
        }),
    }
}

/// One environment with dynamics `D`, its RNG and its time limit.
#[derive(Debug, Clone)]
pub struct Single<D: Dynamics> {
    state: D::State,
    obs: Vec<f32>,
    rng: EnvRng,
    elapsed_steps: u32,
    max_episode_steps: u32,
    // True until the first reset and after every episode end, so a finished episode
    // cannot silently run on (Gymnasium only warns).
    needs_reset: bool,
}

impl<D: Dynamics> Single<D> {
    /// An env truncating at the registered limit; call [`Single::reset`] before stepping.
    pub fn new(seed: u64) -> Self {
        Self::with_max_episode_steps(seed, D::SPEC.max_episode_steps)
    }

    /// An env truncating after `max_steps` steps (0 truncates on the first step, as
    /// Gymnasium's `elapsed >= max` check would).
    pub fn with_max_episode_steps(seed: u64, max_steps: u32) -> Self {
        let mut rng = EnvRng::seed_from_u64(seed);
        // A placeholder until the first reset; drawing it keeps `State` free of a Default.
        let state = D::initial_state(&mut rng);
        Self {
            state,
            obs: vec![0.0; D::SPEC.obs_dim],
            rng: EnvRng::seed_from_u64(seed),
            elapsed_steps: 0,
            max_episode_steps: max_steps,
            needs_reset: true,
        }
    }

    /// Starts a new episode from a state drawn from the reset distribution.
    pub fn reset(&mut self) -> &[f32] {
        let state = D::initial_state(&mut self.rng);
        self.reset_to(state)
    }

    /// Starts a new episode from a given state (for parity tests); the RNG is not used.
    pub fn reset_to(&mut self, state: D::State) -> &[f32] {
        self.state = state;
        self.elapsed_steps = 0;
        self.needs_reset = false;
        D::observe(&state, &mut self.obs);
        &self.obs
    }

    /// The full-precision state.
    pub fn state(&self) -> D::State {
        self.state
    }

    /// The observation after the last reset or step.
    pub fn obs(&self) -> &[f32] {
        &self.obs
    }

    /// Steps taken since the last reset.
    pub fn elapsed_steps(&self) -> u32 {
        self.elapsed_steps
    }

    /// The step count at which episodes are truncated.
    pub fn max_episode_steps(&self) -> u32 {
        self.max_episode_steps
    }

    /// Applies `action` for one step; the new observation is [`Single::obs`].
    ///
    /// Errors on an action outside `0..n_actions`, and on an episode that has ended (or
    /// never started) without a reset since; the env is unchanged in both cases.
    pub fn step(&mut self, action: i64) -> Result<Outcome, EnvError> {
        let action = checked_action::<D>(action)?;
        if self.needs_reset {
            return Err(EnvError::NeedsReset);
        }
        let (next, reward, terminated) = D::step(&self.state, action);
        self.state = next;
        D::observe(&next, &mut self.obs);
        self.elapsed_steps += 1;
        // TimeLimit sets truncated whenever the limit is reached, even on a terminal step.
        let truncated = self.elapsed_steps >= self.max_episode_steps;
        self.needs_reset = terminated || truncated;
        Ok(Outcome {
            reward,
            terminated,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Acrobot, CartPole, MountainCar};
    use super::*;

    /// `D`'s env refuses to step before its first reset, and refuses each of `bad` actions
    /// after it without changing anything.
    fn refuses_invalid_actions<D: Dynamics>(bad: &[i64]) {
        let mut env = Single::<D>::new(1);
        assert_eq!(env.step(0), Err(EnvError::NeedsReset));
        env.reset();
        let (state, obs) = (env.state(), env.obs().to_vec());
        for &action in bad {
            assert_eq!(
                env.step(action),
                Err(EnvError::ActionOutOfRange {
                    env: D::SPEC.id.to_string(),
                    action,
                    n_actions: D::SPEC.n_actions
                })
            );
        }
        assert_eq!((env.state(), env.obs()), (state, &obs[..]));
        assert_eq!(env.elapsed_steps(), 0);
    }

    #[test]
    fn invalid_actions_are_refused_without_changing_state() {
        refuses_invalid_actions::<Acrobot>(&[-1, 3, i64::MAX, i64::MIN]);
        refuses_invalid_actions::<CartPole>(&[-1, 2, i64::MAX, i64::MIN]);
    }

    #[test]
    fn cartpole_pushed_one_way_terminates_and_then_refuses_to_step() {
        let mut env = Single::<CartPole>::new(2);
        env.reset();
        let mut steps = 0;
        loop {
            let outcome = env.step(1).expect("episode is running");
            steps += 1;
            assert_eq!(outcome.reward, 1.0);
            assert!(!outcome.truncated);
            if outcome.terminated {
                break;
            }
            assert!(steps < 100, "always pushing right must topple the pole");
        }
        assert_eq!(env.elapsed_steps(), steps);
        assert_eq!(env.step(0), Err(EnvError::NeedsReset));
        env.reset();
        assert!(env.step(0).is_ok());
    }

    #[test]
    fn a_shorter_time_limit_truncates_without_terminating() {
        let mut env = Single::<CartPole>::with_max_episode_steps(3, 5);
        env.reset_to([0.0; 4]);
        for t in 1..=5 {
            // Alternating pushes keep the pole well inside its limits for five steps.
            let outcome = env.step(t % 2).expect("episode is running");
            assert!(!outcome.terminated);
            assert_eq!(outcome.truncated, t == 5);
        }
        assert_eq!(env.step(0), Err(EnvError::NeedsReset));
    }

    #[test]
    fn a_terminal_step_at_the_time_limit_sets_both_flags() {
        let mut env = Single::<CartPole>::with_max_episode_steps(4, 1);
        env.reset_to([2.4, 1.0, 0.0, 0.0]);
        let outcome = env.step(1).expect("episode is running");
        assert!(outcome.terminated && outcome.truncated);
        assert_eq!(env.step(1), Err(EnvError::NeedsReset));
    }

    #[test]
    fn registered_time_limit_truncates_and_then_refuses_to_step() {
        let mut env = Single::<MountainCar>::new(2);
        env.reset();
        for t in 1..=200 {
            // Coasting never climbs the hill: only the time limit ends the episode.
            let outcome = env.step(1).expect("episode is running");
            assert_eq!(outcome.reward, -1.0);
            assert!(!outcome.terminated);
            assert_eq!(outcome.truncated, t == 200);
        }
        assert_eq!(env.step(1), Err(EnvError::NeedsReset));
    }

    #[test]
    fn reset_draws_from_gymnasiums_ranges() {
        let mut car = Single::<MountainCar>::new(3);
        let mut acrobot = Single::<Acrobot>::new(3);
        for _ in 0..1000 {
            let [position, velocity] = {
                car.reset();
                car.state()
            };
            assert!((-0.6..-0.4).contains(&position) && velocity == 0.0);
            acrobot.reset();
            for component in acrobot.state() {
                assert!(component.abs() <= 0.1);
                assert_eq!(
                    f64::from(component as f32),
                    component,
                    "float32 reset state"
                );
            }
        }
    }
}
