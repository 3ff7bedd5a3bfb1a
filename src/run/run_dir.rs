//! Run directories: `runs/<experiment>/<UTC time>-seed<N>/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};

use crate::run::checkpoint::training::FILE_NAME;

/// Creates the run directory: `out` if given (it must not hold a run already), else a new
/// timestamped one under `runs/<experiment>/`.
pub fn create(out: Option<&Path>, experiment: &str, seed: u64) -> Result<PathBuf> {
    let dir = match out {
        Some(dir) => {
            if dir.join(FILE_NAME).exists() || dir.join("config.yaml").exists() {
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
