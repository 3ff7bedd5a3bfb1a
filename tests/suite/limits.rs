//! Limits a batch system sets on a process (`ulimit -v`, `ulimit -f`): qnet refuses or stops
//! with an error that names the limit or the file, never an abort or a silent death by signal.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// `qnet ARGS...` under the bash `ulimit` option `option` set to `value`, from the crate root.
fn qnet_under_ulimit(option: &str, value: u64, args: &[&str]) -> Command {
    let mut command = Command::new("bash");
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("-c")
        .arg(format!("ulimit {option} {value} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_qnet"))
        .args(args);
    command
}

/// A `Name:  N kB` field of a /proc status or meminfo text, in KiB.
fn kib(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|line| line.strip_prefix(name))?;
    rest.trim().trim_end_matches("kB").trim().parse().ok()
}

/// The address space (KiB) a started qnet has mapped: that of a sweep worker waiting for
/// its first request, libtorch loaded (the loader maps it after exec, so the test waits for it
/// and for the size to settle).
fn qnet_mapped_kib() -> u64 {
    let mut worker = qnet()
        .arg("sweep-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("qnet starts");
    let proc_file = |name: &str| std::fs::read_to_string(format!("/proc/{}/{name}", worker.id()));
    let started = Instant::now();
    let mut last = None;
    let mapped = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no settled VmSize"
        );
        sleep(Duration::from_millis(200));
        let loaded = proc_file("maps").is_ok_and(|maps| maps.contains("libtorch_cpu"));
        let size = proc_file("status")
            .ok()
            .and_then(|text| kib(&text, "VmSize:"));
        if loaded && size.is_some() && size == last {
            break size.unwrap_or_default();
        }
        last = size;
    };
    drop(worker.stdin.take());
    let mut rest = String::new();
    let _ = worker
        .stdout
        .take()
        .map(|mut out| out.read_to_string(&mut rest));
    let _ = worker.wait();
    mapped
}

#[test]
fn an_address_space_limit_is_counted_before_allocating() {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if kib(&meminfo, "MemAvailable:").unwrap_or(0) < 8 << 20 {
        eprintln!("skipped: less than 8 GiB of RAM available, which would be the bound named");
        return;
    }
    // Room for about 256 MiB beyond what qnet maps to start; the memory asks for 2 GiB.
    let limit = qnet_mapped_kib() + (256 << 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let out_arg = out.to_str().expect("a UTF-8 temporary directory");
    let output = run(&mut qnet_under_ulimit(
        "-v",
        limit,
        &[
            "train",
            "--config",
            "configs/tutorial.yaml",
            "--quiet",
            "--out",
            out_arg,
            "--set",
            "device=cpu",
            "--set",
            "train.tutorial.min_memory=45000000",
        ],
    ));
    assert_clean_error(
        &output,
        &[
            "not enough memory: this config needs about 2.0 GiB of host memory",
            "address-space limit (ulimit -v) of",
            "train.tutorial.min_memory = 45000000: 2.0 GiB",
            "or raise that limit",
        ],
    );
    assert!(!out.exists(), "{} was created", out.display());
}

#[test]
fn a_file_size_limit_ends_in_an_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("run");
    let mut args = vec![
        "train",
        "--quiet",
        "--out",
        out.to_str().expect("a UTF-8 temporary directory"),
    ];
    for set in SHORT {
        args.extend(["--set", set]);
    }
    // 200 KiB: metrics.csv fits, the checkpoint (its replay buffer) does not.
    let output = run(&mut qnet_under_ulimit("-f", 200, &args));
    assert_clean_error(
        &output,
        &[
            &format!(
                "failed to write {}",
                Path::new(&out).join("checkpoint.safetensors").display()
            ),
            "File too large",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
}
