//! `qnet bench solve` (time to solved over seeds) and `qnet bench throughput`
//! (gradient updates/s and env steps/s of one config on one device).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};

use super::{SolveArgs, ThroughputArgs};
use crate::config::Config;
use crate::learn::eval::SOLVED_RETURN;
use crate::many::local::run_here;
use crate::many::report::Report;
use crate::many::stats::{self, Bootstrap};
use crate::many::sweep::{RunState, Sweep, SweepSpec};
use crate::platform::device;
use crate::run::metrics::Summary;
use crate::run::preflight::Placement;
use crate::run::progress::Progress;
use crate::run::run_dir;
use crate::run::trainer::{Start, Throughput, Trainer};

/// `qnet bench solve`: a sweep of one setting over seeds (on `--jobs` workers, one by
/// default so that timings do not share cores), a row per seed, and the report's statistics.
pub(super) fn solve(args: SolveArgs) -> Result<i32> {
    let overrides = args.config.overrides();
    let base_cfg = Config::load(&args.config.path()?, &overrides)?;
    let out = match &args.out {
        Some(dir) => dir.clone(),
        None => run_dir::unique(
            &PathBuf::from("runs/bench-solve").join(&base_cfg.experiment),
            "",
        ),
    };
    let Some(end) = args.seeds.first_seed.checked_add(args.seeds.seeds) else {
        bail!(
            "--first-seed {} plus --seeds {} overflows a u64 seed",
            args.seeds.first_seed,
            args.seeds.seeds
        );
    };
    let spec = SweepSpec {
        config: args.config.path()?,
        overrides,
        grid: Vec::new(),
        seeds: args.seeds.first_seed..end,
        max_runs: args.seeds.max_runs,
    };
    let (sweep, configs) = Sweep::expand(&spec, &out)?;
    let _lock = sweep.lock(&crate::run::provenance::this_command())?;
    sweep.write(&configs)?;
    say!(
        "bench solve: {} over seeds {}..{} into {}",
        args.config.path()?.display(),
        spec.seeds.start,
        spec.seeds.end,
        sweep.out.display()
    );
    let tally = run_here(&sweep, args.jobs as usize, false, true)?;
    say!(
        "{:>4} {:>12} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9}",
        "seed",
        "solved_at",
        "solved_s",
        "final",
        "solved",
        "steps",
        "updates",
        "train_s",
        "steps/s"
    );
    let mut summaries: Vec<Summary> = Vec::new();
    for job in &sweep.jobs {
        match RunState::of(&job.dir)? {
            RunState::Finished(summary) => {
                say!("{:>4} {}", job.seed, row(&summary));
                summaries.push(*summary);
            }
            RunState::Failed(failure) => say!("{:>4} failed: {}", job.seed, failure.error),
            RunState::Unfinished | RunState::New => say!("{:>4} not finished", job.seed),
        }
    }
    let solved = summaries
        .iter()
        .filter(|s| s.final_eval_solved == Some(true))
        .count();
    let steps: Vec<f64> = summaries
        .iter()
        .filter_map(|s| s.solved_at_step.map(|v| v as f64))
        .collect();
    let seconds: Vec<f64> = summaries
        .iter()
        .filter_map(|s| s.solved_at_seconds)
        .collect();
    let rates: Vec<f64> = summaries.iter().map(|s| s.env_steps_per_second).collect();
    let confirmed: Vec<(f64, f64)> = summaries
        .iter()
        .filter_map(|s| Some((s.confirmed_at_step? as f64, s.confirmed_at_seconds?)))
        .collect();
    if !confirmed.is_empty() {
        let (steps, seconds): (Vec<f64>, Vec<f64>) = confirmed.iter().copied().unzip();
        say!(
            "confirmed solved (eval.stop_when_solved): {}/{}; median confirmed_at {:.0} env \
             steps, {:.2} s",
            confirmed.len(),
            sweep.jobs.len(),
            stats::median(&steps).unwrap_or(f64::NAN),
            stats::median(&seconds).unwrap_or(f64::NAN),
        );
    }
    say!(
        "final eval solved (100-episode mean >= {SOLVED_RETURN}): {solved}/{n}; reached \
         {SOLVED_RETURN} during training: {reached}/{n}; median solved_at {} env steps, {} s; \
         median {:.0} env steps/s",
        stats::median(&steps)
            .ok()
            .map_or("-".into(), |m| format!("{m:.0}")),
        stats::median(&seconds)
            .ok()
            .map_or("-".into(), |m| format!("{m:.2}")),
        stats::median(&rates).unwrap_or(0.0),
        n = sweep.jobs.len(),
        reached = steps.len(),
    );
    if !summaries.is_empty() {
        let bootstrap = Bootstrap::default();
        let report = Report::build(std::slice::from_ref(&sweep.out), &bootstrap)?;
        report.write(&sweep.out)?;
        if let Some(stats) = report.groups.first().and_then(|g| g.stats.as_ref()) {
            say!(
                "IQM final return {:.1} [{:.1}, {:.1}]; success {:.0}% [{:.0}, {:.0}]; IQM steps to \
                 solve {:.0} [{:.0}, {:.0}], seconds {:.2} [{:.2}, {:.2}] (95% bootstrap CIs; \
                 report.md in {})",
                stats.final_iqm.point,
                stats.final_iqm.lo,
                stats.final_iqm.hi,
                100.0 * stats.success_rate.point,
                100.0 * stats.success_rate.lo,
                100.0 * stats.success_rate.hi,
                stats.steps_to_solve_iqm.point,
                stats.steps_to_solve_iqm.lo,
                stats.steps_to_solve_iqm.hi,
                stats.seconds_to_solve_iqm.point,
                stats.seconds_to_solve_iqm.lo,
                stats.seconds_to_solve_iqm.hi,
                sweep.out.display()
            );
        }
    }
    Ok(tally.exit_code())
}

/// A seed's row of the table.
fn row(s: &Summary) -> String {
    format!(
        "{:>12} {:>10} {:>10.1} {:>9} {:>8} {:>8} {:>8.2} {:>9.0}",
        s.solved_at_step.map_or("-".into(), |v| v.to_string()),
        s.solved_at_seconds
            .map_or("-".into(), |v| format!("{v:.2}")),
        s.final_eval_mean.unwrap_or(f64::NAN),
        if s.final_eval_solved == Some(true) {
            "yes"
        } else {
            "no"
        },
        s.env_steps,
        s.gradient_updates,
        s.train_seconds,
        s.env_steps_per_second,
    )
}

/// `qnet bench throughput`: updates/s and env steps/s of a config on a device, timed through
/// the training loop's own code, in a scratch run directory removed afterwards.
pub(super) fn throughput(args: ThroughputArgs) -> Result<()> {
    let cfg = Config::load(&args.config.path()?, &args.config.overrides())?;
    let placement = Placement::of(&cfg)?;
    let dir = run_dir::unique(&std::env::temp_dir(), "-qnet-throughput");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let never = AtomicBool::new(false);
    let mut progress = Progress::Quiet;
    let measured = Trainer::new(
        cfg.clone(),
        placement,
        &dir,
        Start::Fresh,
        &mut progress,
        &never,
        crate::run::provenance::this_command(),
    )
    .and_then(|mut trainer| trainer.throughput(args.seconds));
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    let Throughput {
        env_steps_per_second: env_rate,
        updates_per_second: update_rate,
        kernel,
    } = measured?;
    let (device, replay_device) = (placement.train, placement.replay);
    let n = cfg.env.n_envs;
    say!(
        "{}: network {:?}, batch {}, {} envs, replay on {}, device {}, {} libtorch threads, \
         updates by the {kernel}",
        args.config.path()?.display(),
        cfg.network.hidden,
        cfg.replay.batch_size,
        n,
        device::name(replay_device),
        device::name(device),
        tch::get_num_threads()
    );
    say!(
        "gradient updates/s: {update_rate:.0} ({:.1} us/update); env steps/s (acting): {env_rate:.0}",
        1e6 / update_rate
    );
    Ok(())
}
