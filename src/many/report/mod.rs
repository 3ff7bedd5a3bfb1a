//! Statistics across runs: run directories (single runs and sweeps, mixed) grouped by their
//! environment and their resolved config minus the seed, and per group the aggregates rliable
//! recommends, with seeded stratified-bootstrap confidence intervals ([`crate::many::stats`]).
//! Success rates count against each environment's own reward threshold, and groups are
//! compared only with groups of their environment.
//!
//! Scores per run: the final greedy return (`final_eval_mean`), the best periodic evaluation,
//! and the env steps and seconds to the first solved evaluation, a run that never solved
//! counting at its budget (its total env steps, or its training seconds).

mod find;
mod names;
mod plot;
mod render;
mod scores;
mod settings;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::config::{clip, EnvId};
use crate::many::stats::{self, Bootstrap, Estimate};
use crate::many::sweep::RunState;
use crate::run::metrics::{Curves, Summary};
use find::find_runs;
use scores::step_budget;
use settings::{settings, Run, Setting};

pub use plot::LEARNING_CURVES;
pub use scores::{GroupStats, Scores};

/// Groups compared pairwise when no baseline is named.
const MAX_PAIRWISE_GROUPS: usize = 4;
/// Group names a message lists.
const MAX_NAMES_LISTED: usize = 20;

/// Runs of one setting.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The environment its runs played.
    pub env: EnvId,
    /// Its name: the settings that tell it from the other groups of its environment.
    pub name: String,
    /// Its run directories (in report.json as text, a name that is not UTF-8 lossily).
    #[serde(serialize_with = "render::lossy_paths")]
    pub runs: Vec<PathBuf>,
    /// Runs finished.
    pub finished: usize,
    /// Runs failed or diverged.
    pub failed: usize,
    /// Runs not finished yet.
    pub unfinished: usize,
    /// Scores of the finished runs.
    pub scores: Scores,
    /// Aggregates, when some run finished.
    pub stats: Option<GroupStats>,
    /// Why its runs are left out of success rates and steps to solve: a time limit shorter
    /// than the environment's registered one, under which solved is not judged.
    pub solved_not_judged: Option<String>,
    /// Periodic evaluation returns per run, for the learning curves.
    #[serde(skip)]
    curves: Vec<Vec<(u64, f64)>>,
}

/// P(a random run of `x` beats one of `y`) on the final return, two groups of one
/// environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The environment of both groups.
    pub env: EnvId,
    /// Group name.
    pub x: String,
    /// Group name.
    pub y: String,
    /// Probability of improvement with its interval.
    pub probability_of_improvement: Estimate,
}

/// An environment the runs played: a section of the report and a row of the plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// Its id.
    pub env: EnvId,
    /// The solved threshold of its groups' success rates (none for an environment that
    /// registers none, or whose spec its runs do not record).
    pub threshold: Option<f64>,
    /// The least and the most an episode can return within its runs' longest time limit (its
    /// plots' range), where they are known.
    #[serde(skip)]
    pub returns: Option<(f64, f64)>,
    /// Its spec, where known: qnet's own environments', or what a run of it recorded.
    #[serde(skip)]
    spec: Option<crate::env::EnvSpec>,
}

/// A whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The runs' environments, in the order their first run was found.
    pub environments: Vec<Environment>,
    /// The bootstrap's replicates.
    pub reps: usize,
    /// Its confidence level.
    pub confidence: f64,
    /// Its seed.
    pub seed: u64,
    /// The groups, environment by environment, each environment's in the order their first
    /// run was found.
    pub groups: Vec<Group>,
    /// Pairwise comparisons, each of two groups of one environment.
    pub comparisons: Vec<Comparison>,
}

impl Environment {
    /// `env` with the threshold of its spec and the return range of the longest time limit
    /// among `runs` of it.
    fn of(env: &EnvId, runs: &[Run]) -> Self {
        let of_env = || runs.iter().filter(move |run| run.config.env.id == *env);
        // Nothing is started to learn it: qnet's own environments are known, and a finished
        // run of a Gymnasium one records what it found.
        let spec = crate::env::registry::rust_spec(env.as_str()).or_else(|| {
            of_env().find_map(|run| match &run.state {
                RunState::Finished(summary) => summary.env.clone(),
                _ => None,
            })
        });
        let Some(spec) = spec else {
            return Self {
                env: env.clone(),
                threshold: None,
                returns: None,
                spec: None,
            };
        };
        let limit_of = |run: &Run| {
            run.config
                .env
                .max_episode_steps
                .unwrap_or(spec.max_episode_steps)
        };
        let time_limit = of_env()
            .map(limit_of)
            .max()
            .unwrap_or(spec.max_episode_steps);
        Self {
            env: env.clone(),
            threshold: spec.reward_threshold,
            returns: spec.returns_within(time_limit),
            spec: Some(spec),
        }
    }

    /// Why "solved" is not judged for a run of this environment with `config`, or `None`
    /// where it is.
    fn solved_not_judged(&self, config: &crate::config::Config) -> Option<String> {
        match &self.spec {
            Some(spec) => spec.solved_not_judged(
                config
                    .env
                    .max_episode_steps
                    .unwrap_or(spec.max_episode_steps),
            ),
            None => Some(format!(
                "no run of {} records its spec (a reward threshold)",
                self.env
            )),
        }
    }
}

impl Report {
    /// Reads the runs in `dirs`, groups them and computes every statistic.
    pub fn build(dirs: &[PathBuf], bootstrap: &Bootstrap) -> Result<Self> {
        let runs = find_runs(dirs)?
            .iter()
            .map(|dir| Run::read(dir))
            .collect::<Result<Vec<_>>>()?;
        let mut environments: Vec<Environment> = Vec::new();
        let mut groups = Vec::new();
        for setting in settings(&runs)? {
            let env = match environments.last() {
                Some(env) if env.env == *setting.env => env,
                _ => {
                    environments.push(Environment::of(setting.env, &runs));
                    &environments[environments.len() - 1]
                }
            };
            groups.push(Group::build(setting, env, bootstrap)?);
        }
        Ok(Self {
            environments,
            reps: bootstrap.reps,
            confidence: bootstrap.confidence,
            seed: bootstrap.seed,
            groups,
            comparisons: Vec::new(),
        })
    }

    /// The groups of `env`, in report order.
    fn groups_of<'r>(&'r self, env: &'r EnvId) -> impl Iterator<Item = &'r Group> + 'r {
        self.groups.iter().filter(move |g| g.env == *env)
    }

    /// Adds the probability-of-improvement comparisons within each environment: each group
    /// against the group named `baseline` there, or every pair when there are few groups.
    pub fn compare(&mut self, baseline: Option<&str>, bootstrap: &Bootstrap) -> Result<()> {
        if let Some(name) = baseline {
            self.check_baseline(name)?;
        }
        let mut comparisons = Vec::new();
        for env in &self.environments {
            let scored: Vec<&Group> = self
                .groups_of(&env.env)
                .filter(|g| g.stats.is_some())
                .collect();
            for (x, y) in pairs(&scored, baseline) {
                comparisons.push(Comparison {
                    env: env.env.clone(),
                    x: x.name.clone(),
                    y: y.name.clone(),
                    probability_of_improvement: stats::probability_of_improvement_ci(
                        &x.scores.final_return,
                        &y.scores.final_return,
                        bootstrap,
                    )?,
                });
            }
        }
        self.comparisons = comparisons;
        Ok(())
    }

    /// Fails unless some group named `name` has finished runs, listing the names there are.
    fn check_baseline(&self, name: &str) -> Result<()> {
        if self
            .groups
            .iter()
            .any(|g| g.stats.is_some() && g.name == name)
        {
            return Ok(());
        }
        let mut names: Vec<String> = Vec::new();
        for group in &self.groups {
            let quoted = format!("{:?}", clip(&group.name));
            if !names.contains(&quoted) {
                names.push(quoted);
            }
        }
        let more = names.len().saturating_sub(MAX_NAMES_LISTED);
        names.truncate(MAX_NAMES_LISTED);
        if more > 0 {
            names.push(format!("and {more} more (report.md lists them all)"));
        }
        bail!(
            "--baseline {:?} names no group with finished runs; the groups are: {}",
            clip(name),
            names.join(", ")
        )
    }

    /// Writes report.json, report.csv, report.md and learning_curves.svg into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        render::write_all(self, dir)?;
        plot::write(self, dir)
    }

    /// The report as Markdown (what report.md holds).
    pub fn markdown(&self) -> String {
        render::markdown(self)
    }
}

impl Group {
    /// The group of `setting`'s runs, its success rates counted against the threshold of
    /// its environment `env`.
    fn build(setting: Setting<'_>, env: &Environment, bootstrap: &Bootstrap) -> Result<Self> {
        let Setting {
            env: id,
            name,
            runs,
        } = setting;
        // A group's runs share their config but for the seed: one time limit.
        let solved_not_judged = runs
            .iter()
            .find_map(|run| env.solved_not_judged(&run.config));
        let threshold = env.threshold;
        let mut group = Group {
            env: id.clone(),
            name,
            runs: runs.iter().map(|r| r.dir.clone()).collect(),
            finished: 0,
            failed: 0,
            unfinished: 0,
            scores: Scores::default(),
            stats: None,
            solved_not_judged,
            curves: Vec::new(),
        };
        let mut all_kept_best = true;
        for run in &runs {
            match &run.state {
                RunState::Finished(summary) => {
                    let kept_best = group.add_finished(run, summary)?;
                    all_kept_best &= kept_best;
                }
                RunState::Failed(_) => group.failed += 1,
                RunState::Unfinished | RunState::New => group.unfinished += 1,
            }
        }
        if group.finished > 0 {
            let judged = group
                .solved_not_judged
                .is_none()
                .then_some(threshold)
                .flatten();
            group.stats = Some(GroupStats::of(
                &group.scores,
                all_kept_best,
                bootstrap,
                judged,
            )?);
        }
        Ok(group)
    }

    /// Adds a finished run's scores and evaluation curve; false when it kept no best
    /// evaluation.
    fn add_finished(&mut self, run: &Run, summary: &Summary) -> Result<bool> {
        let Some(final_return) = summary.final_eval_mean else {
            bail!(
                "{}: a finished run without a final evaluation",
                run.dir.display()
            );
        };
        self.finished += 1;
        let s = &mut self.scores;
        s.final_return.push(final_return);
        if let Some(best) = summary.best_eval_mean {
            s.best_eval.push(best);
        }
        let budget = step_budget(&run.config, summary);
        s.steps_to_solve
            .push(summary.solved_at_step.unwrap_or(budget) as f64);
        s.seconds_to_solve
            .push(summary.solved_at_seconds.unwrap_or(summary.train_seconds));
        let curves = Curves::read(&run.dir)?;
        self.curves.push(
            curves
                .eval
                .iter()
                .map(|&(step, mean, _)| (step, mean))
                .collect(),
        );
        Ok(summary.best_eval_mean.is_some())
    }

    /// Evaluation returns of each finished run against env steps.
    pub fn curves(&self) -> &[Vec<(u64, f64)>] {
        &self.curves
    }
}

/// The pairs of `scored` groups (of one environment) to compare: each against the one named
/// `baseline` (none when it has no such group), or every pair when there are few groups.
fn pairs<'g>(scored: &[&'g Group], baseline: Option<&str>) -> Vec<(&'g Group, &'g Group)> {
    match baseline {
        Some(name) => match scored.iter().find(|g| g.name == name) {
            Some(base) => scored
                .iter()
                .filter(|g| g.name != name)
                .map(|g| (*g, *base))
                .collect(),
            None => Vec::new(),
        },
        None if scored.len() <= MAX_PAIRWISE_GROUPS => scored
            .iter()
            .enumerate()
            .flat_map(|(i, x)| scored[i + 1..].iter().map(move |y| (*x, *y)))
            .collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// An environment's plot range covers the longest time limit among its runs, and only its
    /// own runs count.
    #[test]
    fn an_environments_returns_span_its_runs_longest_time_limit() {
        let run = |env: &str, limit: Option<u32>| {
            let env: EnvId = env.parse().expect("an id");
            let mut config = Config::default();
            config.env.id = env.clone();
            config.env.max_episode_steps = limit;
            Run {
                dir: PathBuf::from(env.as_str()),
                config,
                state: RunState::New,
            }
        };
        let runs = [
            run("MountainCar-v0", None),
            run("MountainCar-v0", Some(1000)),
            run("Acrobot-v1", Some(3000)),
        ];
        assert_eq!(
            Environment::of(&runs[0].config.env.id, &runs).returns,
            Some((-1000.0, 0.0))
        );
        // No run of Acrobot-v1 among these: its registered limit.
        assert_eq!(
            Environment::of(&runs[2].config.env.id, &runs[..1]).returns,
            Some((-500.0, 0.0))
        );
    }
}
