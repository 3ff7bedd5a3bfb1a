//! What makes a run reproducible and comparable, recorded in its summary.json: the qnet build
//! and the libtorch that computed it, the machine, the command and when it started.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::platform::{cuda_runtime, host, shell, utc};

/// The git commit qnet was built from (build.rs), when it was built from a checkout.
const GIT_COMMIT: Option<&str> = option_env!("QNET_GIT_COMMIT");

/// Where and how the session that wrote a summary ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The git commit qnet was built from, when it was built from a checkout.
    pub git_commit: Option<String>,
    /// The version of the libtorch loaded in this process (its install's version file).
    pub libtorch_version: Option<String>,
    /// Where that libtorch's libraries are.
    pub libtorch_path: Option<PathBuf>,
    /// The GPU's name, when the run trained on CUDA.
    pub gpu: Option<String>,
    /// The CPU's model name.
    pub cpu: Option<String>,
    /// libtorch's CPU threads.
    pub threads: i32,
    /// This machine's host name.
    pub hostname: String,
    /// The command line of this session (for a sweep's run, its `qnet train` line).
    pub command: String,
    /// When this session started, UTC.
    pub started_at: String,
}

impl Provenance {
    /// Reads this process's libtorch, machine and clock, for a session of `command` that
    /// trains on `device` and starts now.
    pub fn capture(command: String, device: Device) -> Self {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let libtorch_path = libtorch_dir(&maps);
        Self {
            git_commit: GIT_COMMIT.map(str::to_owned),
            libtorch_version: libtorch_path.as_deref().and_then(libtorch_version),
            libtorch_path,
            gpu: match device {
                Device::Cuda(index) => cuda_runtime::device_name(index),
                _ => None,
            },
            cpu: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|info| cpu_model(&info)),
            threads: tch::get_num_threads(),
            hostname: host::hostname(),
            command,
            started_at: utc::iso8601(SystemTime::now()),
        }
    }
}

/// This process's command line, each argument shell-quoted where it needs it (an argument
/// that is not UTF-8, such as a path, byte for byte in `$'...'`).
pub fn this_command() -> String {
    shell::words_os(std::env::args_os())
}

/// The directory of the libtorch_cpu library mapped into this process (`maps` is
/// /proc/self/maps).
fn libtorch_dir(maps: &str) -> Option<PathBuf> {
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            Path::new(path)
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("libtorch_cpu."))
        })
        .and_then(|path| Path::new(path).parent().map(Path::to_path_buf))
}

/// The version of the libtorch whose libraries are in `lib`: a Python install's `version.py`
/// (`__version__ = '2.13.0+cu130'`) or an unpacked libtorch's `build-version`, both beside
/// `lib/`.
fn libtorch_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("version.py")) {
        return text.lines().find_map(|line| {
            let value = line.strip_prefix("__version__")?.trim_start();
            let value = value.strip_prefix('=')?.trim();
            Some(value.trim_matches(['\'', '"']).to_owned())
        });
    }
    let text = std::fs::read_to_string(root.join("build-version")).ok()?;
    Some(text.trim().to_owned()).filter(|version| !version.is_empty())
}

/// The first `model name` of a /proc/cpuinfo text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loaded_libtorch_is_found_with_its_version() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let dir = libtorch_dir(&maps).expect("libtorch_cpu is mapped into this test process");
        assert_eq!(
            std::fs::canonicalize(&dir).ok(),
            std::fs::canonicalize(env!("QNET_LIBTORCH_LIB")).ok()
        );
        let version = libtorch_version(&dir).expect("a version file beside lib/");
        // tch 0.24 goes with libtorch 2.11, tch 0.26 with 2.13 (Cargo.toml accepts both).
        assert!(
            version.starts_with("2.11.") || version.starts_with("2.13."),
            "{version}"
        );
    }

    #[test]
    fn version_files_of_both_layouts_are_read() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let lib = dir.path().join("lib");
        std::fs::create_dir(&lib)?;
        assert_eq!(libtorch_version(&lib), None);
        std::fs::write(dir.path().join("build-version"), "2.11.0+cpu\n")?;
        assert_eq!(libtorch_version(&lib).as_deref(), Some("2.11.0+cpu"));
        std::fs::write(
            dir.path().join("version.py"),
            "from typing import Optional\n__version__ = '2.13.0+cu130'\ncuda = '13.0'\n",
        )?;
        assert_eq!(libtorch_version(&lib).as_deref(), Some("2.13.0+cu130"));
        Ok(())
    }

    #[test]
    fn cpu_models_and_commands_read_as_written() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn a_cpu_capture_names_this_machine_and_no_gpu() {
        let p = Provenance::capture("qnet train".to_owned(), Device::Cpu);
        assert_eq!(p.gpu, None);
        assert_eq!(p.hostname, host::hostname());
        assert!(p.threads >= 1);
        assert_eq!(p.command, "qnet train");
        assert_eq!(p.started_at.len(), "2026-12-01T17:57:01Z".len());
        assert!(p.libtorch_version.is_some());
    }
}
