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
mod report;
mod sweep;
mod train;

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

/// Deep Q-Networks on CartPole-v1, in Rust on libtorch.
#[derive(Debug, Parser)]
#[command(name = "qnet", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a Q-network from a YAML experiment (or resume an interrupted run).
    Train(TrainArgs),
    /// Evaluate a saved model greedily and print mean, std, min, max.
    Eval(EvalArgs),
    /// Play one greedy episode of a saved model and write it as an animated GIF.
    Render(RenderArgs),
    /// Train one experiment over a grid of settings and a range of seeds, locally on worker
    /// processes or as a Slurm job array; run again, it skips what is done.
    Sweep(SweepArgs),
    /// Statistics across runs (IQM, medians, success rates with bootstrap CIs, probability of
    /// improvement), grouped by setting: report.md/.csv/.json and learning_curves.svg.
    Report(ReportArgs),
    /// Measurements: time to solve over several seeds, or raw throughput.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// (internal) A local sweep's worker process: runs the jobs it is sent on stdin.
    #[command(hide = true)]
    SweepWorker,
    /// (internal) One Slurm array task: runs its share of a sweep's jobs.
    #[command(hide = true)]
    SweepTask(SweepTaskArgs),
}

/// Where an experiment comes from: a YAML file plus overrides.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Experiment YAML [default: configs/cartpole.yaml, here or in the qnet checkout].
    /// configs/reference.yaml lists every key with its default, meaning and range.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a key by its dotted path, e.g. --set agent.gamma=0.95 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Device: auto, cpu, cuda or cuda:N (overrides the config's `device`).
    #[arg(long)]
    device: Option<String>,
}

/// The experiment `qnet train`, `qnet sweep` and `qnet bench` use without `--config`.
const DEFAULT_CONFIG: &str = "configs/cartpole.yaml";

impl ConfigArgs {
    /// `--config`, or the default experiment: from the working directory, else from the
    /// checkout qnet was built in.
    fn path(&self) -> Result<PathBuf> {
        if let Some(path) = &self.config {
            return Ok(path.clone());
        }
        let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG);
        [PathBuf::from(DEFAULT_CONFIG), checkout.clone()]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no --config given, and the default experiment {DEFAULT_CONFIG} is neither \
                     in this directory nor at {}: pass --config FILE (the configs/ directory \
                     of the qnet repository holds the experiments, and reference.yaml every key)",
                    checkout.display()
                )
            })
    }

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
    /// Print only the run directory and the closing lines.
    #[arg(long)]
    quiet: bool,
    /// Continue the run in this directory from its last checkpoint, with its config.yaml;
    /// `--set` may raise its budget or change its evaluation and checkpoint cadence.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["seed", "out", "config"])]
    resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
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

/// Which model `qnet eval` and `qnet render` play.
#[derive(Debug, Args)]
struct ModelArgs {
    /// A run directory, or a model file in one (default: the shipped model). Its
    /// model.safetensors is read: data only, safe whoever made it.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Use the run's best periodic evaluation's model (model_best.*) instead of the final one.
    #[arg(long)]
    best: bool,
    /// Load the TorchScript model.pt instead. Loading TorchScript runs the code the file
    /// holds, as Python's torch.jit.load does: use it only on files you trust.
    #[arg(long)]
    torchscript: bool,
    /// The environment to play a model whose file does not name one (TorchScript made
    /// outside qnet): CartPole-v1, Acrobot-v1 or MountainCar-v0. A model that names another
    /// is refused.
    #[arg(long, value_name = "ENV_ID")]
    env: Option<crate::config::EnvId>,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The GIF to write (`-` for standard output) [default: the environment's name:
    /// cartpole.gif, acrobot.gif or mountaincar.gif]. An existing file is replaced; anything
    /// else (a link, a device, a FIFO) is refused.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the episode's initial state.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time limit of the episode (1..=100000: every frame is kept until the GIF is written)
    /// [default: the environment's registered limit: 500 for CartPole-v1 and Acrobot-v1, 200
    /// for MountainCar-v0].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_steps: Option<u32>,
}

#[derive(Debug, Args)]
struct SweepArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// A key and the values it takes, e.g. --grid optimizer.lr=1e-3,3e-3 or
    /// --grid network.hidden=[64,64],[128,128] (repeatable: the grid is their product).
    #[arg(long = "grid", value_name = "KEY=V1,V2,...")]
    grid: Vec<String>,
    /// A YAML file whose `grid:` section maps keys to lists of values (after --grid).
    #[arg(long, value_name = "FILE")]
    grid_file: Option<PathBuf>,
    #[command(flatten)]
    seeds: SeedArgs,
    /// The sweep directory: OUT/<setting>/seed<N>/ per run, OUT/jobs.txt.
    #[arg(long)]
    out: PathBuf,
    /// Worker processes, each training one run at a time on one libtorch thread (default:
    /// one per core).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: Option<u64>,
    /// Train again the runs that failed before (they are skipped otherwise).
    #[arg(long)]
    retry_failed: bool,
    /// Print only the final tally.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    slurm: SlurmArgs,
}

/// Which seeds every setting trains.
#[derive(Debug, Clone, Copy, Args)]
struct SeedArgs {
    /// How many seeds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// The first of them: seeds FIRST_SEED..FIRST_SEED+SEEDS.
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// The most runs (settings x seeds) to start; a larger sweep is refused with an estimate
    /// of the disk it would use.
    #[arg(long, default_value_t = crate::many::sweep::DEFAULT_MAX_RUNS)]
    max_runs: u64,
}

#[derive(Debug, Args)]
struct SlurmArgs {
    /// Write OUT/sweep.sbatch, a Slurm job array over the runs, instead of running them here.
    #[arg(long)]
    slurm: bool,
    /// Submit OUT/sweep.sbatch with sbatch and print the job id (implies --slurm).
    #[arg(long)]
    submit: bool,
    /// With --submit: wait until the array has left the queue, then tally the runs.
    #[arg(long, requires = "submit")]
    wait: bool,
    /// Runs per array task, one after another in one process.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    runs_per_task: u64,
    /// Array tasks running at once (sbatch's --array=...%N).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_concurrent: Option<u32>,
    /// CPUs per array task.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_task: u32,
    /// Time limit per array task (Slurm's --time: MM, HH:MM:SS, D-HH:MM:SS, ...).
    #[arg(long, default_value = "01:00:00")]
    time: String,
    /// Slurm partition (default: the cluster's default partition).
    #[arg(long)]
    partition: Option<String>,
}

#[derive(Debug, Args)]
struct SweepTaskArgs {
    /// The sweep directory.
    #[arg(long)]
    out: PathBuf,
    /// This task's index (SLURM_ARRAY_TASK_ID).
    #[arg(long)]
    task: u64,
    /// Runs per task.
    #[arg(long)]
    runs_per_task: u64,
    /// Train again the runs that failed before.
    #[arg(long)]
    retry_failed: bool,
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Run directories, or directories holding them (sweeps), mixed.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Compare every other setting with this one (a name the report prints); without it,
    /// every pair is compared when there are at most 4 settings.
    #[arg(long)]
    baseline: Option<String>,
    /// Where report.md, report.csv, report.json and learning_curves.svg go (default: the
    /// first directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Bootstrap replicates per confidence interval.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(100..))]
    reps: u64,
    /// Seed of the bootstrap, so a report is reproducible.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Train one config over several seeds; print env steps and seconds to solved.
    Solve(SolveArgs),
    /// Gradient updates per second and env steps per second of a config on a device.
    Throughput(ThroughputArgs),
    /// Env steps per second of a config's environment alone (`env.n_envs` envs, stepped as
    /// training steps them), with a fixed pattern of actions.
    Env(ThroughputArgs),
}

#[derive(Debug, Args)]
struct SolveArgs {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    seeds: SeedArgs,
    /// Where the runs go (default: runs/bench-solve/<experiment>/<UTC time>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs trained at once (default 1: one after the other, so timings do not share cores).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    jobs: u64,
}

#[derive(Debug, Args)]
struct ThroughputArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Seconds to time each phase (more than 0, at most 3600).
    #[arg(long, default_value_t = 3.0, value_parser = bench::phase_seconds)]
    seconds: f64,
}

impl Cli {
    /// Runs the command; the exit code to use on success (non-zero after an interrupt).
    fn run(self) -> Result<i32> {
        match self.command {
            Command::Train(args) => train::train(args),
            Command::Eval(args) => play::eval(args).map(|()| 0),
            Command::Render(args) => play::render(args).map(|()| 0),
            Command::Sweep(args) => sweep::sweep(args),
            Command::Report(args) => report::report(args).map(|()| 0),
            Command::Bench(BenchCommand::Solve(args)) => bench::solve(args),
            Command::Bench(BenchCommand::Throughput(args)) => bench::throughput(args).map(|()| 0),
            Command::Bench(BenchCommand::Env(args)) => bench::env(args).map(|()| 0),
            Command::SweepWorker => {
                crate::many::worker::serve(io::stdin().lock(), io::stdout().lock())?;
                Ok(0)
            }
            Command::SweepTask(args) => sweep::task(args),
        }
    }
}

/// qnet's command line, as the `qnet` binary runs it: parses the process's arguments, runs
/// the command, and turns any error into one message and an exit code. A program that uses
/// qnet as a library calls it after registering environments of its own
/// ([`crate::env::register`]), and is then a `qnet` that knows them.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// [`main`] with `args` (the program's name first) in place of the process's arguments.
pub fn main_from(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    // Past a file-size limit (`ulimit -f`, which batch systems set) the kernel sends SIGXFSZ,
    // whose default action kills the process without a word. Ignored, the write fails with
    // EFBIG instead, and the error names the file.
    // SAFETY: setting a signal's disposition to SIG_IGN runs no handler code and touches no
    // memory of this program.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // Usage, --help and --version, as clap prints them.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    // A panic (libtorch reports some failures, such as an allocation it cannot make, as one
    // through tch) ends as one error line, like any other error: no backtrace.
    panic::set_hook(Box::new(|_| {}));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| cli.run()));
    let message = match outcome {
        Ok(Ok(code)) => return ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // Output piped into `head` and the like: stop quietly, as ripgrep does.
        Ok(Err(err)) if is_broken_pipe(&err) => return ExitCode::SUCCESS,
        Ok(Err(err)) => format!("{err:#}"),
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            format!("qnet failed unexpectedly (inside libtorch or qnet): {text}")
        }
    };
    let _ = writeln!(io::stderr(), "error: {message}");
    ExitCode::FAILURE
}

/// Writes one line to stdout; an error says it was standard output that failed (a full disk
/// behind `> file`), beside the error of the files qnet names itself.
fn print_line(args: fmt::Arguments<'_>) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .context("writing to standard output")
}

/// True when `err` comes from writing to a pipe whose reader has gone (`qnet ... | head`).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
