//! The disk a run will use, estimated from its config before anything is written.
//!
//! A run writes config.yaml; one metrics.csv row and its TensorBoard scalars per training
//! episode and per evaluation; checkpoint.safetensors (the replay buffer's filled rows, the
//! learner's parameters, target, optimizer moments and best network); model.pt and
//! model.safetensors, and model_best.* when it evaluates; summary.json and a plot. Episodes
//! are counted as if the policy never learned (short episodes, many rows), so the estimate
//! leans high: measured on CartPole's default config it is about 30% above what a run
//! writes. It is an estimate, not a promise.

use crate::config::{Config, Procedure};
use crate::env::Resolved;
use crate::learn::replay::RowLayout;

const F32: u64 = 4;
/// Steps of a short CartPole episode: a policy that never learns averages about 22, a
/// trained one up to 500, so episodes counted at this length lean high.
const SHORT_EPISODE: u64 = 20;
/// Bytes of one metrics.csv row and its TensorBoard events (measured: about 320).
const ROW_BYTES: u64 = 320;
/// Copies of the parameters in a checkpoint: online, target, two optimizer moments, best.
const CHECKPOINT_COPIES: u64 = 5;
/// Copies in the model files: model.pt, model.safetensors and their model_best twins.
const MODEL_COPIES: u64 = 4;
/// What does not grow with the config: the model files' archive and metadata,
/// summary.json, the plot, config.yaml.
const FIXED_BYTES: u64 = 48 * 1024;

/// Bytes the run of `cfg` on `resolved` will leave on disk, estimated from its keys.
pub fn run_bytes(cfg: &Config, resolved: &Resolved) -> u64 {
    let env = resolved.spec();
    let mut widths = vec![env.obs_dim as u64];
    widths.extend(cfg.network.hidden.iter().map(|&w| w.max(0) as u64));
    widths.push(env.n_actions as u64);
    let parameters = widths
        .windows(2)
        .map(|pair| pair[1].saturating_mul(pair[0] + 1))
        .fold(0, u64::saturating_add);
    let (env_steps, replay_rows) = match cfg.train.procedure {
        Procedure::Dqn => {
            let steps = cfg.train.total_env_steps;
            (steps, steps.min(cfg.replay.capacity as u64))
        }
        Procedure::Tutorial => {
            let episode = cfg.env.n_envs as u64 * u64::from(resolved.time_limit());
            let per_iteration = (cfg.train.tutorial.min_memory as u64).saturating_add(episode);
            (
                cfg.train.tutorial.iterations.saturating_mul(per_iteration),
                0,
            )
        }
    };
    let priorities = if cfg.replay.prioritized && cfg.train.procedure == Procedure::Dqn {
        (cfg.replay.capacity as u64).saturating_mul(8)
    } else {
        0
    };
    let evaluations = match cfg.eval.every {
        0 => 1,
        every => env_steps / every + 1,
    };
    let rows = (env_steps / SHORT_EPISODE).saturating_add(evaluations);
    [
        rows.saturating_mul(ROW_BYTES),
        replay_rows.saturating_mul(RowLayout::new(env.obs_dim).floats() as u64 * F32),
        priorities,
        parameters.saturating_mul((CHECKPOINT_COPIES + MODEL_COPIES) * F32),
        FIXED_BYTES,
    ]
    .into_iter()
    .fold(0, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cartpole() -> Resolved {
        crate::env::resolve(&Config::default().env).expect("CartPole-v1")
    }

    #[test]
    fn the_estimate_follows_the_keys_that_size_a_run() {
        let base = Config::default();
        // Measured: a default run (50,000 steps, 64x64) leaves about 2.5 MB.
        let bytes = run_bytes(&base, &cartpole());
        assert!((2_500_000..4_000_000).contains(&bytes), "{bytes}");
        let mut bigger = base.clone();
        bigger.replay.capacity *= 2;
        bigger.train.total_env_steps *= 2;
        let replay = base.train.total_env_steps * RowLayout::new(4).floats() as u64 * F32;
        assert!(
            run_bytes(&bigger, &cartpole()) >= bytes + replay,
            "{}",
            run_bytes(&bigger, &cartpole())
        );
        let mut tutorial = base.clone();
        tutorial.train.procedure = Procedure::Tutorial;
        tutorial.train.tutorial.iterations = 1;
        assert!(
            run_bytes(&tutorial, &cartpole()) < bytes / 10,
            "{}",
            run_bytes(&tutorial, &cartpole())
        );
    }
}
