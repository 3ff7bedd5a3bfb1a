//! The command line: clap definitions and their mapping onto library calls.

/// Prints a line to stdout; a closed pipe comes back as an error (see [`is_broken_pipe`])
/// instead of the panic `println!` gives.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))?
    };
}

mod bench;
mod play;
mod run_dir;
mod train;

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

/// Deep Q-Networks on CartPole-v1, in Rust on libtorch.
#[derive(Debug, Parser)]
#[command(name = "qnet", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a Q-network from a YAML experiment (or resume an interrupted run).
    Train(TrainArgs),
    /// Evaluate a saved model.pt greedily and print mean, std, min, max.
    Eval(EvalArgs),
    /// Play one greedy episode of a saved model.pt and write it as an animated GIF.
    Render(RenderArgs),
    /// Measurements: time to solve over several seeds, or raw throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Where an experiment comes from: a YAML file plus overrides.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Experiment YAML.
    #[arg(long, default_value = "configs/cartpole.yaml")]
    config: PathBuf,
    /// Override a key by its dotted path, e.g. --set agent.gamma=0.95 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Device: auto, cpu, cuda or cuda:N (overrides the config's `device`).
    #[arg(long)]
    device: Option<String>,
}

impl ConfigArgs {
    /// The overrides in the order they apply: --set, then --device.
    fn overrides(&self) -> Vec<String> {
        let mut all = self.set.clone();
        all.extend(self.device.iter().map(|d| format!("device={d}")));
        all
    }
}

#[derive(Debug, Args)]
struct TrainArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seed of every random stream (overrides the config's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Run directory (default: runs/<experiment>/<UTC time>-seed<N>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only the run directory and the final summary line.
    #[arg(long)]
    quiet: bool,
    /// Continue the run in this directory from its last checkpoint, with its config.yaml;
    /// `--set` may raise its budget or change its evaluation and checkpoint cadence.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["seed", "out", "config"])]
    resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// A model.pt, or a run directory holding one (default: the shipped model).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Use the run's model_best.pt (its best periodic evaluation) instead of model.pt.
    #[arg(long)]
    best: bool,
    /// Episodes to play.
    #[arg(long, default_value_t = 100)]
    episodes: usize,
    /// Seed of the evaluation envs (a run's own seed reproduces its final evaluation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// A model.pt, or a run directory holding one (default: the shipped model).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Use the run's model_best.pt (its best periodic evaluation) instead of model.pt.
    #[arg(long)]
    best: bool,
    /// The GIF to write.
    #[arg(long, default_value = "cartpole.gif")]
    out: PathBuf,
    /// Seed of the episode's initial state.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time limit of the episode.
    #[arg(long, default_value_t = 500)]
    max_steps: u32,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Train one config over several seeds; print env steps and seconds to solved.
    Solve(SolveArgs),
    /// Gradient updates per second and env steps per second of a config on a device.
    Throughput(ThroughputArgs),
}

#[derive(Debug, Args)]
struct SolveArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// How many seeds are trained, one after the other.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// The first of them: seeds FIRST_SEED..FIRST_SEED+SEEDS.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Where the runs go (default: runs/bench-solve/<experiment>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ThroughputArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seconds to time each phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
}

impl Cli {
    /// Runs the command; the exit code to use on success (non-zero after an interrupt).
    pub fn run(self) -> Result<i32> {
        match self.command {
            Command::Train(args) => train::train(args),
            Command::Eval(args) => play::eval(args).map(|()| 0),
            Command::Render(args) => play::render(args).map(|()| 0),
            Command::Bench(BenchCommand::Solve(args)) => bench::solve(args).map(|()| 0),
            Command::Bench(BenchCommand::Throughput(args)) => bench::throughput(args).map(|()| 0),
        }
    }
}

/// Writes one line to stdout.
fn print_line(args: fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// True when `err` comes from writing to a pipe whose reader has gone (`qnet ... | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
