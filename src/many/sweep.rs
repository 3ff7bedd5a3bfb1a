//! Sweeps: one base experiment, a grid over config keys and a range of seeds, expanded
//! deterministically into one run directory per (setting, seed).
//!
//! `OUT/<setting>/config.yaml` holds each setting's fully resolved config (the grid values
//! applied), `OUT/<setting>/seed<N>/` each run, `OUT/jobs.txt` the `qnet train` command of
//! every run and `OUT/sweep.json` the expansion that local workers and Slurm array tasks
//! read back. A run directory's files say how far it got ([`RunState`]), which is what makes
//! a sweep idempotent: finished runs are skipped, unfinished ones resumed, failed ones
//! retried only when asked.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::disk;
use super::grid::{self, Grid};
use crate::config::{clip, Config};
use crate::platform::atomic::remove_stale_temp_files;
use crate::platform::atomic::{remove_if_exists, write_bytes_atomic};
use crate::platform::files::{child_dir, plain_name};
use crate::platform::lock::DirLock;
use crate::platform::read::load_config;
use crate::platform::read::read_text;
use crate::run::metrics::{RunStatus, Summary};
use crate::run::preflight::human;
use crate::run::run_dir::{existing, foreign_out_error, Existing};

/// File name of the expansion inside a sweep directory.
pub const SWEEP_JSON: &str = "sweep.json";
/// File name of the run commands inside a sweep directory.
pub const JOBS_TXT: &str = "jobs.txt";
/// File name of a run's failure record.
pub const FAILURE_JSON: &str = "failure.json";

/// What to sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSpec {
    /// The base experiment file.
    pub config: PathBuf,
    /// `KEY=VALUE` overrides applied to every run, before the grid.
    pub overrides: Vec<String>,
    /// The grid: each key with its values (YAML text), in the order given.
    pub grid: Grid,
    /// The seeds of every setting.
    pub seeds: Range<u64>,
    /// The most runs (settings x seeds) it may expand to.
    pub max_runs: u64,
}

/// Default of `--max-runs`: far more runs than a study needs, far fewer directories than
/// a file system holds comfortably.
pub const DEFAULT_MAX_RUNS: u64 = 10_000;

/// One point of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    /// Directory name: `key=value` pairs of its grid point (`base` without a grid).
    pub name: String,
    /// Its grid values as `KEY=VALUE` overrides.
    pub grid: Vec<String>,
}

/// One run of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Index into [`Sweep::settings`].
    pub setting: usize,
    /// The run's seed.
    pub seed: u64,
    /// The run directory.
    pub dir: PathBuf,
    /// The setting's resolved config.yaml (the run's config is it with `seed` set).
    pub config: PathBuf,
}

impl Job {
    /// The run of seed `seed` of setting number `index`, in the sweep directory `out`.
    fn new(out: &Path, index: usize, setting: &Setting, seed: u64) -> Self {
        let base = out.join(&setting.name);
        Self {
            setting: index,
            seed,
            dir: base.join(format!("seed{seed}")),
            config: base.join("config.yaml"),
        }
    }

    /// The run's resolved config.
    pub fn load_config(&self) -> Result<Config> {
        load_config(&self.config, &[format!("seed={}", self.seed)])
    }

    /// The `qnet train` command that runs this job on its own.
    pub fn command(&self) -> String {
        let words = [
            "qnet".to_owned(),
            "train".to_owned(),
            "--config".to_owned(),
            self.config.display().to_string(),
            "--seed".to_owned(),
            self.seed.to_string(),
            "--out".to_owned(),
            self.dir.display().to_string(),
            "--quiet".to_owned(),
        ];
        // Quoted where a path needs it, so that a line of jobs.txt runs as it stands.
        crate::platform::shell::words(words)
    }
}

/// An expanded sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The sweep directory.
    pub out: PathBuf,
    /// The grid points, in expansion order.
    pub settings: Vec<Setting>,
    /// Every run: settings in order, seeds in order within each.
    pub jobs: Vec<Job>,
}

/// A YAML value as a short, path-safe piece of a directory name.
fn name_piece(value: &str) -> String {
    let text: String = value
        .chars()
        .filter(|c| !matches!(c, '[' | ']' | '{' | '}' | ' ' | '"' | '\''))
        .map(|c| if c == ',' { '-' } else { c })
        .collect();
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '=' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The directory name of the grid point `point`: its `key=value` pairs joined by `_`
/// (`base` without a grid), with its index appended where `settings` already use the name or
/// where it is cut to `MAX_SETTING_NAME` characters (a file name holds at most 255 bytes).
fn setting_name(point: &[(String, String)], settings: &[Setting]) -> String {
    const MAX_SETTING_NAME: usize = 200;
    let mut name = point
        .iter()
        .map(|(k, v)| format!("{k}={}", name_piece(v)))
        .collect::<Vec<_>>()
        .join("_");
    if name.is_empty() {
        name = "base".to_owned();
    }
    let cut = name.char_indices().nth(MAX_SETTING_NAME).map(|(at, _)| at);
    if let Some(at) = cut {
        name.truncate(at);
    }
    if cut.is_some() || settings.iter().any(|s| s.name == name) {
        name = format!("{name}-{}", settings.len());
    }
    name
}

impl Sweep {
    /// Expands `spec` into settings and jobs under `out`, loading and validating every
    /// setting's config (so a bad grid value fails before anything runs).
    pub fn expand(spec: &SweepSpec, out: &Path) -> Result<(Self, Vec<Config>)> {
        if spec.seeds.is_empty() {
            bail!("a sweep needs at least one seed");
        }
        grid::check(&spec.grid)?;
        check_size(spec)?;
        let mut settings = Vec::new();
        let mut configs = Vec::new();
        for point in grid::points(&spec.grid) {
            let name = setting_name(&point, &settings);
            let grid: Vec<String> = point.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut overrides = spec.overrides.clone();
            overrides.extend(grid.iter().cloned());
            let config = load_config(&spec.config, &overrides)
                .with_context(|| format!("sweep setting {}", clip(&name)))?;
            // The environment too is checked before anything runs.
            crate::env::resolve(&config.env)
                .with_context(|| format!("sweep setting {}", clip(&name)))?;
            settings.push(Setting { name, grid });
            configs.push(config);
        }
        let out = absolute(out)?;
        if out.to_str().is_none() {
            bail!(
                "the sweep directory {} is not UTF-8, which sweep.json cannot record: choose an \
                 --out whose name is UTF-8",
                crate::platform::shell::quote_os(out.as_os_str())
            );
        }
        let jobs = settings
            .iter()
            .enumerate()
            .flat_map(|(index, setting)| {
                let out = &out;
                spec.seeds
                    .clone()
                    .map(move |seed| Job::new(out, index, setting, seed))
            })
            .collect();
        Ok((
            Self {
                out,
                settings,
                jobs,
            },
            configs,
        ))
    }

    /// Writes each setting's config.yaml, jobs.txt and sweep.json. A setting directory
    /// that already holds a different config is refused: its runs would no longer match.
    pub fn write(&self, configs: &[Config]) -> Result<()> {
        fs::create_dir_all(&self.out)
            .with_context(|| format!("creating the sweep directory {}", self.out.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        let sweep_json = self.out.join(SWEEP_JSON);
        if !sweep_json.exists() {
            // First, in a new directory: a sweep stopped before it has written everything is
            // still a sweep, which the same command continues.
            write_bytes_atomic(&sweep_json, json.as_bytes())?;
        }
        for (setting, config) in self.settings.iter().zip(configs) {
            let dir = self.out.join(&setting.name);
            child_dir(&self.out, &dir)
                .with_context(|| format!("creating the sweep directory {}", dir.display()))?;
            remove_stale_temp_files(&dir)?;
            let path = dir.join("config.yaml");
            if path.exists() {
                let existing = load_config(&path, &[])?;
                let differing = existing.differing_keys(config)?;
                if !differing.is_empty() {
                    bail!(
                        "{} already holds setting {} with other values ({}); use another --out \
                         or the same base config and overrides",
                        self.out.display(),
                        setting.name,
                        differing.join(", ")
                    );
                }
            } else {
                write_bytes_atomic(&path, config.to_yaml()?.as_bytes())?;
            }
        }
        let commands: String = self.jobs.iter().map(|j| j.command() + "\n").collect();
        write_bytes_atomic(&self.out.join(JOBS_TXT), commands.as_bytes())?;
        write_bytes_atomic(&sweep_json, json.as_bytes())
    }

    /// Reads the sweep written into `out`.
    pub fn open(out: &Path) -> Result<Self> {
        let path = out.join(SWEEP_JSON);
        let text = read_text(&path).with_context(|| {
            format!(
                "reading {} (is {} a sweep directory?)",
                path.display(),
                out.display()
            )
        })?;
        let sweep: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a qnet sweep", path.display()))?;
        sweep
            .rebase(absolute(out)?)
            .with_context(|| format!("{} is not a sweep qnet wrote", path.display()))
    }

    /// The sweep with every path derived again from `out` as [`Sweep::expand`] derives it:
    /// a sweep directory that moved still works, and a crafted sweep.json cannot make a
    /// sweep write outside it.
    fn rebase(self, out: PathBuf) -> Result<Self> {
        for setting in &self.settings {
            plain_name(&setting.name, "a setting")?;
        }
        let jobs = self
            .jobs
            .iter()
            .map(|job| match self.settings.get(job.setting) {
                Some(setting) => Ok(Job::new(&out, job.setting, setting, job.seed)),
                None => bail!(
                    "a run names setting {}, which it does not have",
                    job.setting
                ),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            out,
            settings: self.settings,
            jobs,
        })
    }

    /// Takes the sweep directory's lock for `command` (creating the directory), so that one
    /// process at a time writes it, and clears the temporary files an earlier kill left. The
    /// directory must be new or empty, or hold a sweep already (which this one continues).
    pub fn lock(&self, command: &str) -> Result<DirLock> {
        if !self.out.join(SWEEP_JSON).is_file() {
            match existing(&self.out)? {
                Existing::Nothing => {}
                Existing::Run => bail!(
                    "{} holds a run, not a sweep: a sweep inside it would be mistaken for it. \
                     Choose another --out (a path that does not exist yet)",
                    self.out.display()
                ),
                Existing::Files => return Err(foreign_out_error(&self.out, "sweep")),
            }
        }
        fs::create_dir_all(&self.out)
            .with_context(|| format!("creating the sweep directory {}", self.out.display()))?;
        DirLock::acquire_and_clean(&self.out, command)
    }
}

/// Refuses a sweep of more than `spec.max_runs` runs before anything is expanded, with
/// the disk it would take (estimated from its first setting).
fn check_size(spec: &SweepSpec) -> Result<()> {
    let settings = grid::settings(&spec.grid);
    let seeds = spec.seeds.end - spec.seeds.start;
    let runs = settings.saturating_mul(seeds);
    if runs <= spec.max_runs {
        return Ok(());
    }
    let mut first = spec.overrides.clone();
    first.extend(
        spec.grid
            .iter()
            .filter_map(|(key, values)| Some(format!("{key}={}", values.first()?))),
    );
    let config = load_config(&spec.config, &first).context("the sweep's first setting")?;
    let env = crate::env::resolve(&config.env).context("the sweep's first setting")?;
    let per_run = disk::run_bytes(&config, &env);
    bail!(
        "the sweep has {runs} runs ({settings} setting{} x {seeds} seed{}), more than \
         --max-runs {}; they would write about {} (an estimate from the first setting: {} \
         per run). Shrink the grid or --seeds, or raise --max-runs to run them all",
        plural(settings),
        plural(seeds),
        spec.max_runs,
        human(per_run.saturating_mul(runs)),
        human(per_run)
    );
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()
        .context("reading the current directory")?
        .join(path))
}

/// Why a run failed: what `qnet train` would have exited with, and its error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The exit status (`1` for an error, `signal 9` for a worker killed by a signal, ...).
    pub exit_status: String,
    /// The error's last line.
    pub error: String,
}

impl Failure {
    /// Records the failure in `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self)?;
        write_bytes_atomic(&dir.join(FAILURE_JSON), json.as_bytes())
    }

    /// Removes the failure record of `dir`, before the run is tried again.
    pub fn clear(dir: &Path) -> Result<()> {
        remove_if_exists(&dir.join(FAILURE_JSON))
    }
}

/// How far a run directory got.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Nothing there yet.
    New,
    /// Started (config.yaml written) but neither finished nor failed.
    Unfinished,
    /// Trained and finally evaluated.
    Finished(Box<Summary>),
    /// Failed (an error, a killed worker, or a divergence).
    Failed(Failure),
}

impl RunState {
    /// Reads the state of the run in `dir`.
    pub fn of(dir: &Path) -> Result<Self> {
        let failure = dir.join(FAILURE_JSON);
        if failure.exists() {
            let text =
                read_text(&failure).with_context(|| format!("reading {}", failure.display()))?;
            return serde_json::from_str(&text)
                .map(RunState::Failed)
                .with_context(|| format!("{} is not a qnet failure record", failure.display()));
        }
        match Summary::read(dir)? {
            Some(summary) if summary.status == RunStatus::Finished => {
                Ok(RunState::Finished(Box::new(summary)))
            }
            Some(summary) => Ok(RunState::Failed(Failure {
                exit_status: "1".to_owned(),
                error: summary
                    .divergence
                    .unwrap_or_else(|| "training diverged".to_owned()),
            })),
            None if dir.join("config.yaml").exists() => Ok(RunState::Unfinished),
            None => Ok(RunState::New),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(grid: Vec<(&str, Vec<&str>)>, seeds: Range<u64>) -> SweepSpec {
        SweepSpec {
            config: Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/cartpole.yaml"),
            overrides: vec!["train.total_env_steps=1000".to_owned()],
            grid: grid
                .into_iter()
                .map(|(k, vs)| (k.to_owned(), vs.into_iter().map(str::to_owned).collect()))
                .collect(),
            seeds,
            max_runs: DEFAULT_MAX_RUNS,
        }
    }

    #[test]
    fn expansion_is_the_grid_product_times_the_seeds_in_order() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (sweep, configs) = Sweep::expand(
            &spec(
                vec![
                    ("optimizer.lr", vec!["1e-3", "3e-3"]),
                    ("network.hidden", vec!["[64,64]", "[128,128]"]),
                ],
                5..8,
            ),
            dir.path(),
        )?;
        let names: Vec<&str> = sweep.settings.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "optimizer.lr=1e-3_network.hidden=64-64",
                "optimizer.lr=1e-3_network.hidden=128-128",
                "optimizer.lr=3e-3_network.hidden=64-64",
                "optimizer.lr=3e-3_network.hidden=128-128",
            ]
        );
        assert_eq!(configs[3].optimizer.lr, 3e-3);
        assert_eq!(configs[3].network.hidden, vec![128, 128]);
        assert_eq!(configs[0].train.total_env_steps, 1000);
        assert_eq!(sweep.jobs.len(), 12);
        let first: Vec<(usize, u64)> = sweep.jobs[..4]
            .iter()
            .map(|j| (j.setting, j.seed))
            .collect();
        assert_eq!(first, [(0, 5), (0, 6), (0, 7), (1, 5)]);
        assert_eq!(
            sweep.jobs[4].dir,
            dir.path()
                .join("optimizer.lr=1e-3_network.hidden=128-128/seed6")
        );
        // The same spec expands the same way.
        let (again, _) = Sweep::expand(
            &spec(
                vec![
                    ("optimizer.lr", vec!["1e-3", "3e-3"]),
                    ("network.hidden", vec!["[64,64]", "[128,128]"]),
                ],
                5..8,
            ),
            dir.path(),
        )?;
        assert_eq!(again, sweep);
        Ok(())
    }

    #[test]
    fn a_sweep_round_trips_and_refuses_a_changed_setting() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (sweep, configs) = Sweep::expand(&spec(vec![], 0..2), dir.path())?;
        assert_eq!(sweep.settings[0].name, "base");
        sweep.write(&configs)?;
        assert_eq!(Sweep::open(dir.path())?, sweep);
        let jobs = fs::read_to_string(dir.path().join(JOBS_TXT))?;
        assert_eq!(jobs.lines().count(), 2);
        assert!(jobs.starts_with("qnet train --config "), "{jobs}");
        assert!(jobs.contains("--seed 1 --out "), "{jobs}");
        // Written again unchanged: fine. With another value under the same name: refused.
        sweep.write(&configs)?;
        let mut changed = spec(vec![], 0..2);
        changed.overrides.push("agent.gamma=0.9".to_owned());
        let (other, other_configs) = Sweep::expand(&changed, dir.path())?;
        let err = other.write(&other_configs).unwrap_err().to_string();
        assert!(err.contains("agent.gamma") && err.contains("base"), "{err}");
        Ok(())
    }

    #[test]
    fn a_crafted_or_moved_sweep_json_only_names_paths_inside_the_sweep() -> Result<()> {
        let root = tempfile::tempdir()?;
        let first = root.path().join("first");
        let (sweep, configs) = Sweep::expand(&spec(vec![], 0..2), &first)?;
        sweep.write(&configs)?;
        // Moved: every path follows the directory.
        let moved = root.path().join("moved");
        fs::rename(&first, &moved)?;
        let opened = Sweep::open(&moved)?;
        assert_eq!(opened.out, moved);
        assert_eq!(opened.jobs[1].dir, moved.join("base/seed1"));
        assert_eq!(opened.jobs[1].config, moved.join("base/config.yaml"));
        // Crafted: run directories elsewhere are ignored, a setting name with a path refused.
        let mut crafted = opened.clone();
        crafted.jobs[0].dir = PathBuf::from("/etc");
        crafted.jobs[0].config = root.path().join("evil.yaml");
        let write = |sweep: &Sweep| {
            fs::write(
                moved.join(SWEEP_JSON),
                serde_json::to_string(sweep).expect("json"),
            )
        };
        write(&crafted)?;
        assert_eq!(Sweep::open(&moved)?.jobs, opened.jobs);
        crafted.settings[0].name = "../../elsewhere".to_owned();
        write(&crafted)?;
        let err = format!("{:#}", Sweep::open(&moved).unwrap_err());
        assert!(err.contains("not a plain file name"), "{err}");
        crafted.settings[0].name = "base".to_owned();
        crafted.jobs[0].setting = 7;
        write(&crafted)?;
        let err = format!("{:#}", Sweep::open(&moved).unwrap_err());
        assert!(err.contains("names setting 7"), "{err}");
        Ok(())
    }

    #[test]
    fn a_sweep_over_max_runs_is_refused_before_expanding_with_its_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let values: Vec<String> = (0..2000).map(|i| format!("{}e-6", i + 1)).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let huge = spec(
            vec![("optimizer.lr", values.clone()), ("optimizer.eps", values)],
            0..10,
        );
        let started = std::time::Instant::now();
        let err = Sweep::expand(&huge, dir.path()).unwrap_err().to_string();
        assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
        assert!(
            err.starts_with(
                "the sweep has 40000000 runs (4000000 settings x 10 seeds), more than \
                 --max-runs 10000; they would write about "
            ) && err.contains("(an estimate from the first setting: ")
                && err.contains("raise --max-runs"),
            "{err}"
        );
        let seeds = spec(vec![], 0..10_001);
        let err = Sweep::expand(&seeds, dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("10001 runs (1 setting x 10001 seeds)"),
            "{err}"
        );
        let raised = SweepSpec {
            max_runs: 10_001,
            ..seeds
        };
        assert_eq!(
            Sweep::expand(&raised, dir.path())
                .map(|s| s.0.jobs.len())
                .ok(),
            Some(10_001)
        );
        assert_eq!(fs::read_dir(dir.path()).map(|d| d.count()).ok(), Some(0));
    }

    #[test]
    fn a_bad_grid_value_fails_at_expansion_naming_the_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = Sweep::expand(
            &spec(vec![("agent.gamma", vec!["0.9", "2"])], 0..1),
            dir.path(),
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("agent.gamma=2") && text.contains("[0, 1]"),
            "{text}"
        );
    }

    #[test]
    fn run_states_come_from_the_files_a_run_leaves() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let run = dir.path().join("seed0");
        assert_eq!(RunState::of(&run)?, RunState::New);
        fs::create_dir_all(&run)?;
        fs::write(run.join("config.yaml"), "seed: 0\n")?;
        assert_eq!(RunState::of(&run)?, RunState::Unfinished);
        let failure = Failure {
            exit_status: "signal 9".to_owned(),
            error: "killed".to_owned(),
        };
        failure.write(&run)?;
        assert_eq!(RunState::of(&run)?, RunState::Failed(failure));
        Failure::clear(&run)?;
        assert_eq!(RunState::of(&run)?, RunState::Unfinished);
        Ok(())
    }
}
