//! Run directories: `runs/<experiment>/<UTC time>-seed<N>/`, and the lock that keeps each to
//! one process.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::platform::lock::DirLock;
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

/// Creates the run directory: `out` if given (it must not hold a run already), else a new
/// timestamped one under `runs/<experiment>/`.
pub fn create(out: Option<&Path>, experiment: &str, seed: u64) -> Result<PathBuf> {
    let dir = match out {
        Some(dir) => {
            if holds_run(dir) {
                bail!(
                    "{} already holds a run; choose another --out, or continue it with \
                     qnet train --resume {}",
                    dir.display(),
                    dir.display()
                );
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
    fn an_existing_run_is_not_overwritten() -> Result<()> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("config.yaml"), "seed: 0\n")?;
        let err = create(Some(dir.path()), "x", 0).unwrap_err().to_string();
        assert!(
            err.contains("already holds a run") && err.contains("--resume"),
            "{err}"
        );
        Ok(())
    }
}
