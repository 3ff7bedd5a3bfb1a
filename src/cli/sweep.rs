//! `qnet sweep`: expand a grid over seeds into run directories, then train them here on
//! worker processes or write (and submit) a Slurm job array; and the hidden `sweep-task`
//! that one array task runs.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{SlurmArgs, SweepArgs, SweepTaskArgs};
use crate::config::clip;
use crate::many::disk;
use crate::many::grid::{parse_grid_arg, Grid};
use crate::many::local::run_here;
use crate::many::slurm::{self, ArrayOptions};
use crate::many::sweep::{Sweep, SweepSpec};
use crate::many::tally::Tally;
use crate::many::worker::{self, JobOutcome};
use crate::platform::read::read_text;
use crate::platform::signals::StopFlag;
use crate::run::provenance;

pub(super) fn sweep(args: SweepArgs) -> Result<i32> {
    let mut grid = args
        .grid
        .iter()
        .map(|arg| parse_grid_arg(arg))
        .collect::<Result<Vec<_>>>()?;
    if let Some(path) = &args.grid_file {
        grid.extend(grid_file(path)?);
    }
    let Some(end) = args.seeds.first_seed.checked_add(args.seeds.seeds) else {
        bail!("--first-seed plus --seeds overflows a u64 seed");
    };
    let spec = SweepSpec {
        config: args.config.path()?,
        overrides: args.config.overrides(),
        grid,
        seeds: args.seeds.first_seed..end,
        max_runs: args.seeds.max_runs,
    };
    let (sweep, configs) = Sweep::expand(&spec, &args.out)?;
    // The job script is made before anything is written, so that a directory it cannot
    // name is refused with nothing left behind.
    let array = if args.slurm.slurm || args.slurm.submit {
        let options = array_options(&args.slurm, args.retry_failed, sweep.jobs.len())?;
        let qnet = std::env::current_exe()
            .and_then(fs::canonicalize)
            .context("finding the qnet executable")?;
        let script = options.script(&sweep, &qnet)?;
        Some((options, script))
    } else {
        None
    };
    let _lock = sweep.lock(&provenance::this_command())?;
    sweep.write(&configs)?;
    let mut bytes = 0u64;
    for config in &configs {
        let per_run = disk::run_bytes(config, &crate::env::resolve(&config.env)?);
        bytes = bytes.saturating_add(per_run.saturating_mul(args.seeds.seeds));
    }
    say!(
        "sweep: {} setting{} x {} seed{} = {} runs in {}, about {} on disk by an estimate \
         (their commands: {})",
        sweep.settings.len(),
        plural(sweep.settings.len()),
        args.seeds.seeds,
        plural(args.seeds.seeds as usize),
        sweep.jobs.len(),
        sweep.out.display(),
        crate::run::preflight::human(bytes),
        sweep.out.join(crate::many::sweep::JOBS_TXT).display()
    );
    if let Some((options, script)) = array {
        return on_slurm(&sweep, &options, &script, &args.slurm);
    }
    let workers = match args.jobs {
        Some(jobs) => jobs as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let tally = run_here(&sweep, workers, args.retry_failed, args.quiet)?;
    finish(&sweep, &tally)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The `grid:` section of a YAML file, as `--grid` would give it.
fn grid_file(path: &Path) -> Result<Grid> {
    let text =
        read_text(path).with_context(|| format!("reading the grid file {}", path.display()))?;
    let file: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{}: malformed YAML", path.display()))?;
    let bad = |what: &str| anyhow::anyhow!("{}: {what}", path.display());
    let mapping = file
        .as_mapping()
        .ok_or_else(|| bad("expected a mapping with a `grid:` section"))?;
    if let Some(key) = mapping.keys().find(|k| k.as_str() != Some("grid")) {
        return Err(bad(&format!(
            "unknown key {} (the only key is `grid`)",
            clip(&format!("{key:?}"))
        )));
    }
    let grid = mapping
        .get("grid")
        .and_then(serde_yaml::Value::as_mapping)
        .ok_or_else(|| bad("`grid:` must map config keys to lists of values"))?;
    grid.iter()
        .map(|(key, values)| {
            let key = key.as_str().ok_or_else(|| {
                bad(&format!(
                    "grid key {} is not a dotted key",
                    clip(&format!("{key:?}"))
                ))
            })?;
            let values = values
                .as_sequence()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    bad(&format!(
                        "grid.{} must be a non-empty list of values",
                        clip(key)
                    ))
                })?;
            // JSON is YAML's flow syntax: each value as one `--set` would take it.
            let texts = values
                .iter()
                .map(|v| serde_json::to_string(v).context("encoding a grid value"))
                .collect::<Result<Vec<_>>>()?;
            Ok((key.to_owned(), texts))
        })
        .collect()
}

/// The closing lines of a local sweep; its exit code.
fn finish(sweep: &Sweep, tally: &Tally) -> Result<i32> {
    say!(
        "sweep: {}/{} runs finished ({} now, {} before); {} failed now, {} failed before \
         (--retry-failed to train them again); {} interrupted, {} not started",
        tally.finished + tally.already_finished,
        sweep.jobs.len(),
        tally.finished,
        tally.already_finished,
        tally.failed.len(),
        tally.skipped_failed,
        tally.interrupted,
        tally.not_run
    );
    for (job, failure) in &tally.failed {
        say!(
            "  failed: {} (exit status {}): {}",
            job.dir.display(),
            failure.exit_status,
            failure.error
        );
    }
    if !tally.overheads.is_empty() {
        let mut overheads = tally.overheads.clone();
        overheads.sort_by(f64::total_cmp);
        say!(
            "per-run overhead inside workers: median {:.3} s, max {:.3} s over {} runs (wall \
             time per run beyond its training time)",
            overheads[overheads.len() / 2],
            overheads[overheads.len() - 1],
            overheads.len()
        );
    }
    if tally.interrupted + tally.not_run > 0 {
        say!("run the same qnet sweep command again to finish it");
    }
    say!("report: qnet report {}", sweep.out.display());
    Ok(tally.exit_code())
}

/// The array's options for `jobs` runs, checked (against the cluster when one answers)
/// before anything is written.
fn array_options(args: &SlurmArgs, retry_failed: bool, jobs: usize) -> Result<ArrayOptions> {
    let options = ArrayOptions {
        runs_per_task: args.runs_per_task as usize,
        max_concurrent: args.max_concurrent,
        cpus_per_task: args.cpus_per_task,
        time: args.time.clone(),
        partition: args.partition.clone(),
        retry_failed,
    };
    let max_array_size = slurm::cluster_max_array_size();
    if max_array_size.is_none() {
        say!(
            "no Slurm answers `scontrol show config` here: the array's {} tasks are not checked \
             against the cluster's MaxArraySize",
            options.tasks(jobs)
        );
    }
    options.check_for(jobs, max_array_size)?;
    Ok(options)
}

/// `--slurm`: writes the job script; `--submit` submits it, `--wait` waits for it.
fn on_slurm(sweep: &Sweep, options: &ArrayOptions, script: &str, args: &SlurmArgs) -> Result<i32> {
    let script = slurm::write_script(sweep, script)?;
    say!(
        "wrote {}: {} array task{} of up to {} runs each",
        script.display(),
        options.tasks(sweep.jobs.len()),
        plural(options.tasks(sweep.jobs.len())),
        options.runs_per_task
    );
    if !args.submit {
        say!("submit it with: sbatch {}", script.display());
        return Ok(0);
    }
    let id = slurm::submit(&script)?;
    say!("submitted job {id}");
    if !args.wait {
        return Ok(0);
    }
    slurm::wait(&id, &mut || Ok(()))?;
    let tally = Tally::of_directories(sweep)?;
    say!("job {id} has left the queue");
    finish(sweep, &tally)
}

/// `qnet sweep-task`: one Slurm array task's share of the sweep, one run after another.
pub(super) fn task(args: SweepTaskArgs) -> Result<i32> {
    let sweep = Sweep::open(&args.out)?;
    let range = slurm::task_jobs(
        sweep.jobs.len(),
        args.runs_per_task as usize,
        args.task as usize,
    );
    let stop = StopFlag::install()?;
    let mut tally = Tally::default();
    for job in &sweep.jobs[range] {
        if stop.is_raised() {
            tally.not_run += 1;
            continue;
        }
        let report = worker::execute(job, args.retry_failed, &stop);
        say!(
            "{}: {} ({:.1} s)",
            job.dir.display(),
            match &report.outcome {
                JobOutcome::Finished => "finished".to_owned(),
                JobOutcome::AlreadyFinished => "finished before, skipped".to_owned(),
                JobOutcome::SkippedFailed => "failed before, skipped".to_owned(),
                JobOutcome::Interrupted => "interrupted, checkpoint saved".to_owned(),
                JobOutcome::Failed(f) =>
                    format!("failed (exit status {}): {}", f.exit_status, f.error),
            },
            report.wall_seconds
        );
        tally.count(job, &report);
    }
    Ok(tally.exit_code())
}
