//! What the loop carries between steps, and the round trip of a run through a checkpoint:
//! each component (learner, replay, records, best model, this loop state with its envs)
//! hands over its own part and takes it back.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use anyhow::{Context, Result};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::cadence::Cadence;
use super::Trainer;
use crate::artifacts::plot::{learning_curve_svg, LEARNING_CURVE};
use crate::config::{Config, Procedure};
use crate::env::BatchedCartPole;
use crate::learn::eval::EvalResult;
use crate::learn::nstep::NStepWindows;
use crate::learn::state::{Checkpointed, Part};
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::rng::{stream_rng, stream_seed, Stream};
use crate::run::checkpoint::training::{part, TrainingCheckpoint, FILE_NAME};
use crate::run::checkpoint::ModelFiles;
use crate::run::metrics::Curves;
use crate::run::records::Records;

/// The training loop's own state: counters, RNGs, envs, n-step windows, progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopState {
    /// Env steps taken, summed over envs.
    pub env_steps: u64,
    /// Batched (vector) env steps taken.
    pub vector_steps: u64,
    /// Gradient updates applied.
    pub gradient_updates: u64,
    /// Training episodes finished.
    pub episodes: u64,
    /// Tutorial iterations completed.
    pub tutorial_iterations: u64,
    /// When the next periodic evaluation runs.
    pub next_eval_at: Cadence,
    /// When the next checkpoint is written.
    pub next_checkpoint_at: Cadence,
    /// When the target network is next updated.
    pub next_target_at: Cadence,
    /// Epsilon-greedy draws.
    pub explore_rng: Pcg64,
    /// Replay minibatch indices.
    pub replay_rng: Pcg64,
    /// The training envs, mid-episode.
    pub envs: BatchedCartPole,
    /// Return so far of each env's current episode.
    pub episode_returns: Vec<f64>,
    /// Returns of the last finished episodes (progress display).
    pub recent_returns: VecDeque<f64>,
    /// Mean loss at the last finished episode (progress display).
    pub last_loss: Option<f64>,
    /// The last periodic evaluation.
    pub last_eval: Option<EvalResult>,
    /// First env step at which an evaluation was solved.
    pub solved_at_step: Option<u64>,
    /// Training seconds at that evaluation.
    pub solved_at_seconds: Option<f64>,
    /// The first env of the confirmation stream no confirmation has played yet (each plays
    /// fresh envs, however `eval.final_episodes` changes on resume).
    #[serde(default)]
    pub confirm_next_env: usize,
    /// Env step at which a confirmation evaluation agreed that the task is solved.
    #[serde(default)]
    pub confirmed_at_step: Option<u64>,
    /// Training seconds at that confirmation.
    #[serde(default)]
    pub confirmed_at_seconds: Option<f64>,
    /// Training seconds so far, over all sessions.
    pub train_seconds: f64,
    /// Training stopped at a solved evaluation (`eval.stop_when_solved`).
    pub stopped_solved: bool,
    /// The n-step windows of the training envs.
    pub nstep: NStepWindows,
}

impl LoopState {
    /// The state before the first step of a run of `cfg`.
    pub fn new(cfg: &Config) -> Self {
        let n = cfg.env.n_envs;
        let mut envs = BatchedCartPole::new(
            n,
            stream_seed(cfg.seed, Stream::TrainEnvs),
            cfg.env.max_episode_steps,
        );
        envs.reset_all();
        Self {
            env_steps: 0,
            vector_steps: 0,
            gradient_updates: 0,
            episodes: 0,
            tutorial_iterations: 0,
            next_eval_at: Cadence::starting(cfg.eval.every),
            next_checkpoint_at: Cadence::starting(cfg.checkpoint.every),
            next_target_at: Cadence::starting(cfg.agent.target_update_every),
            explore_rng: stream_rng(cfg.seed, Stream::Explore),
            replay_rng: stream_rng(cfg.seed, Stream::Replay),
            envs,
            episode_returns: vec![0.0; n],
            recent_returns: VecDeque::new(),
            last_loss: None,
            last_eval: None,
            solved_at_step: None,
            solved_at_seconds: None,
            confirm_next_env: 0,
            confirmed_at_step: None,
            confirmed_at_seconds: None,
            train_seconds: 0.0,
            stopped_solved: false,
            nstep: NStepWindows::new(cfg.agent.n_step, cfg.agent.gamma, n),
        }
    }

    /// Remembers a finished episode's return for the progress display.
    pub fn push_recent(&mut self, episode_return: f64, keep: usize) {
        if self.recent_returns.len() == keep {
            self.recent_returns.pop_front();
        }
        self.recent_returns.push_back(episode_return);
    }

    /// Mean of the remembered returns.
    pub fn recent_mean(&self) -> Option<f64> {
        let n = self.recent_returns.len();
        (n > 0).then(|| self.recent_returns.iter().sum::<f64>() / n as f64)
    }
}

impl Checkpointed for LoopState {
    fn save_part(&mut self) -> Result<Part> {
        Part::new(self)
    }

    fn load_part(&mut self, part: &Part) -> Result<()> {
        *self = part.state()?;
        Ok(())
    }
}

/// True while `cfg`'s budget is not spent at `state` and no solved evaluation has ended
/// training that `cfg` would still stop at.
pub(super) fn work_left_in(cfg: &Config, state: &LoopState) -> bool {
    let budget_left = match cfg.train.procedure {
        Procedure::Dqn => state.env_steps < cfg.train.total_env_steps,
        Procedure::Tutorial => state.tutorial_iterations < cfg.train.tutorial.iterations,
    };
    budget_left && !(state.stopped_solved && cfg.eval.stop_when_solved)
}

/// Whether a run resumed from `checkpoint` with `cfg` would train at all.
pub fn work_left(cfg: &Config, checkpoint: &TrainingCheckpoint) -> Result<bool> {
    Ok(work_left_in(cfg, &checkpoint.state(part::LOOP)?))
}

/// The run's records as `checkpoint` saw them.
pub(super) fn reopen_records(run_dir: &Path, checkpoint: &TrainingCheckpoint) -> Result<Records> {
    Records::reopen(run_dir, checkpoint.part(part::RECORDS)?)
        .context("reopening the records the checkpoint saw")
}

impl Trainer<'_> {
    /// Writes the training checkpoint, the model files, learning_curve.svg and the records
    /// so far, each atomically (the records first, so the checkpoint never claims rows that
    /// are not on disk). Callers check that the parameters are finite first.
    pub(super) fn save_checkpoint(&mut self) -> Result<()> {
        self.state.train_seconds = self.seconds();
        let mut saved = BTreeMap::from([(part::RECORDS.to_owned(), self.records.save_part()?)]);
        let components: [(&str, &mut dyn Checkpointed); 4] = [
            (part::LEARNER, &mut self.learner),
            (part::REPLAY, &mut self.replay),
            (part::BEST, &mut self.best),
            (part::LOOP, &mut self.state),
        ];
        for (name, component) in components {
            saved.insert(name.to_owned(), component.save_part()?);
        }
        let checkpoint = TrainingCheckpoint {
            config_yaml: self.cfg.to_yaml()?,
            parts: saved,
        };
        checkpoint.save(&self.run_dir.join(FILE_NAME))?;
        crate::run::checkpoint::save_model(
            &self.run_dir,
            ModelFiles::Final,
            &self.cfg,
            self.learner.spec(),
            &self.learner.parameters()?,
            self.state.env_steps,
        )?;
        self.write_learning_curve()?;
        self.last_checkpoint = std::time::Instant::now();
        self.checkpointed_at = Some(self.state.env_steps);
        Ok(())
    }

    /// Redraws learning_curve.svg from metrics.csv.
    pub(super) fn write_learning_curve(&self) -> Result<()> {
        let curves = Curves::read(&self.run_dir)?;
        let title = format!("{} (seed {})", self.cfg.experiment, self.cfg.seed);
        let svg = learning_curve_svg(&curves.train, &curves.eval, &title)?;
        write_bytes_atomic(&self.run_dir.join(LEARNING_CURVE), svg.as_bytes())
    }

    /// Puts a fresh trainer into the state a checkpoint recorded; model_best.* are rewritten
    /// from it, so they match the state training continues from.
    pub(super) fn restore(&mut self, checkpoint: &TrainingCheckpoint) -> Result<()> {
        checkpoint.restore(part::LEARNER, &mut self.learner)?;
        checkpoint.restore(part::REPLAY, &mut self.replay)?;
        checkpoint.restore(part::BEST, &mut self.best)?;
        checkpoint.restore(part::LOOP, &mut self.state)?;
        // Evaluation and checkpoint cadences may have changed with the resumed config.
        let saved: Config =
            Config::from_yaml_str(&checkpoint.config_yaml, "the checkpoint's config", &[])?;
        let state = &mut self.state;
        if saved.eval.every != self.cfg.eval.every {
            state.next_eval_at = Cadence::after(state.env_steps, self.cfg.eval.every);
        }
        if saved.checkpoint.every != self.cfg.checkpoint.every {
            state.next_checkpoint_at = Cadence::after(state.env_steps, self.cfg.checkpoint.every);
        }
        self.checkpointed_at = Some(state.env_steps);
        self.write_best_model()
    }
}
