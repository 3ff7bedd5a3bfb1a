//! What the loop carries between steps, and its round trip through a checkpoint.

use std::collections::{BTreeMap, VecDeque};

use anyhow::{bail, Context, Result};
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::Trainer;
use crate::checkpoint::training::{TrainingCheckpoint, FILE_NAME};
use crate::config::Config;
use crate::env::BatchedCartPole;
use crate::eval::EvalResult;
use crate::metrics::MetricsLog;
use crate::rng::{stream_rng, stream_seed, Stream};

/// The training loop's state apart from tensors: counters, RNGs, envs, records.
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
    /// Env step at or after which the next periodic evaluation runs.
    pub next_eval_at: u64,
    /// Env step at or after which the next checkpoint is written.
    pub next_checkpoint_at: u64,
    /// Env step at or after which the target network is next updated.
    pub next_target_at: u64,
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
    /// Training seconds so far, over all sessions.
    pub train_seconds: f64,
    /// The rows of metrics.csv.
    pub metrics: MetricsLog,
    /// Adam updates so far.
    pub adam_steps: u64,
    /// Next replay slot to write.
    pub replay_next: usize,
    /// Updates whose loss and Q are summed in the `stats` array, not yet in a metrics row.
    pub pending_stat_updates: u64,
    /// The run completed (final evaluation done).
    pub finished: bool,
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
            next_eval_at: cfg.eval.every,
            next_checkpoint_at: cfg.checkpoint.every,
            next_target_at: cfg.agent.target_update_every,
            explore_rng: stream_rng(cfg.seed, Stream::Explore),
            replay_rng: stream_rng(cfg.seed, Stream::Replay),
            envs,
            episode_returns: vec![0.0; n],
            recent_returns: VecDeque::new(),
            last_loss: None,
            last_eval: None,
            solved_at_step: None,
            solved_at_seconds: None,
            train_seconds: 0.0,
            metrics: MetricsLog::default(),
            adam_steps: 0,
            replay_next: 0,
            pending_stat_updates: 0,
            finished: false,
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

const ONLINE: &str = "online";
const TARGET: &str = "target";
const ADAM_M: &str = "adam.m";
const ADAM_V: &str = "adam.v";
const REPLAY: &str = "replay";
const STATS: &str = "stats";

fn to_vec(tensor: &Tensor) -> Result<Vec<f32>> {
    let host = tensor
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let n = host.numel();
    let mut values = vec![0.0f32; n];
    host.f_copy_data(&mut values, n)?;
    Ok(values)
}

impl Trainer<'_> {
    /// Writes the training checkpoint, the model files and the records, each atomically.
    pub(super) fn save_checkpoint(&mut self) -> Result<()> {
        self.state.train_seconds = self.seconds();
        self.state.adam_steps = self.learner.adam().steps();
        let (replay_rows, replay_next) = self.replay.snapshot()?;
        self.state.replay_next = replay_next;
        let (loss_sum, q_sum, pending) = self.learner.pending_stats();
        self.state.pending_stat_updates = pending;
        let (m, v) = self.learner.adam().moments();
        let mut arrays = BTreeMap::from([
            (ONLINE.to_owned(), to_vec(self.learner.online().flat())?),
            (ADAM_M.to_owned(), to_vec(m)?),
            (ADAM_V.to_owned(), to_vec(v)?),
            (REPLAY.to_owned(), replay_rows),
            (STATS.to_owned(), vec![loss_sum, q_sum]),
        ]);
        if let Some(target) = self.learner.target() {
            arrays.insert(TARGET.to_owned(), to_vec(target.flat())?);
        }
        let checkpoint = TrainingCheckpoint {
            config_yaml: self.cfg.to_yaml()?,
            state_json: serde_json::to_string(&self.state)?,
            arrays,
        };
        checkpoint.save(&self.run_dir.join(FILE_NAME))?;
        crate::checkpoint::save_model(
            &self.run_dir,
            &self.cfg,
            self.learner.online(),
            self.state.env_steps,
        )?;
        self.state.metrics.write(
            &self.run_dir,
            &format!("{} (seed {})", self.cfg.experiment, self.cfg.seed),
        )
    }

    /// Puts a fresh trainer into the state a checkpoint recorded.
    pub fn restore(&mut self, checkpoint: &TrainingCheckpoint) -> Result<()> {
        let state: LoopState = serde_json::from_str(&checkpoint.state_json)
            .context("decoding the checkpoint's loop state")?;
        if state.finished {
            bail!("this run already finished; start a new run instead of resuming it");
        }
        let array = |name: &str| {
            checkpoint
                .arrays
                .get(name)
                .with_context(|| format!("the checkpoint has no '{name}' array"))
        };
        let tensor = |name: &str| array(name).map(|values| Tensor::from_slice(values));
        let target = checkpoint
            .arrays
            .get(TARGET)
            .map(|values| Tensor::from_slice(values));
        self.learner.restore(
            &tensor(ONLINE)?,
            target.as_ref(),
            &tensor(ADAM_M)?,
            &tensor(ADAM_V)?,
            state.adam_steps,
        )?;
        self.replay.restore(array(REPLAY)?, state.replay_next)?;
        match array(STATS)?.as_slice() {
            &[loss_sum, q_sum] => {
                self.learner
                    .restore_stats(loss_sum, q_sum, state.pending_stat_updates)
            }
            other => bail!(
                "the checkpoint's 'stats' array has {} values, not 2",
                other.len()
            ),
        }
        self.state = state;
        Ok(())
    }
}
