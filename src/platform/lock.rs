//! One process per directory: an advisory `flock(2)` on the directory itself and on a lock
//! file inside it.
//!
//! The kernel releases the locks when their holder exits, however it exits (a SIGKILL, an out
//! of memory kill), so a lock is never stale. The directory's own lock cannot be removed
//! while it is held (deleting `.qnet.lock` does not let a second process in); the lock file
//! holds the holder's PID and command line, which a second process quotes in its error, and
//! is what locks where a directory cannot be locked: on NFS, Linux maps `flock` onto the
//! server's byte-range locks, which a directory does not take, and the lock file alone
//! keeps one process per directory there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::platform::atomic::remove_stale_temp_files;
use crate::platform::files::open_checked;
use crate::platform::read::open_regular;

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = ".qnet.lock";

/// The lock of a directory, held until this value is dropped (or the process ends).
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    // Kept open: closing them releases the locks. `None` where the file system cannot lock
    // a directory.
    _dir_handle: Option<File>,
    _file: File,
}

/// What a non-blocking `flock` of a descriptor gave.
enum Flock {
    Held,
    Busy,
    Unsupported,
}

fn try_flock(file: &File, shown: &Path) -> Result<Flock> {
    // SAFETY: flock(2) on a descriptor `file` owns; it touches no memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(Flock::Held);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(Flock::Busy),
        Some(libc::EBADF | libc::ENOLCK | libc::EINVAL | libc::EOPNOTSUPP) => {
            Ok(Flock::Unsupported)
        }
        _ => Err(err).with_context(|| format!("cannot lock {}", shown.display())),
    }
}

impl DirLock {
    /// Takes the lock of the existing directory `dir` for this process, whose `command` is
    /// recorded for others to read; fails at once, naming the holder, if another process holds
    /// it.
    pub fn acquire(dir: &Path, command: &str) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let busy = || {
            anyhow::anyhow!(
                "{} is in use by another qnet process ({}); wait for it to end or stop it: \
                 one directory takes one process at a time",
                dir.display(),
                holder(&path)
            )
        };
        let handle = File::open(dir)
            .ok()
            .filter(|d| d.metadata().is_ok_and(|m| m.is_dir()));
        let Some(handle) = handle else {
            bail!("{} is not a directory", dir.display());
        };
        let dir_handle = match try_flock(&handle, dir)? {
            Flock::Held => Some(handle),
            Flock::Busy => return Err(busy()),
            Flock::Unsupported => None,
        };
        let mut file = lock_file(&path, dir_handle.is_some())?.ok_or_else(busy)?;
        let record = format!("{}\n{command}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| file.write_all(record.as_bytes()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _dir_handle: dir_handle,
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

/// The lock file at `path`, created if missing and locked; `None` if another process holds
/// it. The file locked is the one at `path` when the lock is taken (one that was removed or
/// replaced meanwhile is let go, and the new one tried), and has no other hard links (one that
/// has is replaced, so that writing the record changes no other file). `dir_locked`: the
/// directory's own lock is held, so nobody else can be taking this one.
fn lock_file(path: &Path, dir_locked: bool) -> Result<Option<File>> {
    for _ in 0..100 {
        // Created exclusively (never through a link), or already there.
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("cannot create the lock file {}", path.display()))
            }
        }
        let file = open_checked(path, OpenOptions::new().read(true).write(true))?;
        match try_flock(&file, path)? {
            Flock::Held => {}
            Flock::Busy => return Ok(None),
            Flock::Unsupported if dir_locked => {}
            Flock::Unsupported => bail!(
                "cannot lock {}: its file system supports no locks, so qnet cannot make sure \
                 that one process at a time uses the directory",
                path.display()
            ),
        }
        let locked = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        let here = std::fs::symlink_metadata(path).ok();
        let same = here.is_some_and(|h| (h.dev(), h.ino()) == (locked.dev(), locked.ino()));
        if same && locked.nlink() == 1 {
            return Ok(Some(file));
        }
        if same {
            // Holding its lock, no qnet process uses it: a new file takes its place.
            std::fs::remove_file(path)
                .with_context(|| format!("cannot replace {}", path.display()))?;
        }
    }
    bail!(
        "cannot lock {}: it keeps being replaced by another process",
        path.display()
    )
}

/// The holder's PID and command as its lock file records them, in words.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    // The holder writes the file right after taking the lock: a moment's wait covers a
    // holder that has only just started.
    for _ in 0..20 {
        text.clear();
        let read = open_regular(path).and_then(|f| Ok(f.take(4096).read_to_string(&mut text)?));
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

    #[test]
    fn a_lock_file_removed_while_held_lets_no_second_process_in() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let first = DirLock::acquire(dir.path(), "qnet train --resume here")?;
        std::fs::remove_file(dir.path().join(LOCK_FILE))?;
        let err = DirLock::acquire(dir.path(), "qnet train --resume here").expect_err("held");
        assert!(
            err.to_string().contains("in use by another qnet process"),
            "{err}"
        );
        drop(first);
        drop(DirLock::acquire(dir.path(), "qnet sweep")?);
        Ok(())
    }

    #[test]
    fn a_hard_linked_lock_file_is_replaced_not_written_through() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let outside = tempfile::tempdir()?;
        let victim = outside.path().join("victim.txt");
        std::fs::write(&victim, "precious")?;
        std::fs::hard_link(&victim, dir.path().join(LOCK_FILE))?;
        let lock = DirLock::acquire(dir.path(), "qnet train")?;
        assert_eq!(std::fs::read_to_string(&victim)?, "precious");
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE))?;
        assert!(text.ends_with("\nqnet train\n"), "{text}");
        drop(lock);
        Ok(())
    }
}
