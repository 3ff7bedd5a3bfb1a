//! A group's scores, one per finished run, and the aggregates computed from them.

use anyhow::Result;
use serde::Serialize;

use crate::config::{Config, Procedure};
use crate::many::stats::{self, Bootstrap, Estimate, Statistic};
use crate::run::metrics::Summary;

/// The scores of a group's finished runs, one per run, in run order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Final greedy return.
    pub final_return: Vec<f64>,
    /// Best periodic evaluation (runs that kept one).
    pub best_eval: Vec<f64>,
    /// Env steps to the first solved evaluation, the budget when never solved.
    pub steps_to_solve: Vec<f64>,
    /// Training seconds to it, the whole training time when never solved.
    pub seconds_to_solve: Vec<f64>,
}

/// A group's aggregates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// IQM of the final return.
    pub final_iqm: Estimate,
    /// Median of the final return.
    pub final_median: Estimate,
    /// Mean of the final return.
    pub final_mean: Estimate,
    /// Fraction of runs whose final return reaches the solved threshold (none where solved is
    /// not judged: a time limit shorter than the registered one).
    pub success_rate: Option<Estimate>,
    /// The same for their best evaluation, when every run kept one.
    pub best_eval_success_rate: Option<Estimate>,
    /// IQM of env steps to first solve (none where solved is not judged).
    pub steps_to_solve_iqm: Option<Estimate>,
    /// IQM of seconds to first solve (none where solved is not judged).
    pub seconds_to_solve_iqm: Option<Estimate>,
}

impl GroupStats {
    /// The aggregates of a group's `scores`, with the success rate of their best evaluations
    /// only when every run kept one (`all_kept_best`), and success rates and steps to solve
    /// only where solved is judged (`threshold`, `None` where it is not).
    pub(super) fn of(
        s: &Scores,
        all_kept_best: bool,
        bootstrap: &Bootstrap,
        threshold: Option<f64>,
    ) -> Result<Self> {
        let ci = |scores: &[f64], statistic| stats::bootstrap_ci(scores, statistic, bootstrap);
        let judged = |scores: &[f64], statistic: &dyn Fn(f64) -> Statistic| {
            threshold
                .map(|threshold| ci(scores, statistic(threshold)))
                .transpose()
        };
        let success = |threshold| Statistic::SuccessRate { threshold };
        Ok(GroupStats {
            final_iqm: ci(&s.final_return, Statistic::Iqm)?,
            final_median: ci(&s.final_return, Statistic::Median)?,
            final_mean: ci(&s.final_return, Statistic::Mean)?,
            success_rate: judged(&s.final_return, &success)?,
            best_eval_success_rate: if all_kept_best && !s.best_eval.is_empty() {
                judged(&s.best_eval, &success)?
            } else {
                None
            },
            steps_to_solve_iqm: judged(&s.steps_to_solve, &|_| Statistic::Iqm)?,
            seconds_to_solve_iqm: judged(&s.seconds_to_solve, &|_| Statistic::Iqm)?,
        })
    }
}

/// The env steps a run that never solved counts at: the budget its procedure trained to.
/// `dqn` stops at `train.total_env_steps` (its last vector step may pass it); `tutorial`
/// ignores that key and runs `train.tutorial.iterations`, so its budget is the steps it
/// took.
pub(super) fn step_budget(config: &Config, summary: &Summary) -> u64 {
    match config.train.procedure {
        Procedure::Dqn => config.train.total_env_steps.max(summary.env_steps),
        Procedure::Tutorial => summary.env_steps,
    }
}
