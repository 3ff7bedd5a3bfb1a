//! Writing into directories whose contents qnet did not necessarily put there (a run shared
//! on a cluster file system, a downloaded run, a sweep directory): names read from files are
//! checked to be plain file names, files are opened without following symbolic links, and
//! only regular files are ever truncated or replaced.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use anyhow::{bail, Context, Result};

use crate::config::clip;

/// Ending of the temporary files of [`crate::platform::atomic`]; a kill may leave them behind,
/// and [`remove_stale_temp_files`] clears them at the next start.
pub const TEMP_SUFFIX: &str = ".qnet-tmp";

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
/// regular file (a FIFO, a device, a directory). `fresh` creates it if missing and empties
/// it; otherwise it must exist and keeps its content. The file position is at its start.
pub fn open_for_write(path: &Path, fresh: bool) -> Result<File> {
    let file = open_checked(path, OpenOptions::new().write(true).create(fresh))?;
    if fresh {
        file.set_len(0)
            .with_context(|| format!("cannot truncate {}", path.display()))?;
    }
    Ok(file)
}

/// Opens `path` for appending (creating it if missing), as [`open_for_write`] opens files.
pub fn open_for_append(path: &Path) -> Result<File> {
    open_checked(path, OpenOptions::new().append(true).create(true))
}

fn open_checked(path: &Path, options: &mut OpenOptions) -> Result<File> {
    // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader; it changes
    // nothing for the regular files that pass the check below.
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
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
        .with_context(|| format!("cannot read {}", path.display()))?
        .file_type();
    if !kind.is_file() {
        bail!(
            "{} is {}, not a regular file; qnet only writes regular files",
            path.display(),
            describe(kind)
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
                describe(meta.file_type())
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

/// Fails unless `path` is absent or a regular file (not a link, FIFO, socket, device or
/// directory): what a rename may replace.
pub fn check_replaceable(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(()),
        Ok(meta) => bail!(
            "{} exists and is {}; qnet only replaces regular files (choose another path)",
            path.display(),
            describe(meta.file_type())
        ),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot inspect {}", path.display())),
    }
}

/// Removes from `dir` the temporary files that a write interrupted by a kill left behind
/// (hidden names ending in [`TEMP_SUFFIX`], or `.NAME.tmp-PID` as qnet 0.1 named them).
/// Call it only while holding the directory's lock, so no other process is writing them.
pub fn remove_stale_temp_files(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_temp_name(name) && entry.file_type().is_ok_and(|t| !t.is_dir()) {
            // Removing a link removes the link, never its target.
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn is_temp_name(name: &str) -> bool {
    let old_style = name
        .rsplit_once(".tmp-")
        .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    name.starts_with('.') && (name.ends_with(TEMP_SUFFIX) || old_style)
}

/// A file type in words.
fn describe(kind: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
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
        let err = format!("{:#}", check_replaceable(&fifo).expect_err("a FIFO"));
        assert!(err.contains("a FIFO"), "{err}");
        let err = format!("{:#}", check_replaceable(&link).expect_err("a link"));
        assert!(err.contains("symbolic link"), "{err}");
        check_replaceable(&target)?;
        check_replaceable(&dir.path().join("absent"))?;
        Ok(())
    }

    #[test]
    fn stale_temp_files_go_and_nothing_else() -> Result<()> {
        let dir = tempfile::tempdir()?;
        for name in [
            ".model.pt.a1b2c3.qnet-tmp",
            ".checkpoint.safetensors.tmp-4242",
            "model.pt",
            ".hidden",
            "notes.tmp-12",
            ".x.tmp-12a",
        ] {
            fs::write(dir.path().join(name), "x")?;
        }
        remove_stale_temp_files(dir.path())?;
        let mut left: Vec<String> = fs::read_dir(dir.path())?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        left.sort();
        assert_eq!(left, [".hidden", ".x.tmp-12a", "model.pt", "notes.tmp-12"]);
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
