//! Bad input reaches the user as one clear error that names the problem, never a panic.

use std::fs;
use std::path::Path;

use crate::common::*;

fn train_with_file(yaml: &str, overrides: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("exp.yaml");
    fs::write(&config, yaml).expect("write config");
    let mut command = qnet();
    command.args(["train", "--quiet", "--config"]);
    command
        .arg(&config)
        .arg("--out")
        .arg(dir.path().join("run"));
    for set in overrides {
        command.args(["--set", set]);
    }
    run(&mut command)
}

#[test]
fn missing_config_file() {
    let output = run(qnet().args(["train", "--config", "configs/no-such.yaml"]));
    assert_clean_error(&output, &["configs/no-such.yaml"]);
}

#[test]
fn malformed_yaml() {
    let output = train_with_file("agent:\n  gamma: [0.9\n", &[]);
    assert_clean_error(&output, &["exp.yaml", "line"]);
}

#[test]
fn a_list_where_a_map_belongs() {
    let output = train_with_file("agent:\n  - 0.9\n", &[]);
    assert_clean_error(&output, &["exp.yaml", "agent"]);
}

#[test]
fn unknown_key_names_path_and_line() {
    let output = train_with_file("seed: 1\nagent:\n  gama: 0.9\n", &[]);
    assert_clean_error(&output, &["agent.gama", "exp.yaml:3"]);
}

#[test]
fn wrong_type() {
    let output = train_with_file("replay:\n  batch_size: many\n", &[]);
    assert_clean_error(&output, &["replay.batch_size", "exp.yaml"]);
}

#[test]
fn out_of_range_values_name_key_and_range() {
    for (yaml, key) in [
        ("agent:\n  gamma: 1.5\n", "agent.gamma"),
        ("optimizer:\n  lr: -0.001\n", "optimizer.lr"),
        ("optimizer:\n  lr: 0\n", "optimizer.lr"),
        ("network:\n  hidden: []\n", "network.hidden"),
        ("replay:\n  batch_size: 0\n", "replay.batch_size"),
        (
            "replay:\n  capacity: 10\n  batch_size: 64\n",
            "replay.batch_size",
        ),
    ] {
        let output = train_with_file(yaml, &[]);
        assert_clean_error(&output, &[key]);
    }
}

#[test]
fn overrides_naming_no_key_or_a_bad_value() {
    let output = train_with_file("seed: 1\n", &["agent.gamm=0.9"]);
    assert_clean_error(&output, &["agent.gamm"]);
    let output = train_with_file("seed: 1\n", &["agent.gamma"]);
    assert_clean_error(&output, &["agent.gamma"]);
    let output = train_with_file("seed: 1\n", &["agent.gamma=2"]);
    assert_clean_error(&output, &["agent.gamma", "--set"]);
}

#[test]
fn cuda_on_a_machine_without_cuda_says_what_libtorch_reports() {
    if tch::Cuda::is_available() {
        // A GPU box: cuda is a valid request here (CI, which has no GPU, runs this test).
        eprintln!("skipped: a CUDA device is present, so --device cuda is not an error here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(train_command(&dir.path().join("run"), &[]).args(["--device", "cuda"]));
    // The binary itself must have libtorch_cuda loaded when its libtorch ships one (build.rs
    // force-links it), so a CUDA build on a GPU-less box says so rather than "CPU-only".
    let ships_cuda = std::path::Path::new(env!("QNET_LIBTORCH_LIB"))
        .join("libtorch_cuda.so")
        .exists();
    let support = if ships_cuda {
        "libtorch has CUDA support"
    } else {
        "this libtorch is CPU-only"
    };
    assert_clean_error(
        &output,
        &["device is 'cuda'", support, "0 usable CUDA devices"],
    );
    let output = run(&mut train_command(
        &dir.path().join("run"),
        &["device=cuda:1"],
    ));
    assert_clean_error(&output, &["cuda:1"]);
}

#[test]
fn a_bad_device_spelling() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(train_command(&dir.path().join("run"), &[]).args(["--device", "gpu"]));
    assert_clean_error(&output, &["gpu", "auto, cpu, cuda or cuda:N"]);
}

fn eval_checkpoint(path: &Path, extra: &[&str]) -> std::process::Output {
    let mut command = qnet();
    command
        .args(["eval", "--episodes", "2"])
        .args(extra)
        .arg("--checkpoint")
        .arg(path);
    run(&mut command)
}

#[test]
fn broken_checkpoints_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (ext, extra) in [("safetensors", &[][..]), ("pt", &["--torchscript"][..])] {
        let missing = dir.path().join(format!("missing.{ext}"));
        assert_clean_error(
            &eval_checkpoint(&missing, extra),
            &[&format!("missing.{ext}")],
        );
        let empty = dir.path().join(format!("empty.{ext}"));
        fs::write(&empty, b"").expect("write");
        assert_clean_error(&eval_checkpoint(&empty, extra), &[&format!("empty.{ext}")]);
        let text_file = dir.path().join(format!("model.{ext}"));
        fs::write(&text_file, "this is not a model\n").expect("write");
        assert_clean_error(
            &eval_checkpoint(&text_file, extra),
            &[&format!("model.{ext}")],
        );
        let output = run(qnet()
            .args(["render"])
            .args(extra)
            .arg("--checkpoint")
            .arg(&empty));
        assert_clean_error(&output, &[&format!("empty.{ext}")]);
    }
    // A directory without a model.
    let empty_dir = tempfile::tempdir().expect("tempdir");
    assert_clean_error(
        &eval_checkpoint(empty_dir.path(), &[]),
        &["without a model.safetensors"],
    );
    assert_clean_error(
        &eval_checkpoint(empty_dir.path(), &["--torchscript"]),
        &["without a model.pt"],
    );
}

/// A model whose parameters are not all finite is refused by name, not played: the shipped
/// model with `+inf` in `2.weight` (safetensors) and NaN in it (TorchScript, by PyTorch).
#[test]
fn models_with_non_finite_parameters_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cartpole-dqn");
    let mut bytes = fs::read(shipped.join("model.safetensors")).expect("the shipped model");
    let header: serde_json::Value = {
        let len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        serde_json::from_slice(&bytes[8..8 + len]).expect("a JSON header")
    };
    let data = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let start = header["2.weight"]["data_offsets"][0]
        .as_u64()
        .expect("2.weight's offset") as usize;
    let at = data + start + 4 * 5;
    bytes[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let model = dir.path().join("model.safetensors");
    fs::write(&model, &bytes).expect("write");
    let refused = format!(
        "cannot use {} as a Q-network: its tensor 2.weight holds a non-finite value (inf at \
         element 5)",
        model.display()
    );
    assert_clean_error(&eval_checkpoint(&model, &[]), &[&refused]);
    let output = run(qnet()
        .arg("render")
        .arg("--checkpoint")
        .arg(&model)
        .arg("--out")
        .arg(dir.path().join("x.gif")));
    assert_clean_error(&output, &[&refused]);

    let script = "import sys, torch\n\
                  m = torch.jit.load(sys.argv[1])\n\
                  with torch.no_grad():\n    \
                  dict(m.named_parameters())['2.weight'].view(-1)[7] = float('nan')\n\
                  torch.jit.save(m, sys.argv[2])\n";
    let pt = dir.path().join("model.pt");
    let made = run(std::process::Command::new(python())
        .args(["-c", script])
        .arg(shipped.join("model.pt"))
        .arg(&pt));
    assert!(made.status.success(), "{:?}", text(&made));
    assert_clean_error(
        &eval_checkpoint(&pt, &["--torchscript", "--env", "CartPole-v1"]),
        &[&format!(
            "cannot use {} as a Q-network: its tensor 2.weight holds a non-finite value (NaN \
             at element 7)",
            pt.display()
        )],
    );
}

#[test]
fn resume_needs_a_run_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = run(qnet().args(["train", "--resume"]).arg(dir.path()));
    assert_clean_error(&output, &["no config.yaml"]);
    fs::write(dir.path().join("config.yaml"), "seed: 0\n").expect("write");
    fs::write(dir.path().join("checkpoint.safetensors"), "garbage").expect("write");
    let output = run(qnet().args(["train", "--resume"]).arg(dir.path()));
    assert_clean_error(&output, &["checkpoint.safetensors", "truncated or corrupt"]);
}

/// Sizes no machine here can hold are refused before anything is allocated or written.
#[test]
fn absurd_sizes_are_refused_up_front() {
    let wide = "network.hidden=[65536,65536,65536,65536,65536,65536,65536,65536]";
    for (sets, needle) in [
        (
            ["replay.capacity=100000000000", "seed=0"],
            "replay.capacity = 100000000000",
        ),
        ([wide, "seed=0"], "network.hidden = [65536, 65536, 65536"),
        (
            [
                "replay.capacity=100000000000",
                "replay.batch_size=100000000000",
            ],
            "replay.batch_size = 100000000000",
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("run");
        let mut command = train_command(&out, &sets);
        let output = run(&mut command);
        assert_clean_error(&output, &["not enough memory", needle]);
        assert!(!out.exists(), "{sets:?}: a run directory was created");
    }
}

/// `qnet ... | head` ends quietly when head has read enough.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = qnet()
        .args(["bench", "solve", "--seeds", "3", "--out"])
        .arg(dir.path().join("bench"))
        .args([
            "--set",
            "train.total_env_steps=600",
            "--set",
            "eval.every=0",
        ])
        .args(["--set", "eval.final_episodes=2", "--set", "device=cpu"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start qnet");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("one line");
    assert!(first.starts_with("bench solve"), "{first}");
    drop(stdout);
    let output = child.wait_with_output().expect("wait");
    let (_, stderr) = text(&output);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn the_binary_runs_without_ld_library_path() {
    // cargo puts libtorch on LD_LIBRARY_PATH for tests; the rpath must make that unneeded.
    let output = run(qnet().env_remove("LD_LIBRARY_PATH").arg("--help"));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("train") && stdout.contains("render"),
        "{stdout}"
    );
}
