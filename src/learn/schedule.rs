//! Schedules over env steps: exploration's epsilon, the learning rate, and prioritized
//! replay's importance-sampling exponent. They depend on the env step alone (not on the
//! budget), so a run continued with a bigger budget follows the same values.

use crate::config::{ExplorationConfig, OptimizerConfig, ReplayConfig, Schedule};

/// `start` moved linearly to `end` over `steps`, and flat afterwards (SB3's and CleanRL's
/// `linear_schedule`).
fn linear(start: f64, end: f64, steps: u64, step: u64) -> f64 {
    if step >= steps {
        return end;
    }
    let frac = step as f64 / steps.max(1) as f64;
    start + frac * (end - start)
}

/// Epsilon after `step` env steps: constant, or linear from `start` to `end` over
/// `decay_steps`.
pub fn epsilon_at(cfg: &ExplorationConfig, step: u64) -> f64 {
    match cfg.schedule {
        Schedule::Constant => cfg.start,
        Schedule::Linear => linear(cfg.start, cfg.end, cfg.decay_steps, step),
    }
}

/// The learning rate after `step` env steps: constant, or linear from `lr` to `lr_end` over
/// `lr_decay_steps`.
pub fn lr_at(cfg: &OptimizerConfig, step: u64) -> f64 {
    match cfg.lr_schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Linear => linear(cfg.lr, cfg.lr_end, cfg.lr_decay_steps, step),
    }
}

/// Prioritized replay's beta after `step` env steps (Schaul et al. anneal it toward 1).
pub fn beta_at(cfg: &ReplayConfig, step: u64) -> f64 {
    linear(cfg.beta_start, cfg.beta_end, cfg.beta_steps, step)
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
    fn learning_rate_and_beta_follow_their_schedules() {
        let mut optimizer = crate::config::Config::default().optimizer;
        assert_eq!(lr_at(&optimizer, 1_000_000), optimizer.lr);
        optimizer.lr_schedule = Schedule::Linear;
        optimizer.lr = 1e-3;
        optimizer.lr_end = 1e-4;
        optimizer.lr_decay_steps = 1000;
        assert!((lr_at(&optimizer, 500) - 5.5e-4).abs() < 1e-15);
        assert_eq!(lr_at(&optimizer, 5000), 1e-4);
        let mut replay = crate::config::Config::default().replay;
        replay.beta_start = 0.4;
        replay.beta_end = 1.0;
        replay.beta_steps = 100;
        assert_eq!(beta_at(&replay, 0), 0.4);
        assert!((beta_at(&replay, 50) - 0.7).abs() < 1e-12);
        assert_eq!(beta_at(&replay, 1000), 1.0);
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
