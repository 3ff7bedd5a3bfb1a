//! A saved model played greedily: evaluated over episodes, or one episode rendered as a GIF.
//! The model is read from model.safetensors (data); a TorchScript model.pt, whose loading runs
//! the code it holds, is loaded only when asked for.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tch::Device;

use crate::artifacts::export::read_torchscript_metadata;
use crate::artifacts::safetensors::{check_finite, load_safetensors};
use crate::artifacts::torchscript::{load_torchscript, QModel};
use crate::artifacts::video::GifWriter;
use crate::config::{Config, EnvConfig, EnvId};
use crate::env::{env_seed, Resolved};
use crate::learn::eval::{
    evaluate_in_batches, final_eval_seed, greedy_through_tensors, EvalEnvs, EvalResult, Policy,
};
use crate::learn::qfunction::{self, QFunction};
use crate::platform::device;
use crate::run::checkpoint::ModelFiles;
use crate::run::progress::EvalProgress;

/// Which saved model to play.
#[derive(Debug, Clone)]
pub struct ModelChoice {
    /// A run directory, or a model file in one (none: the shipped model).
    pub checkpoint: Option<PathBuf>,
    /// The run's best periodic evaluation's model (model_best.*) instead of the final one.
    pub best: bool,
    /// The TorchScript model.pt instead of model.safetensors.
    pub torchscript: bool,
    /// The environment to play a model whose file names none; one that names another is
    /// refused.
    pub env: Option<EnvId>,
}

/// The run directory whose model `qnet eval` and `qnet render` use when given none.
const SHIPPED_MODEL_DIR: &str = "models/cartpole-dqn";

/// The model file `args` choose: a run directory means its model.safetensors (model.pt with
/// `--torchscript`; model_best.* with `--best`); none means the shipped model's directory
/// (looked up from the working directory, then from the source tree).
fn model_path(args: &ModelChoice) -> Result<PathBuf> {
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
fn model_file(path: &Path, args: &ModelChoice) -> Result<PathBuf> {
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

/// The model `args` choose, on `device`, its path, and the environment it plays (under its
/// registered time limit), resolved.
fn load(args: &ModelChoice, device: Device) -> Result<(PathBuf, Resolved, Greedy)> {
    let path = model_path(args)?;
    if args.torchscript {
        let env = played_env(&path, torchscript_env(&path)?, args.env.as_ref())?;
        let sizes = env.spec();
        let (obs_dim, n_actions) = (sizes.obs_dim as i64, sizes.n_actions as i64);
        let model = load_torchscript(&path, device, obs_dim, n_actions)?;
        refuse_non_finite(&model)?;
        return Ok((path, env, Greedy::Code(model)));
    }
    let mut played = None;
    let model = load_safetensors(&path, |named, network| {
        let env = played_env(&path, Some(named.clone()), args.env.as_ref())?;
        let sizes = env.spec();
        let (obs_dim, n_actions) = (sizes.obs_dim as i64, sizes.n_actions as i64);
        if (network.obs_dim, network.n_actions) != (obs_dim, n_actions) {
            bail!(
                "{} does not fit {}: it maps {} observation values to {} Q-values; expected \
                 {obs_dim} and {n_actions}",
                path.display(),
                sizes.id,
                network.obs_dim,
                network.n_actions
            );
        }
        played = Some(env);
        Ok(())
    })?;
    let env = played.context("the model's environment")?;
    let flat = model
        .flat
        .f_to_device(device)
        .with_context(|| format!("cannot move {} to {}", path.display(), device::name(device)))?;
    let policy = Greedy::Data(qfunction::with_parameters(model.spec, flat)?);
    Ok((path, env, policy))
}

/// Refuses a TorchScript model with a NaN or infinite parameter, as a model.safetensors is
/// refused. A module whose parameters cannot be listed (TorchScript made elsewhere may keep its
/// numbers as constants) is played as it is.
fn refuse_non_finite(model: &QModel) -> Result<()> {
    let Ok(parameters) = model.module().named_parameters() else {
        return Ok(());
    };
    for (name, tensor) in parameters {
        let values = tensor
            .f_detach()
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_to_kind(tch::Kind::Float))
            .and_then(|t| t.f_reshape([-1]))
            .and_then(|t| Vec::<f32>::try_from(&t))
            .with_context(|| format!("cannot read {} of {}", name, model.path().display()))?;
        check_finite(&name, &values).map_err(|e| {
            anyhow::anyhow!("cannot use {} as a Q-network: {e}", model.path().display())
        })?;
    }
    Ok(())
}

/// The environment a TorchScript model was trained on, from the metadata qnet writes into it
/// (none for TorchScript made elsewhere).
fn torchscript_env(path: &Path) -> Result<Option<EnvConfig>> {
    let Some(metadata) = read_torchscript_metadata(path)? else {
        return Ok(None);
    };
    let config = metadata
        .get("config")
        .with_context(|| format!("{}'s qnet metadata holds no config", path.display()))?;
    let cfg = Config::from_yaml_str(config, &format!("{}'s metadata", path.display()), &[])?;
    Ok(Some(cfg.env))
}

/// The environment to play the model at `path` on, under its registered time limit: the one
/// its file names, or `--env` when it names none; the two must agree when both are given.
fn played_env(path: &Path, named: Option<EnvConfig>, asked: Option<&EnvId>) -> Result<Resolved> {
    let mut env = match (named, asked) {
        (Some(named), Some(asked)) if named.id != *asked => bail!(
            "{} was trained on {}, not on {asked} (--env)",
            path.display(),
            named.id
        ),
        (Some(env), _) => env,
        (None, Some(id)) => EnvConfig {
            id: id.clone(),
            ..Config::default().env
        },
        (None, None) => bail!(
            "{} does not name the environment it plays (no qnet metadata): pass --env with \
             its id ({}, or gym:ID for a Gymnasium environment)",
            path.display(),
            crate::env::registry::ids().join(", ")
        ),
    };
    // Played as Gymnasium registers it: under its registered time limit.
    env.max_episode_steps = None;
    crate::env::resolve(&env)
}

/// A greedy evaluation of a saved model.
#[derive(Debug)]
pub struct Evaluated {
    /// The model file played.
    pub model: PathBuf,
    /// Its returns.
    pub result: EvalResult,
    /// The environment's reward threshold, if it registers one.
    pub threshold: Option<f64>,
}

/// Plays `episodes` greedy episodes of the chosen model on `device`, on the envs a run of
/// `seed` gives its final evaluation, with a progress display for long evaluations.
pub fn evaluate(
    choice: &ModelChoice,
    device: Device,
    episodes: usize,
    seed: u64,
) -> Result<Evaluated> {
    device::configure_cpu_threads(&[]);
    let (model, env, policy) = load(choice, device)?;
    let mut progress = EvalProgress::choose(episodes);
    let threshold = env.threshold();
    let envs = EvalEnvs {
        env,
        seed: final_eval_seed(seed),
    };
    let result = evaluate_in_batches(&policy, 0..episodes, &envs, &mut |done| {
        progress.update(done)
    })?;
    progress.finish();
    Ok(Evaluated {
        model,
        result,
        threshold,
    })
}

/// One greedy episode of a saved model, drawn.
#[derive(Debug)]
pub struct Rendered {
    /// The model file played.
    pub model: PathBuf,
    /// The id of the environment it played.
    pub env: String,
    /// The episode as a GIF, a frame per state (the initial one included).
    pub gif: Vec<u8>,
    /// The GIF's frames per second: the environment's Gymnasium render rate.
    pub fps: u32,
    /// Env steps the episode lasted.
    pub steps: u32,
    /// Its return.
    pub episode_return: f64,
}

/// Plays one greedy episode of the chosen model on the CPU, on its environment, from the
/// initial state of the first final-evaluation env of `seed`, cut at `max_steps` (by default
/// the environment's registered time limit, as `qnet eval` plays it), and draws
/// each state as Gymnasium renders that environment.
pub fn render(choice: &ModelChoice, seed: u64, max_steps: Option<u32>) -> Result<Rendered> {
    let (model, resolved, policy) = load(choice, Device::Cpu)?;
    let env_id = resolved.spec().id.to_string();
    let max_steps = max_steps.unwrap_or(resolved.time_limit());
    let mut env = resolved.drawn(env_seed(final_eval_seed(seed), 0), max_steps)?;
    env.reset()?;
    let fps = env.fps();
    let mut episode_return = 0.0;
    let mut gif = GifWriter::start(Vec::new(), &env.frame(episode_return)?, fps)?;
    let mut steps = 0;
    loop {
        let mut action = [0i64];
        policy.greedy_actions(env.obs(), &mut action)?;
        let outcome = env
            .step(action[0])
            .with_context(|| format!("{} chose an action {env_id} refuses", model.display()))?;
        steps += 1;
        episode_return += f64::from(outcome.reward);
        gif.push(&env.frame(episode_return)?)?;
        if outcome.terminated || outcome.truncated {
            break;
        }
    }
    Ok(Rendered {
        model,
        env: env_id,
        gif: gif.finish()?,
        fps,
        steps,
        episode_return,
    })
}
