//! Replays Gymnasium's own CartPole-v1 trajectories (`tests/fixtures/cartpole_golden.bin`,
//! written by `gen_classic_golden.py`) through `Single<CartPole>`, bit for bit, and checks
//! that they cover termination at the position and angle limits, steps exactly at a limit,
//! truncation at 500 steps, and both on one step.

use qnet::env::cartpole::{THETA_THRESHOLD_RADIANS, X_THRESHOLD};
use qnet::env::CartPole;

use super::classic_golden::replay;

const FIXTURE: &[u8] = include_bytes!("../fixtures/cartpole_golden.bin");

#[test]
fn replays_gymnasium_trajectories_bit_exactly() {
    let (mut past_x, mut past_theta, mut at_a_limit, mut both) = (0, 0, 0, 0);
    // Gymnasium's reset observation is the float64 state rounded, as qnet's: no tolerance.
    let coverage = replay::<CartPole, 4>(FIXTURE, &[0; 4], |step| {
        let [x, _, theta, _] = step.after;
        if step.terminated {
            past_x += u32::from(x.abs() > X_THRESHOLD);
            past_theta += u32::from(theta.abs() > THETA_THRESHOLD_RADIANS);
            both += u32::from(step.truncated);
        } else if x.abs() == X_THRESHOLD || theta.abs() == THETA_THRESHOLD_RADIANS {
            at_a_limit += 1;
        }
    });
    assert!(coverage.terminations >= 150, "{coverage:?}");
    assert!(coverage.truncations >= 5, "{coverage:?}");
    assert!(coverage.drawn_episodes >= 150, "{coverage:?}");
    assert!(
        past_x >= 5,
        "only {past_x} terminations past the position limit"
    );
    assert!(
        past_theta >= 100,
        "only {past_theta} terminations past the angle limit"
    );
    assert!(
        at_a_limit >= 4,
        "only {at_a_limit} steps exactly at a limit"
    );
    assert!(both >= 1, "no step that terminates at the time limit");
}
