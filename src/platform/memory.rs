//! Host memory this process may still use, and what bounds it: the kernel's estimate of
//! available RAM, its cgroup's limit (a container or a Slurm job's allocation), and its own
//! address-space and data limits (`ulimit -v`, `ulimit -d`, which batch systems set). Past an
//! address-space limit an allocation fails at once, and Rust aborts on a failed allocation.

use std::fmt;

/// One bound on the memory this process may still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The kernel's estimate of memory available without swapping (MemAvailable).
    Available,
    /// What the cgroup's memory limit leaves.
    Cgroup,
    /// What `limit` (the address-space limit) leaves beyond the `mapped` bytes.
    AddressSpace {
        /// The limit (RLIMIT_AS).
        limit: u64,
        /// This process's address space already mapped (VmSize).
        mapped: u64,
    },
    /// What `limit` (the data limit) leaves beyond the `used` bytes.
    Data {
        /// The limit (RLIMIT_DATA).
        limit: u64,
        /// This process's data segments already mapped (VmData).
        used: u64,
    },
}

/// The memory this process may still use: the least of its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Room {
    /// Bytes.
    pub bytes: u64,
    /// The bound that gives them.
    pub bound: Bound,
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Bound::Available => write!(f, "the kernel's MemAvailable"),
            Bound::Cgroup => write!(f, "what this cgroup's memory limit leaves"),
            Bound::AddressSpace { limit, mapped } => write!(
                f,
                "what the address-space limit (ulimit -v) of {} leaves beyond the {} this \
                 process has mapped already",
                human(limit),
                human(mapped)
            ),
            Bound::Data { limit, used } => write!(
                f,
                "what the data limit (ulimit -d) of {} leaves beyond the {} this process uses \
                 already",
                human(limit),
                human(used)
            ),
        }
    }
}

/// `bytes` in human units (KiB, MiB, ...).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The memory this process may still use now; `None` when no bound can be read.
pub fn room() -> Option<Room> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let meminfo = read("/proc/meminfo").unwrap_or_default();
    let status = read("/proc/self/status").unwrap_or_default();
    let number = |path: &str| -> Option<u64> { read(path)?.trim().parse().ok() };
    let cgroup = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ]
    .iter()
    .find_map(|(limit, usage)| Some(number(limit)?.saturating_sub(number(usage)?)));
    least(&[
        kib_field(&meminfo, "MemAvailable:").map(|bytes| (bytes, Bound::Available)),
        cgroup.map(|bytes| (bytes, Bound::Cgroup)),
        limit(libc::RLIMIT_AS)
            .zip(kib_field(&status, "VmSize:"))
            .map(|(limit, mapped)| (limit, Bound::AddressSpace { limit, mapped })),
        limit(libc::RLIMIT_DATA)
            .zip(kib_field(&status, "VmData:"))
            .map(|(limit, used)| (limit, Bound::Data { limit, used })),
    ])
}

/// The least of `bounds`, each the room it leaves.
fn least(bounds: &[Option<(u64, Bound)>]) -> Option<Room> {
    bounds
        .iter()
        .flatten()
        .map(|&(bytes, bound)| {
            let bytes = match bound {
                Bound::AddressSpace { mapped, .. } => bytes.saturating_sub(mapped),
                Bound::Data { used, .. } => bytes.saturating_sub(used),
                Bound::Available | Bound::Cgroup => bytes,
            };
            Room { bytes, bound }
        })
        .min_by_key(|room| room.bytes)
}

/// The soft limit `resource` sets on this process, in bytes; `None` when unlimited.
fn limit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    let rc = unsafe { libc::getrlimit(resource, &mut rlimit) };
    (rc == 0 && rlimit.rlim_cur != libc::RLIM_INFINITY).then_some(rlimit.rlim_cur)
}

/// A `Name:   1234 kB` line of /proc/meminfo or /proc/self/status, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|line| line.strip_prefix(name))?;
    let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib.saturating_mul(1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_room_wins_and_limits_count_what_is_mapped() {
        const GIB: u64 = 1 << 30;
        let available = Some((16 * GIB, Bound::Available));
        let address_space = Bound::AddressSpace {
            limit: 4 * GIB,
            mapped: 3 * GIB,
        };
        assert_eq!(
            least(&[available, None, Some((4 * GIB, address_space))]),
            Some(Room {
                bytes: GIB,
                bound: address_space
            })
        );
        // A limit below what is mapped leaves nothing.
        let data = Bound::Data {
            limit: GIB,
            used: 2 * GIB,
        };
        assert_eq!(
            least(&[available, Some((GIB, data))]).map(|r| r.bytes),
            Some(0)
        );
        assert_eq!(least(&[None, None]), None);
        assert_eq!(
            address_space.to_string(),
            "what the address-space limit (ulimit -v) of 4.0 GiB leaves beyond the 3.0 GiB \
             this process has mapped already"
        );
    }

    #[test]
    fn this_process_reports_its_room_and_its_mapped_size() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        assert!(kib_field(&status, "VmSize:").is_some_and(|b| b > 1 << 20));
        assert!(kib_field("VmSize:\t  2048 kB\n", "VmSize:") == Some(2 << 20));
        assert!(
            room().is_some_and(|room| room.bytes > 1 << 20),
            "{:?}",
            room()
        );
        assert_eq!(human(1536), "1.5 KiB");
    }
}
