//! Operating system, CPU, CUDA and libtorch glue that the wings above share.

pub mod atomic;
pub mod cuda_runtime;
pub mod device;
pub mod files;
pub mod host;
pub mod lock;
pub mod memory;
pub mod parent;
pub mod read;
pub mod rng;
pub mod shell;
pub mod shm;
pub mod signals;
pub(crate) mod simd;
pub mod symbols;
pub mod utc;
