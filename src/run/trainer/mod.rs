//! The training loop: act, store, update, evaluate, checkpoint, report.
//!
//! Two procedures share this module's bookkeeping: `dqn` (replay buffer, minibatches,
//! target network) and `tutorial` (the original tutorial's collect-then-fit loop, kept
//! for comparison). All state that the loop carries from one step to the next lives in
//! [`LoopState`] or in the learner and replay buffer, which is what a checkpoint saves;
//! records stream to disk as they are produced ([`Records`]).

mod cadence;
mod divergence;
mod dqn;
mod evaluate;
mod state;
pub mod throughput;
mod tutorial;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Result;
use tch::Device;

use evaluate::BestModel;

use crate::config::{Config, Procedure};
use crate::env::OBS_DIM;
use crate::learn::agent::Learner;
use crate::learn::nstep::Step;
use crate::learn::replay::{Prioritization, ReplayBuffer, ROW};
use crate::learn::schedule::{epsilon_at, lr_at};
use crate::platform::device;
use crate::platform::rng::{stream_seed, Stream};
use crate::run::checkpoint::training::TrainingCheckpoint;
use crate::run::metrics::{Row, Summary};
use crate::run::preflight::Placement;
use crate::run::progress::{Progress, Status};
use crate::run::provenance::Provenance;
use crate::run::records::Records;

pub use divergence::Divergence;
pub use state::{work_left, LoopState};

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

/// Where [`Trainer::collect_step`] puts the transitions it collects.
enum Sink<'m> {
    /// The replay buffer (`dqn`).
    Replay,
    /// A flat list of `ROW`-float rows (the `tutorial`'s per-iteration memory).
    Memory(&'m mut Vec<f32>),
}

/// A training run in progress, on one device, writing into one run directory.
pub struct Trainer<'a> {
    cfg: Config,
    device: Device,
    learner: Learner,
    replay: ReplayBuffer,
    state: LoopState,
    records: Records,
    /// The best periodic evaluation (what `model_best.*` holds).
    best: BestModel,
    /// Where and how this session runs, for summary.json.
    provenance: Provenance,
    run_dir: PathBuf,
    progress: &'a mut Progress,
    stop: &'a AtomicBool,
    session_start: Instant,
    seconds_before: f64,
    last_checkpoint: Instant,
    /// Env step of the last checkpoint written or resumed from.
    checkpointed_at: Option<u64>,
    divergence: Option<Divergence>,
}

impl<'a> Trainer<'a> {
    /// A run of `cfg` on `device` in `run_dir`, from step 0 or from a checkpoint, by a
    /// session of `command` (recorded in summary.json).
    pub fn new(
        cfg: Config,
        placement: Placement,
        run_dir: &Path,
        start: Start<'_>,
        progress: &'a mut Progress,
        stop: &'a AtomicBool,
        command: String,
    ) -> Result<Self> {
        let device = placement.train;
        let provenance = Provenance::capture(command, device);
        let learner = Learner::new(&cfg, device, stream_seed(cfg.seed, Stream::Init))?;
        let capacity = match cfg.train.procedure {
            Procedure::Dqn => cfg.replay.capacity,
            // The tutorial keeps its own per-iteration memory.
            Procedure::Tutorial => 1,
        };
        let prioritization = cfg.replay.prioritized.then_some(Prioritization {
            alpha: cfg.replay.alpha,
            eps: cfg.replay.priority_eps,
        });
        let replay = ReplayBuffer::new(capacity, placement.replay, device, prioritization)?;
        let records = match start {
            Start::Fresh => Records::create(run_dir)?,
            Start::Resume(checkpoint) => state::reopen_records(run_dir, checkpoint)?,
        };
        let mut trainer = Self {
            state: LoopState::new(&cfg),
            cfg,
            device,
            learner,
            replay,
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
        state::work_left_in(&self.cfg, &self.state)
    }

    /// Runs until the budget is spent, the task is solved (with `eval.stop_when_solved`),
    /// training diverges, or a stop is requested.
    pub fn run(mut self) -> Result<Outcome> {
        self.session_start = Instant::now();
        self.seconds_before = self.state.train_seconds;
        self.last_checkpoint = Instant::now();
        let stop = if self.has_work_left() {
            crate::platform::atomic::remove_if_exists(
                &self.run_dir.join(crate::run::metrics::SUMMARY_JSON),
            )?;
            self.state.stopped_solved = false;
            self.progress.line(&format!(
                "training {} on {} ({} procedure)",
                self.cfg.experiment,
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
            self.state.stopped_solved = true;
        }
        self.save_checkpoint()?;
        if stop == Stop::Interrupted {
            return Ok(Outcome::Interrupted {
                env_steps: self.state.env_steps,
            });
        }
        self.finish()
    }

    /// Seconds of training so far, over all sessions.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.session_start.elapsed().as_secs_f64()
    }

    fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn epsilon(&self) -> f64 {
        epsilon_at(&self.cfg.exploration, self.state.env_steps)
    }

    /// One vector step: `epsilon`-greedy actions (one batched forward pass for the envs that
    /// do not explore), env step, each completed transition into `sink`, finished episodes
    /// recorded. Returns how many episodes ended. `obs` and `actions` are scratch space, one
    /// per env.
    fn collect_step(
        &mut self,
        obs: &mut [f32],
        actions: &mut [i64],
        mut sink: Sink<'_>,
        epsilon: f64,
    ) -> Result<usize> {
        obs.copy_from_slice(self.state.envs.obs());
        self.learner
            .act(obs, epsilon, &mut self.state.explore_rng, actions)?;
        self.state.envs.step(actions)?;
        let n = actions.len();
        self.state.env_steps += n as u64;
        self.state.vector_steps += 1;
        let mut ended = 0;
        for i in 0..n {
            let envs = &self.state.envs;
            let (terminated, truncated) = (envs.terminated()[i], envs.truncated()[i]);
            let done = terminated || truncated;
            // An episode that ended bootstraps from its true last observation.
            let next = if done { envs.final_obs() } else { envs.obs() };
            let reward = envs.rewards()[i];
            let step = Step {
                obs: &obs[i * OBS_DIM..(i + 1) * OBS_DIM],
                action: actions[i],
                reward,
                next_obs: &next[i * OBS_DIM..(i + 1) * OBS_DIM],
                terminated,
                truncated,
            };
            // The n-step windows hand over each transition whose return is complete.
            let replay = &mut self.replay;
            self.state
                .nstep
                .push(i, step, |transition| match &mut sink {
                    Sink::Replay => replay.push(transition),
                    Sink::Memory(rows) => {
                        let start = rows.len();
                        rows.resize(start + ROW, 0.0);
                        transition.write_row(&mut rows[start..]);
                        Ok(())
                    }
                })?;
            self.state.episode_returns[i] += f64::from(reward);
            if done {
                let length = self.state.envs.episode_lengths()[i];
                let episode_return = std::mem::take(&mut self.state.episode_returns[i]);
                self.end_episode(episode_return, length);
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// The learning rate at this env step.
    fn lr(&self) -> f64 {
        lr_at(&self.cfg.optimizer, self.state.env_steps)
    }

    /// Records a finished training episode of `length` steps and return `episode_return`.
    /// Reading the update statistics is the loop's one host sync per episode, so this is
    /// where a non-finite loss or Q-value is noticed.
    fn end_episode(&mut self, episode_return: f64, length: u32) {
        self.state.episodes += 1;
        let stats = self.learner.take_stats();
        if let Some(stats) = stats {
            self.state.last_loss = Some(stats.loss);
            if self.divergence.is_none() {
                self.divergence = Divergence::in_stats(&stats, self.state.env_steps);
            }
        }
        self.state.push_recent(episode_return, RECENT_EPISODES);
        let row = Row::Episode {
            env_step: self.state.env_steps,
            episode: self.state.episodes,
            episode_return,
            length,
            // Nine decimals: the schedule's value without float noise in the records.
            epsilon: (self.epsilon() * 1e9).round() / 1e9,
            loss_and_q: stats.map(|s| (s.loss, s.mean_q)),
            wall_seconds: self.seconds(),
        };
        self.records.push(&row);
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
        let (step, every) = (self.state.env_steps, self.cfg.checkpoint.every);
        let by_steps = self.state.next_checkpoint_at.fire(step, every);
        let seconds = self.cfg.checkpoint.every_seconds;
        let by_time = seconds > 0.0 && self.last_checkpoint.elapsed().as_secs_f64() >= seconds;
        by_steps || by_time
    }

    fn report(&mut self) {
        let device = device::name(self.device);
        let total = match self.cfg.train.procedure {
            Procedure::Dqn => self.cfg.train.total_env_steps,
            Procedure::Tutorial => self.state.env_steps.max(1),
        };
        let status = Status {
            env_steps: self.state.env_steps,
            total_env_steps: total,
            recent_return: self.state.recent_mean(),
            epsilon: self.epsilon(),
            loss: self.state.last_loss,
            last_eval: self.state.last_eval.as_ref(),
            device: &device,
        };
        self.progress.update(&status);
    }
}
