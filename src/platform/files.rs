//! Writing into directories whose contents qnet did not necessarily put there (a run shared
//! on a cluster file system, a downloaded run, a sweep directory): names read from files are
//! checked to be plain file names, files are opened without following symbolic links, and
//! only regular files are ever truncated or replaced.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};

use crate::config::clip;
use crate::platform::atomic::write_atomic;
use crate::platform::read::describe;

/// `name` if it is a plain file name (one path component: no separator, not `.` or `..`,
/// not absolute, no NUL); `what` says where it was read, for the error.
///
/// Every name read from a file (a checkpoint, sweep.json) passes through here before it is
/// joined to a directory, so a crafted file cannot make qnet write elsewhere.
pub fn plain_name<'a>(name: &'a str, what: &str) -> Result<&'a str> {
    let mut components = Path::new(name).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(_)), None) if !name.contains(['/', '\0']) => Ok(name),
        _ => bail!(
            "{what} names {:?}, which is not a plain file name: qnet only writes inside the \
             directory, so the file is refused (was it written by qnet?)",
            clip(name)
        ),
    }
}

/// Opens `path` for writing without following a symbolic link, and refuses anything but a
/// regular file (a FIFO, a device, a directory). `fresh` replaces whatever regular file is
/// there with a new, empty one; otherwise the file must exist and keeps its content. The file
/// position is at its start.
///
/// A file with other hard links (a snapshot made with `cp -al`, a backup tool's) is never
/// changed in place, which would change the snapshot too: it is replaced by a copy of itself
/// first, and the copy is what qnet continues.
pub fn open_for_write(path: &Path, fresh: bool) -> Result<File> {
    if fresh {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_file() => fs::remove_file(path)
                .with_context(|| format!("cannot replace {}", path.display()))?,
            Ok(meta) => bail!(
                "{} is {}, not a regular file; qnet only writes regular files",
                path.display(),
                describe(meta.mode())
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot inspect {}", path.display()))
            }
        }
        // O_EXCL: whatever appeared at the name meanwhile, a link included, is not opened.
        return open_checked(path, OpenOptions::new().write(true).create_new(true));
    }
    let file = open_checked(path, OpenOptions::new().read(true).write(true))?;
    if file.metadata().map(|m| m.nlink()).unwrap_or(1) <= 1 {
        return Ok(file);
    }
    write_atomic(path, |copy| {
        std::io::copy(&mut &file, copy)
            .map(drop)
            .with_context(|| format!("cannot copy {}", path.display()))
    })
    .with_context(|| format!("{} has other hard links; copying it", path.display()))?;
    open_checked(path, OpenOptions::new().read(true).write(true))
}

/// Opens `path` for appending (creating it if missing), as [`open_for_write`] opens files.
pub fn open_for_append(path: &Path) -> Result<File> {
    let existing = fs::symlink_metadata(path).is_ok();
    if existing {
        // Copies a hard-linked file first, as open_for_write does.
        drop(open_for_write(path, false)?);
    }
    open_checked(path, OpenOptions::new().append(true).create(true))
}

/// Opens `path` with `options`, never through a symbolic link and without waiting (a FIFO
/// would wait for a reader), and fails unless it is a regular file.
pub(super) fn open_checked(path: &Path, options: &mut OpenOptions) -> Result<File> {
    // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader; it changes
    // nothing for the regular files that pass the check below.
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| {
            if err.raw_os_error() == Some(libc::ELOOP) {
                anyhow::anyhow!(
                    "{} is a symbolic link; qnet never writes through links (remove it, or \
                     use another directory)",
                    path.display()
                )
            } else {
                anyhow::Error::new(err)
                    .context(format!("cannot open {} for writing", path.display()))
            }
        })?;
    let kind = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !kind.is_file() {
        bail!(
            "{} is {}, not a regular file; qnet only writes regular files",
            path.display(),
            describe(kind.mode())
        );
    }
    Ok(file)
}

/// Creates the directory `child` of `parent` (a directory qnet already checked) if it is not
/// there; an existing `child` must be a real directory, not a link to one elsewhere, so that
/// nothing written under it can land outside `parent`.
pub fn child_dir(parent: &Path, child: &Path) -> Result<()> {
    debug_assert!(child.starts_with(parent));
    let mut dir = parent.to_path_buf();
    for part in child.strip_prefix(parent).unwrap_or(child).components() {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.file_type().is_dir() => {}
            Ok(meta) => bail!(
                "{} is {}, not a directory; qnet only writes into real directories",
                dir.display(),
                describe(meta.mode())
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot inspect {}", dir.display()))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn only_plain_names_pass() {
        for good in [
            "metrics.csv",
            "events.out.tfevents.1.host.qnet",
            "..x",
            "a b",
        ] {
            assert_eq!(plain_name(good, "t").ok(), Some(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "/etc/passwd", "a/b", "a/", "x\0y"] {
            let err = plain_name(bad, "the checkpoint")
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("the checkpoint") && err.contains("not a plain file name"),
                "{err}"
            );
        }
    }

    #[test]
    fn writes_never_follow_a_link_nor_touch_a_fifo() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("target.txt");
        fs::write(&target, "precious")?;
        let link = dir.path().join("metrics.csv");
        symlink(&target, &link)?;
        for fresh in [true, false] {
            let err = format!("{:#}", open_for_write(&link, fresh).expect_err("a link"));
            assert!(err.contains("symbolic link"), "{err}");
        }
        assert_eq!(fs::read_to_string(&target)?, "precious");

        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_string_lossy().as_bytes())?;
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = format!("{:#}", open_for_write(&fifo, true).expect_err("a FIFO"));
        assert!(
            err.contains("a FIFO") || err.contains("cannot open"),
            "{err}"
        );
        let err = format!("{:#}", open_for_append(&fifo).expect_err("a FIFO"));
        assert!(err.contains("a FIFO"), "{err}");
        let err = format!("{:#}", open_for_append(&link).expect_err("a link"));
        assert!(err.contains("symbolic link"), "{err}");
        Ok(())
    }

    #[test]
    fn a_hard_linked_file_is_copied_before_it_changes() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let csv = dir.path().join("metrics.csv");
        fs::write(&csv, "kind,step\ntrain,1\n")?;
        let snapshot = dir.path().join("snapshot.csv");
        fs::hard_link(&csv, &snapshot)?;
        let file = open_for_write(&csv, false)?;
        file.set_len(5)?;
        drop(file);
        let mut log = open_for_append(&snapshot)?;
        std::io::Write::write_all(&mut log, b"train,2\n")?;
        drop(log);
        assert_eq!(fs::read_to_string(&csv)?, "kind,");
        assert_eq!(
            fs::read_to_string(&snapshot)?,
            "kind,step\ntrain,1\ntrain,2\n"
        );
        // Fresh files are new files: the old one lives on under its other name.
        fs::hard_link(&csv, snapshot.with_extension("bak"))?;
        drop(open_for_write(&csv, true)?);
        assert_eq!(fs::read_to_string(&csv)?, "");
        assert_eq!(fs::read_to_string(snapshot.with_extension("bak"))?, "kind,");
        Ok(())
    }

    #[test]
    fn long_names_are_cut_in_errors() {
        let long = "../".repeat(1000);
        let err = plain_name(&long, "t").expect_err("bad").to_string();
        assert!(
            err.len() < 400 && err.contains("more characters"),
            "{}",
            err.len()
        );
    }
}
