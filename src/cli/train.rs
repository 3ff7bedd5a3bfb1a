//! `qnet train`: resolve the config, create or reopen the run directory, train, report.

use std::path::Path;

use anyhow::Result;

use super::TrainArgs;
use crate::platform::read::load_config;
use crate::platform::signals::{StopFlag, INTERRUPTED};
use crate::run::checkpoint::ModelFiles;
use crate::run::metrics::Summary;
use crate::run::preflight::Placement;
use crate::run::provenance;
use crate::run::run_dir::{self, LockedRun};
use crate::run::session::{resume_run, start_run};
use crate::run::trainer::Outcome;

pub(super) fn train(args: TrainArgs) -> Result<i32> {
    let stop = StopFlag::install()?;
    let command = provenance::this_command();
    if let Some(dir) = &args.resume {
        let run = LockedRun::existing(dir, &command)?;
        let outcome = resume_run(
            &run,
            &args.config.overrides(),
            args.quiet,
            &stop,
            &mut |line| {
                say!("{line}");
                Ok(())
            },
            command,
        )?;
        return report(outcome, dir);
    }
    let mut overrides = args.config.overrides();
    if let Some(seed) = args.seed {
        overrides.push(format!("seed={seed}"));
    }
    let cfg = load_config(&args.config.path()?, &overrides)?;
    let env = crate::env::resolve(&cfg.env)?;
    let placement = Placement::of(&cfg, &env)?;
    let dir = run_dir::create(args.out.as_deref(), &cfg.experiment, cfg.seed)?;
    let run = LockedRun::lock(&dir, &command)?;
    say!("run directory: {}", dir.display());
    report(
        start_run(cfg, env, placement, &run, args.quiet, &stop, command)?,
        &dir,
    )
}

fn report(outcome: Outcome, dir: &Path) -> Result<i32> {
    match outcome {
        Outcome::Finished(summary) => {
            say!("{}", summary_line(&summary));
            say!(
                "model: {} (PyTorch: torch.jit.load {}); curves: tensorboard --logdir {}",
                ModelFiles::Final.safetensors(dir).display(),
                ModelFiles::Final.torchscript(dir).display(),
                dir.display()
            );
            Ok(0)
        }
        Outcome::Diverged(divergence) => Err(anyhow::anyhow!("{divergence}")),
        Outcome::Interrupted { env_steps } => {
            println!(
                "interrupted at env step {env_steps}; checkpoint saved. Continue with: \
                 qnet train --resume {}",
                dir.display()
            );
            Ok(INTERRUPTED)
        }
    }
}

/// The one line a run ends with.
pub(super) fn summary_line(s: &Summary) -> String {
    let mut solved = match (s.solved_at_step, s.solved_at_seconds) {
        (Some(step), Some(seconds)) => format!("first solved at step {step} ({seconds:.2} s)"),
        _ => "never solved during training".to_owned(),
    };
    if let (Some(step), Some(seconds)) = (s.confirmed_at_step, s.confirmed_at_seconds) {
        solved.push_str(&format!(", confirmed at step {step} ({seconds:.2} s)"));
    }
    // Under a time limit shorter than the registered one, the verdict's place says why
    // there is none.
    let verdict = match (&s.solved_not_judged, s.final_eval_solved) {
        (Some(why), _) => {
            solved = format!("solved not judged: {why}");
            "no verdict"
        }
        (None, Some(true)) => "solved",
        (None, _) => "not solved",
    };
    let final_eval = match (s.final_eval_mean, s.final_eval_std, s.final_eval_episodes) {
        (Some(mean), Some(std), Some(episodes)) => {
            format!("final eval {mean:.1} ± {std:.1} over {episodes} episodes ({verdict})")
        }
        _ => "no final eval".to_owned(),
    };
    let best = match (s.best_eval_mean, s.best_eval_step) {
        (Some(mean), Some(step)) => format!("; best eval {mean:.1} at step {step}"),
        _ => String::new(),
    };
    format!(
        "{final_eval}; {solved}{best}; {} env steps, {} updates in {:.2} s ({:.0} steps/s) on {}",
        s.env_steps, s.gradient_updates, s.train_seconds, s.env_steps_per_second, s.device
    )
}
