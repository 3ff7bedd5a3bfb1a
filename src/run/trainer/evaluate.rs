//! Greedy evaluations during and after training: the periodic ones (which keep the best
//! model) and the final one (which completes the run).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use super::{Outcome, Trainer};
use crate::learn::agent::Learner;
use crate::learn::eval::{self, EvalResult, Policy};
use crate::learn::state::{host_values, Checkpointed, Part};
use crate::platform::device;
use crate::run::checkpoint::{save_model, ModelFiles};
use crate::run::metrics::{Row, RunStatus, Summary};

/// The periodic evaluation with the highest mean so far: what `model_best.*` hold.
#[derive(Debug)]
pub(super) struct BestModel {
    /// None before the first periodic evaluation.
    pub(super) best: Option<Best>,
    /// Where the online network lives.
    device: Device,
}

/// The best evaluation and the online parameters at it.
#[derive(Debug)]
pub(super) struct Best {
    /// Its mean return.
    pub(super) mean: f64,
    /// Its env step.
    pub(super) step: u64,
    /// A copy of the online network's flat parameters then.
    pub(super) params: Tensor,
}

/// What a checkpoint keeps of the best model besides its parameters.
#[derive(Debug, Serialize, Deserialize)]
struct BestState {
    mean: f64,
    step: u64,
}

/// The best model's parameters, in its checkpoint part.
const PARAMS: &str = "params";

impl BestModel {
    /// No evaluation yet, for a network on `device`.
    pub(super) fn new(device: Device) -> Self {
        Self { best: None, device }
    }

    /// Keeps `params` if `mean` beats the best so far (the first evaluation always does);
    /// returns whether it did.
    fn offer(&mut self, mean: f64, step: u64, params: &Tensor) -> Result<bool> {
        if self.best.as_ref().is_some_and(|best| mean <= best.mean) {
            return Ok(false);
        }
        let mut copy = params
            .f_zeros_like()
            .context("copying the best model's parameters")?;
        copy.f_copy_(params)?;
        self.best = Some(Best {
            mean,
            step,
            params: copy,
        });
        Ok(true)
    }
}

impl BestModel {
    /// Checks that a checkpoint's best-model `part` holds a network of `numel` parameters,
    /// if it holds one.
    pub(super) fn check_part(part: &Part, numel: i64) -> Result<()> {
        if part.state::<Option<BestState>>()?.is_some() {
            let held = part.f32s(PARAMS)?.len();
            if i64::try_from(held) != Ok(numel) {
                bail!(
                    "the checkpoint's best model holds {held} parameters; the network has {numel}"
                );
            }
        }
        Ok(())
    }
}

impl Checkpointed for BestModel {
    fn save_part(&mut self) -> Result<Part> {
        let state = self.best.as_ref().map(|best| BestState {
            mean: best.mean,
            step: best.step,
        });
        let mut part = Part::new(&state)?;
        if let Some(best) = &self.best {
            part.f32s
                .insert(PARAMS.to_owned(), host_values(&best.params)?);
        }
        Ok(part)
    }

    fn load_part(&mut self, part: &Part) -> Result<()> {
        self.best = match part.state::<Option<BestState>>()? {
            Some(BestState { mean, step }) => Some(Best {
                mean,
                step,
                params: Tensor::from_slice(part.f32s(PARAMS)?)
                    .f_to_device(self.device)
                    .context("copying the best model's parameters")?,
            }),
            None => None,
        };
        Ok(())
    }
}

impl Trainer<'_> {
    /// The envs of an evaluation seeded from `seed`: the run's environment and time limit.
    fn eval_envs(&self, seed: u64) -> eval::EvalEnvs {
        eval::EvalEnvs {
            env: self.env.clone(),
            seed,
        }
    }

    /// The run's environment's reward threshold, where solved is judged: not under a time
    /// limit shorter than the registered one, nor for an environment without one.
    fn judged_threshold(&self) -> Option<f64> {
        self.env.threshold()
    }

    /// `result` reaches the reward threshold, where solved is judged.
    fn judged_solved(&self, result: &EvalResult) -> Option<bool> {
        self.judged_threshold()
            .map(|threshold| result.solved(threshold))
    }

    /// A periodic evaluation is due (and the schedule moves on to the next one).
    pub(super) fn evaluation_due(&mut self) -> bool {
        let (step, every) = (self.env_steps(), self.cfg.eval.every);
        self.book.next_eval_at.fire(step, every)
    }

    /// Runs a periodic evaluation, records it, keeps the model if it is the best so far;
    /// returns whether it is solved. Its rows reach the disk before training goes on.
    pub(super) fn evaluate_periodic(&mut self) -> Result<bool> {
        let result = eval::evaluate(
            &GreedyPolicy(&self.algorithm.learner),
            self.cfg.eval.episodes,
            &self.eval_envs(eval::periodic_eval_seed(self.cfg.seed)),
        )?;
        let seconds = self.seconds();
        let solved = self.judged_solved(&result) == Some(true);
        if solved && self.book.solved_at_step.is_none() {
            self.book.solved_at_step = Some(self.env_steps());
            self.book.solved_at_seconds = Some(seconds);
        }
        self.records.push(&Row::Eval {
            env_step: self.env_steps(),
            episode: self.algorithm.state.episodes,
            is_final: false,
            result: result.clone(),
            wall_seconds: seconds,
        })?;
        if self.best.offer(
            result.mean,
            self.algorithm.state.env_steps,
            &self.algorithm.learner.parameters()?,
        )? {
            self.write_best_model()?;
        }
        self.records.flush()?;
        self.book.last_eval = Some(result);
        Ok(solved)
    }

    /// Plays a confirmation of a solved periodic evaluation: as many episodes as the final
    /// evaluation, on envs no evaluation has played; returns whether it is solved too (and
    /// then records the step). A solved evaluation of a few episodes can be luck: stopping on
    /// it alone leaves runs whose final evaluation falls short.
    pub(super) fn confirm_solved(&mut self) -> Result<bool> {
        let n = self.cfg.eval.final_episodes;
        let first = self.book.confirm_next_env;
        let result = eval::evaluate_in_batches(
            &GreedyPolicy(&self.algorithm.learner),
            first..first.saturating_add(n),
            &self.eval_envs(eval::confirm_eval_seed(self.cfg.seed)),
            &mut |_| {},
        )?;
        self.book.confirm_next_env = first.saturating_add(n);
        let confirmed = self.judged_solved(&result) == Some(true);
        self.progress.line(&format!(
            "step {}: solved; confirmation over {} fresh episodes: mean {:.1} ({})",
            self.env_steps(),
            result.episodes,
            result.mean,
            if confirmed {
                "confirmed, stopping"
            } else {
                "not confirmed, training on"
            }
        ));
        if confirmed {
            self.book.confirmed_at_step = Some(self.env_steps());
            self.book.confirmed_at_seconds = Some(self.seconds());
        }
        Ok(confirmed)
    }

    /// Writes `model_best.*` from [`Trainer::best`], or removes them when there is none yet
    /// (a fresh start, or a checkpoint from before the first evaluation).
    pub(super) fn write_best_model(&self) -> Result<()> {
        match &self.best.best {
            Some(best) => save_model(
                &self.run_dir,
                ModelFiles::Best,
                &self.cfg,
                self.algorithm.learner.spec(),
                &best.params,
                best.step,
            ),
            None => ModelFiles::Best.remove(&self.run_dir),
        }
    }

    /// Final evaluation on its own seeds, its record, summary.json; the run is complete.
    pub(super) fn finish(mut self) -> Result<Outcome> {
        let result = eval::evaluate(
            &GreedyPolicy(&self.algorithm.learner),
            self.cfg.eval.final_episodes,
            &self.eval_envs(eval::final_eval_seed(self.cfg.seed)),
        )?;
        self.book.train_seconds = self.seconds();
        self.records.push(&Row::Eval {
            env_step: self.env_steps(),
            episode: self.algorithm.state.episodes,
            is_final: true,
            result: result.clone(),
            wall_seconds: self.book.train_seconds,
        })?;
        self.records.sync()?;
        self.write_learning_curve()?;
        let summary = self.summary(RunStatus::Finished, Some(&result));
        summary.write(&self.run_dir)?;
        Ok(Outcome::Finished(Box::new(summary)))
    }

    /// summary.json's content, with the final evaluation when there is one.
    pub(super) fn summary(&self, status: RunStatus, result: Option<&EvalResult>) -> Summary {
        let seconds = self.book.train_seconds;
        let divergence = self.divergence.as_ref();
        Summary {
            status,
            experiment: self.cfg.experiment.clone(),
            env_steps: self.env_steps(),
            gradient_updates: self.algorithm.state.gradient_updates,
            episodes: self.algorithm.state.episodes,
            train_seconds: seconds,
            env_steps_per_second: self.env_steps() as f64 / seconds.max(1e-9),
            final_eval_mean: result.map(|r| r.mean),
            final_eval_std: result.map(|r| r.std),
            final_eval_min: result.map(|r| r.min),
            final_eval_max: result.map(|r| r.max),
            final_eval_episodes: result.map(|r| r.episodes),
            final_eval_solved: result.and_then(|r| self.judged_solved(r)),
            solved_at_step: self.book.solved_at_step,
            solved_at_seconds: self.book.solved_at_seconds,
            confirmed_at_step: self.book.confirmed_at_step,
            confirmed_at_seconds: self.book.confirmed_at_seconds,
            solved_not_judged: result.and(self.env.solved_not_judged()),
            best_eval_mean: self.best.best.as_ref().map(|best| best.mean),
            best_eval_step: self.best.best.as_ref().map(|best| best.step),
            diverged_at_step: divergence.map(|d| d.env_step),
            divergence: divergence.map(|d| d.what.clone()),
            seed: self.cfg.seed,
            device: device::name(self.device),
            qnet_version: env!("CARGO_PKG_VERSION").to_owned(),
            env: Some(self.env.spec().clone()),
            provenance: Some(self.provenance.clone()),
        }
    }
}

/// The learner's online network acting greedily.
struct GreedyPolicy<'a>(&'a Learner);

impl Policy for GreedyPolicy<'_> {
    fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        self.0.greedy_actions(obs, actions)
    }
}
