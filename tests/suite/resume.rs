//! Runs survive interruption: SIGINT checkpoints and resumes exactly; after a SIGKILL at an
//! arbitrary instant the run resumes from its last checkpoint and still ends byte-identical
//! to the run that was never interrupted, records (metrics.csv, TensorBoard) included.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

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

/// Every learner option on at once: n-step returns, prioritized replay, a dueling head, a
/// learning-rate schedule, Polyak target updates, Double DQN, Huber loss.
const ALL_OPTIONS: &[&str] = &[
    "agent.n_step=3",
    "replay.prioritized=true",
    "replay.beta_steps=8000",
    "network.dueling=true",
    "optimizer.lr_schedule=linear",
    "optimizer.lr_end=1e-4",
    "optimizer.lr_decay_steps=10000",
    "agent.target_update_every=1",
    "agent.tau=0.05",
    "agent.double_dqn=true",
    "agent.loss=huber",
];

/// Trains `RUN` (and `extra`) uninterrupted into `dir`.
fn whole_run(dir: &Path, extra: &[&str]) {
    let overrides: Vec<&str> = RUN.iter().chain(extra).copied().collect();
    let output = run(&mut train_command(dir, &overrides));
    assert!(output.status.success(), "{:?}", text(&output));
}

/// Starts `RUN` (and `extra`) into `dir` and sends `signal` once `ready` holds.
fn interrupted_run(
    dir: &Path,
    extra: &[&str],
    signal: &str,
    ready: impl Fn() -> bool,
) -> std::process::Output {
    let overrides: Vec<&str> = RUN.iter().chain(extra).copied().collect();
    let child = train_command(dir, &overrides)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qnet");
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the run never got far enough"
        );
        sleep(Duration::from_millis(2));
    }
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait_with_output().expect("wait for qnet")
}

/// The finished runs in `a` and `b` are the same run.
fn assert_same_run(a: &Path, b: &Path) {
    let (x, y) = (metrics_without_wall_clock(a), metrics_without_wall_clock(b));
    if let Some((line, (p, q))) = x
        .lines()
        .zip(y.lines())
        .enumerate()
        .find(|(_, (p, q))| p != q)
    {
        panic!(
            "metrics.csv differs first at line {}: {p:?} vs {q:?}",
            line + 1
        );
    }
    assert_eq!(
        x.lines().count(),
        y.lines().count(),
        "metrics.csv lengths differ"
    );
    for file in [
        "model.safetensors",
        "model.pt",
        "model_best.safetensors",
        "model_best.pt",
    ] {
        let same = fs::read(a.join(file)).expect("a") == fs::read(b.join(file)).expect("b");
        assert!(same, "{file} differs");
    }
    let (s, t) = (summary(a), summary(b));
    for key in [
        "status",
        "env_steps",
        "gradient_updates",
        "episodes",
        "final_eval_mean",
        "solved_at_step",
        "best_eval_mean",
        "best_eval_step",
    ] {
        assert_eq!(s[key], t[key], "{key}");
    }
}

fn resume(dir: &Path) {
    let output = run(qnet().args(["train", "--quiet", "--resume"]).arg(dir));
    assert!(output.status.success(), "{:?}", text(&output));
}

#[test]
fn interrupted_and_resumed_equals_uninterrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = dir.path().join("whole");
    whole_run(&whole, &[]);

    // Interrupt the same run once its first checkpoint exists.
    let parts = dir.path().join("parts");
    let output = interrupted_run(&parts, &[], "-INT", || {
        parts.join("checkpoint.safetensors").exists()
    });
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

    resume(&parts);
    let resumed_rows = fs::read_to_string(parts.join("metrics.csv"))
        .expect("metrics.csv")
        .lines()
        .count();
    assert!(
        resumed_rows > interrupted_rows,
        "the resumed run added no rows"
    );
    assert_same_run(&whole, &parts);
    assert_tensorboard_matches_metrics(&whole);
    assert_tensorboard_matches_metrics(&parts);

    // A finished run cannot be resumed without a bigger budget.
    let output = run(qnet().args(["train", "--resume"]).arg(&parts));
    assert_clean_error(&output, &["already finished", "train.total_env_steps"]);
}

/// Rows reach the disk as training goes, whole lines only; a SIGKILL between checkpoints
/// loses them, and the resumed run cuts its records back to its checkpoint and ends exactly
/// like the uninterrupted run.
#[test]
fn killed_outright_and_resumed_equals_uninterrupted() {
    killed_and_resumed(&[]);
}

/// The same with every learner option on: n-step windows, priorities, the dueling head and
/// the schedules all survive the checkpoint.
#[test]
fn every_option_at_once_resumes_byte_identical() {
    killed_and_resumed(ALL_OPTIONS);
}

/// Acrobot-v1's envs (six-value observations, three actions, float64 state through RK4) and
/// its learner survive the checkpoint.
#[test]
fn acrobot_resumes_byte_identical() {
    killed_and_resumed(&["env.id=Acrobot-v1"]);
}

/// MountainCar-v0's envs and its 200-step time limit survive the checkpoint.
#[test]
fn mountaincar_resumes_byte_identical() {
    killed_and_resumed(&["env.id=MountainCar-v0", "agent.n_step=3"]);
}

fn killed_and_resumed(extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = dir.path().join("whole");
    whole_run(&whole, extra);
    let whole_rows = fs::read_to_string(whole.join("metrics.csv"))
        .expect("metrics.csv")
        .lines()
        .count();

    // Kill it once some checkpoint exists and rows beyond its first evaluation are on disk.
    let parts = dir.path().join("parts");
    let rows_on_disk = || {
        fs::read_to_string(parts.join("metrics.csv"))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    };
    let output = interrupted_run(&parts, extra, "-KILL", || {
        parts.join("checkpoint.safetensors").exists() && rows_on_disk() > whole_rows / 3
    });
    assert_eq!(output.status.code(), None, "SIGKILL ends it by signal");
    let csv = fs::read_to_string(parts.join("metrics.csv")).expect("metrics.csv");
    assert!(csv.ends_with('\n'), "a row was left half-written");
    assert!(!parts.join("summary.json").exists());

    resume(&parts);
    assert_same_run(&whole, &parts);
    assert_tensorboard_matches_metrics(&parts);
}

/// A CartPole run checkpointed by qnet 0.2, whose checkpoint stores the training envs as a
/// struct of arrays, resumes with a bigger budget to the run trained that long from the start.
/// `tests/fixtures/cartpole-run-0.2` is what qnet 0.2.0 left of `qnet train --config
/// configs/cartpole.yaml --set device=cpu --set seed=3 --set env.n_envs=2 --set
/// network.hidden=[8] --set replay.capacity=160 --set replay.learning_starts=100 --set
/// replay.batch_size=16 --set eval.every=300 --set eval.episodes=2 --set eval.final_episodes=2
/// --set eval.stop_when_solved=false --set train.total_env_steps=600`, less the files a resume
/// writes again.
#[test]
fn a_cartpole_checkpoint_of_qnet_0_2_resumes_byte_identical() {
    use qnet::run::checkpoint::training::{part, TrainingCheckpoint, FILE_NAME};

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cartpole-run-0.2");
    let loop_state = |dir: &Path| {
        let checkpoint = TrainingCheckpoint::load(&dir.join(FILE_NAME)).expect("checkpoint");
        checkpoint.parts[part::LOOP].state.clone()
    };
    assert!(
        loop_state(&fixture).contains(r#""x_dot":["#),
        "not the struct of arrays"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let resumed = dir.path().join("resumed");
    fs::create_dir(&resumed).expect("run directory");
    for entry in fs::read_dir(&fixture).expect("the fixture") {
        let path = entry.expect("a fixture file").path();
        let name = path.file_name().expect("a file name");
        fs::copy(&path, resumed.join(name)).expect("copy");
    }

    let output = run(qnet()
        .args(["train", "--quiet", "--resume"])
        .arg(&resumed)
        .args(["--set", "train.total_env_steps=1200"]));
    assert!(output.status.success(), "{:?}", text(&output));
    assert!(loop_state(&resumed).contains(r#""states":[["#));
    let direct = dir.path().join("direct");
    let output = run(qnet()
        .args(["train", "--quiet", "--config"])
        .arg(fixture.join("config.yaml"))
        .arg("--out")
        .arg(&direct)
        .args(["--set", "train.total_env_steps=1200"]));
    assert!(output.status.success(), "{:?}", text(&output));
    assert_same_run(&direct, &resumed);
    assert_eq!(summary(&resumed)["env_steps"], 1200);
}

/// A run killed before its first checkpoint starts again from step 0 on --resume.
#[test]
fn killed_before_any_checkpoint_starts_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = dir.path().join("whole");
    whole_run(&whole, &[]);
    let parts = dir.path().join("parts");
    let output = run(&mut train_command(&parts, RUN));
    assert!(output.status.success(), "{:?}", text(&output));
    // What a kill right after start leaves: config.yaml and some records, no checkpoint.
    for file in ["checkpoint.safetensors", "summary.json", "model.pt"] {
        fs::remove_file(parts.join(file)).expect("remove");
    }
    let output = run(qnet().args(["train", "--resume"]).arg(&parts));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("starting it again from step 0"), "{stdout}");
    assert_same_run(&whole, &parts);
    assert_tensorboard_matches_metrics(&parts);
}

/// `--resume --set` raises the budget of a finished run (which then equals a run trained
/// that long from the start) and changes cadences; any other key is refused by name.
#[test]
fn resume_takes_a_bigger_budget_and_refuses_other_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut short = RUN.to_vec();
    short.push("train.total_env_steps=4000");
    let continued = dir.path().join("continued");
    let output = run(&mut train_command(&continued, &short));
    assert!(output.status.success(), "{:?}", text(&output));

    let output = run(qnet()
        .args(["train", "--resume"])
        .arg(&continued)
        .args(["--set", "agent.gamma=0.9"]));
    assert_clean_error(&output, &["--set agent.gamma", "train.total_env_steps"]);

    let output = run(qnet()
        .args(["train", "--quiet", "--resume"])
        .arg(&continued)
        .args(["--set", "train.total_env_steps=8000"]));
    assert!(output.status.success(), "{:?}", text(&output));
    let mut long = RUN.to_vec();
    long.push("train.total_env_steps=8000");
    let direct = dir.path().join("direct");
    let output = run(&mut train_command(&direct, &long));
    assert!(output.status.success(), "{:?}", text(&output));
    assert_same_run(&direct, &continued);
    assert_eq!(summary(&continued)["env_steps"], 8000);
    let config = fs::read_to_string(continued.join("config.yaml")).expect("config.yaml");
    assert!(config.contains("total_env_steps: 8000"), "{config}");
    assert_tensorboard_matches_metrics(&continued);
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
    let mut config = qnet::platform::read::load_config(&path, &[]).expect("config.yaml loads");
    config.network.hidden = vec![7, 7];
    fs::write(&path, config.to_yaml().expect("yaml")).expect("edit config.yaml");
    let output = run(qnet().args(["train", "--resume"]).arg(&out));
    assert_clean_error(
        &output,
        &["config.yaml", "no longer matches the checkpoint's network"],
    );
}

/// A checkpoint whose loop state was edited so that its per-env parts no longer fit the run
/// (arrays of the wrong length, another time limit, missing episode returns or n-step
/// windows) is refused with an error naming the file and the part, and the run's records are
/// left as they were.
#[test]
fn a_checkpoint_with_a_broken_loop_state_is_refused_cleanly() {
    use qnet::run::checkpoint::training::{part, TrainingCheckpoint, FILE_NAME};

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut overrides = SHORT.to_vec();
    overrides.extend(["env.id=Acrobot-v1", "env.n_envs=2", "agent.n_step=3"]);
    let output = run(&mut train_command(&out, &overrides));
    assert!(output.status.success(), "{:?}", text(&output));
    let original = TrainingCheckpoint::load(&out.join(FILE_NAME)).expect("checkpoint");
    let metrics = fs::read(out.join("metrics.csv")).expect("metrics.csv");
    let summary = fs::read(out.join("summary.json")).expect("summary.json");
    let config = fs::read(out.join("config.yaml")).expect("config.yaml");

    // (the loop state's key whose first value is replaced, its new value, what the error
    // says). The state is edited as text: its RNGs hold 128-bit integers, which
    // serde_json::Value does not keep.
    let cases = [
        (
            "obs",
            "[0.0,0.0,0.0,0.0]",
            "the checkpoint's training envs are not whole",
        ),
        (
            "elapsed_steps",
            "[]",
            "the checkpoint's training envs are not whole",
        ),
        (
            "max_episode_steps",
            "7",
            "truncate episodes after 7 steps; the config's time limit is 500",
        ),
        (
            "episode_returns",
            "[]",
            "episode returns for 0 training envs; the config asks for 2",
        ),
        (
            "windows",
            "[]",
            "the checkpoint's n-step windows are for 0 envs; the config asks for 2",
        ),
    ];
    for (key, value, says) in cases {
        let mut checkpoint = original.clone();
        let loop_part = checkpoint.parts.get_mut(part::LOOP).expect("loop part");
        loop_part.state = with_value(&loop_part.state, key, value);
        checkpoint.save(&out.join(FILE_NAME)).expect("save");
        let output = run(qnet()
            .args(["train", "--quiet", "--resume"])
            .arg(&out)
            .args(["--set", "train.total_env_steps=6000"]));
        assert_clean_error(&output, &[FILE_NAME, says]);
        assert_eq!(fs::read(out.join("metrics.csv")).expect("metrics"), metrics);
        assert_eq!(
            fs::read(out.join("summary.json")).expect("summary"),
            summary
        );
        assert_eq!(fs::read(out.join("config.yaml")).expect("config"), config);
    }
}

/// A checkpoint whose best model's parameters do not fit the network is refused before
/// anything of the run is touched: config.yaml, model_best.*.
#[test]
fn a_checkpoint_whose_best_model_does_not_fit_is_refused_cleanly() {
    use qnet::run::checkpoint::training::{part, TrainingCheckpoint, FILE_NAME};

    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let output = run(&mut train_command(&out, SHORT));
    assert!(output.status.success(), "{:?}", text(&output));
    let mut checkpoint = TrainingCheckpoint::load(&out.join(FILE_NAME)).expect("checkpoint");
    let best = checkpoint.parts.get_mut(part::BEST).expect("best part");
    best.f32s.insert("params".to_owned(), vec![0.0; 10]);
    checkpoint.save(&out.join(FILE_NAME)).expect("save");
    let model_best = fs::read(out.join("model_best.safetensors")).expect("model_best");
    let config = fs::read(out.join("config.yaml")).expect("config.yaml");
    let output = run(qnet()
        .args(["train", "--quiet", "--resume"])
        .arg(&out)
        .args(["--set", "train.total_env_steps=6000"]));
    assert_clean_error(
        &output,
        &["the checkpoint's best model holds 10 parameters; the network has"],
    );
    assert_eq!(
        fs::read(out.join("model_best.safetensors")).expect("model_best"),
        model_best
    );
    // Refused before the new budget was written into the run's config.
    assert_eq!(fs::read(out.join("config.yaml")).expect("config"), config);
}

/// `json` with the value of the first `"key":` replaced by `value` (a number, or an array or
/// object, whose brackets are matched).
fn with_value(json: &str, key: &str, value: &str) -> String {
    let pattern = format!("\"{key}\":");
    let start = json.find(&pattern).expect("the key") + pattern.len();
    let rest = &json[start..];
    let mut depth = 0usize;
    let len = rest
        .char_indices()
        .find_map(|(i, c)| match c {
            '[' | '{' => {
                depth += 1;
                None
            }
            ']' | '}' if depth > 0 => {
                depth -= 1;
                (depth == 0).then_some(i + 1)
            }
            ',' | '}' if depth == 0 => Some(i),
            _ => None,
        })
        .expect("the value's end");
    format!("{}{value}{}", &json[..start], &rest[len..])
}
