//! Your own environment in Rust, trained by qnet without forking it: a type that implements
//! `qnet::env::Dynamics`, registered under an id, and qnet's own command line run with it, so
//! that `env.id: Corridor-v0` works in every command (training, resuming, sweeps, reports,
//! `qnet eval`), with records, TensorBoard and the PyTorch model files.
//!
//!     cargo run --release --example custom_env -- train --set env.id=Corridor-v0
//!
//! In a crate of your own, depend on qnet and write the same `main`.

use std::borrow::Cow;
use std::process::ExitCode;

use qnet::env::{register, Dynamics, EnvRng, EnvSpec, Registration};
use rand::RngExt;

/// A corridor of cells 0 to 10: each step moves left (action 0) or right (action 1) and costs
/// 0.01; reaching cell 10 ends the episode with 1 more, falling off cell 0 ends it with -1.
/// Episodes start in a cell between 3 and 7; the best return is about 0.95.
#[derive(Debug, Clone, Copy)]
struct Corridor;

/// The last cell.
const END: i64 = 10;

impl Dynamics for Corridor {
    const SPEC: EnvSpec = EnvSpec {
        id: Cow::Borrowed("Corridor-v0"),
        obs_dim: 1,
        n_actions: 2,
        max_episode_steps: 100,
        reward_threshold: Some(0.9),
        returns: Some((-2.0, 1.0)),
    };

    /// The cell.
    type State = i64;

    fn initial_state(rng: &mut EnvRng) -> i64 {
        rng.random_range(3..=7)
    }

    fn step(cell: &i64, action: usize) -> (i64, f32, bool) {
        let next = if action == 1 { cell + 1 } else { cell - 1 };
        match next {
            END => (next, 0.99, true),
            0 => (next, -1.01, true),
            _ => (next, -0.01, false),
        }
    }

    fn observe(cell: &i64, obs: &mut [f32]) {
        obs[0] = *cell as f32 / END as f32;
    }
}

fn main() -> ExitCode {
    if let Err(err) = register(Registration::of::<Corridor>()) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    qnet::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// qnet trains the corridor from its command line, and the model it writes walks right.
    #[test]
    fn qnet_trains_an_environment_it_does_not_know() -> Result<(), Box<dyn std::error::Error>> {
        register(Registration::of::<Corridor>())?;
        let dir = tempfile::tempdir()?;
        let run = dir.path().join("run");
        let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cartpole.yaml");
        let mut args: Vec<std::ffi::OsString> = ["qnet", "train", "--quiet", "--config"]
            .iter()
            .map(Into::into)
            .collect();
        args.push(config.into());
        for set in [
            "env.id=Corridor-v0",
            "device=cpu",
            "train.total_env_steps=4000",
            "replay.learning_starts=500",
            "eval.every=1000",
            "eval.episodes=20",
            "eval.final_episodes=20",
            "eval.stop_when_solved=false",
        ] {
            args.extend(["--set".into(), set.into()]);
        }
        args.extend(["--out".into(), run.clone().into()]);
        assert_eq!(qnet::cli::main_from(args), ExitCode::SUCCESS);
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("summary.json"))?)?;
        let mean = summary["final_eval_mean"].as_f64().unwrap_or(f64::NAN);
        assert!(mean >= 0.9, "final mean {mean}: {summary}");
        for file in [
            "model.pt",
            "model.safetensors",
            "metrics.csv",
            "learning_curve.svg",
        ] {
            assert!(run.join(file).is_file(), "{file}");
        }
        Ok(())
    }
}
