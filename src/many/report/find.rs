//! The run directories a report reads: those given and those below them, each once.

use std::collections::HashSet;
use std::fs;
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
    let mut found = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        walk(dir, 0, &mut found)?;
    }
    let mut seen = HashSet::new();
    let mut runs = Vec::with_capacity(found.len());
    for dir in found {
        let real =
            fs::canonicalize(&dir).with_context(|| format!("resolving {}", dir.display()))?;
        if seen.insert(real) {
            runs.push(dir);
        }
    }
    if runs.is_empty() {
        let given: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        bail!(
            "no qnet runs in {}: a run directory holds config.yaml with metrics.csv or \
             summary.json",
            clip(&given.join(", "))
        );
    }
    Ok(runs)
}

fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<()> {
    let is_run = dir.join("config.yaml").is_file()
        && [METRICS_CSV, SUMMARY_JSON, FAILURE_JSON]
            .iter()
            .any(|f| dir.join(f).is_file());
    if is_run {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut children: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    // Natural order, so seed10 follows seed9.
    children.sort_by_key(|p| natural_key(&p.to_string_lossy()));
    for child in children {
        walk(&child, depth + 1, found)?;
    }
    Ok(())
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
}
