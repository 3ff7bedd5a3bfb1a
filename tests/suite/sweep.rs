//! `qnet sweep`: expansion into run directories, local workers, idempotence, failures,
//! interruption, and a real Slurm cluster when one answers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// `qnet sweep --out OUT` with `TINY`, `extra` and the grid.
fn sweep_command(out: &Path, grid: &[&str], extra: &[&str]) -> Command {
    let mut command = qnet();
    command.arg("sweep").arg("--out").arg(out);
    for set in TINY {
        command.args(["--set", set]);
    }
    for g in grid {
        command.args(["--grid", g]);
    }
    command.args(extra);
    command
}

fn run_dirs(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(out)
        .expect("sweep dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.yaml").is_file() && p.file_name().is_some_and(|n| n != "logs"))
        .flat_map(|setting| {
            fs::read_dir(&setting)
                .expect("setting dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect::<Vec<_>>()
        })
        .collect();
    dirs.sort();
    dirs
}

fn assert_ok(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    stdout
}

#[test]
fn a_sweep_trains_every_setting_and_seed_and_skips_them_when_run_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let grid = ["optimizer.lr=1e-3,3e-3", "network.hidden=[32,32],[64]"];
    let stdout = assert_ok(&run(sweep_command(
        &out,
        &grid,
        &["--seeds", "2", "--jobs", "2"],
    )
    .args(["--first-seed", "7"])));
    assert!(stdout.contains("4 settings x 2 seeds = 8 runs"), "{stdout}");
    assert!(
        stdout.contains("8/8 runs finished (8 now, 0 before)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("per-run overhead inside workers: median"),
        "{stdout}"
    );

    let runs = run_dirs(&out);
    assert_eq!(runs.len(), 8, "{runs:?}");
    let jobs = fs::read_to_string(out.join("jobs.txt")).expect("jobs.txt");
    assert_eq!(jobs.lines().count(), 8);
    for run_dir in &runs {
        let s = summary(run_dir);
        assert_eq!(s["status"], "finished", "{}", run_dir.display());
        let config =
            qnet::platform::read::load_config(&run_dir.join("config.yaml"), &[]).expect("config");
        let name = run_dir
            .parent()
            .and_then(Path::file_name)
            .expect("setting")
            .to_string_lossy();
        let lr = if name.contains("lr=1e-3") { 1e-3 } else { 3e-3 };
        assert_eq!(config.optimizer.lr, lr, "{name}");
        let hidden = if name.contains("hidden=32-32") {
            vec![32, 32]
        } else {
            vec![64]
        };
        assert_eq!(config.network.hidden, hidden, "{name}");
        assert_eq!(config.train.total_env_steps, 1500);
        let seed = s["seed"].as_u64().expect("seed");
        assert!(run_dir.ends_with(format!("seed{seed}")) && (7..9).contains(&seed));
        // The run is what its jobs.txt line would train on its own.
        let line = format!("--seed {seed} --out {}", run_dir.display());
        assert!(jobs.contains(&line), "{line} not in {jobs}");
    }

    // Again: nothing to do, nothing touched.
    let before: Vec<String> = runs.iter().map(|d| metrics_without_wall_clock(d)).collect();
    let stdout = assert_ok(&run(sweep_command(
        &out,
        &grid,
        &["--seeds", "2", "--jobs", "2"],
    )
    .args(["--first-seed", "7"])));
    assert!(
        stdout.contains("8/8 runs finished (0 now, 8 before)"),
        "{stdout}"
    );
    let after: Vec<String> = runs.iter().map(|d| metrics_without_wall_clock(d)).collect();
    assert_eq!(before, after);

    // The same setting name with other values is refused.
    let output = run(
        sweep_command(&out, &grid, &["--seeds", "2", "--first-seed", "7"])
            .args(["--set", "agent.gamma=0.9"]),
    );
    assert_clean_error(&output, &["already holds setting", "agent.gamma"]);
}

/// One run diverges: it is recorded (exit status, last error line), the others finish, the
/// sweep exits non-zero, and a rerun skips it unless --retry-failed.
#[test]
fn a_failing_run_is_recorded_and_does_not_stop_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let grid = ["optimizer.lr=1e-3,1e6"];
    let extra = [
        "--seeds",
        "1",
        "--jobs",
        "2",
        "--set",
        "optimizer.max_grad_norm=null",
    ];
    let output = run(&mut sweep_command(&out, &grid, &extra));
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1/2 runs finished") && stdout.contains("1 failed now"),
        "{stdout}"
    );
    let failed = out.join("optimizer.lr=1e6/seed0");
    let failure: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(failed.join("failure.json")).expect("failure.json"),
    )
    .expect("json");
    assert_eq!(failure["exit_status"], "1", "{failure}");
    let error = failure["error"].as_str().expect("error");
    assert!(error.contains("training diverged at env step"), "{error}");
    assert_eq!(
        summary(&out.join("optimizer.lr=1e-3/seed0"))["status"],
        "finished"
    );

    let output = run(&mut sweep_command(&out, &grid, &extra));
    let (stdout, _) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("0 failed now, 1 failed before (--retry-failed"),
        "{stdout}"
    );
    let mut retry = extra.to_vec();
    retry.push("--retry-failed");
    let output = run(&mut sweep_command(&out, &grid, &retry));
    let (stdout, _) = text(&output);
    assert!(stdout.contains("1 failed now, 0 failed before"), "{stdout}");
}

/// The direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|text| {
                    text.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A worker killed outright fails only the run it held; SIGINT stops the sweep with every
/// run in progress checkpointed, and running the sweep again finishes them, each exactly
/// like the same run trained on its own.
#[test]
fn killed_workers_and_interrupted_sweeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let long = [
        "--seeds",
        "3",
        "--jobs",
        "1",
        "--set",
        "train.total_env_steps=20000",
        "--set",
        "checkpoint.every=1000",
    ];
    let child = sweep_command(&out, &[], &long)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the sweep");
    let first = out.join("base/seed0");
    let start = Instant::now();
    while !first.join("checkpoint.safetensors").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        sleep(Duration::from_millis(5));
    }
    let workers = children(child.id());
    assert_eq!(workers.len(), 1, "{workers:?}");
    signal(workers[0], "-KILL");
    // The next run starts on a new worker; interrupt the sweep once it has a checkpoint.
    let second = out.join("base/seed1");
    while !second.join("checkpoint.safetensors").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the sweep did not go on"
        );
        sleep(Duration::from_millis(5));
    }
    signal(child.id(), "-INT");
    let output = child.wait_with_output().expect("wait");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 failed now") && stdout.contains("1 interrupted"),
        "{stdout}"
    );
    let failure = fs::read_to_string(first.join("failure.json")).expect("failure.json");
    assert!(failure.contains("signal 9"), "{failure}");
    assert!(
        failure.contains("the sweep worker running it was killed by signal 9 (SIGKILL")
            && failure.contains("worker-0.log"),
        "{failure}"
    );
    assert!(!second.join("summary.json").exists());

    // Again, retrying the killed run: every run finishes, the interrupted one resumed.
    let mut again = long.to_vec();
    again.push("--retry-failed");
    let stdout = assert_ok(&run(&mut sweep_command(&out, &[], &again)));
    assert!(stdout.contains("3/3 runs finished"), "{stdout}");
    for seed in 0..3 {
        let alone = dir.path().join(format!("alone{seed}"));
        let config = out.join("base/config.yaml");
        let output = run(qnet()
            .args(["train", "--quiet", "--config"])
            .arg(&config)
            .args(["--seed", &seed.to_string(), "--out"])
            .arg(&alone));
        assert_ok(&output);
        assert_eq!(
            metrics_without_wall_clock(&alone),
            metrics_without_wall_clock(&out.join(format!("base/seed{seed}"))),
            "seed {seed}"
        );
    }
}

#[test]
fn a_grid_file_and_bad_grids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("grid.yaml");
    fs::write(
        &file,
        "grid:\n  agent.gamma: [0.9, 0.99]\n  network.hidden: [[16], [16, 16]]\n",
    )
    .expect("write");
    let out = dir.path().join("sweep");
    let stdout = assert_ok(&run(sweep_command(
        &out,
        &[],
        &["--seeds", "1", "--jobs", "2"],
    )
    .arg("--grid-file")
    .arg(&file)));
    assert!(stdout.contains("4 settings x 1 seed = 4 runs"), "{stdout}");
    assert!(out
        .join("agent.gamma=0.99_network.hidden=16-16/seed0/summary.json")
        .is_file());

    fs::write(&file, "grid:\n  agent.gamma: 0.9\n").expect("write");
    let output = run(sweep_command(&out, &[], &["--seeds", "1"])
        .arg("--grid-file")
        .arg(&file));
    assert_clean_error(
        &output,
        &["grid.yaml", "grid.agent.gamma must be a non-empty list"],
    );
    let output = run(&mut sweep_command(
        &out,
        &["agent.gamma=0.9,1.5"],
        &["--seeds", "1"],
    ));
    assert_clean_error(&output, &["agent.gamma=1.5", "[0, 1]"]);
    let output = run(&mut sweep_command(
        &out,
        &["agent.gama=0.9"],
        &["--seeds", "1"],
    ));
    assert_clean_error(&output, &["agent.gama"]);
}

/// Whether a Slurm cluster answers here; without one the test skips, unless
/// QNET_REQUIRE_SLURM=1 (set by .ci/run, which starts one) makes that a failure.
pub fn slurm_answers() -> bool {
    let up = Command::new("scontrol")
        .arg("ping")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("UP"));
    if !up {
        let required = std::env::var("QNET_REQUIRE_SLURM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "QNET_REQUIRE_SLURM=1 but no Slurm controller answers `scontrol ping` \
             (start one with sudo ./scripts/slurm-local.sh start)"
        );
        eprintln!(
            "skipped: no Slurm controller answers `scontrol ping` (sudo \
             ./scripts/slurm-local.sh start runs one; QNET_REQUIRE_SLURM=1 makes this a failure)"
        );
    }
    up
}

#[test]
fn a_sweep_submitted_to_slurm_finishes_and_reports() {
    if !slurm_answers() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let args = [
        "--seeds",
        "2",
        "--submit",
        "--wait",
        "--runs-per-task",
        "2",
        "--max-concurrent",
        "2",
        "--time",
        "00:10:00",
    ];
    let grid = ["optimizer.lr=1e-3,3e-3"];
    let stdout = assert_ok(&run(&mut sweep_command(&out, &grid, &args)));
    assert!(stdout.contains("2 array tasks of up to 2 runs"), "{stdout}");
    assert!(stdout.contains("submitted job "), "{stdout}");
    assert!(stdout.contains("4/4 runs finished"), "{stdout}");
    let script = fs::read_to_string(out.join("sweep.sbatch")).expect("sweep.sbatch");
    assert!(script.contains("#SBATCH --array=0-1%2"), "{script}");
    let logs: Vec<String> = fs::read_dir(out.join("logs"))
        .expect("logs")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("slurm-"))
        .collect();
    assert_eq!(logs.len(), 2, "one log per array task: {logs:?}");
    let runs = run_dirs(&out);
    assert_eq!(runs.len(), 4);
    let before: Vec<String> = runs.iter().map(|d| metrics_without_wall_clock(d)).collect();
    for run_dir in &runs {
        assert_eq!(summary(run_dir)["status"], "finished");
    }

    // qnet report reads them: two groups of two runs.
    let stdout = assert_ok(&run(qnet()
        .arg("report")
        .arg(&out)
        .args(["--reps", "1000"])));
    assert!(
        stdout.contains("| `optimizer.lr=0.001` | 2/2 |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| `optimizer.lr=0.003` | 2/2 |"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("report.json")).expect("report.json"))
            .expect("json");
    assert_eq!(report["groups"].as_array().map(Vec::len), Some(2));

    // Resubmitted, the array skips the finished runs.
    let stdout = assert_ok(&run(&mut sweep_command(&out, &grid, &args)));
    assert!(stdout.contains("4/4 runs finished"), "{stdout}");
    let after: Vec<String> = runs.iter().map(|d| metrics_without_wall_clock(d)).collect();
    assert_eq!(before, after);
    let log = fs::read_dir(out.join("logs"))
        .expect("logs")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| fs::read_to_string(p).ok())
        .filter(|text| text.contains("finished before, skipped"))
        .count();
    assert_eq!(log, 2, "both tasks of the second array skipped their runs");
}
