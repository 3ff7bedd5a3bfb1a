//! What the run tracks between steps besides the algorithm, and the round trip of a run
//! through a checkpoint: each component (learner, replay, records, best model, the loop's
//! state with its envs) hands over its own part and takes it back.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

use super::algorithm::AlgorithmState;
use super::cadence::Cadence;
use super::evaluate::BestModel;
use super::Trainer;
use crate::artifacts::plot::{learning_curve_svg, LEARNING_CURVE};
use crate::config::{Config, Procedure};
use serde_json::value::RawValue;

use crate::env::Resolved;
use crate::learn::eval::EvalResult;
use crate::learn::nstep::NStepWindows;
use crate::learn::qfunction::NetworkSpec;
use crate::learn::state::{Checkpointed, Part};
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::rng::{splitmix64, stream_seed, Stream};
use crate::run::checkpoint::training::{part, TrainingCheckpoint, FILE_NAME};
use crate::run::checkpoint::ModelFiles;
use crate::run::metrics::Curves;
use crate::run::records::Records;

/// What the run tracks between steps besides the algorithm: when it next evaluates and
/// checkpoints, the figures of the progress display, when it solved, its training seconds.
#[derive(Debug, Clone)]
pub struct Bookkeeping {
    /// When the next periodic evaluation runs.
    pub next_eval_at: Cadence,
    /// When the next checkpoint is written.
    pub next_checkpoint_at: Cadence,
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
    pub confirm_next_env: usize,
    /// Env step at which a confirmation evaluation agreed that the task is solved.
    pub confirmed_at_step: Option<u64>,
    /// Training seconds at that confirmation.
    pub confirmed_at_seconds: Option<f64>,
    /// Training seconds so far, over all sessions.
    pub train_seconds: f64,
    /// Training stopped at a solved evaluation (`eval.stop_when_solved`).
    pub stopped_solved: bool,
}

impl Bookkeeping {
    /// Nothing tracked yet, in a run of `cfg`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            next_eval_at: Cadence::starting(cfg.eval.every),
            next_checkpoint_at: Cadence::starting(cfg.checkpoint.every),
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

/// The loop's state as a checkpoint's `loop` part holds it: the algorithm's state and the
/// run's bookkeeping in one JSON object, whose field names old checkpoints fix.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LoopState {
    env_steps: u64,
    vector_steps: u64,
    gradient_updates: u64,
    episodes: u64,
    tutorial_iterations: u64,
    next_eval_at: Cadence,
    next_checkpoint_at: Cadence,
    next_target_at: Cadence,
    explore_rng: Pcg64,
    replay_rng: Pcg64,
    /// The training envs, as [`Envs`] writes them (read back as the config's environment).
    envs: Box<RawValue>,
    episode_returns: Vec<f64>,
    recent_returns: VecDeque<f64>,
    last_loss: Option<f64>,
    last_eval: Option<EvalResult>,
    solved_at_step: Option<u64>,
    solved_at_seconds: Option<f64>,
    #[serde(default)]
    confirm_next_env: usize,
    #[serde(default)]
    confirmed_at_step: Option<u64>,
    #[serde(default)]
    confirmed_at_seconds: Option<f64>,
    train_seconds: f64,
    stopped_solved: bool,
    nstep: NStepWindows,
}

impl LoopState {
    /// The two halves as one.
    fn join(a: &AlgorithmState, book: &Bookkeeping) -> Result<Self> {
        let b = book.clone();
        // A Python environment's state cannot be saved: null, and a resume restarts its envs.
        let envs = match a.envs.to_json() {
            Some(json) => json.context("encoding the envs")?,
            None => "null".to_owned(),
        };
        Ok(Self {
            env_steps: a.env_steps,
            vector_steps: a.vector_steps,
            gradient_updates: a.gradient_updates,
            episodes: a.episodes,
            tutorial_iterations: a.tutorial_iterations,
            next_eval_at: b.next_eval_at,
            next_checkpoint_at: b.next_checkpoint_at,
            next_target_at: a.next_target_at,
            explore_rng: a.explore_rng.clone(),
            replay_rng: a.replay_rng.clone(),
            envs: RawValue::from_string(envs).context("encoding the envs")?,
            episode_returns: a.episode_returns.clone(),
            recent_returns: b.recent_returns,
            last_loss: b.last_loss,
            last_eval: b.last_eval,
            solved_at_step: b.solved_at_step,
            solved_at_seconds: b.solved_at_seconds,
            confirm_next_env: b.confirm_next_env,
            confirmed_at_step: b.confirmed_at_step,
            confirmed_at_seconds: b.confirmed_at_seconds,
            train_seconds: b.train_seconds,
            stopped_solved: b.stopped_solved,
            nstep: a.nstep.clone(),
        })
    }

    /// The algorithm's half and the run's, its envs read as `env` (or, for a Python
    /// environment, whose state the checkpoint cannot hold, made anew: their episodes restart,
    /// seeded from the run's seed and env step) and each per-env part checked against `cfg`.
    fn split(mut self, cfg: &Config, env: &Resolved) -> Result<(AlgorithmState, Bookkeeping)> {
        let n = cfg.env.n_envs;
        let id = &env.spec().id;
        let envs = if env.is_gym() && self.envs.get() == "null" {
            let seed =
                splitmix64(stream_seed(cfg.seed, Stream::TrainEnvs).wrapping_add(self.env_steps));
            self.episode_returns = vec![0.0; n];
            self.nstep = NStepWindows::new(cfg.agent.n_step, cfg.agent.gamma, n);
            env.batch(0..n, seed)?
        } else {
            env.restore(self.envs.get())
                .with_context(|| format!("reading the checkpoint's training envs as {id}"))?
        };
        envs.check(n, env.time_limit())
            .map_err(|e| anyhow!("the checkpoint's training envs {e}"))?;
        if self.episode_returns.len() != n {
            bail!(
                "the checkpoint holds episode returns for {} training envs; the config asks \
                 for {n}",
                self.episode_returns.len()
            );
        }
        self.nstep
            .check(cfg.agent.n_step, n, env.spec().obs_dim)
            .map_err(|e| anyhow!("the checkpoint's n-step windows {e}"))?;
        let algorithm = AlgorithmState {
            env_steps: self.env_steps,
            vector_steps: self.vector_steps,
            gradient_updates: self.gradient_updates,
            episodes: self.episodes,
            tutorial_iterations: self.tutorial_iterations,
            next_target_at: self.next_target_at,
            explore_rng: self.explore_rng,
            replay_rng: self.replay_rng,
            envs,
            episode_returns: self.episode_returns,
            nstep: self.nstep,
        };
        let book = Bookkeeping {
            next_eval_at: self.next_eval_at,
            next_checkpoint_at: self.next_checkpoint_at,
            recent_returns: self.recent_returns,
            last_loss: self.last_loss,
            last_eval: self.last_eval,
            solved_at_step: self.solved_at_step,
            solved_at_seconds: self.solved_at_seconds,
            confirm_next_env: self.confirm_next_env,
            confirmed_at_step: self.confirmed_at_step,
            confirmed_at_seconds: self.confirmed_at_seconds,
            train_seconds: self.train_seconds,
            stopped_solved: self.stopped_solved,
        };
        Ok((algorithm, book))
    }
}

/// True while `cfg`'s budget is not spent at `state` and no solved evaluation has ended
/// training that `cfg` would still stop at.
pub(super) fn work_left_in(cfg: &Config, state: &AlgorithmState, book: &Bookkeeping) -> bool {
    let budget_left = match cfg.train.procedure {
        Procedure::Dqn => state.env_steps < cfg.train.total_env_steps,
        Procedure::Tutorial => state.tutorial_iterations < cfg.train.tutorial.iterations,
    };
    budget_left && !(book.stopped_solved && cfg.eval.stop_when_solved)
}

/// Checks what `checkpoint` holds per env and its best model against the sizes `cfg` implies
/// (a checkpoint is a file that may have been edited or damaged), before anything of the run
/// is touched; the error says what differs.
pub fn check_fits(cfg: &Config, env: &Resolved, checkpoint: &TrainingCheckpoint) -> Result<()> {
    checkpoint.state::<LoopState>(part::LOOP)?.split(cfg, env)?;
    let env = env.spec();
    let network = NetworkSpec::new(&cfg.network, env.obs_dim as i64, env.n_actions as i64)?;
    BestModel::check_part(checkpoint.part(part::BEST)?, network.numel())
}

/// Whether a run resumed from `checkpoint` with `cfg` on `env` would train at all.
pub fn work_left(cfg: &Config, env: &Resolved, checkpoint: &TrainingCheckpoint) -> Result<bool> {
    let (state, book) = checkpoint.state::<LoopState>(part::LOOP)?.split(cfg, env)?;
    Ok(work_left_in(cfg, &state, &book))
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
        self.book.train_seconds = self.seconds();
        let mut saved = BTreeMap::from([(part::RECORDS.to_owned(), self.records.save_part()?)]);
        let algorithm = &mut self.algorithm;
        let components: [(&str, &mut dyn Checkpointed); 3] = [
            (part::LEARNER, &mut algorithm.learner),
            (part::REPLAY, &mut algorithm.replay),
            (part::BEST, &mut self.best),
        ];
        for (name, component) in components {
            saved.insert(name.to_owned(), component.save_part()?);
        }
        let state = LoopState::join(&algorithm.state, &self.book)?;
        saved.insert(part::LOOP.to_owned(), Part::new(&state)?);
        let checkpoint = TrainingCheckpoint {
            config_yaml: self.cfg.to_yaml()?,
            parts: saved,
        };
        checkpoint.save(&self.run_dir.join(FILE_NAME))?;
        crate::run::checkpoint::save_model(
            &self.run_dir,
            ModelFiles::Final,
            &self.cfg,
            algorithm.learner.spec(),
            &algorithm.learner.parameters()?,
            algorithm.state.env_steps,
        )?;
        self.write_learning_curve()?;
        self.last_checkpoint = std::time::Instant::now();
        self.checkpointed_at = Some(self.env_steps());
        Ok(())
    }

    /// Redraws learning_curve.svg from metrics.csv.
    pub(super) fn write_learning_curve(&self) -> Result<()> {
        let curves = Curves::read(&self.run_dir)?;
        let title = format!("{} (seed {})", self.cfg.experiment, self.cfg.seed);
        let svg = learning_curve_svg(
            &curves.train,
            &curves.eval,
            &title,
            self.env.spec(),
            self.env.time_limit(),
        )?;
        write_bytes_atomic(&self.run_dir.join(LEARNING_CURVE), svg.as_bytes())
    }

    /// Puts a fresh trainer into the state a checkpoint recorded; model_best.* are rewritten
    /// from it, so they match the state training continues from.
    pub(super) fn restore(&mut self, checkpoint: &TrainingCheckpoint) -> Result<()> {
        checkpoint.restore(part::LEARNER, &mut self.algorithm.learner)?;
        checkpoint.restore(part::REPLAY, &mut self.algorithm.replay)?;
        checkpoint.restore(part::BEST, &mut self.best)?;
        let (mut state, book) = checkpoint
            .state::<LoopState>(part::LOOP)?
            .split(&self.cfg, &self.env)?;
        if self.env.is_gym() {
            // Made anew by `split`: their episodes start here.
            state.envs.reset_all()?;
        }
        self.algorithm.state = state;
        self.book = book;
        // Evaluation and checkpoint cadences may have changed with the resumed config.
        let saved: Config =
            Config::from_yaml_str(&checkpoint.config_yaml, "the checkpoint's config", &[])?;
        let (step, book) = (self.algorithm.state.env_steps, &mut self.book);
        if saved.eval.every != self.cfg.eval.every {
            book.next_eval_at = Cadence::after(step, self.cfg.eval.every);
        }
        if saved.checkpoint.every != self.cfg.checkpoint.every {
            book.next_checkpoint_at = Cadence::after(step, self.cfg.checkpoint.every);
        }
        self.checkpointed_at = Some(step);
        self.write_best_model()
    }
}
