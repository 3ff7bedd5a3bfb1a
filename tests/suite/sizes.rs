//! Sizes a user controls, checked before anything is allocated or written: sweep size,
//! bootstrap replicates, Slurm array size, grid sanity, and errors that quote a long value.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

/// `qnet sweep --out OUT` on the CPU with `args`.
fn sweep(out: &Path, args: &[&str]) -> Command {
    let mut command = qnet();
    command
        .args(["sweep", "--set", "device=cpu", "--out"])
        .arg(out)
        .args(args);
    command
}

/// Runs `command`, asserting it fails fast with every needle and leaves `out` unwritten.
fn refused_at_once(command: &mut Command, out: &Path, needles: &[&str]) -> String {
    let started = Instant::now();
    let output = run(command);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert_clean_error(&output, needles);
    assert!(!out.exists(), "{} was written", out.display());
    text(&output).1
}

#[test]
fn a_sweep_larger_than_max_runs_is_refused_with_its_disk_estimate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    refused_at_once(
        &mut sweep(&out, &["--seeds", "10000000"]),
        &out,
        &[
            "the sweep has 10000000 runs (1 setting x 10000000 seeds), more than --max-runs \
             10000; they would write about ",
            "TiB (an estimate from the first setting: ",
            "raise --max-runs",
        ],
    );
    let values = |scale: &str| {
        (1..=2000)
            .map(|i| format!("{i}{scale}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let lr = format!("optimizer.lr={}", values("e-6"));
    let eps = format!("optimizer.eps={}", values("e-9"));
    refused_at_once(
        &mut sweep(&out, &["--grid", &lr, "--grid", &eps]),
        &out,
        &["the sweep has 40000000 runs (4000000 settings x 10 seeds)"],
    );
    // The flag raises the limit.
    let stdout = {
        let output = run(&mut sweep(
            &out,
            &["--seeds", "3", "--max-runs", "3", "--slurm"],
        ));
        let (stdout, stderr) = text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        stdout
    };
    assert!(
        stdout.contains("1 setting x 3 seeds = 3 runs in ")
            && stdout.contains("on disk by an estimate"),
        "{stdout}"
    );
    let other = dir.path().join("other");
    refused_at_once(
        &mut sweep(&other, &["--seeds", "3", "--max-runs", "2"]),
        &other,
        &["3 runs (1 setting x 3 seeds), more than --max-runs 2"],
    );
}

#[test]
fn seed_as_a_grid_key_and_a_repeated_grid_value_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    refused_at_once(
        &mut sweep(&out, &["--grid", "seed=1,2"]),
        &out,
        &[
            "grid key seed: seeds are not a grid key",
            "--seeds N --first-seed S",
        ],
    );
    refused_at_once(
        &mut sweep(&out, &["--grid", "optimizer.lr=1e-3,3e-3,0.001"]),
        &out,
        &["grid key optimizer.lr: 1e-3 and 0.001 are the same value"],
    );
    refused_at_once(
        &mut sweep(
            &out,
            &["--grid", "agent.gamma=0.9", "--grid", "agent.gamma=0.99"],
        ),
        &out,
        &["grid key agent.gamma is given twice"],
    );
}

#[test]
fn report_replicates_are_bounded_before_they_are_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(qnet()
        .arg("report")
        .arg(dir.path())
        .args(["--reps", "5000000000"]));
    assert_clean_error(
        &output,
        &[
            "--reps 5000000000: at most 33554432 bootstrap replicates",
            "37.3 GiB",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn errors_quote_a_long_value_cut_to_a_readable_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = vec!["0"; 50_000].join(",");
    let set = format!("agent.gama=[{list}]");
    let output = run(qnet()
        .args(["train", "--out"])
        .arg(dir.path().join("run"))
        .args(["--set", &set]));
    assert_clean_error(
        &output,
        &[
            "--set agent.gama=[0,0,0",
            "... (99812 more characters): unknown key 'agent.gama'",
        ],
    );
    let stderr = text(&output).1;
    assert!(stderr.len() < 1_000, "{} bytes", stderr.len());

    let out = dir.path().join("sweep");
    let grid = format!("agent.gamma={list},[");
    let stderr = refused_at_once(
        &mut sweep(&out, &["--grid", &grid]),
        &out,
        &["more characters): expected non-empty values"],
    );
    assert!(stderr.len() < 1_000, "{} bytes", stderr.len());
}

#[test]
fn a_slurm_array_larger_than_max_array_size_is_refused_before_writing() {
    if !crate::sweep::slurm_answers() {
        return;
    }
    let config = run(Command::new("scontrol").args(["show", "config"]));
    let max: u64 = String::from_utf8_lossy(&config.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("MaxArraySize")?
                .trim()
                .strip_prefix('=')?
                .trim()
                .parse()
                .ok()
        })
        .expect("scontrol show config names MaxArraySize");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let runs = (max + 1).to_string();
    let args = ["--seeds", &runs, "--max-runs", &runs, "--slurm"];
    refused_at_once(
        sweep(&out, &args).args(["--runs-per-task", "1"]),
        &out,
        &[
            &format!("{runs} array tasks ({runs} runs at --runs-per-task 1) are more than"),
            &format!("MaxArraySize of {max} (scontrol show config); use --runs-per-task 2 or more"),
        ],
    );
    let output = run(sweep(&out, &args).args(["--runs-per-task", "2"]));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("array tasks of up to 2 runs each"),
        "{stdout}"
    );
}
