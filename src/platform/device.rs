//! Turning the configured device (`auto`, `cpu`, `cuda`, `cuda:N`) into a tch device.

use anyhow::{bail, Result};
use tch::Device;

use crate::config::{DeviceSpec, ReplayDevice};

/// What libtorch reports about CUDA on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CudaReport {
    /// libtorch's CUDA library (libtorch_cuda) is loaded in this process; `None` where that
    /// cannot be read (no /proc). A CUDA build of libtorch loads it even on a machine without
    /// a GPU; a CPU-only build has none.
    pub cuda_library_loaded: Option<bool>,
    /// Usable CUDA devices.
    pub device_count: usize,
}

impl CudaReport {
    /// Asks the linked libtorch, and the process's memory map for its CUDA library.
    pub fn probe() -> Self {
        Self {
            cuda_library_loaded: std::fs::read_to_string("/proc/self/maps")
                .ok()
                .map(|maps| maps.contains("libtorch_cuda")),
            device_count: usize::try_from(tch::Cuda::device_count()).unwrap_or(0),
        }
    }

    fn describe(&self) -> String {
        let devices = format!(
            "{} usable CUDA device{}",
            self.device_count,
            if self.device_count == 1 { "" } else { "s" }
        );
        match self.cuda_library_loaded {
            Some(true) => {
                format!("libtorch has CUDA support (libtorch_cuda is loaded) and reports {devices}")
            }
            Some(false) => format!(
                "this libtorch is CPU-only (no libtorch_cuda is loaded) and reports {devices}"
            ),
            None => format!("libtorch reports {devices}"),
        }
    }
}

/// The device `spec` names on a machine described by `cuda`; `key` names the setting in errors.
pub fn resolve_with(spec: DeviceSpec, cuda: CudaReport, key: &str) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto if cuda.device_count > 0 => Ok(Device::Cuda(0)),
        DeviceSpec::Auto => Ok(Device::Cpu),
        DeviceSpec::Cuda(index) => {
            let index = index.unwrap_or(0);
            if index < cuda.device_count {
                Ok(Device::Cuda(index))
            } else if cuda.device_count == 0 {
                bail!(
                    "{key} is '{spec}' but no CUDA device is usable here: {}. \
                     Use --device cpu (or auto), or run on a machine with an NVIDIA GPU and a \
                     CUDA build of libtorch",
                    cuda.describe()
                )
            } else {
                bail!(
                    "{key} is '{spec}' but CUDA devices are numbered 0..{}: {}",
                    cuda.device_count - 1,
                    cuda.describe()
                )
            }
        }
    }
}

/// The device `spec` names on this machine.
pub fn resolve(spec: DeviceSpec, key: &str) -> Result<Device> {
    resolve_with(spec, CudaReport::probe(), key)
}

/// Where the replay buffer lives: `auto` follows the training device.
pub fn resolve_replay(spec: ReplayDevice, train: Device) -> Result<Device> {
    match spec {
        ReplayDevice::Auto => Ok(train),
        ReplayDevice::Device(spec) => resolve(spec, "replay.device"),
    }
}

/// Widest layer for which libtorch runs single-threaded on the CPU by default.
const SINGLE_THREAD_MAX_WIDTH: i64 = 511;

/// Chooses libtorch's CPU thread count for a network with these hidden widths, unless
/// `OMP_NUM_THREADS` already chose it.
///
/// Small MLPs are dominated by per-op overhead: spreading 64-wide matrix products over
/// several OpenMP threads costs more than it saves, and spinning threads collapse
/// throughput when another process (or a busy neighbour on a shared host) takes a core:
/// on this project's 2-vCPU machine a 256-256 network updated between 20% faster and 45%
/// slower on two threads than on one, from one minute to the next. Layers 512 wide and
/// wider, where the arithmetic dominates, keep libtorch's default of one thread per core. Returns the thread count in effect.
pub fn configure_cpu_threads(hidden: &[i64]) -> i32 {
    let widest = hidden.iter().copied().max().unwrap_or(0);
    if std::env::var_os("OMP_NUM_THREADS").is_none() && widest <= SINGLE_THREAD_MAX_WIDTH {
        tch::set_num_threads(1);
    }
    tch::get_num_threads()
}

/// The spelling used in summaries and progress lines: `cpu`, `cuda:0`, ...
pub fn name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_owned(),
        Device::Cuda(index) => format!("cuda:{index}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_CUDA: CudaReport = CudaReport {
        cuda_library_loaded: Some(false),
        device_count: 0,
    };
    const CUDA_NO_GPU: CudaReport = CudaReport {
        cuda_library_loaded: Some(true),
        device_count: 0,
    };
    const TWO_GPUS: CudaReport = CudaReport {
        cuda_library_loaded: Some(true),
        device_count: 2,
    };

    #[test]
    fn auto_picks_cuda_only_when_a_device_exists() -> Result<()> {
        assert_eq!(
            resolve_with(DeviceSpec::Auto, NO_CUDA, "device")?,
            Device::Cpu
        );
        assert_eq!(
            resolve_with(DeviceSpec::Auto, CUDA_NO_GPU, "device")?,
            Device::Cpu
        );
        assert_eq!(
            resolve_with(DeviceSpec::Auto, TWO_GPUS, "device")?,
            Device::Cuda(0)
        );
        assert_eq!(
            resolve_with(DeviceSpec::Cpu, TWO_GPUS, "device")?,
            Device::Cpu
        );
        Ok(())
    }

    #[test]
    fn cuda_indices_resolve_within_the_count() -> Result<()> {
        assert_eq!(
            resolve_with(DeviceSpec::Cuda(None), TWO_GPUS, "device")?,
            Device::Cuda(0)
        );
        assert_eq!(
            resolve_with(DeviceSpec::Cuda(Some(1)), TWO_GPUS, "device")?,
            Device::Cuda(1)
        );
        let err = resolve_with(DeviceSpec::Cuda(Some(2)), TWO_GPUS, "device").unwrap_err();
        assert!(err.to_string().contains("numbered 0..1"), "{err}");
        Ok(())
    }

    #[test]
    fn cuda_without_a_gpu_says_what_libtorch_reports() {
        let err = resolve_with(DeviceSpec::Cuda(None), NO_CUDA, "device")
            .unwrap_err()
            .to_string();
        assert!(err.contains("device is 'cuda'"), "{err}");
        assert!(
            err.contains("CPU-only (no libtorch_cuda is loaded) and reports 0 usable CUDA devices"),
            "{err}"
        );
        let err = resolve_with(DeviceSpec::Cuda(Some(0)), CUDA_NO_GPU, "replay.device")
            .unwrap_err()
            .to_string();
        assert!(err.contains("replay.device is 'cuda:0'"), "{err}");
        assert!(
            err.contains("CUDA support (libtorch_cuda is loaded) and reports 0 usable"),
            "{err}"
        );
        let unknown = CudaReport {
            cuda_library_loaded: None,
            device_count: 0,
        };
        let err = resolve_with(DeviceSpec::Cuda(None), unknown, "device")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("libtorch reports 0 usable CUDA devices"),
            "{err}"
        );
    }

    /// build.rs force-links libtorch_cuda when the libtorch it links against has one
    /// (`--as-needed` would drop it otherwise): the probe sees exactly that.
    #[test]
    fn the_cuda_library_is_loaded_exactly_when_libtorch_ships_one() {
        let lib_dir = std::path::Path::new(env!("QNET_LIBTORCH_LIB"));
        let ships_cuda = lib_dir.join("libtorch_cuda.so").exists();
        assert_eq!(
            CudaReport::probe().cuda_library_loaded,
            Some(ships_cuda),
            "libtorch in {}",
            lib_dir.display()
        );
    }

    #[test]
    fn replay_auto_follows_the_training_device() -> Result<()> {
        assert_eq!(
            resolve_replay(ReplayDevice::Auto, Device::Cuda(1))?,
            Device::Cuda(1)
        );
        assert_eq!(
            resolve_replay(ReplayDevice::Device(DeviceSpec::Cpu), Device::Cuda(0))?,
            Device::Cpu
        );
        Ok(())
    }

    #[test]
    fn names_are_config_spellings() {
        assert_eq!(name(Device::Cpu), "cpu");
        assert_eq!(name(Device::Cuda(3)), "cuda:3");
    }
}
