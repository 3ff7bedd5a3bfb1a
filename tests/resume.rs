//! Interrupting a run (SIGINT) and resuming it ends exactly where the uninterrupted run ends.

mod common;

use std::fs;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

/// Long enough to be interrupted mid-run, with checkpoints along the way.
const RUN: &[&str] = &[
    "device=cpu",
    "seed=5",
    "train.total_env_steps=12000",
    "replay.learning_starts=500",
    "eval.every=2000",
    "eval.episodes=5",
    "eval.final_episodes=10",
    "eval.stop_when_solved=false",
    "checkpoint.every=1000",
];

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = dir.path().join("whole");
    let output = run(&mut train_command(&whole, RUN));
    assert!(output.status.success(), "{:?}", text(&output));

    // Start the same run, interrupt it once its first checkpoint exists.
    let parts = dir.path().join("parts");
    let child = train_command(&parts, RUN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qnet");
    let start = Instant::now();
    while !parts.join("checkpoint.safetensors").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        sleep(Duration::from_millis(5));
    }
    // SAFETY-free: kill(1) sends SIGINT like Ctrl-C would.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait for qnet");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("--resume"), "{stdout}");
    assert!(
        !parts.join("summary.json").exists(),
        "an interrupted run has no summary"
    );
    let interrupted_rows = fs::read_to_string(parts.join("metrics.csv"))
        .expect("metrics.csv written at the interrupt")
        .lines()
        .count();

    let output = run(qnet().args(["train", "--quiet", "--resume"]).arg(&parts));
    assert!(output.status.success(), "{:?}", text(&output));
    let resumed_rows = fs::read_to_string(parts.join("metrics.csv"))
        .expect("metrics.csv")
        .lines()
        .count();
    assert!(
        resumed_rows > interrupted_rows,
        "the resumed run added no rows"
    );

    let (a, b) = (
        metrics_without_wall_clock(&whole),
        metrics_without_wall_clock(&parts),
    );
    if let Some((line, (x, y))) = a
        .lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
    {
        panic!(
            "metrics.csv differs first at line {}: {x:?} vs {y:?}",
            line + 1
        );
    }
    assert_eq!(
        a.lines().count(),
        b.lines().count(),
        "metrics.csv lengths differ"
    );
    for file in ["model.safetensors", "model.pt"] {
        let same = fs::read(whole.join(file)).expect("whole")
            == fs::read(parts.join(file)).expect("parts");
        assert!(same, "{file} differs");
    }
    let (a, b) = (summary(&whole), summary(&parts));
    for key in [
        "env_steps",
        "gradient_updates",
        "episodes",
        "final_eval_mean",
        "solved_at_step",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }

    // A finished run cannot be resumed.
    let output = run(qnet().args(["train", "--resume"]).arg(&parts));
    assert_clean_error(&output, &["already finished"]);
}

#[test]
fn resume_refuses_a_config_whose_network_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut overrides = RUN.to_vec();
    overrides.push("train.total_env_steps=2000");
    let output = run(&mut train_command(&out, &overrides));
    assert!(output.status.success(), "{:?}", text(&output));
    // The network check comes before any other: edit hidden, expect it named.
    let path = out.join("config.yaml");
    let mut config = qnet::config::Config::load(&path, &[]).expect("config.yaml loads");
    config.network.hidden = vec![7, 7];
    fs::write(&path, config.to_yaml().expect("yaml")).expect("edit config.yaml");
    let output = run(qnet().args(["train", "--resume"]).arg(&out));
    assert_clean_error(
        &output,
        &["config.yaml", "no longer matches the checkpoint's network"],
    );
}
