//! When a periodic event of the loop is due: target-network refreshes, evaluations and
//! checkpoints all fire on env-step multiples of their `every`.

use serde::{Deserialize, Serialize};

/// A periodic event on env steps: due at the first step at or after each multiple of `every`
/// (never when `every` is 0). Once it fires at `step`, it is next due at the first multiple of
/// `every` above `step`: a vector step may cross several multiples, and fires once for them.
///
/// Only the next due step is kept (a checkpoint stores it as a number); `every` comes from the
/// config at each call, so a resumed run may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cadence {
    next: u64,
}

impl Cadence {
    /// A cadence from step 0: first due at `every`.
    pub fn starting(every: u64) -> Self {
        Self { next: every }
    }

    /// A cadence that has reached `step` with period `every`: due next at the first multiple
    /// of `every` above `step` (a resumed run whose `every` changed).
    pub fn after(step: u64, every: u64) -> Self {
        let mut cadence = Self { next: 0 };
        cadence.fire(step, every);
        cadence
    }

    /// Whether the event is due at `step`, moving on to the next one when it is.
    pub fn fire(&mut self, step: u64, every: u64) -> bool {
        if every == 0 || step < self.next {
            return false;
        }
        self.next = (step / every + 1) * every;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_per_multiple_crossed_and_never_for_zero() {
        let mut cadence = Cadence::starting(100);
        let fired: Vec<u64> = (0..=450)
            .step_by(30)
            .filter(|&step| cadence.fire(step, 100))
            .collect();
        // Steps 0, 30, ..., 450 cross 100, 200, 300 and 400 at 120, 210, 300 and 420.
        assert_eq!(fired, [120, 210, 300, 420]);
        let mut never = Cadence::starting(0);
        assert!(!(0..1000).any(|step| never.fire(step, 0)));
        assert_eq!(Cadence::after(250, 100), Cadence { next: 300 });
        assert_eq!(Cadence::after(300, 100), Cadence { next: 400 });
        assert_eq!(Cadence::after(300, 0), Cadence { next: 0 });
    }

    #[test]
    fn a_checkpoint_stores_it_as_a_plain_number() {
        let text = serde_json::to_string(&Cadence::starting(500)).expect("json");
        assert_eq!(text, "500");
        let back: Cadence = serde_json::from_str("1500").expect("json");
        assert_eq!(back, Cadence { next: 1500 });
    }
}
