//! One process per directory: an advisory `flock(2)` on a lock file inside it.
//!
//! The kernel releases the lock when its holder exits, however it exits (a SIGKILL, an out of
//! memory kill), so a lock is never stale. The file holds the holder's PID and command line,
//! which a second process quotes in its error. `flock` works on local file systems and on NFS
//! (where Linux maps it onto the server's byte-range locks).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::platform::files::{open_for_write, remove_stale_temp_files};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = ".qnet.lock";

/// The lock of a directory, held until this value is dropped (or the process ends).
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    // Kept open: closing the file releases the lock.
    _file: File,
}

impl DirLock {
    /// Takes the lock of the existing directory `dir` for this process, whose `command` is
    /// recorded for others to read; fails at once, naming the holder, if another process holds
    /// it.
    pub fn acquire(dir: &Path, command: &str) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        // Created exclusively (never through a link), or already there: the lock decides.
        match File::options().write(true).create_new(true).open(&path) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("cannot create the lock file {}", path.display()))
            }
        }
        let mut file = open_for_write(&path, false)?;
        // SAFETY: flock(2) on a descriptor this function owns; it touches no memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                bail!(
                    "{} is in use by another qnet process ({}); wait for it to end or stop it: \
                     one directory takes one process at a time",
                    dir.display(),
                    holder(&path)
                );
            }
            return Err(err).with_context(|| format!("cannot lock {}", path.display()));
        }
        let record = format!("{}\n{command}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| file.write_all(record.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// [`DirLock::acquire`], then removes the temporary files an interrupted write left in
    /// `dir` (safe now: no other qnet process writes there).
    pub fn acquire_and_clean(dir: &Path, command: &str) -> Result<Self> {
        let lock = Self::acquire(dir, command)?;
        remove_stale_temp_files(dir)?;
        Ok(lock)
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// The holder's PID and command as its lock file records them, in words.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    // The holder writes the file right after taking the lock: a moment's wait covers a
    // holder that has only just started.
    for _ in 0..20 {
        text.clear();
        let read = File::open(path).and_then(|f| f.take(4096).read_to_string(&mut text));
        if read.is_ok() && text.ends_with('\n') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut lines = text.lines();
    match (lines.next(), lines.next()) {
        (Some(pid), Some(command)) => format!("PID {pid}: {command}"),
        (Some(pid), None) => format!("PID {pid}"),
        _ => "its PID is not recorded yet".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid_and_command() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let first = DirLock::acquire(dir.path(), "qnet train --resume here")?;
        // flock locks belong to an open file: a second open, even in this process, is refused.
        let err = DirLock::acquire(dir.path(), "qnet sweep").expect_err("held");
        let msg = err.to_string();
        let pid = std::process::id().to_string();
        assert!(
            msg.contains("in use by another qnet process")
                && msg.contains(&format!("PID {pid}: qnet train --resume here")),
            "{msg}"
        );
        assert_eq!(first.dir(), dir.path());
        drop(first);
        let again = DirLock::acquire(dir.path(), "qnet sweep")?;
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE))?;
        assert_eq!(text, format!("{pid}\nqnet sweep\n"));
        drop(again);
        Ok(())
    }

    #[test]
    fn a_missing_directory_or_a_linked_lock_file_is_an_error() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let err = DirLock::acquire(&dir.path().join("absent"), "x").expect_err("no dir");
        assert!(err.to_string().contains("is not a directory"), "{err}");
        let target = dir.path().join("target");
        std::fs::write(&target, "precious")?;
        std::os::unix::fs::symlink(&target, dir.path().join(LOCK_FILE))?;
        let err = format!(
            "{:#}",
            DirLock::acquire(dir.path(), "x").expect_err("a link")
        );
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target)?, "precious");
        Ok(())
    }
}
