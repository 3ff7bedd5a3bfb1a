//! Run directories: `runs/<experiment>/<UTC time>-seed<N>/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::checkpoint::training::FILE_NAME;

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
    let base = parent.join(format!("{}{suffix}", utc_stamp(SystemTime::now())));
    let mut dir = base.clone();
    let mut n = 1;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{n}", base.display()));
        n += 1;
    }
    dir
}

/// `YYYYMMDDTHHMMSSZ` for a time (UTC, proleptic Gregorian).
fn utc_stamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_calendar_times() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        // 2026-11-25 09:30:15 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_599_015);
        assert_eq!(utc_stamp(t), "20261125T093015Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(utc_stamp(t), "20000229T000000Z");
    }

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
