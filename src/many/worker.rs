//! Running one job of a sweep in this process, as `qnet train` would, and the worker
//! process that does that for the jobs its parent sends (libtorch loads once per worker).
//!
//! Protocol: the parent writes one JSON `Request` per line on the worker's stdin; the worker
//! answers each with one JSON [`Report`] line on stdout, and exits at the end of its input.

use std::io::{BufRead, Write};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::many::sweep::{Failure, Job, RunState};
use crate::platform::files::child_dir;
use crate::platform::parent::terminate_with_parent;
use crate::platform::signals::StopFlag;
use crate::run::preflight::Placement;
use crate::run::run_dir::LockedRun;
use crate::run::session::{resume_run, start_run, AlreadyFinished};
use crate::run::trainer::Outcome;

/// What the parent asks a worker to do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Request {
    /// The run.
    pub job: Job,
    /// Train it again if it failed before.
    pub retry_failed: bool,
}

/// How a job went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    /// Trained to the end in this session.
    Finished,
    /// Finished before; left alone.
    AlreadyFinished,
    /// Failed before; left alone (no `--retry-failed`).
    SkippedFailed,
    /// Stopped by a signal; its checkpoint is saved.
    Interrupted,
    /// Failed now; `failure.json` in its directory says how.
    Failed(Failure),
}

/// A worker's answer to a `Request`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// How it went.
    pub outcome: JobOutcome,
    /// Wall time the worker spent on the job.
    pub wall_seconds: f64,
    /// Training seconds of this session, for a run trained from step 0 here (the worker's
    /// per-run overhead is the wall time beyond them).
    pub fresh_train_seconds: Option<f64>,
}

/// Runs `job` here, holding its directory's lock: skipped when finished (or failed, unless
/// `retry_failed`), resumed when started, trained from step 0 otherwise. A failure is recorded
/// in the run's directory; a run that another process holds is left untouched.
pub fn execute(job: &Job, retry_failed: bool, stop: &StopFlag) -> Report {
    let start = Instant::now();
    let (outcome, fresh_train_seconds) = match lock(job) {
        Ok(run) => match attempt(&run, job, retry_failed, stop) {
            Ok(done) => done,
            Err(err) => (fail(job, "1", &format!("{err:#}")), None),
        },
        // Not recorded: the directory is another process's; the next sweep tries it again.
        Err(err) => (
            JobOutcome::Failed(Failure {
                exit_status: "1".to_owned(),
                error: format!("{err:#}"),
            }),
            None,
        ),
    };
    Report {
        outcome,
        wall_seconds: start.elapsed().as_secs_f64(),
        fresh_train_seconds,
    }
}

/// Creates (through no link) and locks the run directory `OUT/<setting>/seed<N>` of `job`.
fn lock(job: &Job) -> Result<LockedRun> {
    let out = job.dir.ancestors().nth(2).unwrap_or(&job.dir);
    child_dir(out, &job.dir)
        .with_context(|| format!("creating the run directory {}", job.dir.display()))?;
    LockedRun::lock(&job.dir, &job.command())
}

/// Records a failure of `job` in its directory; a failure to record it is added to it.
pub(super) fn fail(job: &Job, exit_status: &str, error: &str) -> JobOutcome {
    let last_line = error.lines().last().unwrap_or(error).to_owned();
    let mut failure = Failure {
        exit_status: exit_status.to_owned(),
        error: last_line,
    };
    if let Err(err) = failure.write(&job.dir) {
        failure.error = format!("{} (and it could not be recorded: {err:#})", failure.error);
    }
    JobOutcome::Failed(failure)
}

fn attempt(
    run: &LockedRun,
    job: &Job,
    retry_failed: bool,
    stop: &StopFlag,
) -> Result<(JobOutcome, Option<f64>)> {
    let state = RunState::of(&job.dir)?;
    let outcome = match state {
        RunState::Finished(_) => return Ok((JobOutcome::AlreadyFinished, None)),
        RunState::Failed(_) if !retry_failed => return Ok((JobOutcome::SkippedFailed, None)),
        // New, or failed before its config.yaml was written (a preflight check, say).
        RunState::New | RunState::Failed(_) if !job.dir.join("config.yaml").exists() => {
            Failure::clear(&job.dir)?;
            let cfg = job.load_config()?;
            let env = crate::env::resolve(&cfg.env)?;
            let placement = Placement::of(&cfg, &env)?;
            (
                start_run(cfg, env, placement, run, true, stop, job.command())?,
                true,
            )
        }
        RunState::Failed(_) | RunState::Unfinished => {
            Failure::clear(&job.dir)?;
            let fresh = !job
                .dir
                .join(crate::run::checkpoint::training::FILE_NAME)
                .exists();
            match resume_run(run, &[], true, stop, &mut |_| Ok(()), job.command()) {
                Ok(outcome) => (outcome, fresh),
                // Its checkpoint and summary say it is complete (a failure recorded after it
                // finished): there is nothing to train again.
                Err(err) if err.downcast_ref::<AlreadyFinished>().is_some() => {
                    return Ok((JobOutcome::AlreadyFinished, None))
                }
                Err(err) => return Err(err),
            }
        }
        RunState::New => bail!(
            "{} holds a config.yaml but no run state; remove it or the directory",
            job.dir.display()
        ),
    };
    Ok(match outcome {
        (Outcome::Finished(summary), fresh) => {
            (JobOutcome::Finished, fresh.then_some(summary.train_seconds))
        }
        (Outcome::Interrupted { .. }, _) => (JobOutcome::Interrupted, None),
        (Outcome::Diverged(divergence), _) => (fail(job, "1", &divergence.to_string()), None),
    })
}

/// Environment variable that carries the PID of the sweep that starts a worker: the worker
/// ends with it (see [`serve`]).
pub(super) const PARENT_PID_ENV: &str = "QNET_SWEEP_PARENT";

/// A worker process's life: answers each request read from `requests` with a report line on
/// `reports`, until the input ends or a stop is requested (`qnet sweep-worker` hands it its
/// stdin and stdout).
///
/// A worker started by a sweep (with `PARENT_PID_ENV` set) receives SIGTERM when the sweep
/// ends, however it ends: the run in progress writes its checkpoint and the worker exits, so
/// a killed sweep leaves no orphan training into its directories.
pub fn serve(requests: impl BufRead, mut reports: impl Write) -> Result<()> {
    let stop = StopFlag::install()?;
    if let Some(parent) = std::env::var_os(PARENT_PID_ENV) {
        let pid = parent
            .to_str()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("{PARENT_PID_ENV} is not a process ID: {parent:?}"))?;
        terminate_with_parent(pid)?;
    }
    for line in requests.lines() {
        let request: Request = serde_json::from_str(&line.context("reading a request")?)
            .context("decoding a request")?;
        let report = execute(&request.job, request.retry_failed, &stop);
        writeln!(reports, "{}", serde_json::to_string(&report)?)?;
        reports.flush()?;
        if stop.is_raised() {
            break;
        }
    }
    Ok(())
}
