//! Crash-safe file replacement: write a temporary file next to the target, fsync it, rename it
//! over the target, fsync the directory. Readers see either the old file or the new one, never
//! a half-written mix, even if the process or the machine dies midway.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tempfile::{Builder, TempPath};

use crate::platform::files::{check_replaceable, open_for_write, TEMP_SUFFIX};

/// Replaces `path` with whatever `write` writes into the (empty, freshly created) file it is
/// handed. `write` need not flush or sync; on any error the previous content of `path` is left
/// untouched and the temporary file is removed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let result = (|| {
        let (mut file, tmp) = create_temp(path)?;
        write(&mut file)?;
        file.sync_all()
            .with_context(|| format!("cannot fsync {}", tmp.display()))?;
        replace(tmp, path)
    })();
    result.with_context(|| format!("failed to write {}", path.display()))
}

/// Replaces `path` with `bytes`; see [`write_atomic`].
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |file| {
        std::io::Write::write_all(file, bytes).map_err(anyhow::Error::from)
    })
}

/// Replaces `path` with a file produced by an external writer (e.g. libtorch's C++ `save`):
/// `produce` must write the file at the temporary path it is given (created empty, so an
/// external writer truncates and fills it). It is then fsynced and renamed over `path`, and
/// the directory is fsynced. On any error the temporary file is removed and `path` keeps its
/// previous content.
pub fn commit_atomic(path: &Path, produce: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let result = (|| {
        let (file, tmp) = create_temp(path)?;
        drop(file);
        produce(&tmp)?;
        // Whatever the producer did, what is renamed must still be a regular file, and one
        // it wrote something into.
        let file = open_for_write(&tmp, false)?;
        if file.metadata()?.len() == 0 {
            bail!("the writer left {} empty", tmp.display());
        }
        file.sync_all()
            .with_context(|| format!("cannot fsync {}", tmp.display()))?;
        replace(tmp, path)
    })();
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

/// A new, empty file `<dir>/.<name>.<random>.qnet-tmp` beside `path`: created exclusively
/// (`O_EXCL`, so an existing file or a planted link is never opened) under a name nobody can
/// predict, in the same directory so that the rename stays on one file system. It is removed
/// when the returned path is dropped, unless [`replace`] has renamed it.
fn create_temp(path: &Path) -> Result<(File, TempPath)> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} does not name a file", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    let temp = Builder::new()
        .prefix(&prefix)
        .suffix(TEMP_SUFFIX)
        // What `File::create` would give: 0666 less the umask (tempfile's default is 0600).
        .permissions(fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    Ok(temp.into_parts())
}

/// Renames `tmp` over `path` (which must be absent or a regular file) and fsyncs the
/// directory.
fn replace(tmp: TempPath, path: &Path) -> Result<()> {
    check_replaceable(path)?;
    let shown = tmp.display().to_string();
    tmp.persist(path)
        .with_context(|| format!("cannot rename {shown} to {}", path.display()))?;
    sync_parent_dir(path)
}

fn sync_parent_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
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
    fn what_is_not_a_regular_file_is_never_replaced() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("precious.txt");
        fs::write(&target, "precious")?;
        let link = dir.path().join("out.gif");
        std::os::unix::fs::symlink(&target, &link)?;
        let err = format!(
            "{:#}",
            write_bytes_atomic(&link, b"gif").expect_err("a link")
        );
        assert!(
            err.contains("symbolic link") && err.contains("out.gif"),
            "{err}"
        );
        assert!(fs::symlink_metadata(&link)?.file_type().is_symlink());
        let err = format!(
            "{:#}",
            write_bytes_atomic(dir.path(), b"x").expect_err("a dir")
        );
        assert!(err.contains("a directory"), "{err}");
        let null = Path::new("/dev/null");
        let err = format!("{:#}", check_replaceable(null).expect_err("a device"));
        assert!(err.contains("a device"), "{err}");
        assert_eq!(fs::read_to_string(&target)?, "precious");
        assert_eq!(dir_entries(dir.path()), ["out.gif", "precious.txt"]);
        Ok(())
    }

    #[test]
    fn a_link_planted_at_the_old_temp_name_is_not_followed() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("precious.txt");
        fs::write(&target, "precious")?;
        let planted = dir
            .path()
            .join(format!(".a.bin.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&target, &planted)?;
        write_bytes_atomic(&dir.path().join("a.bin"), b"new")?;
        assert_eq!(fs::read_to_string(&target)?, "precious");
        assert_eq!(fs::read(dir.path().join("a.bin"))?, b"new");
        // Created as `File::create` would: readable by others under the usual umask.
        let mode = fs::metadata(dir.path().join("a.bin"))?.permissions().mode();
        // SAFETY: umask(2) only swaps the process's file mode mask; it is put back at once.
        let umask = unsafe {
            let mask = libc::umask(0o022);
            libc::umask(mask);
            mask
        };
        assert_eq!(mode & 0o777, 0o666 & !umask, "{mode:o}");
        Ok(())
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
