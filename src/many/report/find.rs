//! The run directories a report reads: those given and those below them, each once.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::clip;
use crate::many::sweep::FAILURE_JSON;
use crate::run::metrics::{METRICS_CSV, SUMMARY_JSON};

/// Deepest directory level searched below each directory given.
const MAX_DEPTH: usize = 6;

/// The run directories in or below `dirs` (a run directory holds config.yaml and records),
/// each once: a run reached twice (a directory given twice or inside another one given, or
/// through a link) would count twice and narrow every interval.
pub(super) fn find_runs(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut walker = Walker::default();
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        walker.walk(dir, 0)?;
    }
    if walker.runs.is_empty() {
        let given: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "no qnet runs in {}: a run directory holds config.yaml with metrics.csv or \
             summary.json",
            clip(&given.join(", "))
        );
    }
    Ok(walker.runs)
}

/// One depth-first walk over the directories given, in natural order. It follows links (a
/// comparison folder of links to runs is a way to pick them) but reads each directory once,
/// known by its device and inode wherever it is reached from: a link to itself or to a
/// directory above it ends there instead of repeating the tree up to the depth limit (k such
/// links made k^6 visits). Hidden entries (`.git`, `.trash`, editors' folders) are skipped.
#[derive(Default)]
struct Walker {
    /// The (device, inode) of every directory read so far.
    visited: HashSet<(u64, u64)>,
    /// The run directories found, in the order they were reached.
    runs: Vec<PathBuf>,
}

impl Walker {
    fn walk(&mut self, dir: &Path, depth: usize) -> Result<()> {
        let meta = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
        if !self.visited.insert((meta.dev(), meta.ino())) {
            return Ok(());
        }
        let is_run = dir.join("config.yaml").is_file()
            && [METRICS_CSV, SUMMARY_JSON, FAILURE_JSON]
                .iter()
                .any(|f| dir.join(f).is_file());
        if is_run {
            self.runs.push(dir.to_path_buf());
            return Ok(());
        }
        if depth >= MAX_DEPTH {
            return Ok(());
        }
        let mut children: Vec<PathBuf> = fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| !entry.file_name().as_encoded_bytes().starts_with(b"."))
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        // Natural order, so seed10 follows seed9.
        children.sort_by_key(|p| natural_key(&p.to_string_lossy()));
        for child in children {
            self.walk(&child, depth + 1)?;
        }
        Ok(())
    }
}

/// Sorts "seed2" before "seed10": digit runs compare as numbers.
fn natural_key(text: &str) -> Vec<(String, u64)> {
    let mut key = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (word, tail) = rest.split_at(split);
        let digits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        let number = tail[..digits].parse().unwrap_or(0);
        key.push((word.to_owned(), number));
        rest = &tail[digits..];
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_seed2_before_seed10() {
        let mut names = vec!["a/seed10", "a/seed2", "b/seed1", "a/seed1"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["a/seed1", "a/seed2", "a/seed10", "b/seed1"]);
    }

    fn run_in(dir: &Path) -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        fs::write(dir.join("config.yaml"), "seed: 0\n")?;
        fs::write(dir.join(SUMMARY_JSON), "{}")
    }

    #[test]
    fn a_run_reached_twice_is_found_once() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let sweep = dir.path().join("sweep");
        let (a, b) = (sweep.join("x/seed0"), sweep.join("x/seed1"));
        run_in(&a)?;
        run_in(&b)?;
        std::os::unix::fs::symlink(&sweep, dir.path().join("link"))?;
        std::os::unix::fs::symlink(&a, sweep.join("x/seed0-again"))?;
        let given = [
            sweep.clone(),
            a.clone(),
            dir.path().join("link"),
            sweep.join("x/../x/seed1"),
        ];
        assert_eq!(find_runs(&given)?, vec![a, b]);
        Ok(())
    }

    /// Links to a directory itself and a cycle through two directories end where they start;
    /// a run in a hidden folder is not read.
    #[test]
    fn self_links_and_link_cycles_are_walked_once() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let top = dir.path().join("compare");
        let a = top.join("a/seed0");
        run_in(&a)?;
        run_in(&top.join("b/seed0"))?;
        run_in(&top.join(".trash/seed9"))?;
        for parent in [top.clone(), top.join("a"), top.join("b")] {
            for k in 0..24 {
                std::os::unix::fs::symlink(".", parent.join(format!("self{k}")))?;
            }
        }
        std::os::unix::fs::symlink(top.join("b"), top.join("a/to-b"))?;
        std::os::unix::fs::symlink(top.join("a"), top.join("b/to-a"))?;
        std::os::unix::fs::symlink(&top, top.join("b/up"))?;
        // b/seed0 is first reached through a/to-b, and named so.
        assert_eq!(
            find_runs(std::slice::from_ref(&top))?,
            vec![a.clone(), top.join("a/to-b/seed0")]
        );
        // Through a link given first, each run still counts once, under the name first reached.
        let link = dir.path().join("picked");
        std::os::unix::fs::symlink(top.join("b"), &link)?;
        assert_eq!(
            find_runs(&[link.clone(), top])?,
            vec![link.join("seed0"), link.join("to-a/seed0")]
        );
        Ok(())
    }
}
