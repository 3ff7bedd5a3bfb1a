//! Paths as careless hands give them: spaces, quotes, `%`, newlines and bytes that are not
//! UTF-8, in a run directory, a sweep directory and the Slurm script that names it. Each works,
//! or is refused with a clear error before anything is written.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// `qnet sweep --out OUT` of one short run per seed, with `extra` arguments.
fn sweep(out: &Path, extra: &[&str]) -> Command {
    let mut command = qnet();
    command.arg("sweep").arg("--out").arg(out);
    for set in TINY {
        command.args(["--set", set]);
    }
    command.args(["--seeds", "1"]).args(extra);
    command
}

/// Asserts a clean refusal naming `needles` that left `out` unwritten.
fn refused_before_writing(command: &mut Command, out: &Path, needles: &[&str]) {
    assert_clean_error(&run(command), needles);
    assert!(!out.exists(), "{} was written", out.display());
}

#[test]
fn a_sweep_directory_is_quoted_in_the_slurm_script_or_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(r#"100% "sure" it's #1"#);
    let output = run(&mut sweep(&out, &["--slurm"]));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let script_path = out.join("sweep.sbatch");
    let script = fs::read_to_string(&script_path).expect("sweep.sbatch");
    let logs = format!("{}/logs/slurm-%A_%a.out", out.display()).replace('%', "%%");
    let logs = logs.replace("%%A_%%a", "%A_%a").replace('"', r#"\""#);
    assert!(
        script.contains(&format!("\n#SBATCH --output=\"{logs}\"\n")),
        "{script}"
    );
    // Every line is qnet's own, the path quoted inside it.
    for line in script.lines() {
        assert!(
            [
                "#!/bin/bash",
                "# Written by",
                "# Submit it",
                "#SBATCH --",
                "exec "
            ]
            .iter()
            .any(|start| line.starts_with(start)),
            "{script}"
        );
    }

    for (name, says) in [
        (
            "a\ntouch pwned\n#",
            "U+000A; choose an --out without control characters",
        ),
        ("back\\slash", "holds a backslash"),
    ] {
        let bad = dir.path().join(name);
        refused_before_writing(&mut sweep(&bad, &["--slurm"]), &bad, &[says]);
    }

    if !crate::sweep::slurm_answers() {
        return;
    }
    let test_only = run(Command::new("sbatch").arg("--test-only").arg(&script_path));
    assert!(test_only.status.success(), "{:?}", text(&test_only));
    // Submitted, the task's log lands in the sweep's logs/ and its run finishes.
    let output = run(&mut sweep(
        &out,
        &["--submit", "--wait", "--time", "00:10:00"],
    ));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1/1 runs finished"), "{stdout}");
    let logs: Vec<PathBuf> = fs::read_dir(out.join("logs"))
        .expect("logs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = fs::read_to_string(&logs[0]).expect("the task's log");
    assert!(log.contains("finished"), "{log}");
}

#[test]
fn a_run_directory_that_is_not_utf8_trains_and_a_sweep_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join(OsStr::from_bytes(b"run-\xff"));
    let output = run(&mut train_command(&out, TINY));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let command = summary(&out)["provenance"]["command"]
        .as_str()
        .map(str::to_owned)
        .expect("the command in summary.json");
    assert!(command.contains(r"--out $'"), "{command}");
    assert!(command.contains(r"/run-\xff' "), "{command}");
    assert!(out.join("model.pt").is_file());

    let output = run(qnet().arg("eval").arg("--checkpoint").arg(&out).args([
        "--episodes",
        "2",
        "--device",
        "cpu",
    ]));
    assert!(output.status.success(), "{:?}", text(&output));
    let output = run(qnet()
        .arg("report")
        .arg(&out)
        .args(["--reps", "100", "--out"])
        .arg(dir.path()));
    assert!(output.status.success(), "{:?}", text(&output));

    let bad = dir.path().join(OsStr::from_bytes(b"sweep-\xfe"));
    refused_before_writing(
        &mut sweep(&bad, &[]),
        &bad,
        &[
            r"sweep-\xfe' is not UTF-8",
            "choose an --out whose name is UTF-8",
        ],
    );
}
