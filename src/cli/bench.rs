//! `qnet bench solve` (time to solved over seeds) and `qnet bench throughput`
//! (gradient updates/s and env steps/s of one config on one device).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Result};
use tch::Device;

use super::{run_dir, train::summary_line, SolveArgs, ThroughputArgs};
use crate::agent::Learner;
use crate::config::Config;
use crate::device::{self, Placement};
use crate::env::{BatchedCartPole, OBS_DIM};
use crate::metrics::Summary;
use crate::progress::Progress;
use crate::replay::{ReplayBuffer, Transition};
use crate::rng::{stream_rng, stream_seed, Stream};
use crate::trainer::{Outcome, Start, Trainer};

pub(super) fn solve(args: SolveArgs) -> Result<()> {
    let base_cfg = Config::load(&args.config.config, &args.config.overrides())?;
    let base = match &args.out {
        Some(dir) => dir.clone(),
        None => run_dir::unique(
            &PathBuf::from("runs/bench-solve").join(&base_cfg.experiment),
            "",
        ),
    };
    let Some(end) = args.first_seed.checked_add(args.seeds) else {
        bail!(
            "--first-seed {} plus --seeds {} overflows a u64 seed",
            args.first_seed,
            args.seeds
        );
    };
    let seeds = args.first_seed..end;
    say!(
        "bench solve: {} over seeds {}..{} into {}",
        args.config.config.display(),
        seeds.start,
        seeds.end,
        base.display()
    );
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
    let never = AtomicBool::new(false);
    let mut summaries: Vec<Summary> = Vec::new();
    for seed in seeds {
        let mut overrides = args.config.overrides();
        overrides.push(format!("seed={seed}"));
        let cfg = Config::load(&args.config.config, &overrides)?;
        let placement = Placement::of(&cfg)?;
        let dir = run_dir::create(
            Some(&base.join(format!("seed{seed}"))),
            &cfg.experiment,
            seed,
        )?;
        crate::atomic::write_bytes_atomic(&dir.join("config.yaml"), cfg.to_yaml()?.as_bytes())?;
        let mut progress = Progress::Quiet;
        let Outcome::Finished(summary) =
            Trainer::new(cfg, placement, &dir, Start::Fresh, &mut progress, &never)?.run()?
        else {
            bail!("seed {seed} stopped before finishing");
        };
        say!(
            "{seed:>4} {:>12} {:>10} {:>10.1} {:>9} {:>8} {:>8} {:>8.2} {:>9.0}",
            summary.solved_at_step.map_or("-".into(), |s| s.to_string()),
            summary
                .solved_at_seconds
                .map_or("-".into(), |s| format!("{s:.2}")),
            summary.final_eval_mean.unwrap_or(f64::NAN),
            if summary.final_eval_solved == Some(true) {
                "yes"
            } else {
                "no"
            },
            summary.env_steps,
            summary.gradient_updates,
            summary.train_seconds,
            summary.env_steps_per_second,
        );
        summaries.push(*summary);
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
    println!(
        "final eval solved (100-episode mean >= 475): {solved}/{n}; reached 475 during training: \
         {reached}/{n}; median solved_at {} env steps, {} s; median {:.0} env steps/s",
        median(&steps).map_or("-".into(), |m| format!("{m:.0}")),
        median(&seconds).map_or("-".into(), |m| format!("{m:.2}")),
        median(&rates).unwrap_or(0.0),
        n = summaries.len(),
        reached = steps.len(),
    );
    if let Some(last) = summaries.last() {
        say!("last run: {}", summary_line(last));
    }
    Ok(())
}

fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
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
