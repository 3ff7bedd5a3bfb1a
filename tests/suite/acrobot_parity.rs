//! Replays Gymnasium's own Acrobot-v1 trajectories (`tests/fixtures/acrobot_golden.bin`,
//! written by `gen_classic_golden.py`) through `Single<Acrobot>`, bit for bit, and checks
//! that they cover the velocity bounds and the angle wrap.

use std::f64::consts::PI;

use qnet::env::acrobot::{MAX_VEL_1, MAX_VEL_2};
use qnet::env::Acrobot;

use super::classic_golden::replay;

const FIXTURE: &[u8] = include_bytes!("../fixtures/acrobot_golden.bin");

#[test]
fn replays_gymnasium_trajectories_bit_exactly() {
    let (mut bound_1, mut bound_2, mut wraps) = (0, 0, 0);
    // After a Gymnasium reset the state is float32 and numpy takes its cosines and sines in
    // float32, one unit in the last place from the rounded float64 value at worst; the
    // velocities, and every observation after a step, are exact.
    let coverage = replay::<Acrobot, 4>(FIXTURE, &[1, 1, 1, 1, 0, 0], |step| {
        let [theta1, theta2, dtheta1, dtheta2] = step.after;
        bound_1 += u32::from(dtheta1.abs() == MAX_VEL_1);
        bound_2 += u32::from(dtheta2.abs() == MAX_VEL_2);
        for (before, after) in [(step.before[0], theta1), (step.before[1], theta2)] {
            assert!((-PI..=PI).contains(&after), "angle {after} not wrapped");
            // An angle that crossed +-pi moved by more than pi in one step: it was wrapped.
            wraps += u32::from((after - before).abs() > PI);
        }
    });
    assert!(coverage.terminations >= 6, "{coverage:?}");
    assert!(coverage.truncations >= 1, "{coverage:?}");
    assert!(coverage.drawn_episodes >= 7, "{coverage:?}");
    assert!(
        bound_1 >= 5,
        "only {bound_1} steps at the first velocity bound"
    );
    assert!(
        bound_2 >= 5,
        "only {bound_2} steps at the second velocity bound"
    );
    assert!(wraps >= 20, "only {wraps} wrapped angles");
}
