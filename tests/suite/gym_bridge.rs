//! The Gymnasium bridge: against a plain Gymnasium loop (the same seeds and actions give the
//! same transitions, bit for bit, in one worker process or several), a user's environment
//! trained with every feature, the failures it must report, and the code it must not run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use qnet::env::env_seed;
use qnet::env::gym::{python, GymEnvs, GymMake};

use crate::common::*;

/// The interpreter the bridge uses, if it has Gymnasium; `QNET_REQUIRE_GYM=1` turns its
/// absence into a failure.
pub fn gym_python() -> Option<PathBuf> {
    let python = python();
    let has_gym = std::process::Command::new(&python)
        .args(["-c", "import gymnasium"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_gym {
        return Some(python);
    }
    let why = format!("{} cannot import gymnasium", python.display());
    assert!(
        std::env::var_os("QNET_REQUIRE_GYM").is_none(),
        "QNET_REQUIRE_GYM is set but {why}"
    );
    eprintln!("skipped: {why} (run ./scripts/setup.sh, or set QNET_PYTHON)");
    None
}

fn make(id: &str) -> GymMake {
    GymMake {
        id: id.to_owned(),
        kwargs: Default::default(),
        wrappers: Vec::new(),
        max_episode_steps: None,
        timeout: Duration::from_secs(60),
    }
}

fn floats(value: &serde_json::Value) -> Vec<f32> {
    value
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect()
}

#[test]
fn the_bridge_steps_as_a_plain_gymnasium_loop() {
    let Some(python) = gym_python() else { return };
    let (n, steps, seed) = (3usize, 260usize, 7u64);
    let seeds: Vec<String> = (0..n).map(|i| env_seed(seed, i).to_string()).collect();
    let output = std::process::Command::new(&python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/gym_loop.py"))
        .args(["CartPole-v1", &steps.to_string()])
        .args(&seeds)
        .output()
        .expect("python runs");
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    for processes in [1, 2] {
        let mut envs = GymEnvs::new(&python, &make("CartPole-v1"), n, processes, seed, None);
        let first: Vec<f32> = records[0]["obs"]
            .as_array()
            .expect("obs")
            .iter()
            .flat_map(floats)
            .collect();
        assert_eq!(envs.reset_all().expect("reset"), first.as_slice());
        let mut ended = 0;
        for (t, record) in records[1..].iter().enumerate() {
            let actions: Vec<i64> = (0..n).map(|i| ((t * 7 + i * 3) % 2) as i64).collect();
            envs.step(&actions).expect("step");
            let obs: Vec<f32> = record["obs"]
                .as_array()
                .expect("obs")
                .iter()
                .flat_map(floats)
                .collect();
            assert_eq!(
                envs.obs(),
                obs.as_slice(),
                "step {t}, {processes} processes"
            );
            for i in 0..n {
                assert_eq!(
                    envs.rewards()[i],
                    record["reward"][i].as_f64().expect("r") as f32
                );
                assert_eq!(envs.terminated()[i], record["terminated"][i] == true);
                assert_eq!(envs.truncated()[i], record["truncated"][i] == true);
                if !record["final"][i].is_null() {
                    ended += 1;
                    assert_eq!(
                        &envs.final_obs()[i * 4..(i + 1) * 4],
                        floats(&record["final"][i]).as_slice()
                    );
                }
            }
        }
        assert!(
            ended > 3,
            "the loop should end several episodes, ended {ended}"
        );
    }
}

/// `qnet` with the test environments' module (`tests/python/qnet_test_envs.py`) on the path.
fn qnet_with_test_envs() -> Command {
    let mut command = qnet();
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    command.env("PYTHONPATH", folder);
    command
}

/// Overrides of a short run of the test environment `name` (`Match`, `Raises`, ...).
fn test_env(name: &str) -> Vec<String> {
    [
        format!("env.id=gym:qnet_test_envs:QnetTest/{name}-v0"),
        "device=cpu".to_owned(),
        "train.total_env_steps=3000".to_owned(),
        "replay.learning_starts=200".to_owned(),
        "exploration.decay_steps=1000".to_owned(),
        "eval.every=1000".to_owned(),
        "eval.episodes=10".to_owned(),
        "eval.final_episodes=20".to_owned(),
        "eval.stop_when_solved=false".to_owned(),
    ]
    .to_vec()
}

fn with_sets(command: &mut Command, sets: &[String]) {
    for set in sets {
        command.args(["--set", set]);
    }
}

#[test]
fn a_python_module_on_the_path_trains_with_every_feature() {
    if gym_python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let mut sets = test_env("Match");
    sets.extend(["env.n_envs=4".to_owned(), "env.processes=2".to_owned()]);
    let mut train = qnet_with_test_envs();
    train.args(["train", "--quiet", "--out"]).arg(&run_dir);
    with_sets(&mut train, &sets);
    let output = run(&mut train);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    // It learned the task: a perfect policy returns 20, a random one 10.
    let s = summary(&run_dir);
    let mean = s["final_eval_mean"].as_f64().expect("a final evaluation");
    assert!(mean >= 18.0, "final mean {mean}: {s}");
    assert_eq!(s["final_eval_solved"], true, "{s}");
    assert_eq!(
        s["env"]["id"], "gym:qnet_test_envs:QnetTest/Match-v0",
        "{s}"
    );
    assert_eq!(s["env"]["reward_threshold"], 19.0, "{s}");
    assert_tensorboard_matches_metrics(&run_dir);

    // The model names its environment, and plays it again through the bridge.
    let output = run(qnet_with_test_envs()
        .args(["eval", "--episodes", "10", "--checkpoint"])
        .arg(&run_dir));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("over 10 episodes") && stdout.contains("solved (mean >= 19)"),
        "{stdout}"
    );

    // Resumed with a larger budget: the learner and replay continue, the episodes restart.
    let output = run(qnet_with_test_envs()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .args(["--set", "train.total_env_steps=4000"]));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("their episodes start anew"), "{stdout}");
    assert_eq!(summary(&run_dir)["env_steps"], 4000);

    // Reports read it without starting Python.
    let output = run(qnet()
        .env("QNET_PYTHON", "/nonexistent/python")
        .args(["report", "--reps", "200"])
        .arg(&run_dir));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report = fs::read_to_string(run_dir.join("report.md")).expect("report.md");
    assert!(report.contains("final return >= 19"), "{report}");
}

#[test]
fn render_draws_a_gymnasium_environment_with_its_own_renderer() {
    if gym_python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let output = run(&mut train_command(
        &run_dir,
        &[
            "env.id=gym:CartPole-v1",
            "device=cpu",
            "train.total_env_steps=600",
            "replay.learning_starts=200",
            "eval.every=0",
            "eval.final_episodes=5",
            "eval.stop_when_solved=false",
        ],
    ));
    assert!(output.status.success(), "{:?}", text(&output));
    let gif = dir.path().join("episode.gif");
    let output = run(qnet()
        .args(["render", "--max-steps", "30", "--checkpoint"])
        .arg(&run_dir)
        .arg("--out")
        .arg(&gif));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let ((width, height), frames, delays) = decode_gif(&fs::read(&gif).expect("the GIF"));
    // Gymnasium's CartPole renders 600x400 at 50 frames per second.
    assert_eq!((width, height), (600, 400));
    assert!((2..=31).contains(&frames), "{frames} frames");
    assert!(delays.iter().all(|&d| d == 2), "{delays:?}");
}

#[test]
fn failures_name_the_environment_and_the_cause() {
    if gym_python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec!["env.id=gym:NoSuchEnv-v0".to_owned()],
            vec!["gym:NoSuchEnv-v0", "NameNotFound"],
        ),
        (
            vec!["env.id=gym:no_such_module:Thing-v0".to_owned()],
            vec!["gym:no_such_module:Thing-v0", "ModuleNotFoundError"],
        ),
        (
            vec!["env.id=gym:Pendulum-v1".to_owned()],
            vec!["gym:Pendulum-v1 cannot be trained", "action space", "Box"],
        ),
        (test_env("DictObs"), vec!["observation space", "Dict"]),
        (
            test_env("NoLimit"),
            vec!["registers no time limit", "env.max_episode_steps"],
        ),
        (
            test_env("Raises"),
            vec![
                "raised ValueError during step: boom at step 5",
                "qnet_test_envs.py",
            ],
        ),
        (
            test_env("Dies"),
            vec!["QnetTest/Dies-v0", "exited with status 3"],
        ),
        (
            {
                let mut sets = test_env("Hangs");
                sets.push("env.timeout_seconds=2".to_owned());
                sets
            },
            vec!["QnetTest/Hangs-v0", "did not answer within 2 s"],
        ),
    ];
    for (index, (sets, needles)) in cases.iter().enumerate() {
        let mut train = qnet_with_test_envs();
        train
            .args(["train", "--quiet", "--out"])
            .arg(dir.path().join(format!("run{index}")));
        with_sets(&mut train, sets);
        let started = std::time::Instant::now();
        let output = run(&mut train);
        assert_clean_error(&output, needles);
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{sets:?} took long"
        );
    }
    // A missing interpreter stops only the bridge: qnet's own environments train without it.
    let mut train = train_command(&dir.path().join("bridged"), SHORT);
    train
        .env("QNET_PYTHON", "/nonexistent/python")
        .args(["--set", "env.id=gym:CartPole-v1"]);
    assert_clean_error(
        &run(&mut train),
        &["cannot start the Python interpreter", "QNET_PYTHON"],
    );
    let mut train = train_command(&dir.path().join("native"), SHORT);
    train.env("QNET_PYTHON", "/nonexistent/python");
    let output = run(&mut train);
    assert!(output.status.success(), "{:?}", text(&output));
}

/// A module planted in the current directory (or the run directory, which a user may stand
/// in) is never imported by the bridge, even under a name the bridge imports.
#[test]
fn the_bridge_imports_nothing_from_the_current_directory() {
    if gym_python().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("planted-code-ran");
    for module in ["gymnasium", "numpy", "qnet_planted"] {
        fs::write(
            dir.path().join(format!("{module}.py")),
            format!(
                "open({:?}, 'w').write('{module}')\n",
                marker.display().to_string()
            ),
        )
        .expect("plant");
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cartpole.yaml");
    let train = |id: &str, out: &str| {
        let mut command = qnet();
        command
            .current_dir(dir.path())
            .args(["train", "--quiet", "--config"])
            .arg(&config)
            .args(["--out", out, "--set", &format!("env.id={id}")])
            .args([
                "--set",
                "train.total_env_steps=300",
                "--set",
                "eval.every=0",
            ])
            .args([
                "--set",
                "eval.final_episodes=2",
                "--set",
                "eval.stop_when_solved=false",
            ])
            .args(["--set", "replay.learning_starts=100"]);
        run(&mut command)
    };
    let output = train("gym:CartPole-v1", "a");
    assert!(output.status.success(), "{:?}", text(&output));
    let output = train("gym:qnet_planted:Thing-v0", "b");
    assert_clean_error(&output, &["ModuleNotFoundError"]);
    assert!(!marker.exists(), "a planted module ran");
}
