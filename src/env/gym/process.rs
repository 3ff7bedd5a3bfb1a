//! One Python worker process (`worker.py`) and the channels to it: control requests and
//! replies on pipes, steps through shared memory with a wake-up pipe each way.
//!
//! Every wait has a deadline and watches the worker: one that raises comes back as an error
//! naming the exception, one that dies as its exit status and last lines of output, one that
//! hangs as a timeout (and is killed). Nothing here waits forever.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{fence, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use super::layout::{
    Layout, OPERATION, OP_CONTROL, OP_STEP, QNET_SLEEPING, REPLY, REQUEST, STATUS, STATUS_ERROR,
    WORKER_SLEEPING,
};
use crate::platform::shm::SharedMemory;

/// The worker's source, run with `python -c`.
const SCRIPT: &str = include_str!("worker.py");

/// Lines of the worker's output kept for an error message.
const OUTPUT_LINES: usize = 20;

/// How long a wait for the worker looks at shared memory in a tight loop, then how long in
/// all (giving the core away between looks after the first), before qnet sleeps on its
/// wake-up pipe: longer than most environments' steps, so that a busy worker is answered
/// without a system call, and short enough not to matter when the worker is slow or the cores
/// are shared.
const SPIN: Duration = Duration::from_micros(30);
const LOOK: Duration = Duration::from_micros(150);

/// What a worker's control channel answered: its JSON, and the blob that may follow it.
pub(super) struct Reply {
    pub json: Value,
    pub blob: Option<Vec<u8>>,
}

/// A running worker.
pub(super) struct Worker {
    child: Child,
    /// What the errors call it: `gym:<id>`.
    label: String,
    requests: File,
    replies: File,
    wake_worker: File,
    woken: File,
    shm: SharedMemory,
    layout: Option<Layout>,
    seq: u64,
    output: Arc<Mutex<VecDeque<String>>>,
    timeout: Duration,
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> Result<(File, File)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2(2) writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
    }
    // SAFETY: two new descriptors nothing else owns.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// A close-on-exec copy of `fd` numbered 10 or above, so that moving the copies to 3..=7 in
/// the child never overwrites one not moved yet.
fn high_copy(fd: &impl AsRawFd) -> Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) makes a new descriptor; the result is checked, then owned.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error()).context("cannot copy a descriptor");
    }
    // SAFETY: a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

impl Worker {
    /// Starts `python` running the worker for the environment `label` names; `timeout`
    /// bounds every later wait for it.
    pub fn spawn(python: &Path, label: &str, timeout: Duration) -> Result<Self> {
        let (requests_in, requests) = pipe()?;
        let (replies, replies_out) = pipe()?;
        let (wake_in, wake_worker) = pipe()?;
        let (woken, wake_out) = pipe()?;
        let (output_in, output_out) = pipe()?;
        let shm = SharedMemory::new(c"qnet-gym")?;
        let inherited = [
            high_copy(&requests_in)?,
            high_copy(&replies_out)?,
            high_copy(&wake_in)?,
            high_copy(&wake_out)?,
            high_copy(&shm.fd())?,
        ];
        let raw: Vec<RawFd> = inherited.iter().map(AsRawFd::as_raw_fd).collect();
        let mut command = Command::new(python);
        command
            .arg("-c")
            .arg(SCRIPT)
            .args(["3", "4", "5", "6", "7"])
            // Python 3.11+: the current directory is not put on the path (the script removes
            // it on older versions).
            .env("PYTHONSAFEPATH", "1")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(output_out.try_clone()?))
            .stderr(Stdio::from(output_out));
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (dup2, prctl) on descriptors the parent made for it.
        unsafe {
            command.pre_exec(move || {
                for (target, &fd) in (3..).zip(raw.iter()) {
                    if libc::dup2(fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                // The worker dies with qnet, however qnet ends.
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
                Ok(())
            });
        }
        let child = command.spawn().map_err(|err| {
            anyhow!(
                "cannot start the Python interpreter {} for {label} ({err}); set QNET_PYTHON \
                 to a Python with gymnasium installed, or run ./scripts/setup.sh",
                python.display()
            )
        })?;
        // The child holds its own copies now.
        drop(inherited);
        drop((requests_in, wake_in));
        let output = Arc::new(Mutex::new(VecDeque::new()));
        keep_last_lines(output_in, Arc::clone(&output));
        Ok(Self {
            child,
            label: label.to_owned(),
            requests,
            replies,
            wake_worker,
            woken,
            shm,
            layout: None,
            seq: 0,
            output,
            timeout,
        })
    }

    /// Sends a control request and waits for its reply, before the memory is attached.
    pub fn request(&mut self, request: &Value) -> Result<Reply> {
        self.send(request)?;
        self.read_reply(op_of(request))
    }

    /// Sizes the shared memory by `layout` and has the worker map it.
    pub fn attach(&mut self, layout: Layout) -> Result<()> {
        self.shm.map(layout.size)?;
        let request = serde_json::json!({"op": "attach", "size": layout.size, "offsets": layout});
        self.request(&request)?;
        self.layout = Some(layout);
        Ok(())
    }

    /// The layout attached.
    pub fn layout(&self) -> Result<Layout> {
        self.layout
            .ok_or_else(|| anyhow!("{}: shared memory not attached", self.label))
    }

    /// The shared memory.
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// Sends a control request once the memory is attached, and waits for its reply.
    pub fn control(&mut self, request: &Value) -> Result<Reply> {
        self.send(request)?;
        self.signal(OP_CONTROL)?;
        let reply = self.read_reply(op_of(request));
        // The worker answers in shared memory too, whatever the reply said.
        let answered = self.wait_answer(op_of(request));
        let reply = reply?;
        answered?;
        Ok(reply)
    }

    /// Starts a step of every env: the actions must already be in shared memory.
    pub fn start_step(&mut self) -> Result<()> {
        self.signal(OP_STEP)
    }

    /// Waits for the step started last.
    pub fn finish_step(&mut self) -> Result<()> {
        self.wait_answer("step")
    }

    fn send(&mut self, request: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.requests
            .write_all(&line)
            .map_err(|err| self.died(&format!("a request could not be sent ({err})")))
    }

    /// Publishes request number `seq + 1` with operation `op`, waking the worker if it sleeps.
    fn signal(&mut self, op: u64) -> Result<()> {
        self.seq += 1;
        self.shm.word(OPERATION).store(op, Ordering::Relaxed);
        self.shm.word(REQUEST).store(self.seq, Ordering::Release);
        // Orders the store above before the load below (the worker's sleep check pairs it).
        fence(Ordering::SeqCst);
        if self.shm.word(WORKER_SLEEPING).load(Ordering::Relaxed) != 0 {
            self.wake_worker
                .write_all(b"w")
                .map_err(|err| self.died(&format!("it could not be woken ({err})")))?;
        }
        Ok(())
    }

    /// Waits until the worker has answered the last request: spinning a little, then
    /// sleeping on the wake-up pipe. A worker that raised is an error with its exception.
    fn wait_answer(&mut self, op: &str) -> Result<()> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let reply = self.shm.word(REPLY);
        let mut looking = true;
        while reply.load(Ordering::Acquire) != self.seq {
            if looking {
                let waited = started.elapsed();
                if waited < SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
                looking = waited < LOOK;
                continue;
            }
            self.shm.word(QNET_SLEEPING).store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if reply.load(Ordering::Acquire) != self.seq {
                let ready = wait_readable(&self.woken, deadline.min(soon()))?;
                if ready {
                    let mut drained = [0u8; 64];
                    if self.woken.read(&mut drained).unwrap_or(0) == 0 {
                        self.shm.word(QNET_SLEEPING).store(0, Ordering::Relaxed);
                        return Err(self.died(&format!("it ended during {op}")));
                    }
                } else if Instant::now() >= deadline {
                    self.shm.word(QNET_SLEEPING).store(0, Ordering::Relaxed);
                    return Err(self.timed_out(op));
                }
            }
            self.shm.word(QNET_SLEEPING).store(0, Ordering::Relaxed);
        }
        if self.shm.word(STATUS).load(Ordering::Relaxed) == STATUS_ERROR {
            return self.read_reply(op).map(drop);
        }
        Ok(())
    }

    /// Reads one reply frame: a JSON object with `ok`, then an optional blob.
    fn read_reply(&mut self, op: &str) -> Result<Reply> {
        let deadline = Instant::now() + self.timeout;
        let mut len = [0u8; 4];
        self.read_exact(&mut len, deadline, op)?;
        let mut json = vec![0u8; u32::from_le_bytes(len) as usize];
        self.read_exact(&mut json, deadline, op)?;
        let json: Value = serde_json::from_slice(&json)
            .map_err(|err| anyhow!("{}: the worker's reply is not JSON ({err})", self.label))?;
        if json.get("ok") != Some(&Value::Bool(true)) {
            return Err(python_error(&self.label, json.get("error")));
        }
        let blob = if json.get("frame").is_some() {
            let mut len = [0u8; 8];
            self.read_exact(&mut len, deadline, op)?;
            let len = usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX);
            let mut blob = Vec::new();
            blob.try_reserve_exact(len)
                .map_err(|_| anyhow!("{}: a reply of {len} bytes does not fit", self.label))?;
            blob.resize(len, 0);
            self.read_exact(&mut blob, deadline, op)?;
            Some(blob)
        } else {
            None
        };
        Ok(Reply { json, blob })
    }

    fn read_exact(&mut self, mut buf: &mut [u8], deadline: Instant, op: &str) -> Result<()> {
        while !buf.is_empty() {
            if !wait_readable(&self.replies, deadline)? {
                return Err(self.timed_out(op));
            }
            match self.replies.read(buf) {
                Ok(0) => return Err(self.died(&format!("it ended during {op}"))),
                Ok(n) => buf = &mut buf[n..],
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.died(&format!("its reply could not be read ({err})"))),
            }
        }
        Ok(())
    }

    /// The error for a worker that is gone: how it ended and what it printed last.
    fn died(&mut self, what: &str) -> anyhow::Error {
        // It may still be closing its descriptors: a moment for its exit status.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let how = match status {
            Some(status) => describe_exit(status),
            None => "it is still running".to_owned(),
        };
        anyhow!(
            "the Python worker of {} failed: {what}; {how}{}",
            self.label,
            self.last_output()
        )
    }

    fn timed_out(&mut self, op: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        anyhow!(
            "{} did not answer within {} s (during {op}), so its Python worker was stopped; \
             raise env.timeout_seconds if it is only slow{}",
            self.label,
            self.timeout.as_secs(),
            self.last_output()
        )
    }

    fn last_output(&self) -> String {
        let lines = self.output.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            let text: Vec<String> = lines.into_iter().collect();
            format!(". Its last output:\n{}", text.join("\n"))
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the pipes ends the worker (it reads end-of-file); a kill makes sure.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The name of a request's operation, for errors.
fn op_of(request: &Value) -> &str {
    request
        .get("op")
        .and_then(Value::as_str)
        .unwrap_or("a request")
}

/// The moment after which a sleeping wait looks at the clock again.
fn soon() -> Instant {
    Instant::now() + Duration::from_millis(20)
}

/// Waits until `file` is readable (or at end of file), or `deadline` passes (false).
fn wait_readable(file: &File, deadline: Instant) -> Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut poll = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd that lives across the call.
        let rc = unsafe { libc::poll(&mut poll, 1, millis) };
        if rc > 0 {
            return Ok(true);
        }
        if rc == 0 {
            if Instant::now() >= deadline {
                return Ok(false);
            }
            continue;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("waiting for a Python worker");
        }
    }
}

/// Reads `output` on a thread of its own, keeping its last lines in `lines`.
fn keep_last_lines(output: File, lines: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut lines) = lines.lock() {
                if lines.len() == OUTPUT_LINES {
                    lines.pop_front();
                }
                lines.push_back(crate::config::clip(&line).into_owned());
            }
        }
    });
}

/// An exit status in words.
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("it exited with status {code}"),
        (None, Some(signal)) => format!("it was killed by signal {signal}"),
        _ => "it ended".to_owned(),
    }
}

/// The error a worker reported: its Python exception, where it was raised, and in which
/// request.
fn python_error(label: &str, error: Option<&Value>) -> anyhow::Error {
    let field = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let (kind, message, op) = (field("type"), field("message"), field("op"));
    let place = error
        .and_then(|e| e.get("where"))
        .and_then(Value::as_array)
        .and_then(|frames| frames.last())
        .and_then(Value::as_str)
        .map(|at| format!(" (at {at})"))
        .unwrap_or_default();
    let message = crate::config::clip(&message);
    if kind == "Refused" {
        anyhow!("{label} cannot be trained: {message}")
    } else {
        anyhow!("{label} raised {kind} during {op}: {message}{place}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_errors_name_the_exception_and_the_request() {
        let error = serde_json::json!({
            "type": "ValueError", "message": "bad action", "op": "step",
            "where": ["gym.py:1 in step", "env.py:42 in step"]
        });
        let text = python_error("gym:Foo-v0", Some(&error)).to_string();
        assert_eq!(
            text,
            "gym:Foo-v0 raised ValueError during step: bad action (at env.py:42 in step)"
        );
        let refused = serde_json::json!({"type": "Refused", "message": "its action space is Box"});
        let text = python_error("gym:Pendulum-v1", Some(&refused)).to_string();
        assert_eq!(
            text,
            "gym:Pendulum-v1 cannot be trained: its action space is Box"
        );
    }
}
