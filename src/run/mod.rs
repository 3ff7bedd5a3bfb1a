//! One training run's life, from its directory and preflight checks to its last record.

pub mod checkpoint;
pub mod metrics;
pub mod play;
pub mod preflight;
pub mod progress;
pub mod provenance;
pub mod records;
pub mod run_dir;
pub mod session;
pub mod trainer;
