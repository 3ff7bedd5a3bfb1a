//! `qnet eval` and `qnet render`: a saved model, played greedily.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{EvalArgs, ModelArgs, RenderArgs};
use crate::config::DeviceSpec;
use crate::learn::eval::MAX_EPISODES;
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::device;
use crate::run::play::{self, ModelChoice};

/// The model `args` choose.
fn choice(args: ModelArgs) -> ModelChoice {
    ModelChoice {
        checkpoint: args.checkpoint,
        best: args.best,
        torchscript: args.torchscript,
        env: args.env,
    }
}

pub(super) fn eval(args: EvalArgs) -> Result<()> {
    if args.episodes == 0 || args.episodes > MAX_EPISODES {
        bail!("--episodes must be between 1 and {MAX_EPISODES}");
    }
    let spec: DeviceSpec = args.device.parse().map_err(anyhow::Error::msg)?;
    let device = device::resolve(spec, "--device")?;
    let played = play::evaluate(&choice(args.model), device, args.episodes, args.seed)?;
    let result = &played.result;
    say!(
        "{}: mean {:.2} std {:.2} min {} max {} over {} episodes (seed {}, {}): {}",
        played.model.display(),
        result.mean,
        result.std,
        result.min,
        result.max,
        result.episodes,
        args.seed,
        device::name(device),
        match played.threshold {
            Some(threshold) if result.solved(threshold) => {
                format!("solved (mean >= {threshold})")
            }
            Some(threshold) => format!("not solved (mean < {threshold})"),
            None => "no reward threshold to judge it by".to_owned(),
        }
    );
    Ok(())
}

pub(super) fn render(args: RenderArgs) -> Result<()> {
    let rendered = play::render(&choice(args.model), args.seed, args.max_steps)?;
    let out = args.out.unwrap_or_else(|| default_gif(&rendered.env));
    if out == Path::new("-") {
        std::io::stdout()
            .lock()
            .write_all(&rendered.gif)
            .context("cannot write the GIF to standard output")?;
        return Ok(());
    }
    write_bytes_atomic(&out, &rendered.gif)?;
    say!(
        "{}: {} steps, return {}, written to {} ({} frames at {} fps)",
        rendered.model.display(),
        rendered.steps,
        rendered.episode_return,
        out.display(),
        rendered.steps + 1,
        rendered.fps
    );
    Ok(())
}

/// The GIF `qnet render` writes without `--out`: the environment's name without its version,
/// module or namespace, in lower case (`cartpole.gif` for CartPole-v1, `breakout.gif` for
/// gym:minatar.gym:MinAtar/Breakout-v1), letters and digits only.
fn default_gif(env: &str) -> PathBuf {
    let name = env.rsplit([':', '/']).next().unwrap_or_default();
    let name: String = name
        .split("-v")
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let name = if name.is_empty() {
        "episode".to_owned()
    } else {
        name
    };
    PathBuf::from(format!("{}.gif", name.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_gif_is_named_after_the_environment() {
        for (id, gif) in [
            ("CartPole-v1", "cartpole.gif"),
            ("Acrobot-v1", "acrobot.gif"),
            ("MountainCar-v0", "mountaincar.gif"),
            ("gym:LunarLander-v3", "lunarlander.gif"),
            ("gym:minatar.gym:MinAtar/Breakout-v1", "breakout.gif"),
            ("gym:../..", "episode.gif"),
        ] {
            assert_eq!(default_gif(id), Path::new(gif), "{id}");
        }
    }
}
