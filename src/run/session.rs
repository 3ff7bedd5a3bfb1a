//! Starting and resuming one run: what a resumed run may change, what it must keep, and the
//! stop flag that Ctrl-C raises. `qnet train` and a sweep's workers both start runs here.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{Config, Procedure};
use crate::env::Resolved;
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::read::load_config;
use crate::platform::signals::StopFlag;
use crate::run::checkpoint::training::{TrainingCheckpoint, FILE_NAME};
use crate::run::metrics::{RunStatus, Summary};
use crate::run::preflight::Placement;
use crate::run::progress::Progress;
use crate::run::run_dir::{holds_run, LockedRun};
use crate::run::trainer::{check_fits, work_left, Outcome, Start, Trainer};

/// Trains `cfg` on `env` from step 0 in the locked, empty run directory `run`, for `command`.
pub fn start_run(
    cfg: Config,
    env: Resolved,
    placement: Placement,
    run: &LockedRun,
    quiet: bool,
    stop: &StopFlag,
    command: String,
) -> Result<Outcome> {
    let dir = run.path();
    if holds_run(dir) {
        bail!(
            "{} already holds a run; continue it with qnet train --resume {}",
            dir.display(),
            dir.display()
        );
    }
    write_bytes_atomic(&dir.join("config.yaml"), cfg.to_yaml()?.as_bytes())?;
    let mut progress = Progress::choose(quiet, cfg.train.total_env_steps);
    Trainer::new(
        cfg,
        env,
        placement,
        dir,
        Start::Fresh,
        &mut progress,
        stop,
        command,
    )?
    .run()
}

/// Keys a resumed run may change: they decide how long it trains and how often it
/// evaluates and checkpoints, not anything it has already computed.
const RESUMABLE_KEYS: &[&str] = &[
    "device",
    "train.total_env_steps",
    "train.tutorial.iterations",
    "eval.every",
    "eval.episodes",
    "eval.final_episodes",
    "eval.stop_when_solved",
    "checkpoint.every",
    "checkpoint.every_seconds",
];

/// The keys of `a` and `b` that differ, apart from those a resumed run may change.
fn fixed_keys_that_differ(a: &Config, b: &Config) -> Result<Vec<String>> {
    Ok(a.differing_keys(b)?
        .into_iter()
        .filter(|key| !RESUMABLE_KEYS.contains(&key.as_str()))
        .collect())
}

/// Continues the run in the locked directory `run` from its checkpoint (from step 0 if it
/// has none yet), with its own config.yaml and the `overrides` (`--set` of
/// `RESUMABLE_KEYS`, `--device`); `note` receives the line that says what is being resumed;
/// `command` is this session's.
pub fn resume_run(
    run: &LockedRun,
    overrides: &[String],
    quiet: bool,
    stop: &StopFlag,
    note: &mut dyn FnMut(&str) -> Result<()>,
    command: String,
) -> Result<Outcome> {
    let dir = run.path();
    let config_path = dir.join("config.yaml");
    let (recorded, cfg) = resumed_config(dir, overrides)?;
    let env = crate::env::resolve(&cfg.env)?;
    let checkpoint = checkpoint_to_resume(dir, &recorded, &cfg, &env)?;
    let placement = Placement::of(&cfg, &env)?;
    let start = match &checkpoint {
        Some(checkpoint) => {
            note(&format!(
                "run directory: {} (resumed{})",
                dir.display(),
                if env.is_gym() {
                    "; the envs of a Python environment cannot be saved, so their episodes \
                     start anew, seeded from the run's seed and env step"
                } else {
                    ""
                }
            ))?;
            Start::Resume(checkpoint)
        }
        None => {
            note(&format!(
                "run directory: {} (no checkpoint yet: starting it again from step 0)",
                dir.display()
            ))?;
            Start::Fresh
        }
    };
    let mut progress = Progress::choose(quiet, cfg.train.total_env_steps);
    // The new settings are recorded once the run has been rebuilt from its checkpoint: a
    // refused resume leaves config.yaml as it was.
    let yaml = (cfg != recorded).then(|| cfg.to_yaml()).transpose()?;
    let trainer = Trainer::new(
        cfg,
        env,
        placement,
        dir,
        start,
        &mut progress,
        stop,
        command,
    )
    .with_context(|| format!("resuming {}", dir.display()))?;
    if let Some(yaml) = yaml {
        write_bytes_atomic(&config_path, yaml.as_bytes())?;
    }
    trainer.run()
}

/// The config the run in `dir` recorded, and the one it resumes with (`overrides` applied);
/// an override of a key a resumed run must keep is refused.
fn resumed_config(dir: &Path, overrides: &[String]) -> Result<(Config, Config)> {
    let config_path = dir.join("config.yaml");
    if !config_path.exists() {
        bail!(
            "{} is not a qnet run directory: it has no config.yaml",
            dir.display()
        );
    }
    let recorded = load_config(&config_path, &[])?;
    let cfg = load_config(&config_path, overrides)?;
    let refused = fixed_keys_that_differ(&recorded, &cfg)?;
    if let Some(key) = refused.first() {
        bail!(
            "--set {key}: a resumed run keeps the settings it was trained with; only {} may \
             change (they do not alter what was already computed). Start a new run to change \
             {key}",
            RESUMABLE_KEYS.join(", ")
        );
    }
    Ok((recorded, cfg))
}

/// The checkpoint of the run in `dir`, if it has one, checked against the `recorded`
/// config; a run that finished and that `cfg` gives no more work is refused
/// ([`AlreadyFinished`]).
fn checkpoint_to_resume(
    dir: &Path,
    recorded: &Config,
    cfg: &Config,
    env: &Resolved,
) -> Result<Option<TrainingCheckpoint>> {
    let checkpoint_path = dir.join(FILE_NAME);
    if !checkpoint_path.exists() {
        return Ok(None);
    }
    let checkpoint = TrainingCheckpoint::load(&checkpoint_path)?;
    check_matches_checkpoint(&dir.join("config.yaml"), recorded, &checkpoint)?;
    let cannot = || format!("cannot resume from {}", checkpoint_path.display());
    check_fits(cfg, env, &checkpoint).with_context(cannot)?;
    let work_left = work_left(cfg, env, &checkpoint).with_context(cannot)?;
    if !work_left && Summary::read(dir)?.is_some_and(|s| s.status == RunStatus::Finished) {
        return Err(AlreadyFinished {
            dir: dir.to_path_buf(),
            budget: budget(cfg),
        }
        .into());
    }
    Ok(Some(checkpoint))
}

/// Why [`resume_run`] refused: the run already trained its whole budget (a sweep counts it
/// as finished rather than failed).
#[derive(Debug)]
pub struct AlreadyFinished {
    dir: PathBuf,
    budget: String,
}

impl std::fmt::Display for AlreadyFinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already finished ({}); to train it further, raise its budget, e.g. qnet train \
             --resume {} --set train.total_env_steps=N",
            self.dir.display(),
            self.budget,
            self.dir.display()
        )
    }
}

impl std::error::Error for AlreadyFinished {}

/// The checkpoint was written with the settings config.yaml records (up to resumable keys).
fn check_matches_checkpoint(
    config_path: &Path,
    recorded: &Config,
    checkpoint: &TrainingCheckpoint,
) -> Result<()> {
    let saved = Config::from_yaml_str(&checkpoint.config_yaml, "the checkpoint's config", &[])?;
    if saved.network != recorded.network {
        bail!(
            "{} no longer matches the checkpoint's network: it says hidden {:?}, {:?}, {:?}; \
             the checkpoint was trained with hidden {:?}, {:?}, {:?}. Restore the file or start \
             a new run",
            config_path.display(),
            recorded.network.hidden,
            recorded.network.activation,
            recorded.network.init,
            saved.network.hidden,
            saved.network.activation,
            saved.network.init
        );
    }
    let changed = fixed_keys_that_differ(&saved, recorded)?;
    if !changed.is_empty() {
        bail!(
            "{} differs from the config the checkpoint was written with ({}); a resumed run \
             must continue with the same settings. Restore the file or start a new run",
            config_path.display(),
            changed.join(", ")
        );
    }
    Ok(())
}

/// The budget of `cfg`, in words.
fn budget(cfg: &Config) -> String {
    match cfg.train.procedure {
        Procedure::Dqn => format!("train.total_env_steps = {}", cfg.train.total_env_steps),
        Procedure::Tutorial => format!(
            "train.tutorial.iterations = {}",
            cfg.train.tutorial.iterations
        ),
    }
}
