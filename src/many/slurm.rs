//! Slurm, the engine for clusters: a sweep as a job array (`sweep.sbatch`), several runs per
//! array task, submitted with `sbatch` and waited for with `squeue`.
//!
//! Each array task is `qnet sweep-task`, which runs its share of the sweep's jobs one after
//! another in one process, skipping finished runs and resuming interrupted ones, so
//! submitting the same script again finishes what is left. Slurm sends SIGTERM a minute
//! before the time limit; the run in progress then checkpoints, and the next submission
//! resumes it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::clip;
use crate::many::sweep::Sweep;
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::shell;

/// File name of the job script inside a sweep directory.
pub const SCRIPT: &str = "sweep.sbatch";

/// How the array is laid out and what each task asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayOptions {
    /// Runs per array task.
    pub runs_per_task: usize,
    /// Tasks running at once (`%N`), if limited.
    pub max_concurrent: Option<u32>,
    /// CPUs per task.
    pub cpus_per_task: u32,
    /// Time limit per task, in Slurm's syntax.
    pub time: String,
    /// Partition, if not the default.
    pub partition: Option<String>,
    /// Train again the runs that failed before.
    pub retry_failed: bool,
}

impl ArrayOptions {
    /// Array tasks for `jobs` runs.
    pub fn tasks(&self, jobs: usize) -> usize {
        jobs.div_ceil(self.runs_per_task.max(1))
    }

    /// Checks the options for an array over `jobs` runs before anything is written: a
    /// time and partition Slurm accepts, and no more tasks than the cluster's
    /// `MaxArraySize` (when known: see [`cluster_max_array_size`]).
    pub fn check_for(&self, jobs: usize, max_array_size: Option<u64>) -> Result<()> {
        self.check()?;
        let Some(max) = max_array_size else {
            return Ok(());
        };
        let tasks = self.tasks(jobs);
        if tasks as u64 <= max {
            return Ok(());
        }
        if max == 0 {
            bail!("this cluster's MaxArraySize is 0 (scontrol show config): it runs no job arrays");
        }
        // Indices run from 0 to MaxArraySize - 1, so at most MaxArraySize tasks.
        let fits = jobs.div_ceil(usize::try_from(max).unwrap_or(usize::MAX));
        bail!(
            "{tasks} array tasks ({jobs} runs at --runs-per-task {}) are more than this \
             cluster's MaxArraySize of {max} (scontrol show config); use --runs-per-task {fits} \
             or more, or ask the administrators to raise MaxArraySize",
            self.runs_per_task
        );
    }

    fn check(&self) -> Result<()> {
        let time_ok = !self.time.is_empty()
            && self
                .time
                .chars()
                .all(|c| c.is_ascii_digit() || c == ':' || c == '-');
        if !time_ok {
            bail!(
                "--time {:?} is not a Slurm time limit (minutes, HH:MM:SS or D-HH:MM:SS)",
                clip(&self.time)
            );
        }
        if let Some(partition) = &self.partition {
            let ok = !partition.is_empty()
                && partition
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ','));
            if !ok {
                bail!(
                    "--partition {:?} is not a Slurm partition name",
                    clip(partition)
                );
            }
        }
        Ok(())
    }

    /// The job script for `sweep`, with `qnet` the executable the tasks run. Every piece of
    /// it that comes from a path is quoted ([`shell`]); a sweep directory that a `#SBATCH`
    /// line cannot name is refused, with what to choose instead.
    pub fn script(&self, sweep: &Sweep, qnet: &Path) -> Result<String> {
        self.check()?;
        let tasks = self.tasks(sweep.jobs.len());
        if tasks == 0 {
            bail!("the sweep has no runs");
        }
        let output = log_pattern(&sweep.out)?;
        let out = shell::quote_os(sweep.out.as_os_str());
        let name: String = sweep
            .out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let concurrency = self
            .max_concurrent
            .map_or(String::new(), |n| format!("%{n}"));
        let mut lines = vec![
            "#!/bin/bash".to_owned(),
            format!(
                "# Written by qnet sweep --slurm: {} runs of {out} as {tasks} array tasks of up \
                 to {} runs each.",
                sweep.jobs.len(),
                self.runs_per_task
            ),
            "# Submit it again to finish what is left: finished runs are skipped, interrupted \
             ones resume."
                .to_owned(),
            format!("#SBATCH --job-name=qnet-{name}"),
            format!("#SBATCH --array=0-{}{concurrency}", tasks - 1),
            format!("#SBATCH --cpus-per-task={}", self.cpus_per_task),
            format!("#SBATCH --time={}", self.time),
            format!("#SBATCH --output={output}"),
            // A minute before the time limit: the run in progress checkpoints and stops.
            "#SBATCH --signal=B:TERM@60".to_owned(),
        ];
        if let Some(partition) = &self.partition {
            lines.push(format!("#SBATCH --partition={partition}"));
        }
        lines.push(format!(
            "exec {} sweep-task --out {out} --task \"$SLURM_ARRAY_TASK_ID\" --runs-per-task {}{}",
            shell::quote_os(qnet.as_os_str()),
            self.runs_per_task,
            if self.retry_failed {
                " --retry-failed"
            } else {
                ""
            }
        ));
        Ok(lines.join("\n") + "\n")
    }
}

/// Writes `script` (from [`ArrayOptions::script`]) into the sweep directory, and the log
/// directory it names.
pub fn write_script(sweep: &Sweep, script: &str) -> Result<PathBuf> {
    let logs = sweep.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let path = sweep.out.join(SCRIPT);
    write_bytes_atomic(&path, script.as_bytes())?;
    Ok(path)
}

/// The `--output` argument of the job script: the array tasks' logs in `out/logs/`, as one
/// quoted `#SBATCH` word. In a Slurm file name `%%` is a literal `%`, and a backslash turns
/// off every `%` pattern (and is dropped), so one in the path cannot be written.
fn log_pattern(out: &Path) -> Result<String> {
    let shown = shell::quote_os(out.as_os_str());
    let shown = clip(&shown);
    let Some(text) = out.to_str() else {
        bail!(
            "the sweep directory {shown} is not UTF-8, which a Slurm job script cannot name: \
             choose an --out whose name is UTF-8"
        );
    };
    if text.contains('\\') {
        bail!(
            "the sweep directory {shown} holds a backslash, which makes Slurm take a log file \
             name literally (without %A_%a) and drop the backslash: choose an --out without a \
             backslash"
        );
    }
    let pattern = format!("{}/logs/slurm-%A_%a.out", text.replace('%', "%%"));
    shell::sbatch_word(&pattern).map_err(|err| {
        anyhow::anyhow!(
            "the sweep directory {shown} cannot be named on the job script's #SBATCH --output \
             line: {err}; choose an --out without control characters (newlines, tabs)"
        )
    })
}

/// `MaxArraySize` in the text of `scontrol show config` (a line `MaxArraySize = 1001`).
fn parse_max_array_size(config: &str) -> Option<u64> {
    config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "MaxArraySize" {
            return None;
        }
        value.trim().parse().ok()
    })
}

/// The `MaxArraySize` of the cluster `scontrol` answers for; `None` when no Slurm answers
/// here (a job script may be written on a machine outside the cluster).
pub fn cluster_max_array_size() -> Option<u64> {
    let output = Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    parse_max_array_size(&String::from_utf8_lossy(&output.stdout))
}

/// The jobs of array task `task`: a contiguous slice of the sweep's runs.
pub fn task_jobs(jobs: usize, runs_per_task: usize, task: usize) -> std::ops::Range<usize> {
    let start = task.saturating_mul(runs_per_task).min(jobs);
    start..start.saturating_add(runs_per_task).min(jobs)
}

/// Submits `script` with `sbatch`; returns the job id.
pub fn submit(script: &Path) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "sbatch not found: Slurm is not installed here. {} is written; submit it from a \
                 machine of the cluster with: sbatch {}",
                script.display(),
                script.display()
            ),
            _ => anyhow::Error::new(err).context("running sbatch"),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    // `--parsable` prints "jobid" or "jobid;cluster".
    let id = stdout.trim().split(';').next().unwrap_or("").to_owned();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch printed {:?}, not a job id", stdout.trim());
    }
    Ok(id)
}

/// Waits until job `id` has left Slurm's queue, calling `poll` every few seconds meanwhile.
pub fn wait(id: &str, poll: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    loop {
        let output = Command::new("squeue")
            .args(["-h", "-o", "%i", "-j", id])
            .output()
            .context("running squeue")?;
        // squeue forgets a job some minutes after it ends and then fails on its id.
        if !output.status.success() || output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        poll()?;
        sleep(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::many::sweep::SweepSpec;
    use std::os::unix::ffi::OsStrExt;

    fn options() -> ArrayOptions {
        ArrayOptions {
            runs_per_task: 3,
            max_concurrent: Some(2),
            cpus_per_task: 1,
            time: "00:30:00".to_owned(),
            partition: Some("debug".to_owned()),
            retry_failed: false,
        }
    }

    fn sweep(dir: &Path) -> Result<Sweep> {
        let spec = SweepSpec {
            config: Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cartpole.yaml"),
            overrides: Vec::new(),
            grid: vec![(
                "optimizer.lr".to_owned(),
                vec!["1e-3".into(), "3e-3".into()],
            )],
            seeds: 0..4,
            max_runs: crate::many::sweep::DEFAULT_MAX_RUNS,
        };
        Ok(Sweep::expand(&spec, &dir.join("it's a sweep"))?.0)
    }

    #[test]
    fn the_script_is_an_array_of_tasks_with_several_runs_each() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let sweep = sweep(dir.path())?;
        let script = options().script(&sweep, Path::new("/opt/qnet/bin/qnet"))?;
        assert!(script.starts_with("#!/bin/bash\n"), "{script}");
        // 8 runs, 3 per task: 3 tasks, 2 at a time.
        assert!(script.contains("#SBATCH --array=0-2%2\n"), "{script}");
        assert!(script.contains("#SBATCH --cpus-per-task=1\n"), "{script}");
        assert!(script.contains("#SBATCH --time=00:30:00\n"), "{script}");
        assert!(script.contains("#SBATCH --partition=debug\n"), "{script}");
        assert!(script.contains("/logs/slurm-%A_%a.out\"\n"), "{script}");
        assert!(
            script.contains("exec /opt/qnet/bin/qnet sweep-task --out '"),
            "{script}"
        );
        assert!(script.contains(r"it'\''s a sweep' --task"), "{script}");
        assert!(script.contains("--runs-per-task 3\n"), "{script}");
        Ok(())
    }

    /// A sweep of one run in `out`.
    fn sweep_in(out: &Path) -> Sweep {
        Sweep {
            out: out.to_path_buf(),
            settings: Vec::new(),
            jobs: vec![crate::many::sweep::Job {
                dir: out.join("base/seed0"),
                config: out.join("base/config.yaml"),
                seed: 0,
                setting: 0,
            }],
        }
    }

    #[test]
    fn paths_are_quoted_on_every_line_or_refused() -> Result<()> {
        let qnet = Path::new("/opt/q net/qnet");
        let out = Path::new("/tmp/100% \"sure\" it's #1");
        let script = options().script(&sweep_in(out), qnet)?;
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(
            lines[7],
            r#"#SBATCH --output="/tmp/100%% \"sure\" it's #1/logs/slurm-%A_%a.out""#
        );
        assert!(
            lines[1].contains(r#"runs of '/tmp/100% "sure" it'\''s #1' as"#),
            "{script}"
        );
        assert!(
            lines[10].starts_with(
                r#"exec '/opt/q net/qnet' sweep-task --out '/tmp/100% "sure" it'\''s #1' --task"#
            ),
            "{script}"
        );
        for (path, says) in [
            (
                "/tmp/a\ntouch /tmp/pwned\n#",
                "U+000A; choose an --out without control",
            ),
            (
                "/tmp/a\tb",
                "U+0009; choose an --out without control characters",
            ),
            (r"/tmp/a\b", "holds a backslash"),
        ] {
            let err = options()
                .script(&sweep_in(Path::new(path)), qnet)
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
        let stray = std::ffi::OsStr::from_bytes(b"/tmp/\xff");
        let err = options()
            .script(&sweep_in(Path::new(stray)), qnet)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r"directory $'/tmp/\xff' is not UTF-8"),
            "{err}"
        );
        // The executable's path may hold anything: bash reads it back from $'...'.
        let script = options().script(&sweep_in(Path::new("/tmp/s")), Path::new("/q\nx"))?;
        assert!(script.contains(r"exec $'/q\nx' sweep-task"), "{script}");
        assert_eq!(script.lines().count(), 11);
        Ok(())
    }

    #[test]
    fn tasks_cover_every_run_once() {
        let options = options();
        assert_eq!(options.tasks(8), 3);
        let covered: Vec<usize> = (0..3).flat_map(|t| task_jobs(8, 3, t)).collect();
        assert_eq!(covered, (0..8).collect::<Vec<_>>());
        assert!(task_jobs(8, 3, 5).is_empty());
    }

    #[test]
    fn max_array_size_is_read_from_scontrol_and_bounds_the_tasks() -> Result<()> {
        let config = "Configuration data as of 2025-01-01T00:00:00\n\
                      MailProg                = /bin/mail\n\
                      MaxArraySize            = 1001\n\
                      MaxJobCount             = 10000\n";
        assert_eq!(parse_max_array_size(config), Some(1001));
        assert_eq!(parse_max_array_size("MaxJobCount = 10000\n"), None);
        assert_eq!(parse_max_array_size("MaxArraySize = (null)\n"), None);
        let one = ArrayOptions {
            runs_per_task: 1,
            ..options()
        };
        one.check_for(1001, Some(1001))?;
        one.check_for(5000, None)?;
        let err = one.check_for(1002, Some(1001)).unwrap_err().to_string();
        assert_eq!(
            err,
            "1002 array tasks (1002 runs at --runs-per-task 1) are more than this cluster's \
             MaxArraySize of 1001 (scontrol show config); use --runs-per-task 2 or more, or \
             ask the administrators to raise MaxArraySize"
        );
        // The suggested --runs-per-task fits.
        let two = ArrayOptions {
            runs_per_task: 2,
            ..options()
        };
        two.check_for(1002, Some(1001))?;
        two.check_for(2002, Some(1001))?;
        assert!(two.check_for(2003, Some(1001)).is_err());
        assert!(one.check_for(1, Some(0)).is_err());
        Ok(())
    }

    #[test]
    fn bad_options_are_refused() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let sweep = sweep(dir.path())?;
        let qnet = Path::new("qnet");
        let bad_time = ArrayOptions {
            time: "1h; rm -rf /".to_owned(),
            ..options()
        };
        assert!(bad_time.script(&sweep, qnet).is_err());
        let long_time = ArrayOptions {
            time: "1".repeat(100_000) + "h",
            ..options()
        };
        let err = long_time.script(&sweep, qnet).unwrap_err().to_string();
        assert!(
            err.contains("... (99801 more characters)\" is not a Slurm time"),
            "{err}"
        );
        let bad_partition = ArrayOptions {
            partition: Some("a b\n#SBATCH --x".to_owned()),
            ..options()
        };
        assert!(bad_partition.script(&sweep, qnet).is_err());
        Ok(())
    }
}
