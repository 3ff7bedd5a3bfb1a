//! `qnet train`: resolve the config, create or reopen the run directory, train, report.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::{run_dir, TrainArgs};
use crate::atomic::write_bytes_atomic;
use crate::checkpoint::training::{TrainingCheckpoint, FILE_NAME};
use crate::config::Config;
use crate::device;
use crate::metrics::Summary;
use crate::progress::Progress;
use crate::trainer::{Outcome, Trainer};

/// Exit code after an interrupt (128 + SIGINT, as shells report it).
const INTERRUPTED: i32 = 130;

pub(super) fn train(args: TrainArgs) -> Result<i32> {
    if let Some(dir) = &args.resume {
        return resume(dir, args.config.device.as_deref(), args.quiet);
    }
    let mut overrides = args.config.overrides();
    if let Some(seed) = args.seed {
        overrides.push(format!("seed={seed}"));
    }
    let cfg = Config::load(&args.config.config, &overrides)?;
    device::configure_cpu_threads(&cfg.network.hidden);
    let device = device::resolve(cfg.device, "device")?;
    let dir = run_dir::create(args.out.as_deref(), &cfg.experiment, cfg.seed)?;
    write_bytes_atomic(&dir.join("config.yaml"), cfg.to_yaml()?.as_bytes())?;
    println!("run directory: {}", dir.display());
    let stop = stop_flag()?;
    let mut progress = Progress::choose(args.quiet, cfg.train.total_env_steps);
    let trainer = Trainer::new(cfg, device, &dir, &mut progress, &stop)?;
    report(trainer.run()?, &dir)
}

/// Continues the run in `dir` from its checkpoint, with its own config.yaml.
fn resume(dir: &Path, device: Option<&str>, quiet: bool) -> Result<i32> {
    let config_path = dir.join("config.yaml");
    if !config_path.exists() {
        bail!(
            "{} is not a qnet run directory: it has no config.yaml",
            dir.display()
        );
    }
    let checkpoint = TrainingCheckpoint::load(&dir.join(FILE_NAME))?;
    let overrides: Vec<String> = device.iter().map(|d| format!("device={d}")).collect();
    let cfg = Config::load(&config_path, &overrides)?;
    let saved = Config::from_yaml_str(
        &checkpoint.config_yaml,
        "the checkpoint's config",
        &overrides,
    )?;
    if saved.network != cfg.network {
        bail!(
            "{} no longer matches the checkpoint's network: it says hidden {:?}, {:?}, {:?}; \
             the checkpoint was trained with hidden {:?}, {:?}, {:?}. Restore the file or start \
             a new run",
            config_path.display(),
            cfg.network.hidden,
            cfg.network.activation,
            cfg.network.init,
            saved.network.hidden,
            saved.network.activation,
            saved.network.init
        );
    }
    if saved != cfg {
        bail!(
            "{} differs from the config the checkpoint in {} was written with; a resumed run \
             must continue with the same settings (only --device may change). Restore the \
             file or start a new run",
            config_path.display(),
            dir.display()
        );
    }
    device::configure_cpu_threads(&cfg.network.hidden);
    let device = device::resolve(cfg.device, "device")?;
    println!("run directory: {} (resumed)", dir.display());
    let stop = stop_flag()?;
    let mut progress = Progress::choose(quiet, cfg.train.total_env_steps);
    let mut trainer = Trainer::new(cfg, device, dir, &mut progress, &stop)?;
    trainer
        .restore(&checkpoint)
        .with_context(|| format!("resuming from {}", dir.join(FILE_NAME).display()))?;
    report(trainer.run()?, dir)
}

/// A flag that SIGINT and SIGTERM raise; a second signal while it is raised exits at once.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    use signal_hook::flag;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        flag::register_conditional_shutdown(signal, INTERRUPTED, Arc::clone(&stop))
            .context("installing the Ctrl-C handler")?;
        flag::register(signal, Arc::clone(&stop)).context("installing the Ctrl-C handler")?;
    }
    Ok(stop)
}

fn report(outcome: Outcome, dir: &Path) -> Result<i32> {
    match outcome {
        Outcome::Finished(summary) => {
            println!("{}", summary_line(&summary));
            Ok(0)
        }
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
    let solved = match (s.solved_at_step, s.solved_at_seconds) {
        (Some(step), Some(seconds)) => format!("first solved at step {step} ({seconds:.2} s)"),
        _ => "never solved during training".to_owned(),
    };
    format!(
        "final eval {:.1} ± {:.1} over {} episodes ({}); {solved}; {} env steps, {} updates \
         in {:.2} s ({:.0} steps/s) on {}",
        s.final_eval_mean,
        s.final_eval_std,
        s.final_eval_episodes,
        if s.final_eval_solved {
            "solved"
        } else {
            "not solved"
        },
        s.env_steps,
        s.gradient_updates,
        s.train_seconds,
        s.env_steps_per_second,
        s.device
    )
}
