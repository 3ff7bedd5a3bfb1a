//! One CartPole-v1 environment, matching Gymnasium 1.x's
//! `gymnasium/envs/classic_control/cartpole.py` wrapped in `TimeLimit(500)` bit for bit.
//!
//! The state is kept in `f64` and integrated with the same explicit Euler update, in the
//! same operation order, as Gymnasium; observations are the state rounded to `f32`, as
//! Gymnasium's `np.array(self.state, dtype=np.float32)`.

use rand::{RngExt, SeedableRng};

use super::dynamics::EnvRng;
use super::{Dynamics, EnvError, EnvSpec, OBS_DIM};

/// Gravitational acceleration (m/s^2).
pub const GRAVITY: f64 = 9.8;
/// Mass of the cart (kg).
pub const MASS_CART: f64 = 1.0;
/// Mass of the pole (kg).
pub const MASS_POLE: f64 = 0.1;
/// Cart plus pole mass (kg), summed in Gymnasium's order (`masspole + masscart`).
pub const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
/// Half the pole's length (m): Gymnasium's `length` is the distance to the pole's centre of mass.
pub const HALF_POLE_LENGTH: f64 = 0.5;
/// Pole mass times half length (kg m).
pub const POLE_MASS_LENGTH: f64 = MASS_POLE * HALF_POLE_LENGTH;
/// Magnitude of the push applied by either action (N).
pub const FORCE_MAG: f64 = 10.0;
/// Time between state updates (s).
pub const TAU: f64 = 0.02;
/// Pole angle beyond which the episode terminates (rad): 12 degrees, written as Gymnasium writes it.
pub const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
/// Cart position beyond which the episode terminates (m).
pub const X_THRESHOLD: f64 = 2.4;
/// Lower bound of each reset state component (same unit as the component).
pub const RESET_LOW: f64 = -0.05;
/// Upper bound (exclusive) of each reset state component.
pub const RESET_HIGH: f64 = 0.05;
/// Episode length at which CartPole-v1's `TimeLimit` wrapper truncates.
pub const DEFAULT_MAX_EPISODE_STEPS: u32 = 500;

/// CartPole-v1 as Gymnasium registers it.
pub const SPEC: EnvSpec = EnvSpec {
    id: "CartPole-v1",
    obs_dim: OBS_DIM,
    n_actions: super::N_ACTIONS,
    max_episode_steps: DEFAULT_MAX_EPISODE_STEPS,
    reward_threshold: 475.0,
    returns: (0.0, 500.0),
};

/// Gymnasium's `4.0 / 3.0` in the pole's effective-inertia term, folded once.
const FOUR_THIRDS: f64 = 4.0 / 3.0;

/// What one step returns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Observation after the step (the terminal one when the episode ended).
    pub obs: [f32; OBS_DIM],
    /// Reward of the step: 1.0 on every step, the last included (CartPole-v1's default).
    pub reward: f32,
    /// The pole fell or the cart left the track: no bootstrapping past this step.
    pub terminated: bool,
    /// The time limit ended the episode: the learner should still bootstrap.
    pub truncated: bool,
}

/// Checks an action and maps it to "push right?".
#[inline]
pub(crate) fn push_right(action: i64) -> Result<bool, EnvError> {
    match action {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(EnvError::InvalidAction(action)),
    }
}

/// Draws a reset state uniform in `[RESET_LOW, RESET_HIGH)^4`, in state order.
///
/// Uses numpy's `low + (high - low) * u` form; the numbers themselves differ from
/// Gymnasium's because the generator does, which is why parity tests use `reset_to`.
#[inline]
pub(crate) fn initial_state(rng: &mut EnvRng) -> [f64; 4] {
    std::array::from_fn(|_| RESET_LOW + (RESET_HIGH - RESET_LOW) * rng.random::<f64>())
}

/// One explicit Euler step of the cart-pole dynamics, in Gymnasium's operation order.
///
/// Every product and quotient is grouped exactly as in `cartpole.py` (left to right,
/// no fused multiply-add) so the result is bit-identical to Gymnasium's.
#[inline(always)]
pub(crate) fn euler_step(state: [f64; 4], push_right: bool) -> [f64; 4] {
    let [x, x_dot, theta, theta_dot] = state;
    let force = if push_right { FORCE_MAG } else { -FORCE_MAG };
    let cos_theta = theta.cos();
    let sin_theta = theta.sin();
    // See https://coneural.org/florian/papers/05_cart_pole.pdf (Florian, 2005).
    let temp = (force + POLE_MASS_LENGTH * (theta_dot * theta_dot) * sin_theta) / TOTAL_MASS;
    let theta_acc = (GRAVITY * sin_theta - cos_theta * temp)
        / (HALF_POLE_LENGTH * (FOUR_THIRDS - MASS_POLE * (cos_theta * cos_theta) / TOTAL_MASS));
    let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos_theta / TOTAL_MASS;
    [
        x + TAU * x_dot,
        x_dot + TAU * x_acc,
        theta + TAU * theta_dot,
        theta_dot + TAU * theta_acc,
    ]
}

/// Gymnasium's termination test (`x < -2.4 or x > 2.4 or theta < -t or theta > t`).
///
/// `abs` is exact and the limits are symmetric, so this equals Gymnasium's four
/// comparisons, including for NaN states, which do not terminate there either.
#[inline(always)]
pub(crate) fn is_terminal(x: f64, theta: f64) -> bool {
    x.abs() > X_THRESHOLD || theta.abs() > THETA_THRESHOLD_RADIANS
}

/// Rounds a state to the `f32` observation Gymnasium returns.
#[inline(always)]
pub(crate) fn observe(state: [f64; 4]) -> [f32; OBS_DIM] {
    state.map(|component| component as f32)
}

/// CartPole-v1's dynamics as a [`Dynamics`], the same functions [`CartPole`] and the batched
/// envs step, for code written once for every environment (`qnet render`'s
/// [`Single`](super::Single)); action 1 pushes right, anything else left (the caller checks
/// actions, as [`Single`](super::Single) does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CartPoleDynamics;

impl Dynamics for CartPoleDynamics {
    const SPEC: EnvSpec = SPEC;

    /// `[x, x_dot, theta, theta_dot]` (m, m/s, rad, rad/s).
    type State = [f64; 4];

    fn initial_state(rng: &mut EnvRng) -> [f64; 4] {
        initial_state(rng)
    }

    /// The Euler step; the reward is 1 on every step, the last included.
    fn step(state: &[f64; 4], action: usize) -> ([f64; 4], f32, bool) {
        let next = euler_step(*state, action == 1);
        (next, 1.0, is_terminal(next[0], next[2]))
    }

    fn observe(state: &[f64; 4], obs: &mut [f32]) {
        obs.copy_from_slice(&observe(*state));
    }
}

/// One CartPole-v1 environment with its own seeded RNG and time limit.
#[derive(Debug, Clone)]
pub struct CartPole {
    state: [f64; 4],
    rng: EnvRng,
    elapsed_steps: u32,
    max_episode_steps: u32,
    // True until the first reset and after every episode end, so a finished episode
    // cannot silently run on (Gymnasium only warns).
    needs_reset: bool,
}

impl CartPole {
    /// A CartPole-v1 env truncating at 500 steps; call [`CartPole::reset`] before stepping.
    pub fn new(seed: u64) -> Self {
        Self::with_max_episode_steps(seed, DEFAULT_MAX_EPISODE_STEPS)
    }

    /// A CartPole env truncating after `max_steps` steps (0 truncates on the first step,
    /// as Gymnasium's `elapsed >= max` check would).
    pub fn with_max_episode_steps(seed: u64, max_steps: u32) -> Self {
        Self {
            state: [0.0; 4],
            rng: EnvRng::seed_from_u64(seed),
            elapsed_steps: 0,
            max_episode_steps: max_steps,
            needs_reset: true,
        }
    }

    /// Starts a new episode from a state drawn uniformly in `[-0.05, 0.05)^4`.
    pub fn reset(&mut self) -> [f32; OBS_DIM] {
        let state = initial_state(&mut self.rng);
        self.reset_to(state)
    }

    /// Starts a new episode from a given state (for parity tests); the RNG is not used.
    pub fn reset_to(&mut self, state: [f64; 4]) -> [f32; OBS_DIM] {
        self.state = state;
        self.elapsed_steps = 0;
        self.needs_reset = false;
        observe(state)
    }

    /// The full-precision state `[x, x_dot, theta, theta_dot]` (m, m/s, rad, rad/s).
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Steps taken since the last reset.
    pub fn elapsed_steps(&self) -> u32 {
        self.elapsed_steps
    }

    /// The step count at which episodes are truncated.
    pub fn max_episode_steps(&self) -> u32 {
        self.max_episode_steps
    }

    /// Applies `action` (0 = push left, 1 = push right) for one time step.
    ///
    /// Errors on an action other than 0 or 1, and on an episode that has ended (or
    /// never started) without a reset since; the env is unchanged in both cases.
    #[inline]
    pub fn step(&mut self, action: i64) -> Result<Step, EnvError> {
        let push_right = push_right(action)?;
        if self.needs_reset {
            return Err(EnvError::NeedsReset);
        }
        self.state = euler_step(self.state, push_right);
        let terminated = is_terminal(self.state[0], self.state[2]);
        self.elapsed_steps += 1;
        // TimeLimit sets truncated whenever the limit is reached, even on a terminal step.
        let truncated = self.elapsed_steps >= self.max_episode_steps;
        self.needs_reset = terminated || truncated;
        Ok(Step {
            obs: observe(self.state),
            reward: 1.0,
            terminated,
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_before_first_reset_is_an_error() {
        let mut env = CartPole::new(0);
        assert_eq!(env.step(0), Err(EnvError::NeedsReset));
    }

    #[test]
    fn invalid_actions_are_rejected_without_changing_state() {
        let mut env = CartPole::new(1);
        env.reset();
        let before = env.state();
        for action in [-1, 2, i64::MAX] {
            assert_eq!(env.step(action), Err(EnvError::InvalidAction(action)));
        }
        assert_eq!(env.state(), before);
        assert_eq!(env.elapsed_steps(), 0);
    }

    #[test]
    fn pushing_one_way_terminates_and_then_refuses_to_step() {
        let mut env = CartPole::new(2);
        env.reset();
        let mut steps = 0;
        loop {
            let step = env.step(1).expect("episode is running");
            steps += 1;
            assert_eq!(step.reward, 1.0);
            assert!(!step.truncated);
            if step.terminated {
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
    fn time_limit_truncates_without_terminating() {
        let mut env = CartPole::with_max_episode_steps(3, 5);
        env.reset_to([0.0; 4]);
        for i in 1..=5 {
            // Alternating pushes keep the pole well inside its limits for five steps.
            let step = env.step(i % 2).expect("episode is running");
            assert!(!step.terminated);
            assert_eq!(step.truncated, i == 5);
        }
        assert_eq!(env.step(0), Err(EnvError::NeedsReset));
    }

    #[test]
    fn terminal_step_at_the_limit_sets_both_flags() {
        let mut env = CartPole::with_max_episode_steps(4, 1);
        env.reset_to([X_THRESHOLD, 1.0, 0.0, 0.0]);
        let step = env.step(1).expect("episode is running");
        assert!(step.terminated && step.truncated);
    }

    #[test]
    fn euler_step_matches_hand_computed_gymnasium_values() {
        // From the upright rest state only the force acts: temp = ±10/1.1.
        let [x, x_dot, theta, theta_dot] = euler_step([0.0; 4], true);
        let temp = FORCE_MAG / TOTAL_MASS;
        let theta_acc = -temp / (HALF_POLE_LENGTH * (FOUR_THIRDS - MASS_POLE / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * theta_acc / TOTAL_MASS;
        assert_eq!([x, theta], [0.0, 0.0]);
        assert_eq!(x_dot, TAU * x_acc);
        assert_eq!(theta_dot, TAU * theta_acc);
        assert!(theta_dot < 0.0, "pushing right tips the pole left");
    }

    #[test]
    fn single_of_the_dynamics_steps_as_cartpole_does() {
        let mut cartpole = CartPole::with_max_episode_steps(9, 60);
        let mut single = super::super::Single::<CartPoleDynamics>::with_max_episode_steps(9, 60);
        assert_eq!(&cartpole.reset()[..], single.reset());
        for t in 0..60 {
            let action = (t / 3) % 2;
            let step = cartpole.step(action).expect("episode is running");
            let outcome = single.step(action).expect("episode is running");
            assert_eq!(cartpole.state(), single.state());
            assert_eq!(&step.obs[..], single.obs());
            assert_eq!(
                (step.reward, step.terminated, step.truncated),
                (outcome.reward, outcome.terminated, outcome.truncated)
            );
            if step.terminated || step.truncated {
                break;
            }
        }
    }
}
