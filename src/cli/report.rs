//! `qnet report`: statistics across runs, printed and written next to them.

use std::fs;

use anyhow::{bail, Context, Result};

use super::ReportArgs;
use crate::many::report::{Report, LEARNING_CURVES};
use crate::many::stats::{self, Bootstrap};

pub(super) fn report(args: ReportArgs) -> Result<()> {
    let reps = usize::try_from(args.reps).unwrap_or(usize::MAX);
    if let Err(err) = stats::check_reps(reps) {
        bail!("--reps {}: {err}", args.reps);
    }
    let bootstrap = Bootstrap {
        reps,
        seed: args.seed,
        ..Bootstrap::default()
    };
    let mut report = Report::build(&args.dirs, &bootstrap)?;
    report.compare(args.baseline.as_deref(), &bootstrap)?;
    let out = match args.out {
        Some(dir) => dir,
        None => args.dirs[0].clone(),
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    report.write(&out)?;
    say!("{}", report.markdown());
    say!(
        "wrote report.md, report.csv, report.json and {LEARNING_CURVES} into {}",
        out.display()
    );
    Ok(())
}
