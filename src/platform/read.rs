//! Opening what qnet reads: configs, checkpoints, models, records, a sweep's files. Any of
//! them may come from someone else, so a path is opened without blocking and refused unless
//! it is a regular file: a FIFO planted where a checkpoint should be would otherwise block
//! the read forever, and a device (`/dev/zero`) never ends. Links are followed (a user may
//! link a config or a run into a folder of their own); what they lead to is checked the same.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::config::Config;

/// Most bytes of a text file qnet reads whole (a config, summary.json, sweep.json, a grid
/// file): far more than any it writes.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;

/// Opens `path` for reading if it is a regular file. Opening never waits (`O_NONBLOCK`, so a
/// FIFO without a writer is seen for what it is), and the file is refused, naming what it
/// is, unless it is a regular file.
pub fn open_regular(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => anyhow!("{} does not exist", path.display()),
            _ => anyhow::Error::new(err).context(format!("cannot open {}", path.display())),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "{} is {}, not a regular file; qnet only reads regular files",
            path.display(),
            describe(meta.mode())
        );
    }
    // Reads of a regular file do not heed O_NONBLOCK; it is cleared so that nothing can.
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor `file` owns; F_GETFL and F_SETFL touch no memory.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("cannot read {}", path.display()));
    }
    Ok(file)
}

/// The bytes of the regular file `path`, refused if it holds more than `limit`.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > limit {
        bail!(
            "{} holds {len} bytes, more than the {limit} qnet reads from a file of its kind",
            path.display()
        );
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| anyhow!("not enough memory to read {} ({len} bytes)", path.display()))?;
    // A file that grows while it is read stops at the limit all the same.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!(
            "{} holds more than the {limit} bytes qnet reads from a file of its kind",
            path.display()
        );
    }
    Ok(bytes)
}

/// The text of the regular file `path` (at most [`MAX_TEXT_BYTES`]), which must be UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_bytes(path, MAX_TEXT_BYTES)?;
    String::from_utf8(bytes).map_err(|err| {
        anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {})",
            path.display(),
            err.utf8_error().valid_up_to()
        )
    })
}

/// The text of `path` if it exists; `None` if it does not. Anything else (a FIFO, a
/// directory, an unreadable file) is an error.
pub fn read_text_if_exists(path: &Path) -> Result<Option<String>> {
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_text(path).map(Some),
    }
}

/// The experiment in the YAML file `path` (relative to the current directory), with
/// `overrides` (`"dotted.key=VALUE"`, in order) applied, validated.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<Config> {
    let text =
        read_text(path).with_context(|| format!("reading config file {}", path.display()))?;
    Config::from_yaml_str(&text, &path.display().to_string(), overrides)
}

/// A buffered reader of the regular file `path`, for records read line by line.
pub fn buffered(path: &Path) -> Result<BufReader<File>> {
    open_regular(path).map(BufReader::new)
}

/// A file type, given as `st_mode`, in words.
pub(super) fn describe(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR | libc::S_IFBLK => "a device",
        _ => "not a regular file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::{Duration, Instant};

    fn mkfifo(path: &Path) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a directory entry.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_fifo_a_device_or_a_directory_is_refused_at_once() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let fifo = dir.path().join("checkpoint.safetensors");
        mkfifo(&fifo);
        let link = dir.path().join("config.yaml");
        std::os::unix::fs::symlink(&fifo, &link)?;
        let started = Instant::now();
        for (path, kind) in [
            (fifo.as_path(), "a FIFO"),
            (link.as_path(), "a FIFO"),
            (Path::new("/dev/zero"), "a device"),
            (dir.path(), "a directory"),
        ] {
            let err = format!("{:#}", read_text(path).expect_err("not a regular file"));
            assert!(
                err.contains(&path.display().to_string()) && err.contains(kind),
                "{err}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        Ok(())
    }

    #[test]
    fn regular_files_are_read_through_links_and_bounded() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("a.yaml");
        fs::write(&file, "seed: 1\n")?;
        let link = dir.path().join("b.yaml");
        std::os::unix::fs::symlink(&file, &link)?;
        assert_eq!(read_text(&link)?, "seed: 1\n");
        assert_eq!(read_text_if_exists(&dir.path().join("absent"))?, None);
        let err = format!("{:#}", read_bytes(&file, 3).expect_err("too long"));
        assert!(err.contains("holds 8 bytes, more than the 3"), "{err}");
        fs::write(&file, [b'a', 0xff, b'b'])?;
        let err = format!("{:#}", read_text(&file).expect_err("not UTF-8"));
        assert!(
            err.contains("not UTF-8") && err.contains("offset 1"),
            "{err}"
        );
        Ok(())
    }
}
