//! Sizes checked before allocating: the memory a config asks for, estimated from its keys,
//! against what the machine offers (host RAM, and CUDA memory on a GPU).
//!
//! On Linux a huge allocation often "succeeds" and the process is OOM-killed later, when
//! the pages are touched, so a config whose buffers cannot fit is refused up front with the
//! keys to blame. The estimate counts what qnet allocates in proportion to config values
//! (buffers, parameters and their copies, activations), not libtorch's fixed overhead.

use anyhow::{bail, Result};
use tch::Device;

use crate::config::{Config, Procedure};
use crate::env::{EnvSpec, Resolved};
use crate::learn::replay::RowLayout;
use crate::platform::device::{configure_cpu_threads, resolve, resolve_replay};
use crate::platform::memory::{self, Room};

const F32: u64 = 4;
/// Bytes a batched env holds per env (state, RNG, observations and flags).
const ENV_BYTES: u64 = 160;
/// Copies of the parameters on the training device: online, gradient, target, Adam's two
/// moments, the best model, autograd's gradients.
const PARAMETER_COPIES: u64 = 7;
/// Live activation-sized tensors of one update (online, target and Double-DQN forward
/// passes, their traces and the backward pass's temporaries).
const UPDATE_ACTIVATIONS: u64 = 8;

/// One part of an estimate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    /// The config keys that size it, with their values.
    keys: String,
    /// Bytes.
    bytes: u64,
    /// On the training device (true) or in host memory (false).
    on_device: bool,
}

/// What a config will allocate, by the keys that size it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Estimate {
    parts: Vec<Part>,
}

pub use crate::platform::memory::human;

/// The sizes of the Q-network that memory grows with.
struct NetworkSize {
    /// Weights and biases of one copy.
    parameters: u64,
    /// Activations of one row through the network (its inputs, hidden units and outputs).
    activations_per_row: u64,
}

impl NetworkSize {
    fn of(env: &EnvSpec, hidden: &[i64]) -> Self {
        let mut widths = vec![env.obs_dim as u64];
        widths.extend(hidden.iter().map(|&w| w.max(0) as u64));
        widths.push(env.n_actions as u64);
        Self {
            parameters: widths
                .windows(2)
                .map(|pair| pair[1].saturating_mul(pair[0] + 1))
                .fold(0, u64::saturating_add),
            activations_per_row: widths.iter().fold(0, |sum, w| sum.saturating_add(*w)),
        }
    }

    /// Bytes of `copies` activation-sized f32 tensors over `rows` rows.
    fn activations(&self, rows: u64, copies: u64) -> u64 {
        rows.saturating_mul(self.activations_per_row)
            .saturating_mul(copies)
            .saturating_mul(F32)
    }
}

impl Estimate {
    /// The estimate for `cfg` training `env`, with the replay buffer on the training device
    /// or not.
    pub fn of(cfg: &Config, env: &Resolved, replay_on_device: bool) -> Self {
        let network = NetworkSize::of(env.spec(), &cfg.network.hidden);
        let mut parts = network_parts(cfg, &network);
        parts.extend(replay_parts(cfg, env, &network, replay_on_device));
        Self { parts }
    }
    /// Bytes in host memory when training on `device`.
    fn host_bytes(&self, device: Device) -> u64 {
        self.parts
            .iter()
            .filter(|p| !p.on_device || device == Device::Cpu)
            .fold(0, |sum, p| sum.saturating_add(p.bytes))
    }

    /// Bytes in device memory (zero on the CPU, where they count as host memory).
    fn device_bytes(&self, device: Device) -> u64 {
        match device {
            Device::Cpu => 0,
            _ => self
                .parts
                .iter()
                .filter(|p| p.on_device)
                .fold(0, |sum, p| sum.saturating_add(p.bytes)),
        }
    }

    /// The largest parts of a memory, for the message.
    fn blame(&self, on_device: Option<bool>) -> String {
        let mut parts: Vec<&Part> = self
            .parts
            .iter()
            .filter(|p| p.bytes > 0 && on_device.map_or(true, |wanted| wanted == p.on_device))
            .collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.bytes));
        parts
            .iter()
            .take(3)
            .map(|p| format!("{}: {}", p.keys, human(p.bytes)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Refuses the config when it cannot fit in what `offer` says is available.
    pub fn check(&self, device: Device, offer: &Offer) -> Result<()> {
        let host = self.host_bytes(device);
        if let Some(room) = offer.host {
            if host > room.bytes {
                bail!(
                    "not enough memory: this config needs about {} of host memory and {} is \
                     available ({}). Largest parts: {}. Lower those settings{}",
                    human(host),
                    human(room.bytes),
                    room.bound,
                    self.blame(if device == Device::Cpu {
                        None
                    } else {
                        Some(false)
                    }),
                    match room.bound {
                        memory::Bound::AddressSpace { .. } | memory::Bound::Data { .. } => {
                            ", or raise that limit"
                        }
                        memory::Bound::Available | memory::Bound::Cgroup => "",
                    }
                );
            }
        }
        let on_device = self.device_bytes(device);
        if let Some(free) = offer.device_bytes {
            if on_device > free {
                bail!(
                    "not enough memory on {}: this config needs about {} there and {} is free. \
                     Largest parts: {}. Lower those settings",
                    crate::platform::device::name(device),
                    human(on_device),
                    human(free),
                    self.blame(Some(true)),
                );
            }
        }
        Ok(())
    }
}

/// `network.hidden = [...]` as the message names it: a long list by its first widths and
/// its length.
fn hidden_key(cfg: &Config) -> String {
    const SHOWN_LAYERS: usize = 8;
    let hidden = &cfg.network.hidden;
    if hidden.len() <= SHOWN_LAYERS {
        return format!("network.hidden = {hidden:?}");
    }
    let first: Vec<String> = hidden[..SHOWN_LAYERS].iter().map(i64::to_string).collect();
    format!(
        "network.hidden = [{}, ...] ({} layers)",
        first.join(", "),
        hidden.len()
    )
}

/// The network's copies, the activations of an update and of evaluation, and the envs.
fn network_parts(cfg: &Config, network: &NetworkSize) -> Vec<Part> {
    let eval_rows = cfg.eval.episodes.max(cfg.eval.final_episodes) as u64;
    let hidden = hidden_key(cfg);
    vec![
        Part {
            keys: hidden.clone(),
            bytes: network.parameters.saturating_mul(PARAMETER_COPIES * F32),
            on_device: true,
        },
        Part {
            keys: format!(
                "replay.batch_size = {} with {hidden}",
                cfg.replay.batch_size
            ),
            bytes: network.activations(cfg.replay.batch_size as u64, UPDATE_ACTIVATIONS),
            on_device: true,
        },
        Part {
            keys: format!("eval.episodes / eval.final_episodes = {eval_rows} with {hidden}"),
            bytes: network.activations(eval_rows, 2),
            on_device: true,
        },
        Part {
            keys: format!(
                "eval.episodes / eval.final_episodes = {eval_rows}, env.n_envs = {}",
                cfg.env.n_envs
            ),
            bytes: (eval_rows + cfg.env.n_envs as u64).saturating_mul(ENV_BYTES),
            on_device: false,
        },
    ]
}

/// The stored transitions: the replay buffer (or the tutorial's memory), its sum tree, and
/// the checkpoint's copies of it.
fn replay_parts(
    cfg: &Config,
    env: &Resolved,
    network: &NetworkSize,
    replay_on_device: bool,
) -> Vec<Part> {
    let row_bytes = RowLayout::new(env.spec().obs_dim).floats() as u64 * F32;
    let replay_bytes = match cfg.train.procedure {
        Procedure::Dqn => (cfg.replay.capacity as u64).saturating_mul(row_bytes),
        Procedure::Tutorial => 0,
    };
    let hidden = hidden_key(cfg);
    let capacity = format!("replay.capacity = {}", cfg.replay.capacity);
    let mut parts = vec![
        Part {
            keys: capacity.clone(),
            bytes: replay_bytes,
            on_device: replay_on_device,
        },
        // A checkpoint gathers every array on the host and encodes it once more.
        Part {
            keys: format!("checkpoint copies of {capacity} and {hidden}"),
            bytes: replay_bytes
                .saturating_add(network.parameters.saturating_mul(5 * F32))
                .saturating_mul(2),
            on_device: false,
        },
    ];
    if cfg.replay.prioritized && cfg.train.procedure == Procedure::Dqn {
        // The sum tree: f64 nodes over twice the capacity rounded up to a power of two.
        let leaves = (cfg.replay.capacity as u64).checked_next_power_of_two();
        parts.push(Part {
            keys: format!("{capacity} with replay.prioritized"),
            bytes: leaves.map_or(u64::MAX, |l| l.saturating_mul(16)),
            on_device: false,
        });
    }
    if cfg.train.procedure == Procedure::Tutorial {
        let rows = (cfg.train.tutorial.min_memory as u64)
            .saturating_add((cfg.env.n_envs as u64).saturating_mul(u64::from(env.time_limit())));
        parts.push(Part {
            keys: format!(
                "train.tutorial.min_memory = {}",
                cfg.train.tutorial.min_memory
            ),
            bytes: rows.saturating_mul(row_bytes),
            on_device: false,
        });
    }
    parts
}

/// What the machine offers; `None` where it cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// Host memory this process may still use, and what bounds it.
    pub host: Option<Room>,
    /// Free memory on the training device (CUDA only).
    pub device_bytes: Option<u64>,
}

impl Offer {
    /// Reads what this machine offers for training on `device`.
    pub fn probe(device: Device) -> Self {
        Self {
            host: memory::room(),
            device_bytes: match device {
                Device::Cuda(index) => crate::platform::cuda_runtime::free_memory(index),
                _ => None,
            },
        }
    }
}

/// Where a run's tensors live, resolved once from its config before anything is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The networks, their optimizer and the updates.
    pub train: Device,
    /// The replay buffer.
    pub replay: Device,
}

impl Placement {
    /// Resolves `cfg`'s devices, sets libtorch's CPU threads for its network (see
    /// [`configure_cpu_threads`]) and checks that its buffers fit in memory and that its
    /// evaluations can say what it asks them to, for training `env`.
    pub fn of(cfg: &Config, env: &Resolved) -> Result<Self> {
        check_solved_verdict(cfg, env)?;
        configure_cpu_threads(&cfg.network.hidden);
        let train = resolve(cfg.device, "device")?;
        let replay = resolve_replay(cfg.replay.device, train)?;
        check(cfg, env, train, replay)?;
        Ok(Self { train, replay })
    }
}

/// Refuses `eval.stop_when_solved` where "solved" is not judged: under a time limit shorter
/// than the registered one, or for an environment that registers no threshold.
fn check_solved_verdict(cfg: &Config, env: &Resolved) -> Result<()> {
    if let (true, Some(why)) = (cfg.eval.stop_when_solved, env.solved_not_judged()) {
        bail!(
            "eval.stop_when_solved needs a solved verdict, and {why}: set \
             eval.stop_when_solved: false to train without one (evaluations are still \
             recorded){}",
            if env.spec().reward_threshold.is_some() {
                ", or env.max_episode_steps: null for the registered limit"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Checks `cfg` training `env` against this machine before anything is allocated.
fn check(cfg: &Config, env: &Resolved, device: Device, replay_device: Device) -> Result<()> {
    Estimate::of(cfg, env, replay_device == device && device != Device::Cpu)
        .check(device, &Offer::probe(device))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }

    /// Host memory that the RAM available bounds.
    const fn ram(bytes: u64) -> Option<Room> {
        Some(Room {
            bytes,
            bound: memory::Bound::Available,
        })
    }

    /// The default config's environment.
    fn cartpole() -> Resolved {
        crate::env::resolve(&Config::default().env).expect("CartPole-v1")
    }

    fn config(edit: impl FnOnce(&mut Config)) -> Config {
        let mut cfg = Config::default();
        edit(&mut cfg);
        cfg
    }

    const PLENTY: Offer = Offer {
        host: ram(16 << 30),
        device_bytes: Some(8 << 30),
    };

    #[test]
    fn the_default_fits_and_the_replay_buffer_is_counted_where_it_lives() -> Result<()> {
        let cfg = Config::default();
        Estimate::of(&cfg, &cartpole(), false).check(Device::Cpu, &PLENTY)?;
        let cuda = Device::Cuda(0);
        let host_side = Estimate::of(&cfg, &cartpole(), false);
        let device_side = Estimate::of(&cfg, &cartpole(), true);
        let replay = 50_000 * RowLayout::new(4).floats() as u64 * 4;
        assert_eq!(
            host_side.host_bytes(cuda) - device_side.host_bytes(cuda),
            replay
        );
        assert_eq!(
            device_side.device_bytes(cuda) - host_side.device_bytes(cuda),
            replay
        );
        Ok(())
    }

    #[test]
    fn a_huge_replay_buffer_is_refused_naming_the_key() {
        let cfg = config(|c| c.replay.capacity = 100_000_000_000);
        let err = Estimate::of(&cfg, &cartpole(), false)
            .check(Device::Cpu, &PLENTY)
            .unwrap_err()
            .to_string();
        assert!(err.contains("TiB of host memory"), "{err}");
        assert!(
            err.contains("replay.capacity = 100000000000: 4.4 TiB"),
            "{err}"
        );
    }

    #[test]
    fn a_huge_network_is_refused_on_the_device_it_lives_on() {
        let cfg = config(|c| c.network.hidden = vec![65_536, 65_536]);
        let estimate = Estimate::of(&cfg, &cartpole(), true);
        let big_host = Offer {
            host: ram(1 << 40),
            ..PLENTY
        };
        let err = estimate
            .check(Device::Cuda(0), &big_host)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("on cuda:0") && err.contains("network.hidden"),
            "{err}"
        );
        let err = estimate
            .check(Device::Cpu, &PLENTY)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("host memory") && err.contains("network.hidden"),
            "{err}"
        );
    }

    #[test]
    fn unknown_capacities_are_not_checked_and_sizes_saturate() -> Result<()> {
        let cfg = config(|c| {
            c.replay.capacity = usize::MAX;
            c.network.hidden = vec![65_536; 64];
        });
        let unknown = Offer {
            host: None,
            device_bytes: None,
        };
        let estimate = Estimate::of(&cfg, &cartpole(), false);
        estimate.check(Device::Cpu, &unknown)?;
        assert_eq!(estimate.host_bytes(Device::Cpu), u64::MAX);
        Ok(())
    }

    #[test]
    fn an_address_space_limit_is_named_with_its_sizes() {
        let cfg = config(|c| c.replay.capacity = 10_000_000);
        let limited = Offer {
            host: Some(Room {
                bytes: 300 << 20,
                bound: memory::Bound::AddressSpace {
                    limit: 3 << 30,
                    mapped: (3 << 30) - (300 << 20),
                },
            }),
            device_bytes: None,
        };
        let err = Estimate::of(&cfg, &cartpole(), false)
            .check(Device::Cpu, &limited)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "and 300.0 MiB is available (what the address-space limit (ulimit -v) of 3.0 \
                 GiB leaves beyond the 2.7 GiB this process has mapped already)"
            ),
            "{err}"
        );
        assert!(
            err.contains("replay.capacity = 10000000: 457.8 MiB"),
            "{err}"
        );
        assert!(
            err.ends_with("Lower those settings, or raise that limit"),
            "{err}"
        );
    }
}
