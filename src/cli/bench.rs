//! `qnet bench solve` (time to solved over seeds) and `qnet bench throughput`
//! (gradient updates/s and env steps/s of one config on one device).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use tch::Device;

use super::sweep::run_here;
use super::{run_dir, SolveArgs, ThroughputArgs};
use crate::agent::Learner;
use crate::config::Config;
use crate::device::{self, Placement};
use crate::env::{BatchedCartPole, OBS_DIM};
use crate::metrics::Summary;
use crate::replay::{ReplayBuffer, Transition};
use crate::report::Report;
use crate::rng::{stream_rng, stream_seed, Stream};
use crate::stats::{self, Bootstrap};
use crate::sweep::{RunState, Sweep, SweepSpec};

/// `qnet bench solve`: a sweep of one setting over seeds (on `--jobs` workers, one by
/// default so that timings do not share cores), a row per seed, and the report's statistics.
pub(super) fn solve(args: SolveArgs) -> Result<i32> {
    let overrides = args.config.overrides();
    let base_cfg = Config::load(&args.config.config, &overrides)?;
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
        config: args.config.config.clone(),
        overrides,
        grid: Vec::new(),
        seeds: args.seeds.first_seed..end,
    };
    let (sweep, configs) = Sweep::expand(&spec, &out)?;
    sweep.write(&configs)?;
    say!(
        "bench solve: {} over seeds {}..{} into {}",
        args.config.config.display(),
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
    say!(
        "final eval solved (100-episode mean >= 475): {solved}/{n}; reached 475 during training: \
         {reached}/{n}; median solved_at {} env steps, {} s; median {:.0} env steps/s",
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

/// Waits for queued CUDA work so timings include it.
fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

pub(super) fn throughput(args: ThroughputArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config, &args.config.overrides())?;
    let Placement {
        train: device,
        replay: replay_device,
    } = Placement::of(&cfg)?;
    let mut learner = Learner::new(&cfg, device, stream_seed(cfg.seed, Stream::Init))?;
    let mut replay = ReplayBuffer::new(cfg.replay.capacity, replay_device, device)?;
    let n = cfg.env.n_envs;
    let mut envs = BatchedCartPole::new(n, cfg.seed, cfg.env.max_episode_steps);
    envs.reset_all();
    let mut rng = stream_rng(cfg.seed, Stream::Explore);
    let mut actions = vec![0i64; n];
    let mut obs = vec![0.0f32; n * OBS_DIM];

    // Env steps/s of the acting loop: epsilon-greedy forward pass, env step, replay insert.
    let mut step_envs =
        |epsilon: f64, learner: &Learner, replay: &mut ReplayBuffer| -> Result<()> {
            obs.copy_from_slice(envs.obs());
            learner.act(&obs, epsilon, &mut rng, &mut actions)?;
            envs.step(&actions)?;
            for i in 0..n {
                let done = envs.terminated()[i] || envs.truncated()[i];
                let next = if done { envs.final_obs() } else { envs.obs() };
                replay.push(Transition {
                    obs: &obs[i * OBS_DIM..(i + 1) * OBS_DIM],
                    next_obs: &next[i * OBS_DIM..(i + 1) * OBS_DIM],
                    action: actions[i],
                    reward: envs.rewards()[i],
                    terminated: envs.terminated()[i],
                    truncated: envs.truncated()[i],
                });
            }
            Ok(())
        };
    let fill = cfg
        .replay
        .batch_size
        .max(cfg.replay.learning_starts as usize)
        .min(cfg.replay.capacity);
    while replay.len() < fill {
        step_envs(1.0, &learner, &mut replay)?;
    }
    let start = Instant::now();
    let mut vector_steps = 0u64;
    while start.elapsed().as_secs_f64() < args.seconds {
        step_envs(cfg.exploration.end, &learner, &mut replay)?;
        vector_steps += 1;
    }
    synchronize(device);
    let env_rate = (vector_steps * n as u64) as f64 / start.elapsed().as_secs_f64();

    // Gradient updates/s: sample a minibatch, TD update, Adam step.
    let mut replay_rng = stream_rng(cfg.seed, Stream::Replay);
    for _ in 0..10 {
        learner.update(&replay.sample(cfg.replay.batch_size, &mut replay_rng)?)?;
    }
    synchronize(device);
    let start = Instant::now();
    let mut updates = 0u64;
    while start.elapsed().as_secs_f64() < args.seconds {
        for _ in 0..10 {
            learner.update(&replay.sample(cfg.replay.batch_size, &mut replay_rng)?)?;
        }
        updates += 10;
        synchronize(device);
    }
    let update_rate = updates as f64 / start.elapsed().as_secs_f64();
    say!(
        "{}: network {:?}, batch {}, {} envs, replay on {}, device {}, {} libtorch threads",
        args.config.config.display(),
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
