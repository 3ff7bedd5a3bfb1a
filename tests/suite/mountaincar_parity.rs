//! Replays Gymnasium's own MountainCar-v0 trajectories (`tests/fixtures/mountaincar_golden.bin`,
//! written by `gen_classic_golden.py`) through `Single<MountainCar>`, bit for bit, and checks
//! that they cover the goal, the left wall and the speed bounds.

use qnet::env::mountain_car::{GOAL_POSITION, MAX_SPEED, MIN_POSITION};
use qnet::env::MountainCar;

use super::classic_golden::replay;

const FIXTURE: &[u8] = include_bytes!("../fixtures/mountaincar_golden.bin");

#[test]
fn replays_gymnasium_trajectories_bit_exactly() {
    let (mut wall_stops, mut speed_bound, mut goal_moving_left) = (0, 0, 0);
    // Gymnasium's reset observation is the float64 state rounded, as qnet's: no tolerance.
    let coverage = replay::<MountainCar, 2>(FIXTURE, &[0, 0], |step| {
        let [position, velocity] = step.after;
        if position == MIN_POSITION && velocity == 0.0 && step.before[1] != 0.0 {
            wall_stops += 1;
        }
        if velocity.abs() == MAX_SPEED {
            speed_bound += 1;
        }
        if position >= GOAL_POSITION && velocity < 0.0 {
            goal_moving_left += 1;
        }
    });
    assert!(coverage.terminations >= 20, "{coverage:?}");
    assert!(coverage.truncations >= 4, "{coverage:?}");
    assert!(coverage.drawn_episodes >= 7, "{coverage:?}");
    assert!(wall_stops >= 5, "only {wall_stops} stops at the left wall");
    assert!(
        speed_bound >= 20,
        "only {speed_bound} steps at the speed bound"
    );
    assert!(goal_moving_left >= 1, "no step past the goal moving left");
}
