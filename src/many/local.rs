//! Running a sweep here: `workers` worker processes (`qnet sweep-worker`), each training one
//! run at a time on one libtorch thread, fed from one queue.
//!
//! Workers run in their own process group, so a Ctrl-C reaches only this process, which
//! stops handing out runs and passes one SIGINT to each worker: the runs in progress write a
//! checkpoint and stop, and the next `qnet sweep` resumes them. A worker that dies (killed,
//! out of memory) fails only the run it held; a new worker takes the next one.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};

use super::sweep::{Job, RunState, Sweep};
use super::tally::Tally;
use super::worker::{fail, JobOutcome, Report, Request, PARENT_PID_ENV};
use crate::platform::files::{child_dir, open_for_append};
use crate::platform::read::read_text;
use crate::platform::signals::StopFlag;
use crate::run::progress::SweepProgress;

/// One worker process and its pipes.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: std::path::PathBuf,
}

impl Worker {
    fn spawn(log: &Path) -> Result<Self> {
        let stderr = open_for_append(log)
            .with_context(|| format!("opening the worker log {}", log.display()))?;
        let exe = std::env::current_exe().context("finding the qnet executable")?;
        let mut child = Command::new(exe)
            .arg("sweep-worker")
            // One libtorch thread per worker: the workers share the cores.
            .env("OMP_NUM_THREADS", "1")
            .env(PARENT_PID_ENV, std::process::id().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .context("starting a sweep worker")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            anyhow::bail!("a sweep worker started without pipes");
        };
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            log: log.to_path_buf(),
        })
    }

    /// Spawns a worker and adds its pid to `pids`, the processes a stop is passed to.
    fn spawn_listed(log: &Path, pids: &Mutex<Vec<i32>>) -> Result<Self> {
        let worker = Self::spawn(log)?;
        if let (Ok(mut list), Ok(pid)) = (pids.lock(), i32::try_from(worker.child.id())) {
            list.push(pid);
        }
        Ok(worker)
    }

    /// Sends `request` and reads the report; `None` when the worker died on the way.
    fn run(&mut self, request: &Request) -> Option<Report> {
        let line = serde_json::to_string(request).ok()?;
        writeln!(self.stdin, "{line}").ok()?;
        self.stdin.flush().ok()?;
        let mut answer = String::new();
        match self.stdout.read_line(&mut answer) {
            Ok(n) if n > 0 => serde_json::from_str(&answer).ok(),
            _ => None,
        }
    }

    /// Waits for a dead worker: its exit status (as failure.json records it) and how it
    /// died, in words, with the last line of its log.
    fn post_mortem(mut self) -> (String, String) {
        let last = read_text(&self.log).ok().and_then(|text| {
            text.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        });
        match self.child.wait() {
            Ok(status) => (describe(status), death(status, &self.log, last.as_deref())),
            Err(err) => (
                "unknown".to_owned(),
                format!("the sweep worker running it could not be waited for: {err}"),
            ),
        }
    }

    /// The report on the job a worker died running: interrupted when the sweep is
    /// stopping, failed with the worker's exit status and last log line otherwise.
    fn died_running(self, job: &Job, stopping: &AtomicBool) -> Report {
        let (status, error) = self.post_mortem();
        // Stopping, a worker may die of the SIGINT before its handler is in place.
        let outcome = if stopping.load(Ordering::Relaxed) {
            JobOutcome::Interrupted
        } else {
            fail(job, &status, &error)
        };
        Report {
            outcome,
            wall_seconds: 0.0,
            fresh_train_seconds: None,
        }
    }

    /// Ends an idle worker: closing its stdin ends its loop.
    fn close(mut self) {
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code.to_string(),
        (None, Some(9)) => "signal 9 (SIGKILL: killed, often for running out of memory)".into(),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "unknown".into(),
    }
}

/// How a worker died, in one line: its exit status or the signal that killed it (by name),
/// and the last line of its log `log`, or that the log holds none.
fn death(status: ExitStatus, log: &Path, last: Option<&str>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                libc::SIGKILL => " (SIGKILL: killed, often for running out of memory)",
                libc::SIGSEGV => " (SIGSEGV: a crash)",
                libc::SIGABRT => " (SIGABRT: aborted)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                _ => "",
            };
            format!("was killed by signal {signal}{name}")
        }
        (None, None) => "ended in an unknown way".to_owned(),
    };
    match last {
        Some(line) => format!(
            "the sweep worker running it {how}; the last line of its log {}: {}",
            log.display(),
            crate::config::clip(line.trim())
        ),
        None => format!(
            "the sweep worker running it {how}; its log {} holds nothing",
            log.display()
        ),
    }
}

/// Runs `jobs` (indices into `sweep.jobs`) on `workers` processes; `on_report` sees each
/// report as it arrives. Returns once every job has a report or, after `stop` was raised,
/// once the workers have stopped.
pub(super) fn run(
    sweep: &Sweep,
    jobs: Vec<usize>,
    workers: usize,
    retry_failed: bool,
    stop: &StopFlag,
    on_report: &mut dyn FnMut(&Job, &Report) -> Result<()>,
) -> Result<()> {
    let _listening = stop.listen();
    let logs = sweep.out.join("logs");
    child_dir(&sweep.out, &logs).with_context(|| format!("creating {}", logs.display()))?;
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let stopping = Arc::new(AtomicBool::new(false));
    let pids = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<(usize, Report)>();
    let mut threads = Vec::new();
    for k in 0..workers {
        let (queue, stopping, pids, tx) = (
            Arc::clone(&queue),
            Arc::clone(&stopping),
            Arc::clone(&pids),
            tx.clone(),
        );
        let jobs = sweep.jobs.clone();
        let log = logs.join(format!("worker-{k}.log"));
        threads.push(thread::spawn(move || {
            feed(&jobs, &queue, &stopping, &pids, &tx, &log, retry_failed)
        }));
    }
    drop(tx);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((index, report)) => on_report(&sweep.jobs[index], &report)?,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if stop.is_raised() && !stopping.swap(true, Ordering::Relaxed) {
            for &pid in pids
                .lock()
                .map_err(|_| anyhow::anyhow!("worker list poisoned"))?
                .iter()
            {
                // SAFETY: kill(2) on our own child's pid; failure (already exited) is fine.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
        }
    }
    for thread in threads {
        if let Ok(Err(err)) = thread.join() {
            return Err(err);
        }
    }
    Ok(())
}

/// One worker's loop: take a job, have the worker run it, report; replace a dead worker.
fn feed(
    jobs: &[Job],
    queue: &Mutex<VecDeque<usize>>,
    stopping: &AtomicBool,
    pids: &Mutex<Vec<i32>>,
    tx: &mpsc::Sender<(usize, Report)>,
    log: &Path,
    retry_failed: bool,
) -> Result<()> {
    let mut worker: Option<Worker> = None;
    loop {
        if stopping.load(Ordering::Relaxed) {
            break;
        }
        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
        let Some(index) = next else { break };
        let mut current = match worker.take() {
            Some(w) => w,
            None => Worker::spawn_listed(log, pids)?,
        };
        let request = Request {
            job: jobs[index].clone(),
            retry_failed,
        };
        let report = match current.run(&request) {
            Some(report) => {
                worker = Some(current);
                report
            }
            None => current.died_running(&jobs[index], stopping),
        };
        let interrupted = report.outcome == JobOutcome::Interrupted;
        if tx.send((index, report)).is_err() || interrupted {
            break;
        }
    }
    if let Some(w) = worker {
        w.close();
    }
    Ok(())
}

/// Trains the sweep's runs here on `workers` processes, skipping what is finished (and
/// what failed, unless `retry_failed`).
pub fn run_here(sweep: &Sweep, workers: usize, retry_failed: bool, quiet: bool) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut queue = Vec::new();
    for (index, job) in sweep.jobs.iter().enumerate() {
        match RunState::of(&job.dir)? {
            RunState::Finished(_) => tally.already_finished += 1,
            RunState::Failed(_) if !retry_failed => tally.skipped_failed += 1,
            _ => queue.push(index),
        }
    }
    let total = sweep.jobs.len() as u64;
    let mut progress = SweepProgress::choose(quiet, total);
    if !queue.is_empty() {
        let stop = StopFlag::install()?;
        let queued = queue.len();
        let mut reported = 0;
        run(
            sweep,
            queue,
            workers.min(queued),
            retry_failed,
            &stop,
            &mut |job, report| {
                tally.count(job, report);
                reported += 1;
                if let JobOutcome::Failed(failure) = &report.outcome {
                    progress.line(&format!(
                        "failed: {} (exit status {}): {}",
                        job.dir.display(),
                        failure.exit_status,
                        failure.error
                    ));
                }
                progress.update(tally.done() as u64, tally.failed.len() as u64, total);
                Ok(())
            },
        )?;
        tally.not_run = queued - reported;
        if stop.is_raised() {
            progress.line("stopped: the runs in progress saved a checkpoint");
        }
    }
    progress.finish();
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_dead_worker_is_described_by_its_status_and_its_log() {
        let log = Path::new("/s/logs/worker-0.log");
        assert_eq!(
            death(ExitStatus::from_raw(9), log, None),
            "the sweep worker running it was killed by signal 9 (SIGKILL: killed, often for \
             running out of memory); its log /s/logs/worker-0.log holds nothing"
        );
        assert_eq!(
            death(ExitStatus::from_raw(3 << 8), log, Some("error: no room  ")),
            "the sweep worker running it exited with status 3; the last line of its log \
             /s/logs/worker-0.log: error: no room"
        );
        assert!(death(ExitStatus::from_raw(11), log, None).contains("signal 11 (SIGSEGV"));
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "3");
    }
}
