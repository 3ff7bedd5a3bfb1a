//! Many runs: sweeps over settings and seeds, their workers, statistics and reports.

pub mod bench;
pub mod disk;
pub mod grid;
pub mod local;
pub mod report;
pub mod slurm;
pub mod stats;
pub mod sweep;
pub mod tally;
pub mod worker;
