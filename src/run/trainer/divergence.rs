//! The divergence guard: a non-finite loss, Q-value or parameter stops training before it
//! reaches a checkpoint or a model file.
//!
//! Nothing here syncs with the device per update: the loss and Q statistics are checked
//! when a finished episode reads them anyway, and the parameters before each evaluation,
//! checkpoint and the end of training (one reduction over the flat buffer).

use std::fmt;
use std::path::Path;

use anyhow::Result;

use super::{Outcome, Trainer};
use crate::config::Config;
use crate::learn::agent::UpdateStats;
use crate::run::metrics::RunStatus;

/// Where and how training diverged, and what was kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// Env step at which it was noticed.
    pub env_step: u64,
    /// What was found non-finite.
    pub what: String,
    /// Env step of the last good checkpoint, whose model files are kept.
    pub kept_checkpoint: Option<u64>,
    /// The settings usually to blame, as `key = value`.
    causes: Vec<String>,
    /// The run directory.
    run_dir: String,
}

impl Divergence {
    /// A divergence when the update statistics read at `env_step` are not finite.
    pub(super) fn in_stats(stats: &UpdateStats, env_step: u64) -> Option<Self> {
        let what = if !stats.loss.is_finite() {
            format!("the mean TD loss is {}", stats.loss)
        } else if !stats.mean_q.is_finite() {
            format!("the mean Q-value is {}", stats.mean_q)
        } else {
            return None;
        };
        Some(Self::new(env_step, what))
    }

    fn new(env_step: u64, what: String) -> Self {
        Self {
            env_step,
            what,
            kept_checkpoint: None,
            causes: Vec::new(),
            run_dir: String::new(),
        }
    }

    fn complete(mut self, cfg: &Config, run_dir: &Path, kept_checkpoint: Option<u64>) -> Self {
        let clip = cfg
            .optimizer
            .max_grad_norm
            .map_or("null (no clipping)".to_owned(), |n| n.to_string());
        self.causes = vec![
            format!("optimizer.lr = {}", cfg.optimizer.lr),
            format!("optimizer.max_grad_norm = {clip}"),
            format!("agent.loss = {:?}", cfg.agent.loss).to_lowercase(),
        ];
        self.run_dir = run_dir.display().to_string();
        self.kept_checkpoint = kept_checkpoint;
        self
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "training diverged at env step {}: {}. ",
            self.env_step, self.what
        )?;
        match self.kept_checkpoint {
            Some(step) => write!(
                f,
                "The last good checkpoint (env step {step}) and its model files are kept in {}",
                self.run_dir
            )?,
            None => write!(
                f,
                "No checkpoint had been written yet, so {} holds no model.pt",
                self.run_dir
            )?,
        }
        write!(
            f,
            " (with model_best.* if an evaluation ran); summary.json records the reason. \
             The usual causes are a learning rate too high for the network, missing or loose \
             gradient clipping, or a loss that grows with the error (mse); this run had {}. \
             Start a new run with a lower optimizer.lr or with clipping \
             (--set optimizer.max_grad_norm=10)",
            self.causes.join(", ")
        )
    }
}

impl Trainer<'_> {
    /// True when every parameter of the online network is finite; otherwise records the
    /// divergence and returns false.
    pub(super) fn parameters_finite(&mut self) -> bool {
        if self.divergence.is_some() {
            return false;
        }
        if self.algorithm.learner.online_is_finite() {
            return true;
        }
        self.divergence = Some(Divergence::new(
            self.env_steps(),
            "a parameter of the Q-network is not finite".to_owned(),
        ));
        false
    }

    /// Ends a diverged run: its records so far reach the disk and summary.json says what
    /// happened; the last checkpoint and model files stay as they were.
    pub(super) fn diverged(mut self) -> Result<Outcome> {
        self.book.train_seconds = self.seconds();
        self.records.sync()?;
        self.write_learning_curve()?;
        let divergence = self
            .divergence
            .take()
            .unwrap_or_else(|| Divergence::new(self.env_steps(), "training diverged".to_owned()))
            .complete(&self.cfg, &self.run_dir, self.checkpointed_at);
        self.divergence = Some(divergence.clone());
        self.summary(RunStatus::Diverged, None)
            .write(&self.run_dir)?;
        Ok(Outcome::Diverged(Box::new(divergence)))
    }
}
