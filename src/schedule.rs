//! Exploration schedules.

use crate::config::{ExplorationConfig, Schedule};

/// Epsilon after `step` env steps: constant, or linear from `start` to `end` over
/// `decay_steps` and flat afterwards (SB3's and CleanRL's `linear_schedule`).
pub fn epsilon_at(cfg: &ExplorationConfig, step: u64) -> f64 {
    match cfg.schedule {
        Schedule::Constant => cfg.start,
        Schedule::Linear => {
            let frac = (step as f64 / cfg.decay_steps.max(1) as f64).min(1.0);
            cfg.start + frac * (cfg.end - cfg.start)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linear() -> ExplorationConfig {
        ExplorationConfig {
            schedule: Schedule::Linear,
            start: 1.0,
            end: 0.1,
            decay_steps: 100,
        }
    }

    #[test]
    fn linear_decays_then_stays() {
        let cfg = linear();
        assert_eq!(epsilon_at(&cfg, 0), 1.0);
        assert!((epsilon_at(&cfg, 50) - 0.55).abs() < 1e-12);
        assert!((epsilon_at(&cfg, 100) - 0.1).abs() < 1e-12);
        assert!((epsilon_at(&cfg, 10_000) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn constant_ignores_step() {
        let cfg = ExplorationConfig {
            schedule: Schedule::Constant,
            start: 0.3,
            ..linear()
        };
        assert_eq!(epsilon_at(&cfg, 0), 0.3);
        assert_eq!(epsilon_at(&cfg, 1_000_000), 0.3);
    }
}
