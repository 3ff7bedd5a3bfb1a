//! Greedy evaluations during and after training: the periodic ones (which keep the best
//! model) and the final one (which completes the run).

use anyhow::Result;
use tch::{Device, Tensor};

use super::{Outcome, Trainer};
use crate::agent::Learner;
use crate::checkpoint::{save_model, ModelFiles};
use crate::device;
use crate::eval::{self, EvalResult, Policy};
use crate::metrics::{Row, RunStatus, Summary};

impl Trainer<'_> {
    /// A periodic evaluation is due (and the schedule moves on to the next one).
    pub(super) fn evaluation_due(&mut self) -> bool {
        let every = self.cfg.eval.every;
        if every == 0 || self.state.env_steps < self.state.next_eval_at {
            return false;
        }
        self.state.next_eval_at = (self.state.env_steps / every + 1) * every;
        true
    }

    /// Runs a periodic evaluation, records it, keeps the model if it is the best so far;
    /// returns whether it is solved. Its rows reach the disk before training goes on.
    pub(super) fn evaluate_periodic(&mut self) -> Result<bool> {
        let result = eval::evaluate(
            &GreedyPolicy(&self.learner),
            self.cfg.eval.episodes,
            eval::periodic_eval_seed(self.cfg.seed),
            self.cfg.env.max_episode_steps,
        )?;
        let seconds = self.seconds();
        if result.solved() && self.state.solved_at_step.is_none() {
            self.state.solved_at_step = Some(self.state.env_steps);
            self.state.solved_at_seconds = Some(seconds);
        }
        self.records.push(&Row::Eval {
            env_step: self.state.env_steps,
            episode: self.state.episodes,
            is_final: false,
            result: result.clone(),
            wall_seconds: seconds,
        });
        let improved = match self.state.best_eval_mean {
            Some(best) => result.mean > best,
            None => true,
        };
        if improved {
            self.state.best_eval_mean = Some(result.mean);
            self.state.best_eval_step = Some(self.state.env_steps);
            self.best = Some(self.learner.online().flat().copy());
            self.write_best_model()?;
        }
        self.records.flush()?;
        let solved = result.solved();
        self.state.last_eval = Some(result);
        Ok(solved)
    }

    /// Writes `model_best.*` from [`Trainer::best`], or removes them when there is none yet
    /// (a fresh start, or a checkpoint from before the first evaluation).
    pub(super) fn write_best_model(&self) -> Result<()> {
        match (&self.best, self.state.best_eval_step) {
            (Some(flat), Some(step)) => save_model(
                &self.run_dir,
                ModelFiles::Best,
                &self.cfg,
                self.learner.online().spec(),
                flat,
                step,
            ),
            _ => ModelFiles::Best.remove(&self.run_dir),
        }
    }

    /// Final evaluation on its own seeds, its record, summary.json; the run is complete.
    pub(super) fn finish(mut self) -> Result<Outcome> {
        let result = eval::evaluate(
            &GreedyPolicy(&self.learner),
            self.cfg.eval.final_episodes,
            eval::final_eval_seed(self.cfg.seed),
            self.cfg.env.max_episode_steps,
        )?;
        self.state.train_seconds = self.seconds();
        self.records.push(&Row::Eval {
            env_step: self.state.env_steps,
            episode: self.state.episodes,
            is_final: true,
            result: result.clone(),
            wall_seconds: self.state.train_seconds,
        });
        self.records.sync()?;
        self.write_learning_curve()?;
        let summary = self.summary(RunStatus::Finished, Some(&result));
        summary.write(&self.run_dir)?;
        Ok(Outcome::Finished(Box::new(summary)))
    }

    /// summary.json's content, with the final evaluation when there is one.
    pub(super) fn summary(&self, status: RunStatus, result: Option<&EvalResult>) -> Summary {
        let seconds = self.state.train_seconds;
        let divergence = self.divergence.as_ref();
        Summary {
            status,
            experiment: self.cfg.experiment.clone(),
            env_steps: self.state.env_steps,
            gradient_updates: self.state.gradient_updates,
            episodes: self.state.episodes,
            train_seconds: seconds,
            env_steps_per_second: self.state.env_steps as f64 / seconds.max(1e-9),
            final_eval_mean: result.map(|r| r.mean),
            final_eval_std: result.map(|r| r.std),
            final_eval_min: result.map(|r| r.min),
            final_eval_max: result.map(|r| r.max),
            final_eval_episodes: result.map(|r| r.episodes),
            final_eval_solved: result.map(EvalResult::solved),
            solved_at_step: self.state.solved_at_step,
            solved_at_seconds: self.state.solved_at_seconds,
            best_eval_mean: self.state.best_eval_mean,
            best_eval_step: self.state.best_eval_step,
            diverged_at_step: divergence.map(|d| d.env_step),
            divergence: divergence.map(|d| d.what.clone()),
            seed: self.cfg.seed,
            device: device::name(self.device),
            qnet_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// The learner's online network acting greedily.
struct GreedyPolicy<'a>(&'a Learner);

impl Policy for GreedyPolicy<'_> {
    fn greedy_actions(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self.0.greedy(obs))
    }

    fn device(&self) -> Device {
        self.0.online().device()
    }
}
