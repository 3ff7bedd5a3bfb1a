//! Crash-safe file replacement that never goes through a name someone else can swap.
//!
//! A file is written into a private directory (mode 0700, created under an unpredictable
//! name inside the target's directory, so the rename stays on one file system), fsynced,
//! renamed over the target relative to the open directories (`renameat`), and the directory
//! is fsynced. Nothing is written at, or renamed from, a path another user could replace
//! with a link: the content goes through a descriptor qnet owns, and the only name used is
//! inside a directory only qnet's user can enter. Readers see either the old file or the new
//! one, never a half-written mix, even if the process or the machine dies midway.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::platform::read::describe;

/// Beginning of the names of the private directories new files are written in; a kill may
/// leave one behind, and [`remove_stale_temp_files`] clears them.
pub const STAGING_PREFIX: &str = ".qnet-tmp.";

/// Ending of the temporary files earlier versions of qnet wrote beside their targets.
const OLD_TEMP_SUFFIX: &str = ".qnet-tmp";

/// Replaces `path` with whatever `write` writes into the (empty, freshly created) file it is
/// handed. `write` need not flush or sync; on any error the previous content of `path` is left
/// untouched and nothing is left behind.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let result = (|| {
        let (dir, name) = split(path)?;
        let (staging, mut file) = Staging::new(dir)?;
        write(&mut file)?;
        file.sync_all()
            .with_context(|| format!("cannot fsync the new {}", path.display()))?;
        staging.commit(name)
    })();
    result.with_context(|| format!("failed to write {}", path.display()))
}

/// Replaces `path` with `bytes`; see [`write_atomic`].
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |file| {
        std::io::Write::write_all(file, bytes).map_err(anyhow::Error::from)
    })
}

/// Removes the file at `path`; a file that is not there is not an error.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes from `dir` what a write interrupted by a kill left behind: the private
/// directories of [`write_atomic`] (`.qnet-tmp.*`, with the one file each may hold) and the temporary files of earlier versions (hidden names ending in `.qnet-tmp`, or
/// `.NAME.tmp-PID`). Call it only on a directory qnet made (a run or sweep directory), while
/// holding its lock, so that no other qnet process is writing there.
pub fn remove_stale_temp_files(dir: &Path) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if name.starts_with(STAGING_PREFIX) && kind.is_dir() {
            // Only the entries a write makes; a directory holding anything else stays.
            let _ = fs::remove_file(path.join("new"));
            if let Err(err) = fs::remove_dir(&path) {
                if err.raw_os_error() != Some(libc::ENOTEMPTY) {
                    return Err(err).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
        } else if is_old_temp_name(name) && !kind.is_dir() {
            // Removing a link removes the link, never its target.
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

fn is_old_temp_name(name: &str) -> bool {
    let pid_style = name
        .rsplit_once(".tmp-")
        .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    name.starts_with('.') && (name.ends_with(OLD_TEMP_SUFFIX) || pid_style)
}

/// The directory of `path` (`.` for a bare name) and its file name.
fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} does not name a file", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Name of the new file inside a staging directory.
const STAGED: &std::ffi::CStr = c"new";

/// A private directory inside a target directory, holding one new file until it is renamed
/// into place; what is left of it is removed when it is dropped.
struct Staging {
    /// The target directory, as opened when the write began.
    dir: OwnedFd,
    dir_path: PathBuf,
    /// The private directory inside it, and its name there.
    private: OwnedFd,
    private_name: CString,
}

impl Staging {
    /// Creates a private directory in `dir` under a name nobody can predict, and in it the
    /// new, empty file, as `File::create` would make it (0666 less the umask). A directory
    /// that another process put in the place of the one just made is left alone, and another
    /// name tried.
    fn new(dir: &Path) -> Result<(Self, File)> {
        let dir_file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)
            .with_context(|| format!("cannot open the directory {}", dir.display()))?;
        let dir_fd = OwnedFd::from(dir_file);
        for _ in 0..16 {
            let name = format!("{STAGING_PREFIX}{:016x}", rand::random::<u64>());
            let private_name = CString::new(name).context("a staging directory name")?;
            // SAFETY: mkdirat(2) with a descriptor we own and a NUL-terminated name.
            let rc = unsafe { libc::mkdirat(dir_fd.as_raw_fd(), private_name.as_ptr(), 0o700) };
            if rc != 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::AlreadyExists {
                    continue;
                }
                return Err(err).with_context(|| {
                    format!("cannot create a temporary directory in {}", dir.display())
                });
            }
            let Some(private) = open_private(&dir_fd, &private_name)? else {
                continue;
            };
            let staging = Self {
                private,
                dir: dir_fd.try_clone().context("duplicating a descriptor")?,
                dir_path: dir.to_path_buf(),
                private_name,
            };
            if let Some(file) = staging.create()? {
                return Ok((staging, file));
            }
        }
        bail!(
            "cannot create a temporary directory in {}: every one made was replaced or taken",
            dir.display()
        )
    }

    /// The new file in the private directory; `None` if something is there already (the
    /// directory is not the one made).
    fn create(&self) -> Result<Option<File>> {
        // SAFETY: openat(2) with a directory descriptor we own and a NUL-terminated name; the
        // returned descriptor is checked, then owned by the File.
        let fd = unsafe {
            libc::openat(
                self.private.as_raw_fd(),
                STAGED.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::AlreadyExists {
                return Ok(None);
            }
            return Err(err).with_context(|| {
                format!(
                    "cannot create a temporary file in {}",
                    self.dir_path.display()
                )
            });
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Some(unsafe { File::from_raw_fd(fd) }))
    }

    /// Renames the new file over `name` in the target directory (which must be absent or a
    /// regular file there: a link is never replaced by surprise) and fsyncs the directory.
    fn commit(&self, name: &OsStr) -> Result<()> {
        let shown = self.dir_path.join(name);
        let c_name = CString::new(name.as_bytes())
            .with_context(|| format!("{} contains a NUL byte", shown.display()))?;
        if let Some(mode) = stat_at(&self.dir, &c_name)? {
            if mode & libc::S_IFMT != libc::S_IFREG {
                bail!(
                    "{} exists and is {}; qnet only replaces regular files (choose another path)",
                    shown.display(),
                    describe(mode)
                );
            }
        }
        // SAFETY: renameat(2) between two directory descriptors we own, NUL-terminated names.
        let rc = unsafe {
            libc::renameat(
                self.private.as_raw_fd(),
                STAGED.as_ptr(),
                self.dir.as_raw_fd(),
                c_name.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot move the new file to {}", shown.display()));
        }
        // SAFETY: fsync(2) on a descriptor we own.
        if unsafe { libc::fsync(self.dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("cannot fsync directory {}", self.dir_path.display()));
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Errors are ignored: the file is gone already after a commit, and a directory left
        // by a failure is cleared when the run or sweep directory is next locked.
        // SAFETY: unlinkat(2) with descriptors we own and NUL-terminated names.
        unsafe {
            libc::unlinkat(self.private.as_raw_fd(), STAGED.as_ptr(), 0);
            libc::unlinkat(
                self.dir.as_raw_fd(),
                self.private_name.as_ptr(),
                libc::AT_REMOVEDIR,
            );
        }
    }
}

/// Opens the directory `name` just made in `dir`, if it is still ours: a directory (not a
/// link put in its place) owned by this process's user; `None` if it is not.
fn open_private(dir: &OwnedFd, name: &CString) -> Result<Option<OwnedFd>> {
    // SAFETY: openat(2) with a descriptor we own and a NUL-terminated name; the result is
    // checked, then owned.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Ok(None);
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let private = unsafe { OwnedFd::from_raw_fd(fd) };
    let meta = File::from(private.try_clone().context("duplicating a descriptor")?)
        .metadata()
        .context("inspecting a temporary directory")?;
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    let ours = meta.is_dir() && std::os::unix::fs::MetadataExt::uid(&meta) == me;
    Ok(ours.then_some(private))
}

/// The `st_mode` of `name` in `dir` without following a link; `None` if it is absent.
fn stat_at(dir: &OwnedFd, name: &CString) -> Result<Option<libc::mode_t>> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstatat(2) with a descriptor we own, a NUL-terminated name and a pointer to
    // space for one `stat`, which it fills on success.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        // SAFETY: fstatat returned 0, so it filled the struct.
        return Ok(Some(unsafe { stat.assume_init() }.st_mode));
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::NotFound {
        Ok(None)
    } else {
        Err(err).context("inspecting the file to replace")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_and_replaces_leaving_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.bin");
        write_bytes_atomic(&path, b"one").expect("first write");
        write_bytes_atomic(&path, b"two").expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(dir_entries(dir.path()), ["a.bin"]);
    }

    #[test]
    fn the_new_file_is_written_inside_a_private_directory() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("model.pt");
        write_atomic(&path, |file| {
            // Meanwhile the directory holds one new entry: a directory only its owner enters.
            let entries = dir_entries(dir.path());
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert!(entries[0].starts_with(STAGING_PREFIX), "{entries:?}");
            let meta = fs::symlink_metadata(dir.path().join(&entries[0]))?;
            assert!(meta.is_dir());
            assert_eq!(meta.permissions().mode() & 0o777, 0o700);
            std::io::Write::write_all(file, b"x").map_err(anyhow::Error::from)
        })?;
        // Created as `File::create` would: readable by others under the usual umask.
        let mode = fs::metadata(&path)?.permissions().mode();
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
    fn another_user_swapping_the_staging_directory_cannot_redirect_a_write() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, "precious")?;
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| -> Result<()> {
            // What a user with write access to the directory (but not to qnet's private
            // directories) can do: move each staging directory away and put one of their own
            // in its place, holding a link to the victim under the name of the new file.
            scope.spawn(|| {
                let mut n = 0;
                while !done.load(Ordering::Relaxed) {
                    let Ok(entries) = fs::read_dir(dir.path()) else {
                        continue;
                    };
                    for entry in entries.flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if !name.starts_with(STAGING_PREFIX) {
                            continue;
                        }
                        n += 1;
                        let moved = dir.path().join(format!("moved-{n}"));
                        if fs::rename(entry.path(), &moved).is_ok() {
                            let _ = fs::create_dir(entry.path());
                            let _ = std::os::unix::fs::symlink(&victim, entry.path().join("new"));
                        }
                    }
                }
            });
            let path = dir.path().join("config.yaml");
            let written = (0..100).try_for_each(|i| -> Result<()> {
                let text = format!("write {i}\n");
                write_bytes_atomic(&path, text.as_bytes())?;
                assert_eq!(fs::read_to_string(&path)?, text);
                assert!(fs::symlink_metadata(&path)?.file_type().is_file());
                Ok(())
            });
            // Stops the other thread whatever happened, so that a failure cannot hang the test.
            done.store(true, Ordering::Relaxed);
            written
        })?;
        assert_eq!(fs::read_to_string(&victim)?, "precious");
        Ok(())
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
        let sub = dir.path().join("sub");
        fs::create_dir(&sub)?;
        let err = format!("{:#}", write_bytes_atomic(&sub, b"x").expect_err("a dir"));
        assert!(err.contains("a directory"), "{err}");
        assert_eq!(fs::read_to_string(&target)?, "precious");
        assert_eq!(dir_entries(dir.path()), ["out.gif", "precious.txt", "sub"]);
        Ok(())
    }

    #[test]
    fn failing_writer_keeps_previous_content_and_leaves_nothing() {
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
        let staged = dir.path().join(format!("{STAGING_PREFIX}0123456789abcdef"));
        fs::create_dir(&staged)?;
        fs::write(staged.join("new"), "half")?;
        let foreign = dir.path().join(format!("{STAGING_PREFIX}kept"));
        fs::create_dir(&foreign)?;
        fs::write(foreign.join("notes"), "kept")?;
        remove_stale_temp_files(dir.path())?;
        let mut left: Vec<String> = fs::read_dir(dir.path())?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_>>()?;
        left.sort();
        assert_eq!(
            left,
            [
                ".hidden",
                ".qnet-tmp.kept",
                ".x.tmp-12a",
                "model.pt",
                "notes.tmp-12"
            ]
        );
        Ok(())
    }

    #[test]
    fn missing_directory_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no/such/dir/f.bin");
        let err = write_bytes_atomic(&path, b"x").expect_err("no dir");
        assert!(format!("{err:#}").contains("f.bin"));
    }
}
