//! `qnet bench solve` (time to solved over seeds) and `qnet bench throughput`
//! (gradient updates/s and env steps/s of one config on one device).

use anyhow::Result;

use super::{SolveArgs, ThroughputArgs};
use crate::many::bench::{SeedRun, SolveBench, SolveResult};
use crate::platform::device;
use crate::platform::read::load_config;
use crate::run::metrics::Summary;
use crate::run::preflight::Placement;
use crate::run::trainer::throughput::{self, Throughput};

/// Longest `--seconds` of `qnet bench throughput`: each of its two phases runs that long.
const MAX_PHASE_SECONDS: f64 = 3600.0;

/// `--seconds` of `qnet bench throughput`: a number of seconds above 0 and at most an hour
/// (NaN, infinity and 1e300 are refused: a phase of them never ends, or ends at once).
pub(super) fn phase_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a number of seconds", crate::config::clip(text)))?;
    if seconds > 0.0 && seconds <= MAX_PHASE_SECONDS {
        Ok(seconds)
    } else {
        Err(format!(
            "must be more than 0 and at most {MAX_PHASE_SECONDS} (an hour), not {}",
            crate::config::clip(text.trim())
        ))
    }
}

/// `qnet bench solve`: a sweep of one setting over seeds (on `--jobs` workers, one by
/// default so that timings do not share cores), a row per seed, and the report's statistics.
pub(super) fn solve(args: SolveArgs) -> Result<i32> {
    let bench = SolveBench {
        config: args.config.path()?,
        overrides: args.config.overrides(),
        first_seed: args.seeds.first_seed,
        seeds: args.seeds.seeds,
        max_runs: args.seeds.max_runs,
        out: args.out,
        workers: args.jobs as usize,
    };
    let result = bench.run(&mut |line| {
        say!("{line}");
        Ok(())
    })?;
    print_seeds(&result)?;
    print_statistics(&result)?;
    Ok(result.tally.exit_code())
}

/// The table of seeds: a row per seed.
fn print_seeds(result: &SolveResult) -> Result<()> {
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
    for (seed, run) in &result.seeds {
        match run {
            SeedRun::Finished(summary) => say!("{seed:>4} {}", row(summary)),
            SeedRun::Failed(error) => say!("{seed:>4} failed: {error}"),
            SeedRun::Unfinished => say!("{seed:>4} not finished"),
        }
    }
    Ok(())
}

/// The solve times over the seeds and the report's statistics.
fn print_statistics(result: &SolveResult) -> Result<()> {
    let (times, n, threshold) = (&result.times, result.seeds.len(), result.threshold);
    if let Some((confirmed, steps, seconds)) = times.confirmed {
        say!(
            "confirmed solved (eval.stop_when_solved): {confirmed}/{n}; median confirmed_at \
             {steps:.0} env steps, {seconds:.2} s",
        );
    }
    say!(
        "final eval solved (100-episode mean >= {threshold}): {solved}/{n}; reached \
         {threshold} during training: {reached}/{n}; median solved_at {} env steps, {} s; \
         median {:.0} env steps/s",
        times.median_steps.map_or("-".into(), |m| format!("{m:.0}")),
        times
            .median_seconds
            .map_or("-".into(), |m| format!("{m:.2}")),
        times.median_rate,
        solved = times.final_solved,
        reached = times.reached,
    );
    if let Some(stats) = &result.stats {
        let solving = match (
            stats.success_rate,
            stats.steps_to_solve_iqm,
            stats.seconds_to_solve_iqm,
        ) {
            (Some(success), Some(steps), Some(seconds)) => format!(
                "success {:.0}% [{:.0}, {:.0}]; IQM steps to solve {:.0} [{:.0}, {:.0}], \
                 seconds {:.2} [{:.2}, {:.2}]",
                100.0 * success.point,
                100.0 * success.lo,
                100.0 * success.hi,
                steps.point,
                steps.lo,
                steps.hi,
                seconds.point,
                seconds.lo,
                seconds.hi,
            ),
            _ => "solved not judged (a time limit shorter than the registered one)".to_owned(),
        };
        say!(
            "IQM final return {:.1} [{:.1}, {:.1}]; {solving} (95% bootstrap CIs; report.md in \
             {})",
            stats.final_iqm.point,
            stats.final_iqm.lo,
            stats.final_iqm.hi,
            result.out.display()
        );
    }
    Ok(())
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
/// the training loop's own code.
pub(super) fn throughput(args: ThroughputArgs) -> Result<()> {
    let cfg = load_config(&args.config.path()?, &args.config.overrides())?;
    let env = crate::env::resolve(&cfg.env)?;
    let placement = Placement::of(&cfg, &env)?;
    let Throughput {
        env_steps_per_second: env_rate,
        updates_per_second: update_rate,
        kernel,
    } = throughput::measure(&cfg, &env, placement, args.seconds)?;
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

/// `qnet bench env`: env steps per second of a config's environment alone.
pub(super) fn env(args: ThroughputArgs) -> Result<()> {
    let cfg = load_config(&args.config.path()?, &args.config.overrides())?;
    let env = crate::env::resolve(&cfg.env)?;
    let rate = throughput::env_steps_per_second(&env, cfg.env.n_envs, args.seconds)?;
    say!(
        "{}: {} envs{}: {rate:.0} env steps/s",
        env.spec().id,
        cfg.env.n_envs,
        if env.is_gym() {
            format!(
                " in {} worker process{}",
                cfg.env.processes,
                if cfg.env.processes == 1 { "" } else { "es" }
            )
        } else {
            String::new()
        }
    );
    Ok(())
}
