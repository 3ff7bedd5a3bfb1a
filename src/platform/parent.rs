//! A child process that must not outlive its parent (a sweep's workers).

use anyhow::{bail, Context, Result};

/// Has the kernel send this process SIGTERM when its parent ends (a SIGKILL included), and
/// fails if the parent, whose PID is `expected`, has already ended.
pub fn terminate_with_parent(expected: u32) -> Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) reads its integer arguments only and touches no memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGTERM as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("prctl(PR_SET_PDEATHSIG)");
    }
    // A parent that ended before the call sent no signal: this process was re-parented.
    let parent = std::os::unix::process::parent_id();
    if parent != expected {
        bail!("the process that started this one (PID {expected}) has ended");
    }
    Ok(())
}
