//! `qnet eval` and `qnet render`: a saved model, played greedily. The model is read from
//! model.safetensors (data); a TorchScript model.pt, whose loading runs the code it holds, is
//! loaded only when `--torchscript` asks for it.

use std::path::{Path, PathBuf};

use std::io::Write;

use anyhow::{bail, Context, Result};
use tch::Device;

use super::{EvalArgs, ModelArgs, RenderArgs};
use crate::artifacts::safetensors::load_safetensors;
use crate::artifacts::torchscript::{load_torchscript, QModel};
use crate::artifacts::video::GifWriter;
use crate::config::DeviceSpec;
use crate::env::render::{render_frame, HEIGHT, WIDTH};
use crate::env::{env_seed, CartPole, N_ACTIONS, OBS_DIM};
use crate::learn::eval::{
    evaluate_in_batches, final_eval_seed, greedy_through_tensors, Policy, MAX_EPISODES,
    SOLVED_RETURN,
};
use crate::learn::qfunction::{self, QFunction};
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::device;
use crate::run::checkpoint::ModelFiles;
use crate::run::progress::EvalProgress;

/// The run directory whose model `qnet eval` and `qnet render` use when given none.
const SHIPPED_MODEL_DIR: &str = "models/cartpole-dqn";

/// CartPole-v1's simulated time step is 0.02 s: 50 frames per second play in real time.
const FPS: u32 = 50;

/// The model file `args` choose: a run directory means its model.safetensors (model.pt with
/// `--torchscript`; model_best.* with `--best`); none means the shipped model's directory
/// (looked up from the working directory, then from the source tree).
fn model_path(args: &ModelArgs) -> Result<PathBuf> {
    let files = if args.best {
        ModelFiles::Best
    } else {
        ModelFiles::Final
    };
    let dir = match &args.checkpoint {
        Some(path) if !path.is_dir() => return model_file(path, args),
        Some(dir) => dir.to_path_buf(),
        None if Path::new(SHIPPED_MODEL_DIR).is_dir() => PathBuf::from(SHIPPED_MODEL_DIR),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(SHIPPED_MODEL_DIR),
    };
    let model = if args.torchscript {
        files.torchscript(&dir)
    } else {
        files.safetensors(&dir)
    };
    if !model.exists() {
        let why = if args.best {
            "a run writes its best model at its first periodic evaluation (eval.every > 0)"
        } else {
            "pass a run directory qnet train wrote, or a model file in one"
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

/// `--checkpoint` naming a file: a .safetensors file, or TorchScript when asked for.
fn model_file(path: &Path, args: &ModelArgs) -> Result<PathBuf> {
    if args.best {
        bail!(
            "--best picks the best model of a run directory; {} is a file (pass its \
             directory, or drop --best)",
            path.display()
        );
    }
    let torchscript = path.extension().is_some_and(|e| e == "pt");
    if torchscript && !args.torchscript {
        bail!(
            "{} is TorchScript, and loading TorchScript runs the code inside the file: pass \
             the model.safetensors beside it (data only), or add --torchscript if you trust \
             where the file came from",
            path.display()
        );
    }
    if args.torchscript && !torchscript {
        bail!(
            "--torchscript loads a model.pt; {} is not one",
            path.display()
        );
    }
    Ok(path.to_path_buf())
}

/// A Q-network acting greedily.
enum Greedy {
    /// Built from a model.safetensors.
    Data(Box<dyn QFunction>),
    /// A TorchScript module (`--torchscript`).
    Code(QModel),
}

impl Policy for Greedy {
    fn greedy_actions(&self, obs: &[f32], actions: &mut [i64]) -> Result<()> {
        match self {
            Greedy::Data(q) => {
                greedy_through_tensors(obs, actions, q.device(), |obs| Ok(q.forward(obs)))
            }
            Greedy::Code(m) => {
                greedy_through_tensors(obs, actions, m.device(), |obs| m.q_values(obs))
            }
        }
    }
}

fn load(args: &ModelArgs, device: Device) -> Result<(PathBuf, Greedy)> {
    let path = model_path(args)?;
    let policy = if args.torchscript {
        Greedy::Code(load_torchscript(
            &path,
            device,
            OBS_DIM as i64,
            N_ACTIONS as i64,
        )?)
    } else {
        let model = load_safetensors(&path, OBS_DIM as i64, N_ACTIONS as i64)?;
        let flat = model.flat.f_to_device(device).with_context(|| {
            format!("cannot move {} to {}", path.display(), device::name(device))
        })?;
        Greedy::Data(qfunction::with_parameters(model.spec, flat)?)
    };
    Ok((path, policy))
}

pub(super) fn eval(args: EvalArgs) -> Result<()> {
    if args.episodes == 0 || args.episodes > MAX_EPISODES {
        bail!("--episodes must be between 1 and {MAX_EPISODES}");
    }
    let spec: DeviceSpec = args.device.parse().map_err(anyhow::Error::msg)?;
    let device = device::resolve(spec, "--device")?;
    device::configure_cpu_threads(&[]);
    let (path, policy) = load(&args.model, device)?;
    let mut progress = EvalProgress::choose(args.episodes);
    let result = evaluate_in_batches(
        &policy,
        0..args.episodes,
        final_eval_seed(args.seed),
        500,
        &mut |done| progress.update(done),
    )?;
    progress.finish();
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
            format!("solved (mean >= {SOLVED_RETURN})")
        } else {
            format!("not solved (mean < {SOLVED_RETURN})")
        }
    );
    Ok(())
}

pub(super) fn render(args: RenderArgs) -> Result<()> {
    if args.max_steps == 0 {
        bail!("--max-steps must be at least 1");
    }
    let (path, policy) = load(&args.model, Device::Cpu)?;
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
    if args.out == Path::new("-") {
        std::io::stdout()
            .lock()
            .write_all(&bytes)
            .context("cannot write the GIF to standard output")?;
        return Ok(());
    }
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
