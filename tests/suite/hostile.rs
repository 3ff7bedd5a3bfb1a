//! Planted files and careless hands, second round: a FIFO where qnet reads, a link swapped in
//! while qnet writes, `--out` naming someone else's directory, a resume that must change
//! nothing when it is refused, a lock file removed under its holder, hard-linked snapshots.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

/// Runs `command`, killing it (and failing) if it takes longer than `limit`.
fn run_within(limit: Duration, command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qnet starts");
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("still running after {limit:?}: {:?}", text(&output));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn mkfifo(path: &Path) {
    let _ = fs::remove_file(path);
    assert!(Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo")
        .success());
}

/// A short finished run in `dir`.
fn short_run(dir: &Path) {
    let output = run(&mut train_command(dir, SHORT));
    assert!(output.status.success(), "{:?}", text(&output));
}

#[test]
fn a_fifo_where_qnet_reads_is_refused_at_once() {
    let root = tempfile::tempdir().expect("tempdir");
    let run_dir = root.path().join("run");
    short_run(&run_dir);
    let limit = Duration::from_secs(60);

    mkfifo(&run_dir.join("checkpoint.safetensors"));
    let output = run_within(
        limit,
        qnet()
            .args(["train", "--resume"])
            .arg(&run_dir)
            .args(["--set", "train.total_env_steps=4000"]),
    );
    assert_clean_error(&output, &["checkpoint.safetensors", "a FIFO"]);

    mkfifo(&run_dir.join("model.safetensors"));
    let output = run_within(limit, qnet().args(["eval", "--checkpoint"]).arg(&run_dir));
    assert_clean_error(&output, &["model.safetensors", "a FIFO"]);

    let config = root.path().join("config.yaml");
    mkfifo(&config);
    let output = run_within(
        limit,
        qnet()
            .args(["train", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(root.path().join("other")),
    );
    assert_clean_error(&output, &["config.yaml", "a FIFO"]);
}

#[test]
fn out_never_takes_a_directory_qnet_did_not_write() {
    let root = tempfile::tempdir().expect("tempdir");
    let foreign = root.path().join("logs");
    fs::create_dir(&foreign).expect("mkdir");
    let theirs = [
        ("events.out.tfevents.1700000000.box", "another tool's log"),
        (".notes.tmp-123", "hidden"),
        (".draft.qnet-tmp", "hidden too"),
        ("metrics.csv", "their metrics"),
    ];
    for (name, content) in theirs {
        fs::write(foreign.join(name), content).expect("write");
    }
    let mut sweep = qnet();
    sweep.args(["sweep", "--seeds", "1", "--out"]).arg(&foreign);
    let mut bench = qnet();
    bench
        .args(["bench", "solve", "--seeds", "1", "--out"])
        .arg(&foreign);
    for command in [&mut train_command(&foreign, SHORT), &mut sweep, &mut bench] {
        let output = run(command);
        assert_clean_error(&output, &["not empty", "Choose another --out"]);
    }
    for (name, content) in theirs {
        assert_eq!(fs::read_to_string(foreign.join(name)).expect(name), content);
    }
    assert_eq!(fs::read_dir(&foreign).expect("list").count(), theirs.len());

    // A run directory is not a sweep directory either.
    let run_dir = root.path().join("run");
    short_run(&run_dir);
    let before = metrics_without_wall_clock(&run_dir);
    let output = run(qnet()
        .args(["sweep", "--seeds", "1", "--out"])
        .arg(&run_dir));
    assert_clean_error(&output, &["holds a run, not a sweep"]);
    assert_eq!(metrics_without_wall_clock(&run_dir), before);
    assert!(fs::read_dir(&run_dir)
        .expect("list")
        .flatten()
        .all(|e| !e.path().is_dir()));
}

#[test]
fn a_refused_resume_changes_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    let run_dir = root.path().join("run");
    short_run(&run_dir);
    let event_file = fs::read_dir(&run_dir)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("tfevents"))
        .expect("an event file");
    // The checkpoint's event file is gone (renamed); another of qnet's stands beside it.
    let renamed = run_dir.join("events.out.tfevents.0000000001.elsewhere.qnet");
    fs::rename(&event_file, &renamed).expect("rename");
    let config_before = fs::read_to_string(run_dir.join("config.yaml")).expect("config");
    let output = run(qnet()
        .args(["train", "--resume"])
        .arg(&run_dir)
        .args(["--set", "train.total_env_steps=6000"]));
    assert_clean_error(&output, &["tfevents"]);
    assert!(renamed.is_file(), "the other event file was removed");
    assert_eq!(
        fs::read_to_string(run_dir.join("config.yaml")).expect("config"),
        config_before
    );
}

#[test]
fn a_lock_file_removed_under_a_training_run_lets_no_second_one_in() {
    let root = tempfile::tempdir().expect("tempdir");
    let run_dir = root.path().join("run");
    let mut first = train_command(
        &run_dir,
        &[
            "device=cpu",
            "train.total_env_steps=2000000",
            "eval.every=0",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("qnet starts");
    let lock = run_dir.join(qnet::platform::lock::LOCK_FILE);
    let start = Instant::now();
    while !run_dir.join("config.yaml").exists() || !lock.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no run started");
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::remove_file(&lock).expect("remove the lock file");
    let output = run(qnet().args(["train", "--resume"]).arg(&run_dir));
    let _ = first.kill();
    let _ = first.wait();
    assert_clean_error(&output, &["in use by another qnet process"]);
}

#[test]
fn a_hard_linked_snapshot_of_a_run_stays_as_it_was() {
    let root = tempfile::tempdir().expect("tempdir");
    let run_dir = root.path().join("run");
    short_run(&run_dir);
    // A snapshot as `cp -al` or a backup tool makes it: every file hard-linked.
    let snapshot = root.path().join("snapshot");
    fs::create_dir(&snapshot).expect("mkdir");
    let mut before = Vec::new();
    for entry in fs::read_dir(&run_dir).expect("list").flatten() {
        if entry.path().is_file() {
            let copy = snapshot.join(entry.file_name());
            fs::hard_link(entry.path(), &copy).expect("link");
            before.push((copy.clone(), fs::read(&copy).expect("read")));
        }
    }
    let output = run(qnet().args(["train", "--resume"]).arg(&run_dir).args([
        "--set",
        "train.total_env_steps=4000",
        "--quiet",
    ]));
    assert!(output.status.success(), "{:?}", text(&output));
    for (path, bytes) in before {
        assert!(
            fs::read(&path).expect("read") == bytes,
            "{} changed",
            path.display()
        );
    }
}

/// While qnet writes model files, a user with write access to the directory swaps every new
/// entry for a link to a file of theirs (or, for a directory, moves it away and puts one of
/// theirs holding such a link in its place): nothing reaches the victim.
#[test]
fn model_files_are_never_written_through_a_swapped_link() {
    use qnet::artifacts::export::save_model_files;
    use qnet::config::Config;
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let victim = outside.path().join("victim.txt");
    fs::write(&victim, "precious").expect("write");
    let config = Config::default();
    let net =
        qnet::learn::qfunction::build(&config.network, 4, 2, tch::Device::Cpu).expect("network");
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0;
            while !done.load(Ordering::Relaxed) {
                let Ok(entries) = fs::read_dir(dir.path()) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.starts_with('.') {
                        continue;
                    }
                    n += 1;
                    let moved = dir.path().join(format!("moved-{n}"));
                    if fs::rename(entry.path(), &moved).is_err() {
                        continue;
                    }
                    if moved.is_dir() {
                        let _ = fs::create_dir(entry.path());
                        let _ = std::os::unix::fs::symlink(&victim, entry.path().join("new"));
                    } else {
                        let _ = std::os::unix::fs::symlink(&victim, entry.path());
                    }
                }
            }
        });
        let written: Vec<_> = (0..40)
            .map(|_| {
                save_model_files(
                    dir.path(),
                    "model",
                    net.spec(),
                    net.flat(),
                    &Default::default(),
                )
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        for result in written {
            assert!(result.is_ok(), "{result:?}");
        }
    });
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious");
    for name in ["model.pt", "model.safetensors"] {
        let kind = fs::symlink_metadata(dir.path().join(name)).expect(name);
        assert!(kind.is_file(), "{name} is not a regular file");
    }
}
