//! `qnet eval` and `qnet render`: a saved model.pt, played greedily.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::Device;

use super::{EvalArgs, RenderArgs};
use crate::artifacts::export::{load_torchscript, QModel};
use crate::artifacts::video::GifWriter;
use crate::config::DeviceSpec;
use crate::env::render::{render_frame, HEIGHT, WIDTH};
use crate::env::{env_seed, CartPole, N_ACTIONS, OBS_DIM};
use crate::learn::eval::{evaluate, final_eval_seed, greedy_through_tensors, Policy};
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::device;
use crate::run::checkpoint::ModelFiles;

/// The run directory whose model `qnet eval` and `qnet render` use when given none.
const SHIPPED_MODEL_DIR: &str = "models/cartpole-dqn";

/// CartPole-v1's simulated time step is 0.02 s: 50 frames per second play in real time.
const FPS: u32 = 50;

/// `--checkpoint` as a model file: a run directory means its model.pt (model_best.pt with
/// `best`); none means the shipped model's directory (looked up from the working directory,
/// then from the source tree).
fn model_path(checkpoint: Option<&Path>, best: bool) -> Result<PathBuf> {
    let files = if best {
        ModelFiles::Best
    } else {
        ModelFiles::Final
    };
    let dir = match checkpoint {
        Some(path) if !path.is_dir() => {
            if best {
                bail!(
                    "--best picks model_best.pt from a run directory; {} is a file (pass its \
                     directory, or drop --best)",
                    path.display()
                );
            }
            return Ok(path.to_path_buf());
        }
        Some(dir) => dir.to_path_buf(),
        None if Path::new(SHIPPED_MODEL_DIR).is_dir() => PathBuf::from(SHIPPED_MODEL_DIR),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_MODEL_DIR),
    };
    let model = files.torchscript(&dir);
    if !model.exists() {
        let why = if best {
            "a run writes model_best.pt at its first periodic evaluation (eval.every > 0)"
        } else {
            "pass a run directory qnet train wrote, or the model.pt itself"
        };
        bail!(
            "{} is a directory without a {}; {why}",
            dir.display(),
            model
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
    }
    Ok(model)
}

/// A loaded TorchScript Q-network acting greedily.
struct Greedy(QModel);

impl Policy for Greedy {
    fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        greedy_through_tensors(obs, actions, self.0.device(), |obs| self.0.q_values(obs))
    }
}

fn load(checkpoint: Option<&Path>, best: bool, device: Device) -> Result<(PathBuf, Greedy)> {
    let path = model_path(checkpoint, best)?;
    let model = load_torchscript(&path, device, OBS_DIM as i64, N_ACTIONS as i64)?;
    Ok((path, Greedy(model)))
}

pub(super) fn eval(args: EvalArgs) -> Result<()> {
    if args.episodes == 0 {
        bail!("--episodes must be at least 1");
    }
    let spec: DeviceSpec = args.device.parse().map_err(anyhow::Error::msg)?;
    let device = device::resolve(spec, "--device")?;
    device::configure_cpu_threads(&[]);
    let (path, policy) = load(args.checkpoint.as_deref(), args.best, device)?;
    let result = evaluate(&policy, args.episodes, final_eval_seed(args.seed), 500)?;
    say!(
        "{}: mean {:.2} std {:.2} min {} max {} over {} episodes (seed {}, {}): {}",
        path.display(),
        result.mean,
        result.std,
        result.min,
        result.max,
        result.episodes,
        args.seed,
        device::name(device),
        if result.solved() {
            "solved (mean >= 475)"
        } else {
            "not solved (mean < 475)"
        }
    );
    Ok(())
}

pub(super) fn render(args: RenderArgs) -> Result<()> {
    if args.max_steps == 0 {
        bail!("--max-steps must be at least 1");
    }
    let (path, policy) = load(args.checkpoint.as_deref(), args.best, Device::Cpu)?;
    let mut env =
        CartPole::with_max_episode_steps(env_seed(final_eval_seed(args.seed), 0), args.max_steps);
    let mut obs = env.reset();
    let mut gif = GifWriter::new(Vec::new(), WIDTH, HEIGHT, FPS)?;
    let mut episode_return = 0.0;
    let mut steps = 0;
    gif.push(&render_frame(&env.state(), steps, episode_return))?;
    loop {
        let mut action = [0i64];
        policy.greedy_actions(&obs, &mut action)?;
        let step = env.step(action[0])?;
        steps += 1;
        episode_return += f64::from(step.reward);
        obs = step.obs;
        gif.push(&render_frame(&env.state(), steps, episode_return))?;
        if step.terminated || step.truncated {
            break;
        }
    }
    let bytes = gif.finish()?;
    write_bytes_atomic(&args.out, &bytes)?;
    say!(
        "{}: {} steps, return {episode_return}, written to {} ({} frames at {FPS} fps)",
        path.display(),
        steps,
        args.out.display(),
        steps + 1
    );
    Ok(())
}
