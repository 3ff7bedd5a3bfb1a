//! Time to solved over seeds: one setting swept over seeds on local workers, each seed's
//! summary, the medians of its solve times, and the report's bootstrap statistics.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::many::local::run_here;
use crate::many::report::{GroupStats, Report};
use crate::many::stats::{self, Bootstrap};
use crate::many::sweep::{RunState, Sweep, SweepSpec};
use crate::many::tally::Tally;
use crate::platform::read::load_config;
use crate::run::metrics::Summary;
use crate::run::provenance::this_command;
use crate::run::run_dir;

/// What to time: a config with its overrides, over seeds.
#[derive(Debug, Clone)]
pub struct SolveBench {
    /// The config file.
    pub config: PathBuf,
    /// Its `--set` overrides.
    pub overrides: Vec<String>,
    /// The first seed.
    pub first_seed: u64,
    /// How many seeds.
    pub seeds: u64,
    /// The most runs the sweep may expand to.
    pub max_runs: u64,
    /// Where the runs go (none: a new directory under `runs/bench-solve/<experiment>/`).
    pub out: Option<PathBuf>,
    /// Runs trained at once.
    pub workers: usize,
}

/// How one seed's run ended.
#[derive(Debug, Clone)]
pub enum SeedRun {
    /// Trained to the end; its summary.
    Finished(Box<Summary>),
    /// Failed, with the error its directory records.
    Failed(String),
    /// Neither finished nor failed (interrupted).
    Unfinished,
}

/// The medians over the seeds that got there.
#[derive(Debug, Clone, PartialEq)]
pub struct SolveTimes {
    /// Runs whose final evaluation is solved.
    pub final_solved: usize,
    /// Runs that reached the solved return in a periodic evaluation.
    pub reached: usize,
    /// Median env steps to the first solved evaluation.
    pub median_steps: Option<f64>,
    /// Median training seconds to it.
    pub median_seconds: Option<f64>,
    /// Median env steps per second of the finished runs (0 with none).
    pub median_rate: f64,
    /// Runs whose solved evaluation a confirmation agreed with, and their median env steps
    /// and seconds to it; none when no run was confirmed.
    pub confirmed: Option<(usize, f64, f64)>,
}

/// What a solve bench found.
#[derive(Debug)]
pub struct SolveResult {
    /// The sweep's directory.
    pub out: PathBuf,
    /// Each seed and how its run ended, in seed order.
    pub seeds: Vec<(u64, SeedRun)>,
    /// The solve times over the finished runs.
    pub times: SolveTimes,
    /// The report's statistics (report.md and report.json are written beside the runs),
    /// when some run finished.
    pub stats: Option<GroupStats>,
    /// How the workers' runs ended.
    pub tally: Tally,
    /// The environment's reward threshold, which "solved" means reaching.
    pub threshold: f64,
}

impl SolveBench {
    /// Expands the seeds into a locked sweep, says where (`note`), trains each seed that is
    /// not finished yet, and gathers the results.
    pub fn run(&self, note: &mut dyn FnMut(&str) -> Result<()>) -> Result<SolveResult> {
        let base = load_config(&self.config, &self.overrides)?;
        let env = crate::env::resolve(&base.env)?;
        let Some(threshold) = env.threshold() else {
            bail!(
                "bench solve times runs to \"solved\", which is not judged here: {}",
                env.solved_not_judged().unwrap_or_default()
            );
        };
        let Some(end) = self.first_seed.checked_add(self.seeds) else {
            bail!(
                "--first-seed {} plus --seeds {} overflows a u64 seed",
                self.first_seed,
                self.seeds
            );
        };
        let spec = SweepSpec {
            config: self.config.clone(),
            overrides: self.overrides.clone(),
            grid: Vec::new(),
            seeds: self.first_seed..end,
            max_runs: self.max_runs,
        };
        let out = match &self.out {
            Some(dir) => dir.clone(),
            None => default_out(&base.experiment),
        };
        let (sweep, configs) = Sweep::expand(&spec, &out)?;
        let _lock = sweep.lock(&this_command())?;
        sweep.write(&configs)?;
        note(&format!(
            "bench solve: {} over seeds {}..{} into {}",
            self.config.display(),
            spec.seeds.start,
            spec.seeds.end,
            sweep.out.display()
        ))?;
        let tally = run_here(&sweep, self.workers, false, true)?;
        gather(&sweep, tally, threshold)
    }
}

/// A new directory for a bench of `experiment`.
fn default_out(experiment: &str) -> PathBuf {
    run_dir::unique(&Path::new("runs/bench-solve").join(experiment), "")
}

/// Each seed's outcome, the solve times and, when some run finished, the report.
fn gather(sweep: &Sweep, tally: Tally, threshold: f64) -> Result<SolveResult> {
    let mut runs = Vec::new();
    for job in &sweep.jobs {
        let run = match RunState::of(&job.dir)? {
            RunState::Finished(summary) => SeedRun::Finished(summary),
            RunState::Failed(failure) => SeedRun::Failed(failure.error),
            RunState::Unfinished | RunState::New => SeedRun::Unfinished,
        };
        runs.push((job.seed, run));
    }
    let summaries: Vec<&Summary> = runs
        .iter()
        .filter_map(|(_, run)| match run {
            SeedRun::Finished(summary) => Some(&**summary),
            _ => None,
        })
        .collect();
    let times = solve_times(&summaries);
    let stats = if summaries.is_empty() {
        None
    } else {
        let report = Report::build(std::slice::from_ref(&sweep.out), &Bootstrap::default())?;
        report.write(&sweep.out)?;
        report.groups.first().and_then(|g| g.stats.clone())
    };
    Ok(SolveResult {
        out: sweep.out.clone(),
        seeds: runs,
        times,
        stats,
        tally,
        threshold,
    })
}

/// The medians of `summaries`' solve times.
fn solve_times(summaries: &[&Summary]) -> SolveTimes {
    let steps: Vec<f64> = summaries
        .iter()
        .filter_map(|s| s.solved_at_step.map(|v| v as f64))
        .collect();
    let seconds: Vec<f64> = summaries
        .iter()
        .filter_map(|s| s.solved_at_seconds)
        .collect();
    let rates: Vec<f64> = summaries.iter().map(|s| s.env_steps_per_second).collect();
    let (confirmed_steps, confirmed_seconds): (Vec<f64>, Vec<f64>) = summaries
        .iter()
        .filter_map(|s| Some((s.confirmed_at_step? as f64, s.confirmed_at_seconds?)))
        .unzip();
    let confirmed = (!confirmed_steps.is_empty()).then(|| {
        (
            confirmed_steps.len(),
            stats::median(&confirmed_steps).unwrap_or(f64::NAN),
            stats::median(&confirmed_seconds).unwrap_or(f64::NAN),
        )
    });
    SolveTimes {
        final_solved: summaries
            .iter()
            .filter(|s| s.final_eval_solved == Some(true))
            .count(),
        reached: steps.len(),
        median_steps: stats::median(&steps).ok(),
        median_seconds: stats::median(&seconds).ok(),
        median_rate: stats::median(&rates).unwrap_or(0.0),
        confirmed,
    }
}
