//! Run directories: `runs/<experiment>/<UTC time>-seed<N>/`, and the lock that keeps each to
//! one process.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::platform::atomic::STAGING_PREFIX;
use crate::platform::lock::{DirLock, LOCK_FILE};
use crate::run::checkpoint::training::FILE_NAME;

/// A run directory this process holds the lock of (so no other qnet process trains, resumes
/// or sweeps into it meanwhile), cleared of the temporary files an earlier kill left.
#[derive(Debug)]
pub struct LockedRun {
    lock: DirLock,
}

impl LockedRun {
    /// Locks the existing directory `dir` for `command`.
    pub fn lock(dir: &Path, command: &str) -> Result<Self> {
        Ok(Self {
            lock: DirLock::acquire_and_clean(dir, command)?,
        })
    }

    /// Locks `dir`, which must hold a run (its config.yaml), for `command`.
    pub fn existing(dir: &Path, command: &str) -> Result<Self> {
        if !dir.join("config.yaml").is_file() {
            bail!(
                "{} is not a qnet run directory: it has no config.yaml",
                dir.display()
            );
        }
        Self::lock(dir, command)
    }

    /// The run directory.
    pub fn path(&self) -> &Path {
        self.lock.dir()
    }
}

/// `dir` already holds a run (its config or its checkpoint).
pub fn holds_run(dir: &Path) -> bool {
    dir.join(FILE_NAME).exists() || dir.join("config.yaml").exists()
}

/// What a directory named by `--out` holds, before qnet writes there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Nothing: it is absent, or empty but for what a qnet process that died before writing
    /// anything leaves (its lock file, an empty staging directory).
    Nothing,
    /// A qnet run.
    Run,
    /// Files qnet did not write (or not as a run).
    Files,
}

/// What `dir` holds; a path that exists but is not a directory is an error.
pub fn existing(dir: &Path) -> Result<Existing> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => {
            bail!("{} exists and is not a directory", dir.display())
        }
        Err(err) => return Err(err).with_context(|| format!("cannot list {}", dir.display())),
    };
    if holds_run(dir) {
        return Ok(Existing::Run);
    }
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name != LOCK_FILE && !name.starts_with(STAGING_PREFIX) {
            return Ok(Existing::Files);
        }
    }
    Ok(Existing::Nothing)
}

/// The error for `--out` naming a directory that holds files qnet did not write: qnet writes
/// only into new or empty directories, so that it never changes or deletes anything of
/// someone else's.
pub fn foreign_out_error(dir: &Path, what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is not empty and holds no {what}: qnet writes a new {what} only into a new or empty \
         directory, so that it never changes or deletes files it did not write. Choose another \
         --out (a path that does not exist yet)",
        dir.display()
    )
}

/// Creates the run directory: `out` if given (it must be new or empty), else a new
/// timestamped one under `runs/<experiment>/`.
pub fn create(out: Option<&Path>, experiment: &str, seed: u64) -> Result<PathBuf> {
    let dir = match out {
        Some(dir) => {
            match existing(dir)? {
                Existing::Nothing => {}
                Existing::Run => bail!(
                    "{} already holds a run; choose another --out, or continue it with \
                     qnet train --resume {}",
                    dir.display(),
                    dir.display()
                ),
                Existing::Files => return Err(foreign_out_error(dir, "run")),
            }
            dir.to_path_buf()
        }
        None => unique(&Path::new("runs").join(experiment), &format!("-seed{seed}")),
    };
    fs::create_dir_all(&dir)
        .with_context(|| format!("creating the run directory {}", dir.display()))?;
    Ok(dir)
}

/// A new path `<parent>/<UTC time><suffix>` (with `-1`, `-2`, ... appended if it exists).
pub fn unique(parent: &Path, suffix: &str) -> PathBuf {
    let base = parent.join(format!(
        "{}{suffix}",
        crate::platform::utc::stamp(SystemTime::now())
    ));
    let mut dir = base.clone();
    let mut n = 1;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_must_be_new_or_empty() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let run = dir.path().join("run");
        fs::create_dir(&run)?;
        fs::write(run.join("config.yaml"), "seed: 0\n")?;
        let err = create(Some(&run), "x", 0).unwrap_err().to_string();
        assert!(
            err.contains("already holds a run") && err.contains("--resume"),
            "{err}"
        );
        let foreign = dir.path().join("logs");
        fs::create_dir(&foreign)?;
        fs::write(foreign.join("events.out.tfevents.1.host"), "theirs")?;
        let err = create(Some(&foreign), "x", 0).unwrap_err().to_string();
        assert!(
            err.contains("not empty") && err.contains("Choose another --out"),
            "{err}"
        );
        let file = dir.path().join("file");
        fs::write(&file, "x")?;
        let err = create(Some(&file), "x", 0).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        // Empty, or holding only what a process that died at once leaves: fine.
        let left = dir.path().join("left");
        fs::create_dir(&left)?;
        fs::write(left.join(LOCK_FILE), "1\nqnet train\n")?;
        fs::create_dir(left.join(format!("{STAGING_PREFIX}0000000000000000")))?;
        assert_eq!(create(Some(&left), "x", 0)?, left);
        let fresh = dir.path().join("a/b");
        assert_eq!(create(Some(&fresh), "x", 0)?, fresh);
        assert!(fresh.is_dir());
        Ok(())
    }
}
