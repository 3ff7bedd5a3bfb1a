//! CartPole-v1's dynamics, matching Gymnasium 1.x's `gymnasium/envs/classic_control/cartpole.py`
//! bit for bit.
//!
//! The state is `[x, x_dot, theta, theta_dot]` in `f64`, integrated with the same explicit
//! Euler update, in the same operation order, as Gymnasium; observations are the state rounded
//! to `f32`, as Gymnasium's `np.array(self.state, dtype=np.float32)`.

use std::borrow::Cow;

use rand::RngExt;

use super::dynamics::{Dynamics, EnvRng, EnvSpec};

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

/// Gymnasium's `4.0 / 3.0` in the pole's effective-inertia term, folded once.
const FOUR_THIRDS: f64 = 4.0 / 3.0;

/// One explicit Euler step of the cart-pole dynamics, in Gymnasium's operation order.
///
/// Every product and quotient is grouped exactly as in `cartpole.py` (left to right,
/// no fused multiply-add) so the result is bit-identical to Gymnasium's.
#[inline(always)]
fn euler_step(state: [f64; 4], push_right: bool) -> [f64; 4] {
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
fn is_terminal(x: f64, theta: f64) -> bool {
    x.abs() > X_THRESHOLD || theta.abs() > THETA_THRESHOLD_RADIANS
}

/// CartPole-v1: push the cart left (0) or right (1) to keep the pole upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CartPole;

impl Dynamics for CartPole {
    const SPEC: EnvSpec = EnvSpec {
        id: Cow::Borrowed("CartPole-v1"),
        obs_dim: 4,
        n_actions: 2,
        max_episode_steps: 500,
        reward_threshold: Some(475.0),
        returns: Some((0.0, 500.0)),
    };

    /// `[x, x_dot, theta, theta_dot]` (m, m/s, rad, rad/s).
    type State = [f64; 4];

    /// Each component uniform in `[RESET_LOW, RESET_HIGH)`, in state order, in numpy's
    /// `low + (high - low) * u` form; the numbers themselves differ from Gymnasium's because
    /// the generator does, which is why parity tests start episodes from Gymnasium's states.
    #[inline]
    fn initial_state(rng: &mut EnvRng) -> [f64; 4] {
        std::array::from_fn(|_| RESET_LOW + (RESET_HIGH - RESET_LOW) * rng.random::<f64>())
    }

    /// The Euler step, action 1 pushing right and 0 left; the reward is 1 on every step, the
    /// last included (CartPole-v1's default).
    #[inline]
    fn step(state: &[f64; 4], action: usize) -> ([f64; 4], f32, bool) {
        let next = euler_step(*state, action == 1);
        (next, 1.0, is_terminal(next[0], next[2]))
    }

    /// `np.array(self.state, dtype=np.float32)`.
    #[inline]
    fn observe(state: &[f64; 4], obs: &mut [f32]) {
        obs.copy_from_slice(&state.map(|component| component as f32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn leaving_the_track_or_tipping_past_12_degrees_terminates() {
        let theta_limit = THETA_THRESHOLD_RADIANS;
        // Past the limits, either way: terminated, with the reward of the step.
        for (state, action) in [
            ([X_THRESHOLD - 0.01, 1.0, 0.0, 0.0], 1),
            ([-X_THRESHOLD + 0.01, -1.0, 0.0, 0.0], 0),
            ([0.0, 0.0, theta_limit - 0.01, 1.0], 1),
            ([0.0, 0.0, -theta_limit + 0.01, -1.0], 0),
        ] {
            let (next, reward, terminated) = CartPole::step(&state, action);
            assert!(next[0].abs() > X_THRESHOLD || next[2].abs() > theta_limit);
            assert_eq!((reward, terminated), (1.0, true), "from {state:?}");
        }
        // Exactly at a limit is still inside, as Gymnasium's strict comparisons have it.
        assert!(!is_terminal(X_THRESHOLD, 0.0) && !is_terminal(-X_THRESHOLD, 0.0));
        assert!(!is_terminal(0.0, theta_limit) && !is_terminal(0.0, -theta_limit));
        // One unit in the last place beyond is outside.
        let beyond = |limit: f64| f64::from_bits(limit.to_bits() + 1);
        assert!(is_terminal(beyond(X_THRESHOLD), 0.0) && is_terminal(-beyond(X_THRESHOLD), 0.0));
        assert!(is_terminal(0.0, beyond(theta_limit)) && is_terminal(0.0, -beyond(theta_limit)));
    }

    #[test]
    fn observations_are_the_state_rounded_to_f32() {
        let state = [0.1, -1.0 / 3.0, 1e-50, f64::MAX];
        let mut obs = [0.0f32; 4];
        CartPole::observe(&state, &mut obs);
        assert_eq!(obs, [0.1f32, -1.0 / 3.0, 0.0, f32::INFINITY]);
    }
}
