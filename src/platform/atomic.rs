//! Crash-safe file replacement: write a temporary file next to the target, fsync it, rename it
//! over the target, fsync the directory. Readers see either the old file or the new one, never
//! a half-written mix, even if the process or the machine dies midway.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};

/// Replaces `path` with whatever `write` writes into the (empty, freshly created) file it is
/// handed. `write` need not flush or sync; on any error the previous content of `path` is left
/// untouched and the temporary file is removed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    commit_atomic(path, |tmp| {
        let mut file =
            File::create(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        write(&mut file)
    })
}

/// Replaces `path` with `bytes`; see [`write_atomic`].
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |file| {
        std::io::Write::write_all(file, bytes).map_err(anyhow::Error::from)
    })
}

/// Replaces `path` with a file produced by an external writer (e.g. libtorch's C++ `save`):
/// `produce` must create the file at the temporary path it is given. It is then fsynced and
/// renamed over `path`, and the directory is fsynced. On any error the temporary file is
/// removed and `path` keeps its previous content.
pub fn commit_atomic(path: &Path, produce: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path)?;
    let result = produce(&tmp).and_then(|()| sync_and_rename(&tmp, path));
    if result.is_err() {
        // Best effort: the temp file may not exist if `produce` failed early.
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("failed to write {}", path.display()))
}

/// Removes the file at `path`; a file that is not there is not an error.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// `<dir>/.<name>.tmp-<pid>`: same directory (so the rename stays on one filesystem), hidden,
/// and distinct per process.
fn temp_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} does not name a file", path.display()))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp_name))
}

fn sync_and_rename(tmp: &Path, path: &Path) -> Result<()> {
    File::open(tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot fsync {}", tmp.display()))?;
    fs::rename(tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    sync_parent_dir(path)
}

#[cfg(unix)]
fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

#[cfg(not(unix))]
fn sync_parent_dir(_path: &Path) -> Result<()> {
    // Directories cannot be opened as files here; the rename itself is what we can do.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.bin");
        write_bytes_atomic(&path, b"one").expect("first write");
        write_bytes_atomic(&path, b"two").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(dir_entries(dir.path()), ["a.bin"]);
    }

    #[test]
    fn failing_writer_keeps_previous_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.pt");
        write_bytes_atomic(&path, b"old").expect("first write");
        let err = write_atomic(&path, |file| {
            std::io::Write::write_all(file, b"partial")?;
            Err(anyhow!("disk on fire"))
        })
        .expect_err("writer failed");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("model.pt") && msg.contains("disk on fire"),
            "{msg}"
        );
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert_eq!(dir_entries(dir.path()), ["model.pt"]);
    }

    #[test]
    fn external_writer_that_fails_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pt");
        let err = commit_atomic(&path, |tmp| {
            fs::write(tmp, b"half")?;
            Err(anyhow!("save failed"))
        })
        .expect_err("producer failed");
        assert!(format!("{err:#}").contains("x.pt"));
        assert!(dir_entries(dir.path()).is_empty());
    }

    #[test]
    fn external_writer_that_writes_nothing_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pt");
        let err = commit_atomic(&path, |_| Ok(())).expect_err("no file produced");
        assert!(format!("{err:#}").contains("x.pt"));
        assert!(!path.exists());
    }

    #[test]
    fn missing_directory_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no/such/dir/f.bin");
        let err = write_bytes_atomic(&path, b"x").expect_err("no dir");
        assert!(format!("{err:#}").contains("f.bin"));
    }
}
