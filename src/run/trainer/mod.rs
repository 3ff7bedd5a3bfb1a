//! A training run: the algorithm's steps (`algorithm`, no I/O) driven by a [`Trainer`]
//! that owns what the run writes and shows: records, evaluations, checkpoints, progress,
//! provenance, and the stop flag.
//!
//! Two procedures drive the algorithm, each a short loop of its own: `dqn` (replay buffer,
//! minibatches, target network) and `tutorial` (the original tutorial's collect-then-fit
//! loop, kept for comparison). What a checkpoint saves is the learner, the replay buffer,
//! the algorithm's state and the run's bookkeeping; records stream to disk as they are
//! produced ([`Records`]).

mod algorithm;
mod cadence;
mod divergence;
mod dqn;
mod evaluate;
mod state;
pub mod throughput;
mod tutorial;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use tch::Device;

use evaluate::BestModel;

use algorithm::{Algorithm, EpisodeEnd};
use state::Bookkeeping;

use crate::config::{Config, Procedure};
use crate::env::Resolved;
use crate::platform::device;
use crate::platform::signals::StopFlag;
use crate::run::checkpoint::training::TrainingCheckpoint;
use crate::run::metrics::{Row, Summary};
use crate::run::preflight::Placement;
use crate::run::progress::{Progress, Status};
use crate::run::provenance::Provenance;
use crate::run::records::Records;

pub use divergence::Divergence;
pub use state::{check_fits, work_left};

/// Finished training episodes averaged for the progress display.
const RECENT_EPISODES: usize = 20;

/// How a training session ended.
#[derive(Debug)]
pub enum Outcome {
    /// The run is complete; its summary.
    Finished(Box<Summary>),
    /// A stop was requested (Ctrl-C / SIGTERM); a checkpoint was written at this env step.
    Interrupted {
        /// Env steps taken when it stopped.
        env_steps: u64,
    },
    /// A non-finite loss, Q-value or parameter stopped training; summary.json says so.
    Diverged(Box<Divergence>),
}

/// Where a session starts from.
#[derive(Debug, Clone, Copy)]
pub enum Start<'c> {
    /// Step 0, with new records.
    Fresh,
    /// The state a checkpoint recorded, with the records cut back to what it had seen.
    Resume(&'c TrainingCheckpoint),
}

/// Why the loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The budget is spent.
    Budget,
    /// A periodic evaluation was solved and `eval.stop_when_solved` is on.
    Solved,
    /// Ctrl-C / SIGTERM.
    Interrupted,
    /// Training diverged ([`Trainer::divergence`] says how).
    Diverged,
}

/// A training run in progress, on one device, writing into one run directory: it drives the
/// algorithm and owns the records, evaluations, checkpoints, progress and stop flag.
pub struct Trainer<'a> {
    cfg: Config,
    /// The environment, resolved: its spec and how to make evaluation envs.
    env: Resolved,
    device: Device,
    /// The learner, replay buffer, envs and the algorithm's counters.
    algorithm: Algorithm,
    /// What the run tracks besides.
    book: Bookkeeping,
    records: Records,
    /// The best periodic evaluation (what `model_best.*` holds).
    best: BestModel,
    /// Where and how this session runs, for summary.json.
    provenance: Provenance,
    run_dir: PathBuf,
    progress: &'a mut Progress,
    stop: &'a StopFlag,
    session_start: Instant,
    seconds_before: f64,
    last_checkpoint: Instant,
    /// Env step of the last checkpoint written or resumed from.
    checkpointed_at: Option<u64>,
    divergence: Option<Divergence>,
}

impl<'a> Trainer<'a> {
    /// A run of `cfg` on `env` and `device` in `run_dir`, from step 0 or from a checkpoint,
    /// by a session of `command` (recorded in summary.json).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: Config,
        env: Resolved,
        placement: Placement,
        run_dir: &Path,
        start: Start<'_>,
        progress: &'a mut Progress,
        stop: &'a StopFlag,
        command: String,
    ) -> Result<Self> {
        let device = placement.train;
        let provenance = Provenance::capture(command, device);
        let algorithm = Algorithm::new(&cfg, &env, placement)?;
        let records = match start {
            Start::Fresh => Records::create(run_dir)?,
            Start::Resume(checkpoint) => state::reopen_records(run_dir, checkpoint)?,
        };
        let mut trainer = Self {
            book: Bookkeeping::new(&cfg),
            cfg,
            env,
            device,
            algorithm,
            records,
            best: BestModel::new(device),
            provenance,
            run_dir: run_dir.to_path_buf(),
            progress,
            stop,
            session_start: Instant::now(),
            seconds_before: 0.0,
            last_checkpoint: Instant::now(),
            checkpointed_at: None,
            divergence: None,
        };
        match start {
            Start::Fresh => trainer.write_best_model()?,
            Start::Resume(checkpoint) => trainer.restore(checkpoint)?,
        }
        Ok(trainer)
    }

    fn has_work_left(&self) -> bool {
        state::work_left_in(&self.cfg, &self.algorithm.state, &self.book)
    }

    /// Runs until the budget is spent, the task is solved (with `eval.stop_when_solved`),
    /// training diverges, or a stop is requested.
    pub fn run(mut self) -> Result<Outcome> {
        let stop = self.stop;
        let _listening = stop.listen();
        self.session_start = Instant::now();
        self.seconds_before = self.book.train_seconds;
        self.last_checkpoint = Instant::now();
        let stop = if self.has_work_left() {
            crate::platform::atomic::remove_if_exists(
                &self.run_dir.join(crate::run::metrics::SUMMARY_JSON),
            )?;
            self.book.stopped_solved = false;
            self.progress.line(&format!(
                "training {} ({}) on {} ({} procedure)",
                self.cfg.experiment,
                self.cfg.env.id,
                device::name(self.device),
                match self.cfg.train.procedure {
                    Procedure::Dqn => "dqn",
                    Procedure::Tutorial => "tutorial",
                }
            ));
            match self.cfg.train.procedure {
                Procedure::Dqn => self.run_dqn()?,
                Procedure::Tutorial => self.run_tutorial()?,
            }
        } else {
            Stop::Budget
        };
        self.progress.finish();
        if stop == Stop::Diverged || !self.parameters_finite() {
            return self.diverged();
        }
        if stop == Stop::Solved {
            self.book.stopped_solved = true;
        }
        self.save_checkpoint()?;
        if stop == Stop::Interrupted {
            return Ok(Outcome::Interrupted {
                env_steps: self.env_steps(),
            });
        }
        self.finish()
    }

    /// Seconds of training so far, over all sessions.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.session_start.elapsed().as_secs_f64()
    }

    fn stop_requested(&self) -> bool {
        self.stop.is_raised()
    }

    /// Env steps taken so far.
    fn env_steps(&self) -> u64 {
        self.algorithm.state.env_steps
    }

    /// Records the training episodes a step ended, and notices a non-finite loss or Q-value
    /// in their update statistics.
    fn record_episodes(&mut self, ended: &[EpisodeEnd]) -> Result<()> {
        for end in ended {
            if let Some(stats) = end.stats {
                self.book.last_loss = Some(stats.loss);
                if self.divergence.is_none() {
                    self.divergence = Divergence::in_stats(&stats, self.env_steps());
                }
            }
            self.book.push_recent(end.episode_return, RECENT_EPISODES);
            let row = Row::Episode {
                env_step: self.env_steps(),
                episode: end.episode,
                episode_return: end.episode_return,
                length: end.length,
                // Nine decimals: the schedule's value without float noise in the records.
                epsilon: (self.algorithm.epsilon() * 1e9).round() / 1e9,
                loss_and_q: end.stats.map(|s| (s.loss, s.mean_q)),
                wall_seconds: self.seconds(),
            };
            self.records.push(&row)?;
        }
        Ok(())
    }

    /// What follows every loop step: the divergence check, a due evaluation and checkpoint,
    /// records and progress. `Some` when training must stop.
    fn after_step(&mut self) -> Result<Option<Stop>> {
        if self.divergence.is_some() {
            return Ok(Some(Stop::Diverged));
        }
        if self.evaluation_due() {
            if !self.parameters_finite() {
                return Ok(Some(Stop::Diverged));
            }
            if self.evaluate_periodic()?
                && self.cfg.eval.stop_when_solved
                && self.confirm_solved()?
            {
                return Ok(Some(Stop::Solved));
            }
        }
        if self.checkpoint_due() {
            if !self.parameters_finite() {
                return Ok(Some(Stop::Diverged));
            }
            self.save_checkpoint()?;
        }
        self.records.flush_if_due()?;
        self.report();
        Ok(None)
    }

    /// A checkpoint is due by env steps (`checkpoint.every`) or by time (`every_seconds`).
    fn checkpoint_due(&mut self) -> bool {
        let (step, every) = (self.env_steps(), self.cfg.checkpoint.every);
        let by_steps = self.book.next_checkpoint_at.fire(step, every);
        let seconds = self.cfg.checkpoint.every_seconds;
        let by_time = seconds > 0.0 && self.last_checkpoint.elapsed().as_secs_f64() >= seconds;
        by_steps || by_time
    }

    fn report(&mut self) {
        let device = device::name(self.device);
        let total = match self.cfg.train.procedure {
            Procedure::Dqn => self.cfg.train.total_env_steps,
            Procedure::Tutorial => self.env_steps().max(1),
        };
        let status = Status {
            env_steps: self.env_steps(),
            total_env_steps: total,
            recent_return: self.book.recent_mean(),
            epsilon: self.algorithm.epsilon(),
            loss: self.book.last_loss,
            last_eval: self.book.last_eval.as_ref(),
            device: &device,
        };
        self.progress.update(&status);
    }
}
