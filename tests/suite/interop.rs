//! A trained run's model.pt and model.safetensors open in plain PyTorch and compute the
//! Q-values the Rust trainer's network computes; `qnet eval` and `qnet render` use them.

use std::fs;
use std::path::Path;

use crate::common::*;
use qnet::learn::qfunction;
use qnet::platform::read::load_config;
use qnet::run::checkpoint::training::{part, TrainingCheckpoint, FILE_NAME};
use tch::{Device, Kind, Tensor};

/// States spread over the range CartPole visits, and beyond.
const STATES: [[f32; 4]; 6] = [
    [0.0, 0.0, 0.0, 0.0],
    [0.01, -0.2, 0.03, 0.1],
    [-1.5, 0.7, -0.18, -1.2],
    [2.0, 1.0, 0.2, 2.5],
    [0.3, -0.4, -0.05, 0.6],
    [-0.02, 1.5, 0.1, -2.0],
];

/// Q-values of the trainer's own network (rebuilt from the training checkpoint's `array` of
/// `part`: the learner's `online` for model.*, the best model's `params` for model_best.*).
fn rust_q_values(run_dir: &Path, (part, array): (&str, &str)) -> Vec<Vec<f32>> {
    q_values_of(run_dir, (part, array), &STATES.concat(), 4)
}

/// [`rust_q_values`] of the flat `states` (`obs_dim` values each) of the run's environment.
fn q_values_of(
    run_dir: &Path,
    (part, array): (&str, &str),
    states: &[f32],
    obs_dim: i64,
) -> Vec<Vec<f32>> {
    let checkpoint = TrainingCheckpoint::load(&run_dir.join(FILE_NAME)).expect("checkpoint");
    let config = load_config(&run_dir.join("config.yaml"), &[]).expect("config");
    let env = qnet::env::resolve(&config.env).expect("env");
    let env = env.spec();
    let n_actions = env.n_actions as i64;
    assert_eq!(env.obs_dim as i64, obs_dim, "states of another environment");
    let net = qfunction::build(&config.network, obs_dim, n_actions, Device::Cpu).expect("network");
    let weights = checkpoint
        .part(part)
        .and_then(|p| p.f32s(array))
        .expect("weights in the checkpoint");
    net.load_flat(&Tensor::from_slice(weights))
        .expect("weights");
    let q = tch::no_grad(|| net.forward(&Tensor::from_slice(states).view([-1, obs_dim])));
    Vec::<Vec<f32>>::try_from(q.to_kind(Kind::Float)).expect("2-D")
}

/// Runs tests/python/check_interop.py on the run's `stem`.pt and `stem`.safetensors against
/// `expected` (written beside the run as `stem`.expected.json); asserts that it passed and
/// returns what it printed.
fn check_in_pytorch(run_dir: &Path, stem: &str, expected: &serde_json::Value) -> String {
    let expected_path = run_dir.with_file_name(format!("{stem}.expected.json"));
    fs::write(&expected_path, expected.to_string()).expect("write");
    let output = python_script("tests/python/check_interop.py")
        .arg(run_dir.join(format!("{stem}.pt")))
        .arg(run_dir.join(format!("{stem}.safetensors")))
        .arg(&expected_path)
        .output()
        .expect("run python");
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "{stem}: interop check failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// Trains `config` (a path in the repository) with `seed` and `overrides` on the CPU into
/// `out`.
fn train_on_cpu(out: &Path, config: &str, seed: u64, overrides: &[&str]) {
    let mut command = qnet();
    command
        .args(["train", "--quiet", "--device", "cpu", "--config", config])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(out);
    for set in overrides {
        command.args(["--set", set]);
    }
    let output = run(&mut command);
    assert!(output.status.success(), "{config}: {:?}", text(&output));
}

/// A run trained to its environment's threshold: its final evaluation reached it, its
/// model.pt (a dueling network) computes the trainer's Q-values on `states` in PyTorch, and
/// acting greedily in Gymnasium's own environment it averages the threshold over 100 episodes.
fn assert_solves_in_gymnasium(run_dir: &Path, states: &[f32]) {
    let config = load_config(&run_dir.join("config.yaml"), &[]).expect("config");
    let resolved = qnet::env::resolve(&config.env).expect("env");
    let env = resolved.spec();
    let threshold = env.reward_threshold.expect("a threshold");
    let s = summary(run_dir);
    assert!(
        s["final_eval_mean"]
            .as_f64()
            .is_some_and(|m| m >= threshold),
        "the {} run did not solve: {s}",
        env.id
    );
    let obs_dim = env.obs_dim as i64;
    let expected = serde_json::json!({
        "hidden": config.network.hidden,
        "activation": "relu",
        "head": "dueling",
        "states": states.chunks(env.obs_dim).collect::<Vec<_>>(),
        "q_values": q_values_of(run_dir, (part::LEARNER, "online"), states, obs_dim),
        "gymnasium_episodes": 100,
        "gymnasium_threshold": env.reward_threshold,
    });
    let stdout = check_in_pytorch(run_dir, "model", &expected);
    assert!(
        stdout.contains(&format!("Gymnasium {} mean return", env.id)),
        "{stdout}"
    );
}

#[test]
fn pytorch_reproduces_the_trained_network() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut overrides = SHORT.to_vec();
    overrides.push("network.hidden=[32,32]");
    overrides.push("network.dueling=false");
    let output = run(&mut train_command(&out, &overrides));
    assert!(output.status.success(), "{:?}", text(&output));

    // The final and the best model: the same formats, the same guarantees.
    for (stem, array) in [
        ("model", (part::LEARNER, "online")),
        ("model_best", (part::BEST, "params")),
    ] {
        let expected = serde_json::json!({
            "hidden": [32, 32],
            "activation": "relu",
            "states": STATES,
            "q_values": rust_q_values(&out, array),
        });
        let stdout = check_in_pytorch(&out, stem, &expected);
        assert!(stdout.contains("OK"), "{stdout}");
    }
}

/// A dueling model trained until it solves opens in PyTorch as the plain module docs/guide.md
/// shows, reproduces the trainer's Q-values, and plays Gymnasium's own CartPole-v1.
#[test]
fn a_trained_dueling_model_plays_gymnasiums_cartpole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let output = run(&mut train_command(
        &out,
        &[
            "device=cpu",
            "seed=13",
            "network.dueling=true",
            "eval.stop_when_solved=true",
        ],
    ));
    assert!(output.status.success(), "{:?}", text(&output));
    assert_solves_in_gymnasium(&out, &STATES.concat());
}

/// A model trained on Acrobot-v1 with `configs/acrobot.yaml` opens in PyTorch, reproduces the
/// trainer's Q-values (six-value observations, three actions), and reaches Gymnasium's
/// threshold in Gymnasium's own Acrobot-v1; `qnet render` draws it on Acrobot's 500x500 screen.
#[test]
fn a_trained_acrobot_model_plays_gymnasiums_acrobot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    train_on_cpu(&out, "configs/acrobot.yaml", 3, &[]);
    assert_solves_in_gymnasium(
        &out,
        &[
            1.0, 0.0, 1.0, 0.0, 0.0, 0.0, //
            0.9, 0.43589, -0.6, 0.8, 1.5, -3.0, //
            -1.0, 0.0, 0.0, 1.0, -2.0, 4.0,
        ],
    );
    let gif = dir.path().join("acrobot.gif");
    let output = run(qnet()
        .args(["render", "--checkpoint"])
        .arg(&out)
        .arg("--out")
        .arg(&gif));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("at 15 fps"), "{stdout}");
    let (screen, _, _) = decode_gif(&fs::read(&gif).expect("gif written"));
    assert_eq!(screen, (500, 500));
}

/// A model trained on MountainCar-v0 with `configs/mountaincar.yaml` (stopping once a solve is
/// confirmed) opens in PyTorch, reproduces the trainer's Q-values (two-value observations,
/// three actions), and reaches Gymnasium's threshold in Gymnasium's own MountainCar-v0.
#[test]
fn a_trained_mountaincar_model_plays_gymnasiums_mountaincar() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    train_on_cpu(
        &out,
        "configs/mountaincar.yaml",
        5,
        &["eval.stop_when_solved=true"],
    );
    // The start region, the left wall at rest, near the goal, and both velocity bounds.
    assert_solves_in_gymnasium(
        &out,
        &[
            -0.5, 0.0, //
            -1.2, 0.0, //
            0.45, 0.03, //
            -0.3, 0.07, //
            -0.9, -0.07,
        ],
    );
}

#[test]
fn eval_reproduces_the_final_evaluation_and_render_writes_a_gif() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut overrides = SHORT.to_vec();
    overrides.push("seed=2");
    let output = run(&mut train_command(&out, &overrides));
    assert!(output.status.success(), "{:?}", text(&output));
    let summary = summary(&out);

    // Same model, same seed, same episodes: the final evaluation again, through
    // model.safetensors and through model.pt.
    let mean = summary["final_eval_mean"].as_f64().expect("mean");
    for extra in [&[][..], &["--torchscript"][..]] {
        let output = run(qnet()
            .args(["eval", "--episodes", "10", "--seed", "2", "--device", "cpu"])
            .args(extra)
            .arg("--checkpoint")
            .arg(&out));
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains(&format!("mean {mean:.2} ")),
            "{extra:?}: {stdout} vs {mean}"
        );
    }

    let gif = dir.path().join("episode.gif");
    let output = run(qnet()
        .args(["render", "--max-steps", "60", "--checkpoint"])
        .arg(out.join("model.safetensors"))
        .arg("--out")
        .arg(&gif));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let (screen, _, _) = decode_gif(&fs::read(&gif).expect("gif written"));
    assert_eq!(screen, (600, 400));
}

#[test]
fn the_shipped_model_balances_for_500_steps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gif = dir.path().join("shipped.gif");
    // No --checkpoint: the shipped models/cartpole-dqn/model.safetensors.
    let output = run(qnet().arg("render").arg("--out").arg(&gif));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("500 steps, return 500"), "{stdout}");
    let output = run(qnet().args(["eval", "--episodes", "20"]));
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success() && stdout.contains("solved (mean >= 475)"),
        "{stdout}\n{stderr}"
    );
}

/// examples/analyze.py loads a run of each environment in plain PyTorch, checks that its two
/// model files agree, and plots its Q-values over that environment's plane of states.
#[test]
fn the_analysis_example_plots_a_run_of_each_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (env, actions) in [
        ("CartPole-v1", "left"),
        ("Acrobot-v1", "torque +1"),
        ("MountainCar-v0", "push right"),
    ] {
        let out = dir.path().join(env);
        let mut overrides = SHORT.to_vec();
        let id = format!("env.id={env}");
        overrides.extend([id.as_str(), "train.total_env_steps=1000"]);
        let output = run(&mut train_command(&out, &overrides));
        assert!(output.status.success(), "{env}: {:?}", text(&output));
        let output = python_script("examples/analyze.py")
            .arg(&out)
            .output()
            .expect("run python");
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{env}: {stdout}\n{stderr}");
        assert!(
            stdout.contains("model.pt and model.safetensors agree.")
                && stdout.contains("greedy action: "),
            "{env}: {stdout}"
        );
        assert!(stdout.contains(actions), "{env}: {stdout}");
        assert!(out.join("q_values.png").is_file(), "{env}: no plot");
    }
}
