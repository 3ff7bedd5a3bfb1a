//! Streaming a run's records to disk as they are produced: metrics.csv and a TensorBoard
//! event file, side by side.
//!
//! Rows are buffered in memory and written out whole (one `write` per file) at least once a
//! second, at every evaluation and before every checkpoint, so a SIGKILL loses at most the
//! last second of rows and never leaves half a row behind. A checkpoint records how many
//! bytes of each file it has seen (`RecordPositions`); resuming cuts both files back to
//! that point, so a resumed run's records hold no duplicated and no missing steps.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::artifacts::tensorboard;
use crate::learn::state::Part;
use crate::platform::files::{open_for_write, plain_name};
use crate::platform::host;
use crate::run::metrics::{Row, CSV_HEADER, METRICS_CSV};

/// Longest time a produced row waits in memory before it reaches the disk.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Bytes reserved, fallibly, in each buffer before a row is queued: more than a row's CSV line
/// or TensorBoard events take.
const ROW_BYTES: usize = 1024;

/// Where the record files stood when a checkpoint was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordPositions {
    /// Bytes of metrics.csv.
    csv_bytes: u64,
    /// File name of the TensorBoard event file, inside the run directory.
    events_file: String,
    /// Bytes of the event file.
    events_bytes: u64,
}

/// The open record files of a run.
#[derive(Debug)]
pub struct Records {
    dir: PathBuf,
    csv: File,
    events: File,
    csv_pending: String,
    events_pending: Vec<u8>,
    positions: RecordPositions,
    last_flush: Instant,
}

/// Seconds since the Unix epoch, TensorBoard's `wall_time`.
fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Records {
    /// Starts new, empty records in `dir`, replacing any there.
    pub fn create(dir: &Path) -> Result<Self> {
        let now = wall_time();
        let events_file = tensorboard::file_name(now, &host::hostname());
        remove_other_event_files(dir, &events_file)?;
        let mut records = Self {
            dir: dir.to_path_buf(),
            csv: open_for_write(&dir.join(METRICS_CSV), true)?,
            events: open_for_write(&dir.join(&events_file), true)?,
            csv_pending: format!("{CSV_HEADER}\n"),
            events_pending: Vec::new(),
            positions: RecordPositions {
                csv_bytes: 0,
                events_file,
                events_bytes: 0,
            },
            last_flush: Instant::now(),
        };
        tensorboard::push_file_version(&mut records.events_pending, now);
        records.flush()?;
        Ok(records)
    }

    /// Reopens the records of `dir` as a checkpoint's part (from [`Records::save_part`]) saw
    /// them, cutting off whatever was written after it.
    pub fn reopen(dir: &Path, part: &Part) -> Result<Self> {
        let at: RecordPositions = part.state()?;
        let events_file = plain_name(&at.events_file, "the checkpoint's record positions")?;
        if !events_file.starts_with(tensorboard::FILE_PREFIX) {
            bail!(
                "the checkpoint's record positions name {events_file:?}, which is not a \
                 TensorBoard event file name; the checkpoint was not written by qnet"
            );
        }
        // Everything is checked before anything changes: a refused resume leaves the records
        // as they were.
        let csv = open_for_write(&dir.join(METRICS_CSV), false)?;
        let events = open_for_write(&dir.join(events_file), false)?;
        check_holds(&csv, &dir.join(METRICS_CSV), at.csv_bytes)?;
        check_holds(&events, &dir.join(events_file), at.events_bytes)?;
        remove_other_event_files(dir, events_file)?;
        truncate(&csv, &dir.join(METRICS_CSV), at.csv_bytes)?;
        truncate(&events, &dir.join(&at.events_file), at.events_bytes)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            csv,
            events,
            csv_pending: String::new(),
            events_pending: Vec::new(),
            positions: at,
            last_flush: Instant::now(),
        })
    }

    /// Queues a row for both files. Where the memory for it cannot be had (an address-space
    /// limit reached), an error instead of the abort a growing buffer would end in.
    pub fn push(&mut self, row: &Row) -> Result<()> {
        self.csv_pending
            .try_reserve(ROW_BYTES)
            .and_then(|()| self.events_pending.try_reserve(ROW_BYTES))
            .context("no memory left to queue a row of the records")?;
        row.write_csv(&mut self.csv_pending);
        let now = wall_time();
        let step = i64::try_from(row.env_step()).unwrap_or(i64::MAX);
        for (tag, value) in row.scalars() {
            tensorboard::push_scalar(&mut self.events_pending, now, step, tag, value as f32);
        }
        Ok(())
    }

    /// Writes the queued rows if the oldest may have waited a second.
    pub fn flush_if_due(&mut self) -> Result<()> {
        if self.last_flush.elapsed() >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the queued rows, whole, to both files.
    pub fn flush(&mut self) -> Result<()> {
        self.last_flush = Instant::now();
        if !self.csv_pending.is_empty() {
            append(
                &mut self.csv,
                &self.dir.join(METRICS_CSV),
                self.positions.csv_bytes,
                self.csv_pending.as_bytes(),
            )?;
            self.positions.csv_bytes += self.csv_pending.len() as u64;
            self.csv_pending.clear();
        }
        if !self.events_pending.is_empty() {
            let path = self.dir.join(&self.positions.events_file);
            let at = self.positions.events_bytes;
            append(&mut self.events, &path, at, &self.events_pending)?;
            self.positions.events_bytes += self.events_pending.len() as u64;
            self.events_pending.clear();
        }
        Ok(())
    }

    /// Writes the queued rows and makes both files durable; the checkpoint part says where
    /// they stand, so a resume cuts them back to it.
    pub fn save_part(&mut self) -> Result<Part> {
        self.sync()?;
        Part::new(&self.positions)
    }

    /// Writes the queued rows and makes both files durable.
    pub fn sync(&mut self) -> Result<()> {
        self.flush()?;
        for (file, name) in [
            (&self.csv, METRICS_CSV),
            (&self.events, self.positions.events_file.as_str()),
        ] {
            file.sync_data()
                .with_context(|| format!("cannot fsync {}", self.dir.join(name).display()))?;
        }
        Ok(())
    }
}

/// Appends `bytes` (whole rows) at `at`, where the file ends. A failed write (a full disk)
/// cuts the file back to `at`, so it never ends in half a row; the rows stay queued.
fn append(file: &mut File, path: &Path, at: u64, bytes: &[u8]) -> Result<()> {
    let written = file.write_all(bytes);
    if let Err(err) = written {
        let restored = file
            .set_len(at)
            .and_then(|()| std::io::Seek::seek(file, std::io::SeekFrom::Start(at)));
        let mut err =
            anyhow::Error::new(err).context(format!("cannot write to {}", path.display()));
        if let Err(cut) = restored {
            err = err.context(format!(
                "and cannot cut it back to its last whole row ({cut})"
            ));
        }
        return Err(err);
    }
    Ok(())
}

/// `file` holds at least the `len` bytes the checkpoint saw.
fn check_holds(file: &File, path: &Path, len: u64) -> Result<()> {
    let actual = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if actual < len {
        bail!(
            "{} holds {actual} bytes but the checkpoint saw {len}: the file was cut or replaced \
             since, so the run's records cannot be continued",
            path.display()
        );
    }
    Ok(())
}

/// Cuts `file` back to `len` bytes and positions it there.
fn truncate(file: &File, path: &Path, len: u64) -> Result<()> {
    file.set_len(len)
        .with_context(|| format!("cannot truncate {}", path.display()))?;
    let mut handle = file;
    std::io::Seek::seek(&mut handle, std::io::SeekFrom::Start(len))
        .with_context(|| format!("cannot seek in {}", path.display()))?;
    Ok(())
}

/// TensorBoard reads every event file of a directory: one left by an earlier attempt of
/// this run would show its steps twice. Only files qnet names are removed.
fn remove_other_event_files(dir: &Path, keep: &str) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Only the event files qnet names (`...<host>.qnet`): another tool's stay.
        if name.starts_with(tensorboard::FILE_PREFIX) && name.ends_with(".qnet") && name != keep {
            fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learn::eval::EvalResult;

    fn episode(env_step: u64) -> Row {
        Row::Episode {
            env_step,
            episode: env_step / 10,
            episode_return: 10.0,
            length: 10,
            epsilon: 0.5,
            loss_and_q: Some((0.25, 2.0)),
            wall_seconds: 0.5,
        }
    }

    #[test]
    fn rows_reach_the_disk_on_flush_and_reopen_cuts_back() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut records = Records::create(dir.path())?;
        records.push(&episode(10))?;
        let csv = dir.path().join(METRICS_CSV);
        assert_eq!(fs::read_to_string(&csv)?, format!("{CSV_HEADER}\n"));
        records.flush()?;
        let part = records.save_part()?;
        let seen: RecordPositions = part.state()?;
        let after_first = fs::read_to_string(&csv)?;
        assert_eq!(after_first.lines().count(), 2);
        records.push(&episode(20))?;
        records.push(&Row::Eval {
            env_step: 20,
            episode: 2,
            is_final: false,
            result: EvalResult {
                episodes: 1,
                mean: 9.0,
                std: 0.0,
                min: 9.0,
                max: 9.0,
            },
            wall_seconds: 1.0,
        })?;
        records.flush()?;
        assert_eq!(fs::read_to_string(&csv)?.lines().count(), 4);
        let events = dir.path().join(&seen.events_file);
        assert!(fs::metadata(&events)?.len() > seen.events_bytes);
        drop(records);

        let mut records = Records::reopen(dir.path(), &part)?;
        assert_eq!(fs::read_to_string(&csv)?, after_first);
        assert_eq!(fs::metadata(&events)?.len(), seen.events_bytes);
        records.push(&episode(30))?;
        records.flush()?;
        let text = fs::read_to_string(&csv)?;
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with("\n") && text.contains("train,30,"), "{text}");
        Ok(())
    }

    #[test]
    fn a_file_shorter_than_the_checkpoint_saw_is_an_error() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut records = Records::create(dir.path())?;
        records.push(&episode(10))?;
        let mut seen: RecordPositions = records.save_part()?.state()?;
        seen.csv_bytes += 100;
        let err = format!(
            "{:#}",
            Records::reopen(dir.path(), &Part::new(&seen)?).unwrap_err()
        );
        assert!(
            err.contains("metrics.csv") && err.contains("checkpoint saw"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn a_crafted_checkpoint_cannot_name_a_file_outside_the_run() -> Result<()> {
        let root = tempfile::tempdir()?;
        let dir = root.path().join("run");
        fs::create_dir(&dir)?;
        let victim = root.path().join("victim.txt");
        fs::write(&victim, "precious")?;
        let mut records = Records::create(&dir)?;
        let seen: RecordPositions = records.save_part()?.state()?;
        drop(records);
        for name in [
            "../victim.txt".to_owned(),
            victim.display().to_string(),
            "metrics.csv".to_owned(),
        ] {
            let crafted = RecordPositions {
                events_file: name.clone(),
                events_bytes: 0,
                ..seen.clone()
            };
            let err = format!(
                "{:#}",
                Records::reopen(&dir, &Part::new(&crafted)?).expect_err(&name)
            );
            assert!(err.contains("checkpoint"), "{name}: {err}");
        }
        assert_eq!(fs::read_to_string(&victim)?, "precious");
        Ok(())
    }

    #[test]
    fn records_are_never_written_through_a_link() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let mut records = Records::create(dir.path())?;
        let part = records.save_part()?;
        drop(records);
        let victim = dir.path().join("victim.txt");
        fs::write(&victim, "precious")?;
        let csv = dir.path().join(METRICS_CSV);
        fs::remove_file(&csv)?;
        std::os::unix::fs::symlink(&victim, &csv)?;
        let err = format!("{:#}", Records::reopen(dir.path(), &part).unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");
        let err = format!("{:#}", Records::create(dir.path()).unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(fs::read_to_string(&victim)?, "precious");
        Ok(())
    }

    #[test]
    fn a_new_start_leaves_one_event_file() -> Result<()> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join("events.out.tfevents.1.old.qnet"), b"stale")?;
        fs::write(dir.path().join("notes.txt"), b"kept")?;
        let records = Records::create(dir.path())?;
        let names: Vec<String> = fs::read_dir(dir.path())?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(tensorboard::FILE_PREFIX))
            .collect();
        assert_eq!(names, std::slice::from_ref(&records.positions.events_file));
        assert!(dir.path().join("notes.txt").exists());
        Ok(())
    }
}
