//! Hostile files and careless hands: one process per run and per sweep directory, no orphan
//! workers after a killed sweep, no write through a link or over what is not a regular file,
//! model files read as data, sizes checked before they are used, whole rows after a write
//! error.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// Waits until `done` holds, failing after `limit` with `what`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        sleep(Duration::from_millis(10));
    }
}

/// The PID a directory's lock file records, once its holder has written it.
fn holder(dir: &Path) -> u32 {
    let lock = dir.join(qnet::platform::lock::LOCK_FILE);
    wait_for(Duration::from_secs(120), "a lock holder", || {
        fs::read_to_string(&lock).is_ok_and(|t| t.lines().count() >= 2)
    });
    let text = fs::read_to_string(&lock).expect("lock file");
    text.lines()
        .next()
        .and_then(|pid| pid.parse().ok())
        .expect("a PID")
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; its parent has not collected it yet.
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, s)| !s.starts_with('Z'))
    })
}

fn spawn_quiet(command: &mut Command) -> Child {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qnet starts")
}

/// A run long enough to be caught in the act.
const LONG: &[&str] = &[
    "device=cpu",
    "train.total_env_steps=2000000",
    "replay.learning_starts=500",
    "eval.every=0",
    "checkpoint.every=1000",
];

#[test]
fn two_processes_never_share_a_run_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut first = spawn_quiet(&mut train_command(&out, LONG));
    wait_for(Duration::from_secs(120), "a checkpoint", || {
        out.join("checkpoint.safetensors").exists()
    });
    assert_eq!(holder(&out), first.id());
    let output = run(qnet().args(["train", "--quiet", "--resume"]).arg(&out));
    assert_clean_error(
        &output,
        &[
            "is in use by another qnet process",
            &format!("PID {}", first.id()),
            "qnet train",
        ],
    );
    let output = run(&mut train_command(&out, LONG));
    assert_clean_error(&output, &["already holds a run"]);
    signal(first.id(), "-INT");
    let status = first.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    // Its lock went with it: the run can be continued (and is stopped again at once).
    let mut again = spawn_quiet(qnet().args(["train", "--quiet", "--resume"]).arg(&out));
    wait_for(Duration::from_secs(60), "the resumed run's lock", || {
        holder(&out) == again.id()
    });
    signal(again.id(), "-INT");
    again.wait().expect("wait");
}

/// A second sweep into a directory in use is refused; a sweep killed outright takes its
/// workers with it (each saves a checkpoint), and running it again finishes every run.
#[test]
fn a_killed_sweep_leaves_no_orphans_and_a_rerun_finishes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let sweep = |extra: &[&str]| {
        let mut command = qnet();
        command.arg("sweep").arg("--out").arg(&out);
        for set in [
            "device=cpu",
            "train.total_env_steps=200000",
            "replay.learning_starts=500",
            "eval.every=0",
            "eval.final_episodes=5",
            "eval.stop_when_solved=false",
            "checkpoint.every=1000",
        ] {
            command.args(["--set", set]);
        }
        command.args(["--seeds", "2", "--jobs", "2"]).args(extra);
        command
    };
    let mut parent = spawn_quiet(&mut sweep(&[]));
    let runs: Vec<PathBuf> = (0..2).map(|s| out.join(format!("base/seed{s}"))).collect();
    for run_dir in &runs {
        wait_for(Duration::from_secs(120), "a checkpoint", || {
            run_dir.join("checkpoint.safetensors").exists()
        });
    }
    assert_eq!(holder(&out), parent.id());
    let workers: Vec<u32> = runs.iter().map(|r| holder(r)).collect();
    let output = run(&mut sweep(&[]));
    assert_clean_error(
        &output,
        &[
            "is in use by another qnet process",
            &format!("PID {}", parent.id()),
        ],
    );

    signal(parent.id(), "-KILL");
    parent.wait().expect("wait");
    for &worker in &workers {
        wait_for(
            Duration::from_secs(60),
            "the orphaned worker to end",
            || !alive(worker),
        );
    }
    // Stopped mid-run, not finished.
    for run_dir in &runs {
        assert!(!run_dir.join("summary.json").exists());
    }
    let output = run(&mut sweep(&[]));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("2/2 runs finished (2 now"), "{stdout}");
}

#[test]
fn render_replaces_only_regular_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let precious = dir.path().join("precious.gif");
    fs::write(&precious, "precious").expect("write");
    let link = dir.path().join("link.gif");
    std::os::unix::fs::symlink(&precious, &link).expect("symlink");
    let fifo = dir.path().join("fifo.gif");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let mut refused = vec![
        (link.clone(), "a symbolic link"),
        (fifo.clone(), "a FIFO"),
        (dir.path().to_path_buf(), "a directory"),
    ];
    // A device node of its own (as /dev/null is) needs root; CI runs as root.
    let device = dir.path().join("null.gif");
    let made = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if made {
        refused.push((device.clone(), "a device"));
    } else {
        eprintln!("skipped: the device-node case needs root (mknod)");
    }
    for (out, kind) in &refused {
        let output = run(qnet()
            .args(["render", "--max-steps", "5", "--out"])
            .arg(out));
        assert_clean_error(&output, &[kind, "only replaces regular files"]);
    }
    assert_eq!(fs::read_to_string(&precious).expect("read"), "precious");
    assert!(fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    if made {
        use std::os::unix::fs::FileTypeExt;
        let kind = fs::symlink_metadata(&device).expect("device").file_type();
        assert!(kind.is_char_device());
    }
    let output = run(qnet().args(["render", "--max-steps", "5", "--out", "-"]));
    assert!(output.status.success(), "{:?}", text(&output));
    assert!(output.stdout.starts_with(b"GIF89a"), "not a GIF on stdout");
}

/// A model.pt whose forward prints: TorchScript runs whatever code the file holds.
fn plant_torchscript(dir: &Path, marker: &str) {
    let script = format!(
        r#"
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.l = torch.nn.Linear(4, 2)
    def forward(self, x):
        print("{marker}")
        return self.l(x)
torch.jit.save(torch.jit.script(M()), sys.argv[1])
"#
    );
    // torch.jit.script reads the class's source: a file, not `python -c`.
    let path = dir.join("plant.py");
    fs::write(&path, script).expect("write the script");
    let output = Command::new(python())
        .arg(&path)
        .arg(dir.join("model.pt"))
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{:?}", text(&output));
}

#[test]
fn eval_reads_models_as_data_and_runs_torchscript_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-dqn");
    fs::copy(
        shipped.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .expect("copy");
    let marker = "CODE FROM THE MODEL FILE RAN";
    plant_torchscript(dir.path(), marker);

    let output = run(qnet()
        .args(["eval", "--episodes", "3", "--checkpoint"])
        .arg(dir.path()));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("model.safetensors: mean 500.00"),
        "{stdout}"
    );
    assert!(!stdout.contains(marker) && !stderr.contains(marker));

    let output = run(qnet()
        .args(["render", "--max-steps", "5", "--out", "-", "--checkpoint"])
        .arg(dir.path()));
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stdout).contains(marker));

    let output = run(qnet()
        .args(["eval", "--episodes", "3", "--checkpoint"])
        .arg(dir.path().join("model.pt")));
    assert_clean_error(&output, &["runs the code inside the file", "--torchscript"]);

    // TorchScript made outside qnet names no environment: --env gives it, and must agree
    // with a model that names one.
    let output = run(qnet()
        .args(["eval", "--episodes", "3", "--torchscript", "--checkpoint"])
        .arg(dir.path()));
    assert_clean_error(&output, &["model.pt", "no qnet metadata", "--env"]);
    let output = run(qnet()
        .args([
            "eval",
            "--episodes",
            "3",
            "--env",
            "Acrobot-v1",
            "--checkpoint",
        ])
        .arg(dir.path()));
    assert_clean_error(
        &output,
        &["model.safetensors was trained on CartPole-v1, not on Acrobot-v1"],
    );

    // Asked for, it runs: the marker shows the test would see it.
    let output = run(qnet()
        .args([
            "eval",
            "--episodes",
            "3",
            "--torchscript",
            "--env",
            "CartPole-v1",
        ])
        .arg("--checkpoint")
        .arg(dir.path()));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(marker), "{stdout}");
}

#[test]
fn a_crafted_safetensors_file_is_refused_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-dqn");
    let bytes = fs::read(shipped.join("model.safetensors")).expect("shipped model");
    let eval = |bytes: &[u8]| {
        fs::write(dir.path().join("model.safetensors"), bytes).expect("write");
        run(qnet()
            .args(["eval", "--episodes", "2", "--checkpoint"])
            .arg(dir.path()))
    };
    assert_clean_error(
        &eval(b"not a model"),
        &["model.safetensors", "not safetensors"],
    );
    assert_clean_error(&eval(&bytes[..bytes.len() - 10]), &["not safetensors"]);
    // A header claiming a bigger network than the tensors hold.
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).expect("UTF-8 header");
    let bigger = header.replace("\"n_actions\":\"2\"", "\"n_actions\":\"3\"");
    assert_ne!(bigger, header, "the header names n_actions");
    let mut crafted = (bigger.len() as u64).to_le_bytes().to_vec();
    crafted.extend_from_slice(bigger.as_bytes());
    crafted.extend_from_slice(&bytes[8 + header_len..]);
    assert_clean_error(
        &eval(&crafted),
        &[
            "does not fit CartPole-v1",
            "to 3 Q-values; expected 4 and 2",
        ],
    );
}

#[test]
fn evaluation_sizes_are_checked_before_anything_runs() {
    let output = run(qnet().args(["eval", "--episodes", "100000000"]));
    assert_clean_error(&output, &["--episodes must be between 1 and 10000000"]);
}

/// A write that fails midway (a full disk; here a file-size limit) cuts the record files back
/// to their last whole row: metrics.csv ends on a line, the event file on a record.
#[test]
fn a_failed_write_leaves_the_records_on_a_whole_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let command = train_command(
        &out,
        &[
            "device=cpu",
            "train.total_env_steps=2000000",
            "eval.every=0",
            "checkpoint.every=0",
        ],
    );
    let args: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect();
    // 16 KiB: the event file (the faster growing) reaches it long before the first
    // checkpoint, a minute in.
    // SIGXFSZ ignored, so the write fails with EFBIG instead of killing the process.
    let output = run(Command::new("bash")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "-c",
            &format!("trap '' XFSZ; ulimit -f 16; exec {}", args.join(" ")),
        ]));
    // EFBIG: a write reached the limit, and was cut back.
    assert_clean_error(&output, &["cannot write to", "File too large"]);
    let csv = fs::read_to_string(out.join("metrics.csv")).expect("metrics.csv");
    assert!(csv.ends_with('\n'), "half a row at the end: {csv:?}");
    let fields = csv.lines().next().expect("header").split(',').count();
    for line in csv.lines() {
        assert_eq!(line.split(',').count(), fields, "{line}");
    }
    let events = fs::read_dir(&out)
        .expect("run dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains("events.out.tfevents"))
        .expect("an event file");
    let bytes = fs::read(&events).expect("event file");
    // TFRecord framing: length (8), its CRC (4), the event, its CRC (4), to the very end.
    let mut at = 0;
    while at < bytes.len() {
        assert!(at + 12 <= bytes.len(), "a cut record header at byte {at}");
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) as usize;
        at += 12 + len + 4;
    }
    assert_eq!(at, bytes.len(), "the event file ends inside a record");
}

/// A run whose failure was recorded after it had finished (its checkpoint and summary say it
/// is complete) counts as finished when retried, instead of failing again as "already
/// finished".
#[test]
fn retrying_a_failed_run_that_had_finished_counts_it_finished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let sweep = |extra: &[&str]| {
        let mut command = qnet();
        command.arg("sweep").arg("--out").arg(&out);
        for set in SHORT {
            command.args(["--set", set]);
        }
        command.args(["--seeds", "1", "--jobs", "1"]).args(extra);
        run(&mut command)
    };
    let output = sweep(&[]);
    assert!(output.status.success(), "{:?}", text(&output));
    let failure = r#"{"exit_status": "1", "error": "a failure recorded after the fact"}"#;
    fs::write(out.join("base/seed0/failure.json"), failure).expect("plant a failure");
    let output = sweep(&[]);
    let (stdout, _) = text(&output);
    assert!(stdout.contains("1 failed before"), "{stdout}");
    let output = sweep(&["--retry-failed"]);
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1/1 runs finished (0 now, 1 before)"),
        "{stdout}"
    );
    assert!(!out.join("base/seed0/failure.json").exists());
}

/// A sweep directory from someone else whose setting directory links elsewhere: nothing is
/// written through the link.
#[test]
fn a_sweep_never_writes_through_a_linked_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("sweep");
    let victim = dir.path().join("victim");
    fs::create_dir_all(&victim).expect("mkdir");
    let sweep = || {
        let mut command = qnet();
        command.arg("sweep").arg("--out").arg(&out);
        for set in SHORT {
            command.args(["--set", set]);
        }
        command.args(["--seeds", "1"]);
        command
    };
    // A sweep written (not run), then its setting directory replaced by a link.
    let output = run(sweep().arg("--slurm"));
    assert!(output.status.success(), "{:?}", text(&output));
    fs::remove_dir_all(out.join("base")).expect("rm");
    std::os::unix::fs::symlink(&victim, out.join("base")).expect("symlink");
    let output = run(&mut sweep());
    assert_clean_error(&output, &["not a directory", "base"]);
    assert_eq!(fs::read_dir(&victim).expect("victim").count(), 0);
}
