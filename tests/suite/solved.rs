//! What "solved" means: an environment's reward threshold, judged only under a time limit at
//! least its registered one. Acrobot-v1 and MountainCar-v0 reward -1 a step, so under a
//! shorter limit every policy would reach it.

use std::fs;

use crate::common::*;

/// `qnet train` of configs/acrobot.yaml, briefly, with `overrides`, into `out`.
fn train_acrobot(out: &std::path::Path, overrides: &[&str]) -> std::process::Output {
    let mut command = qnet();
    command
        .args([
            "train",
            "--config",
            "configs/acrobot.yaml",
            "--quiet",
            "--out",
        ])
        .arg(out);
    for set in [
        "device=cpu",
        "train.total_env_steps=2000",
        "replay.learning_starts=500",
        "eval.every=500",
        "eval.episodes=5",
        "eval.final_episodes=10",
    ]
    .iter()
    .chain(overrides)
    {
        command.args(["--set", set]);
    }
    run(&mut command)
}

#[test]
fn acrobot_under_a_one_step_limit_does_not_claim_solved() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("short");

    // Stopping when solved needs a verdict: refused, naming both keys.
    let output = train_acrobot(&out, &["env.max_episode_steps=1"]);
    assert_clean_error(
        &output,
        &[
            "eval.stop_when_solved needs a solved verdict",
            "env.max_episode_steps 1 is shorter than Acrobot-v1's registered time limit of 500",
            "set eval.stop_when_solved: false",
        ],
    );
    assert!(!out.exists());

    let output = train_acrobot(
        &out,
        &["env.max_episode_steps=1", "eval.stop_when_solved=false"],
    );
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // Every evaluation returns -1, far above the threshold of -100, and none is a verdict.
    assert!(
        stdout.contains("final eval -1.0 ± 0.0 over 10 episodes (no verdict); solved not judged: env.max_episode_steps 1 is shorter"),
        "{stdout}"
    );
    let summary = summary(&out);
    for field in [
        "final_eval_solved",
        "solved_at_step",
        "solved_at_seconds",
        "confirmed_at_step",
    ] {
        assert!(summary[field].is_null(), "{field}: {summary}");
    }
    assert_eq!(summary["final_eval_mean"], -1.0);
    assert!(
        summary["solved_not_judged"]
            .as_str()
            .is_some_and(|why| why.contains("registered time limit of 500")),
        "{summary}"
    );
    let evals = fs::read_to_string(out.join("metrics.csv"))
        .expect("metrics.csv")
        .lines()
        .filter(|line| line.starts_with("eval,"))
        .count();
    assert_eq!(evals, 4, "the evaluations still run and are recorded");

    // The report leaves the run out of success rates, and says why.
    let output = run(qnet()
        .arg("report")
        .arg(&out)
        .args(["--reps", "100", "--out"])
        .arg(dir.path()));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("| `acrobot` | 1/1 | -1.0 [-1.0, -1.0] | -1.0 [-1.0, -1.0] | -1.0 [-1.0, -1.0] | - | - | - | - |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Left out of success rates and steps to solve"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(dir.path().join("report.json")).expect("report.json"),
    )
    .expect("JSON");
    assert!(report["groups"][0]["stats"]["success_rate"].is_null());
}

#[test]
fn at_the_registered_limit_solved_is_judged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("full");
    let output = train_acrobot(&out, &["eval.stop_when_solved=false"]);
    assert!(output.status.success(), "{:?}", text(&output));
    let summary = summary(&out);
    assert!(summary["final_eval_solved"].is_boolean(), "{summary}");
    assert!(summary.get("solved_not_judged").is_none(), "{summary}");
}
