//! What errors say: short whatever the input's size, naming the key, the argument, the stream
//! or the process that failed, and what the value must be.

use std::fs;
use std::path::Path;

use crate::common::*;

/// `qnet train` of `config` (the default experiment when `None`) with `overrides`, into a run
/// directory under `dir`.
fn train(dir: &Path, config: Option<&Path>, overrides: &[&str]) -> std::process::Output {
    let mut command = qnet();
    command
        .args(["train", "--quiet", "--out"])
        .arg(dir.join("run"));
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    for set in overrides {
        command.args(["--set", set]);
    }
    run(&mut command)
}

/// Asserts a clean error naming `needles` in at most `bytes` bytes.
fn short_error(output: &std::process::Output, needles: &[&str], bytes: usize) {
    assert_clean_error(output, needles);
    let stderr = text(output).1;
    assert!(
        stderr.len() <= bytes,
        "{} bytes: {stderr:.2000}",
        stderr.len()
    );
}

#[test]
fn errors_about_huge_values_stay_short_and_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = "x".repeat(100_000);
    let output = train(dir.path(), None, &[&format!("env.id={id}")]);
    short_error(
        &output,
        &[
            "--set env.id=xxx",
            "env.id: \"xxx",
            "characters cut) ...",
            "or gym:ID for any Gymnasium environment",
        ],
        1_000,
    );

    let config = dir.path().join("env.yaml");
    fs::write(&config, format!("env:\n  id: {id}\n")).expect("write config");
    let output = train(dir.path(), Some(&config), &[]);
    short_error(&output, &["env.yaml:2: env.id: \"xxx"], 1_000);

    let hidden = vec!["64"; 2_000_000].join(",");
    let config = dir.path().join("hidden.yaml");
    fs::write(&config, format!("network:\n  hidden: [{hidden}]\n")).expect("write config");
    let output = train(dir.path(), Some(&config), &["device=cpu"]);
    short_error(
        &output,
        &[
            "not enough memory",
            "network.hidden = [64, 64, 64, 64, 64, 64, 64, 64, ...] (2000000 layers)",
        ],
        1_000,
    );
}

#[test]
fn a_long_grid_value_makes_a_setting_directory_name_that_fits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let wide = format!("[{}]", vec!["64"; 200].join(","));
    let output = run(qnet()
        .arg("sweep")
        .arg("--out")
        .arg(&out)
        .args(["--slurm", "--seeds", "1", "--set", "device=cpu", "--grid"])
        .arg(format!("network.hidden={wide},[32]")));
    assert!(output.status.success(), "{:?}", text(&output));
    let names: Vec<String> = fs::read_dir(&out)
        .expect("the sweep directory")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("network.hidden="))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|name| name.len() <= 210), "{names:?}");
    assert!(names.contains(&"network.hidden=32".to_owned()), "{names:?}");
}

#[test]
fn a_key_that_takes_names_lists_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (set, found) in [
        ("env.id=", "invalid type: null"),
        ("env.id=null", "invalid type: null"),
        ("env.id=42", "invalid type: integer `42`"),
    ] {
        let output = train(dir.path(), None, &[set]);
        short_error(
            &output,
            &[
                &format!("--set {set}: env.id: {found}, expected an environment id"),
                "CartPole-v1, Acrobot-v1, MountainCar-v0) or gym:ID",
            ],
            300,
        );
        assert!(!text(&output).1.contains("Tagged"), "{:?}", text(&output));
    }
    let output = train(dir.path(), None, &["network.activation=1"]);
    short_error(&output, &["must be `relu` or `tanh`, not 1"], 300);
}

#[test]
fn a_rule_over_two_keys_names_the_override_that_broke_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = train(dir.path(), None, &["replay.capacity=1"]);
    short_error(
        &output,
        &["error: --set replay.capacity=1: replay.batch_size (128) must not exceed replay.capacity (1)"],
        300,
    );
    // From the file alone, the file's line is named.
    let config = dir.path().join("small.yaml");
    let yaml =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cartpole.yaml"))
            .expect("cartpole.yaml")
            .replace("capacity: 50000", "capacity: 1");
    fs::write(&config, yaml).expect("write config");
    let output = train(dir.path(), Some(&config), &[]);
    short_error(
        &output,
        &["small.yaml:", "must not exceed replay.capacity (1)"],
        300,
    );
}

#[test]
fn a_full_standard_output_is_named() {
    let Ok(full) = fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("skipped: no /dev/full here");
        return;
    };
    let output = run(qnet()
        .args(["eval", "--episodes", "2", "--device", "cpu"])
        .stdout(full));
    assert_clean_error(
        &output,
        &["error: writing to standard output: No space left on device"],
    );
}

#[test]
fn bench_seconds_outside_an_hour_are_refused() {
    for seconds in ["0", "NaN", "inf", "1e300", "3600.5", "soon"] {
        let output = run(qnet().args(["bench", "throughput", "--seconds", seconds]));
        let (_, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(2), "{seconds}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: invalid value '{seconds}' for '--seconds")),
            "{stderr}"
        );
        assert!(
            stderr.contains("must be more than 0 and at most 3600")
                || stderr.contains("is not a number of seconds"),
            "{stderr}"
        );
    }
}
