//! Helpers shared by the integration tests that drive the `qnet` binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `qnet` run from the crate root (so `configs/...` resolve), on the CPU.
pub fn qnet() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qnet"));
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    command
}

/// Overrides that make a default-config run short: a few thousand steps, small evals.
pub const SHORT: &[&str] = &[
    "device=cpu",
    "train.total_env_steps=3000",
    "replay.learning_starts=500",
    "eval.every=1000",
    "eval.episodes=5",
    "eval.final_episodes=10",
    "eval.stop_when_solved=false",
];

/// Overrides that make a sweep's runs short: a few hundred updates each.
pub const TINY: &[&str] = &[
    "device=cpu",
    "train.total_env_steps=1500",
    "replay.learning_starts=300",
    "eval.every=500",
    "eval.episodes=5",
    "eval.final_episodes=5",
    "eval.stop_when_solved=false",
];

/// `qnet train --config configs/cartpole.yaml --quiet --out DIR` plus `--set` for each override.
pub fn train_command(out: &Path, overrides: &[&str]) -> Command {
    let mut command = qnet();
    command.args([
        "train",
        "--config",
        "configs/cartpole.yaml",
        "--quiet",
        "--out",
    ]);
    command.arg(out);
    for set in overrides {
        command.args(["--set", set]);
    }
    command
}

/// Runs a command, returning its output; panics only if it could not start.
pub fn run(command: &mut Command) -> Output {
    command.output().expect("qnet could not be started")
}

/// Stdout and stderr as text.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Asserts a failed run with a one-paragraph error containing every `needle`, no panic.
pub fn assert_clean_error(output: &Output, needles: &[&str]) {
    let (stdout, stderr) = text(output);
    assert!(
        !output.status.success(),
        "expected failure, got success\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "panic instead of an error: {stderr}"
    );
    assert!(stderr.starts_with("error: "), "unexpected stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

/// metrics.csv without its wall-clock column (the last one).
pub fn metrics_without_wall_clock(run_dir: &Path) -> String {
    let csv = fs::read_to_string(run_dir.join("metrics.csv")).expect("metrics.csv");
    csv.lines()
        .map(|line| line.rsplit_once(',').map_or(line, |(head, _)| head))
        .collect::<Vec<_>>()
        .join("\n")
}

/// summary.json as JSON.
pub fn summary(run_dir: &Path) -> serde_json::Value {
    let text = fs::read_to_string(run_dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The venv python used for PyTorch interop checks: `QNET_PYTHON`, else `.venv/bin/python`.
pub fn python() -> PathBuf {
    let path = std::env::var_os("QNET_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "python with torch and safetensors not found at {} (set QNET_PYTHON or run \
         ./scripts/setup.sh to create .venv)",
        path.display()
    );
    path
}

/// The logical screen size, frame count and per-frame delays (hundredths) of a GIF.
pub fn decode_gif(gif: &[u8]) -> ((u16, u16), usize, Vec<u16>) {
    let mut decoder = gif::DecodeOptions::new()
        .read_info(gif)
        .expect("a GIF header");
    let size = (decoder.width(), decoder.height());
    let mut delays = Vec::new();
    while let Some(frame) = decoder.read_next_frame().expect("a GIF frame") {
        delays.push(frame.delay);
    }
    (size, delays.len(), delays)
}

/// A command that runs `script` (a path in the repository) with [`python`].
pub fn python_script(script: &str) -> Command {
    let mut command = Command::new(python());
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(script));
    command
}

/// The TensorBoard scalars a run's metrics.csv implies, as check_tensorboard.py's
/// EXPECTED_JSON: per tag, every `[env_step, value]` in file order.
pub fn expected_scalars(run_dir: &Path) -> serde_json::Value {
    let csv = fs::read_to_string(run_dir.join("metrics.csv")).expect("metrics.csv");
    let mut tags: std::collections::BTreeMap<&str, Vec<serde_json::Value>> = Default::default();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let step: u64 = f[1].parse().expect("env_step");
        let number = |i: usize| -> f64 { f[i].parse().expect("a number") };
        let mut push = |tag, value: f64| {
            // JSON has no NaN or infinity; check_tensorboard.py reads them as strings.
            let value = match value {
                v if v.is_nan() => serde_json::json!("NaN"),
                v if v == f64::INFINITY => serde_json::json!("Infinity"),
                v if v == f64::NEG_INFINITY => serde_json::json!("-Infinity"),
                v => serde_json::json!(v),
            };
            tags.entry(tag)
                .or_default()
                .push(serde_json::json!([step, value]));
        };
        match f[0] {
            "train" => {
                push("train/episode_return", number(3));
                push("train/episode_length", number(4));
                push("train/epsilon", number(5));
                if !f[6].is_empty() {
                    push("train/loss", number(6));
                    push("train/mean_q", number(7));
                }
            }
            "eval" => {
                push("eval/mean_return", number(8));
                push("eval/std_return", number(9));
                push("perf/env_steps_per_second", step as f64 / number(12));
            }
            "final_eval" => {
                push("final_eval/mean_return", number(8));
                push("final_eval/std_return", number(9));
            }
            other => panic!("unknown row kind {other}"),
        }
    }
    serde_json::json!(tags)
}

/// TensorBoard's EventAccumulator reads exactly the scalars of the run's metrics.csv.
pub fn assert_tensorboard_matches_metrics(run_dir: &Path) {
    let expected = run_dir.with_extension("expected-scalars.json");
    fs::write(&expected, expected_scalars(run_dir).to_string()).expect("write expected");
    let output = python_script("tests/python/check_tensorboard.py")
        .arg("scalars")
        .arg(run_dir)
        .arg(&expected)
        .output()
        .expect("python runs");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}

/// Sends signal `name` (e.g. `-INT`) to `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([name, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}
