//! Acrobot-v1's dynamics, matching Gymnasium 1.x's `gymnasium/envs/classic_control/acrobot.py`
//! (the "book" equations, no torque noise) bit for bit.
//!
//! The state is `[theta1, theta2, dtheta1, dtheta2]` in `f64`, integrated by one classical
//! Runge-Kutta step over `[0, dt]` with Gymnasium's `rk4` stages, then angles wrapped to
//! `[-pi, pi]` and velocities bounded. Every formula keeps the Python's grouping (left to
//! right, no fused multiply-add), and squares of numpy scalars go through libm's `pow` as
//! numpy's `x**2` does, which differs from `x * x` in the last bit for some `x`.

use std::borrow::Cow;

use std::f64::consts::PI;

use rand::RngExt;

use super::dynamics::{Dynamics, EnvRng, EnvSpec};

/// Integration time step (s).
pub const DT: f64 = 0.2;
/// Length of the first link (m).
pub const LINK_LENGTH_1: f64 = 1.0;
/// Length of the second link (m); as in Gymnasium, only drawing uses it.
pub const LINK_LENGTH_2: f64 = 1.0;
/// Mass of the first link (kg).
pub const LINK_MASS_1: f64 = 1.0;
/// Mass of the second link (kg).
pub const LINK_MASS_2: f64 = 1.0;
/// Distance from the first joint to the first link's centre of mass (m).
pub const LINK_COM_POS_1: f64 = 0.5;
/// Distance from the second joint to the second link's centre of mass (m).
pub const LINK_COM_POS_2: f64 = 0.5;
/// Moment of inertia of either link (kg m^2).
pub const LINK_MOI: f64 = 1.0;
/// Bound of the first joint's angular velocity (rad/s): `4 * pi`.
pub const MAX_VEL_1: f64 = 4.0 * PI;
/// Bound of the second joint's angular velocity (rad/s): `9 * pi`.
pub const MAX_VEL_2: f64 = 9.0 * PI;
/// Torque on the actuated joint for actions 0, 1 and 2 (N m).
pub const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];
/// Gravitational acceleration (m/s^2), local to `_dsdt` in Gymnasium.
pub const GRAVITY: f64 = 9.8;
/// Bound of each reset state component, either way.
pub const RESET_BOUND: f64 = 0.1;

/// Acrobot-v1: torque -1, 0 or +1 on the middle joint to swing the tip above the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Acrobot;

/// numpy's `x**2` on a float64 scalar: libm's `pow(x, 2.0)`. The exponent is hidden from the
/// optimiser, which would otherwise turn the call into `x * x`.
#[inline(always)]
fn np_square(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// Gymnasium's `_dsdt` ("book" branch): the state's time derivative under `torque`.
#[inline(always)]
fn dsdt(s: [f64; 4], torque: f64) -> [f64; 4] {
    let (m1, m2) = (LINK_MASS_1, LINK_MASS_2);
    let (l1, lc1, lc2) = (LINK_LENGTH_1, LINK_COM_POS_1, LINK_COM_POS_2);
    let (i1, i2) = (LINK_MOI, LINK_MOI);
    let g = GRAVITY;
    let [theta1, theta2, dtheta1, dtheta2] = s;
    // The constant powers (lc1**2, ...) are exact, so plain products give the same bits.
    let d1 =
        m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * np_square(dtheta2) * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 =
        (torque + d2 / d1 * phi1 - m2 * l1 * lc2 * np_square(dtheta1) * theta2.sin() - phi2)
            / (m2 * (lc2 * lc2) + i2 - np_square(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// `y + h * k`, elementwise, as numpy evaluates `y0 + dt2 * k1`.
#[inline(always)]
fn advance(y: [f64; 4], h: f64, k: [f64; 4]) -> [f64; 4] {
    std::array::from_fn(|i| y[i] + h * k[i])
}

/// Gymnasium's `rk4(derivs, y0, [0, dt])`: one step with its stage order and its final
/// `y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)`. The torque, the augmented state's fifth
/// component, has derivative 0 and so stays exactly the same through every stage.
#[inline(always)]
fn rk4(y0: [f64; 4], torque: f64) -> [f64; 4] {
    // `dt = t[1] - t[0]` with `t = [0, self.dt]`.
    let dt = DT - 0.0;
    let dt2 = dt / 2.0;
    let k1 = dsdt(y0, torque);
    let k2 = dsdt(advance(y0, dt2, k1), torque);
    let k3 = dsdt(advance(y0, dt2, k2), torque);
    let k4 = dsdt(advance(y0, dt, k3), torque);
    std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

/// Gymnasium's `wrap(x, -pi, pi)`: whole turns of `2 pi` taken off one at a time.
///
/// Gymnasium loops forever on an infinite angle (and on one so large that a turn no longer
/// changes it); here such an angle is returned as it is.
#[inline(always)]
fn wrap(mut x: f64) -> f64 {
    let (m, big_m) = (-PI, PI);
    let diff = big_m - m;
    while x > big_m && x - diff != x {
        x -= diff;
    }
    while x < m && x + diff != x {
        x += diff;
    }
    x
}

/// Gymnasium's `bound(x, -limit, limit)`, `min(max(x, m), M)` with Python's builtins: equal to
/// `clamp` for every non-NaN `x`, and NaN stays NaN in both.
#[inline(always)]
fn bound(x: f64, limit: f64) -> f64 {
    x.clamp(-limit, limit)
}

impl Dynamics for Acrobot {
    const SPEC: EnvSpec = EnvSpec {
        id: Cow::Borrowed("Acrobot-v1"),
        obs_dim: 6,
        n_actions: 3,
        max_episode_steps: 500,
        reward_threshold: Some(-100.0),
        returns: Some((-500.0, 0.0)),
    };

    /// `[theta1, theta2, dtheta1, dtheta2]` (rad, rad, rad/s, rad/s); `theta2` is relative
    /// to the first link.
    type State = [f64; 4];

    /// Each component uniform in `[-0.1, 0.1)` and rounded to `f32`, as Gymnasium's
    /// `uniform(...).astype(np.float32)`; stepping then continues in `f64` as there.
    fn initial_state(rng: &mut EnvRng) -> [f64; 4] {
        std::array::from_fn(|_| {
            let draw = -RESET_BOUND + (RESET_BOUND - -RESET_BOUND) * rng.random::<f64>();
            f64::from(draw as f32)
        })
    }

    /// Gymnasium's `step`: RK4 over `dt`, wrap the angles, bound the velocities; the reward
    /// is -1, or 0 on the step that lifts the tip above the bar (`-cos t1 - cos(t2 + t1) > 1`).
    #[inline]
    fn step(state: &[f64; 4], action: usize) -> ([f64; 4], f32, bool) {
        let [theta1, theta2, dtheta1, dtheta2] = rk4(*state, AVAIL_TORQUE[action]);
        let next = [
            wrap(theta1),
            wrap(theta2),
            bound(dtheta1, MAX_VEL_1),
            bound(dtheta2, MAX_VEL_2),
        ];
        let terminated = -next[0].cos() - (next[1] + next[0]).cos() > 1.0;
        (next, if terminated { 0.0 } else { -1.0 }, terminated)
    }

    /// `[cos t1, sin t1, cos t2, sin t2, dt1, dt2]` computed in `f64` and rounded to `f32`,
    /// as `np.array([...], dtype=np.float32)` does with a float64 state.
    ///
    /// Right after a Gymnasium reset the state is a float32 array and numpy takes the cosines
    /// and sines in float32 with its own SIMD kernels, which differ from the rounded float64
    /// values by one unit in the last place for some angles; from the first step on the
    /// state is float64 and this is exact.
    #[inline]
    fn observe(state: &[f64; 4], obs: &mut [f32]) {
        let [theta1, theta2, dtheta1, dtheta2] = *state;
        obs[0] = theta1.cos() as f32;
        obs[1] = theta1.sin() as f32;
        obs[2] = theta2.cos() as f32;
        obs[3] = theta2.sin() as f32;
        obs[4] = dtheta1 as f32;
        obs[5] = dtheta2 as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_takes_off_whole_turns() {
        assert_eq!(wrap(PI), PI);
        assert_eq!(wrap(PI + 0.5), PI + 0.5 - 2.0 * PI);
        assert_eq!(wrap(-PI - 0.5), -PI - 0.5 + 2.0 * PI);
        assert_eq!(wrap(f64::INFINITY), f64::INFINITY);
        assert!(wrap(f64::NAN).is_nan());
    }

    #[test]
    fn velocities_are_bounded() {
        let ([.., dtheta1, dtheta2], _, _) = Acrobot::step(&[0.0, 0.0, MAX_VEL_1, -MAX_VEL_2], 2);
        assert!(dtheta1.abs() <= MAX_VEL_1 && dtheta2.abs() <= MAX_VEL_2);
    }

    #[test]
    fn squares_go_through_pow_as_numpy_does() {
        // numpy gives 13.955674043847113 for this `x**2`; `x * x` rounds to ...115.
        let x = -3.7357293857889537;
        assert_eq!(np_square(x), 13.955674043847113);
        assert_ne!(np_square(x), x * x);
    }

    #[test]
    fn tip_above_the_bar_terminates_with_reward_zero() {
        // Both links pointing up: -cos(pi) - cos(0) ... the tip is at height 2 > 1.
        let (_, reward, terminated) = Acrobot::step(&[PI - 0.01, 0.0, 0.0, 0.0], 1);
        assert_eq!((reward, terminated), (0.0, true));
    }
}
