//! MountainCar-v0's dynamics, matching Gymnasium 1.x's
//! `gymnasium/envs/classic_control/mountain_car.py` (`goal_velocity = 0`) bit for bit.
//!
//! The state is `[position, velocity]` in `f64`, updated in Gymnasium's order: velocity
//! from the action and the slope, clipped; position from the new velocity, clipped; the
//! velocity zeroed against the left wall. Observations are the state rounded to `f32`.

use std::borrow::Cow;

use rand::RngExt;

use super::dynamics::{Dynamics, EnvRng, EnvSpec};

/// Left end of the track, where the car meets the wall (m).
pub const MIN_POSITION: f64 = -1.2;
/// Right end of the track (m).
pub const MAX_POSITION: f64 = 0.6;
/// Speed bound, either way (m per step).
pub const MAX_SPEED: f64 = 0.07;
/// Position at or beyond which the episode terminates (the flag on the right hill).
pub const GOAL_POSITION: f64 = 0.5;
/// Velocity at or above which reaching the goal terminates (Gymnasium's default 0).
pub const GOAL_VELOCITY: f64 = 0.0;
/// Velocity change per step of full throttle.
pub const FORCE: f64 = 0.001;
/// Scale of the slope's pull, `cos(3 position)` times this, per step.
pub const GRAVITY: f64 = 0.0025;
/// Lower bound of the reset position (m).
pub const RESET_LOW: f64 = -0.6;
/// Upper bound (exclusive) of the reset position (m).
pub const RESET_HIGH: f64 = -0.4;

/// MountainCar-v0: push left (0), coast (1) or push right (2) to reach the flag at 0.5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountainCar;

impl Dynamics for MountainCar {
    const SPEC: EnvSpec = EnvSpec {
        id: Cow::Borrowed("MountainCar-v0"),
        obs_dim: 2,
        n_actions: 3,
        max_episode_steps: 200,
        reward_threshold: Some(-110.0),
        returns: Some((-200.0, 0.0)),
    };

    /// `[position, velocity]`.
    type State = [f64; 2];

    /// Position uniform in `[-0.6, -0.4)` in numpy's `low + (high - low) * u` form, velocity 0.
    fn initial_state(rng: &mut EnvRng) -> [f64; 2] {
        [
            RESET_LOW + (RESET_HIGH - RESET_LOW) * rng.random::<f64>(),
            0.0,
        ]
    }

    /// Gymnasium's `step`, operation for operation; the reward is -1 on every step.
    #[inline]
    fn step(state: &[f64; 2], action: usize) -> ([f64; 2], f32, bool) {
        let [mut position, mut velocity] = *state;
        // `(action - 1) * force` with Python's int action: exactly -0.001, 0.0 or 0.001.
        let push = (action as f64 - 1.0) * FORCE;
        velocity += push + (3.0 * position).cos() * (-GRAVITY);
        // np.clip(v, lo, hi) is minimum(maximum(v, lo), hi): equal to clamp for every
        // non-NaN value and NaN-preserving like it.
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        // The inelastic left wall: Gymnasium sets the velocity to the int 0, i.e. +0.0.
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
        ([position, velocity], -1.0, terminated)
    }

    /// `np.array(self.state, dtype=np.float32)`.
    #[inline]
    fn observe(state: &[f64; 2], obs: &mut [f32]) {
        obs[0] = state[0] as f32;
        obs[1] = state[1] as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_wall_stops_the_car() {
        let ([position, velocity], reward, terminated) =
            MountainCar::step(&[MIN_POSITION + 0.01, -MAX_SPEED], 0);
        assert_eq!(position, MIN_POSITION);
        assert_eq!(velocity.to_bits(), 0.0f64.to_bits());
        assert_eq!(reward, -1.0);
        assert!(!terminated);
    }

    #[test]
    fn goal_terminates_only_moving_right() {
        assert!(MountainCar::step(&[0.49, 0.02], 2).2);
        // At the goal but still rolling back: Gymnasium requires velocity >= 0.
        assert!(!MountainCar::step(&[0.52, -0.01], 0).2);
    }

    #[test]
    fn velocity_is_clipped_before_the_position_moves() {
        let ([position, velocity], _, _) = MountainCar::step(&[-0.5, MAX_SPEED], 2);
        assert_eq!(velocity, MAX_SPEED);
        assert_eq!(position, -0.5 + MAX_SPEED);
    }
}
