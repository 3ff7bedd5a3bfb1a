//! How a sweep's runs ended, counted from its workers' reports or its run directories.

use anyhow::Result;

use super::sweep::{Failure, Job, RunState, Sweep};
use super::worker::{JobOutcome, Report};
use crate::platform::signals::INTERRUPTED;

/// How a sweep's runs ended.
#[derive(Debug, Default)]
pub struct Tally {
    /// Trained to the end in this session.
    pub finished: usize,
    /// Finished before.
    pub already_finished: usize,
    /// Failed in this session, with how.
    pub failed: Vec<(Job, Failure)>,
    /// Failed before and left alone.
    pub skipped_failed: usize,
    /// Stopped by a signal (resumable).
    pub interrupted: usize,
    /// Not run (a stop came first).
    pub not_run: usize,
    /// Wall seconds beyond training seconds, per run trained from step 0 by a worker.
    pub overheads: Vec<f64>,
}

impl Tally {
    /// Counts one worker's report on `job`.
    pub fn count(&mut self, job: &Job, report: &Report) {
        match &report.outcome {
            JobOutcome::Finished => self.finished += 1,
            JobOutcome::AlreadyFinished => self.already_finished += 1,
            JobOutcome::SkippedFailed => self.skipped_failed += 1,
            JobOutcome::Interrupted => self.interrupted += 1,
            JobOutcome::Failed(failure) => self.failed.push((job.clone(), failure.clone())),
        }
        if let Some(train) = report.fresh_train_seconds {
            self.overheads.push(report.wall_seconds - train);
        }
    }

    /// Runs that will not run again in this session: finished or failed, now or before.
    pub fn done(&self) -> usize {
        self.finished + self.already_finished + self.failed.len() + self.skipped_failed
    }

    /// What the run directories of `sweep` say of its runs (after a Slurm job has left the
    /// queue).
    pub fn of_directories(sweep: &Sweep) -> Result<Self> {
        let mut tally = Tally::default();
        for job in &sweep.jobs {
            match RunState::of(&job.dir)? {
                RunState::Finished(_) => tally.finished += 1,
                RunState::Failed(failure) => tally.failed.push((job.clone(), failure)),
                RunState::Unfinished => tally.interrupted += 1,
                RunState::New => tally.not_run += 1,
            }
        }
        Ok(tally)
    }

    /// The exit code of the command that ran them: interrupted, failed, or 0.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted > 0 || self.not_run > 0 {
            INTERRUPTED
        } else if !self.failed.is_empty() || self.skipped_failed > 0 {
            1
        } else {
            0
        }
    }
}
