//! The small closed vocabularies of the config: devices and the named choices
//! (activation, loss, schedule, ...), each spelled in YAML as a lowercase string.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where tensors live: `"auto"`, `"cpu"`, `"cuda"` or `"cuda:N"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// The first CUDA device when one is available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// A CUDA device: `None` is `"cuda"` (device 0), `Some(n)` is `"cuda:n"`.
    Cuda(Option<usize>),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(None) => f.write_str("cuda"),
            DeviceSpec::Cuda(Some(index)) => write!(f, "cuda:{index}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid device '{}': expected auto, cpu, cuda or cuda:N",
                super::clip(text)
            )
        };
        match text {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(None)),
            _ => {
                let index = text.strip_prefix("cuda:").ok_or_else(invalid)?;
                // usize::from_str accepts a leading '+'; a device index is plain digits.
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid());
                }
                index
                    .parse()
                    .map(|index| DeviceSpec::Cuda(Some(index)))
                    .map_err(|_| invalid())
            }
        }
    }
}

// Devices travel through YAML as their display string, so the file, `--set`
// and `to_yaml` all use the one spelling that `FromStr` accepts.
impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where the replay buffer stores its transitions.
///
/// `"auto"` always parses to [`ReplayDevice::Auto`] (follow the training
/// device, whatever `device` resolves to), never to `Device(DeviceSpec::Auto)`:
/// probing for CUDA separately for the buffer could split buffer and network
/// across devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayDevice {
    /// The same device the network trains on.
    Auto,
    /// An explicit device (`"cpu"`, `"cuda"`, `"cuda:N"`).
    Device(DeviceSpec),
}

impl fmt::Display for ReplayDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayDevice::Auto => f.write_str("auto"),
            ReplayDevice::Device(spec) => spec.fmt(f),
        }
    }
}

impl FromStr for ReplayDevice {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse()? {
            DeviceSpec::Auto => Ok(ReplayDevice::Auto),
            spec => Ok(ReplayDevice::Device(spec)),
        }
    }
}

impl Serialize for ReplayDevice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ReplayDevice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Hidden-layer nonlinearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// Hyperbolic tangent.
    Tanh,
}

/// Which implementation of the Q-network trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Implementation {
    /// The hand-derived backward pass (plain and dueling heads).
    Fast,
    /// `nn::seq` modules with libtorch's autograd: the reference the fast path is tested
    /// against, and where a new head starts.
    Reference,
}

/// Weight initialisation of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch `nn.Linear` default: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    Torch,
    /// Keras `Dense` default: Glorot-uniform weights, zero biases.
    GlorotUniform,
}

/// The environment to train on, by its Gymnasium id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EnvId {
    /// `CartPole-v1`.
    #[serde(rename = "CartPole-v1")]
    CartPole,
    /// `Acrobot-v1`.
    #[serde(rename = "Acrobot-v1")]
    Acrobot,
    /// `MountainCar-v0`.
    #[serde(rename = "MountainCar-v0")]
    MountainCar,
}

impl EnvId {
    /// The time limit Gymnasium registers (`max_episode_steps`).
    pub fn time_limit(self) -> u32 {
        match self {
            EnvId::CartPole | EnvId::Acrobot => 500,
            EnvId::MountainCar => 200,
        }
    }

    /// The Gymnasium id.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvId::CartPole => "CartPole-v1",
            EnvId::Acrobot => "Acrobot-v1",
            EnvId::MountainCar => "MountainCar-v0",
        }
    }
}

impl std::str::FromStr for EnvId {
    type Err = String;

    /// The environment of Gymnasium id `id`.
    fn from_str(id: &str) -> Result<Self, String> {
        [EnvId::CartPole, EnvId::Acrobot, EnvId::MountainCar]
            .into_iter()
            .find(|env| env.as_str() == id)
            .ok_or_else(|| format!("{:?} is not an environment qnet has", super::clip(id)))
    }
}

impl std::fmt::Display for EnvId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// TD loss between Q(s, a) and the TD target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean squared error.
    Mse,
    /// Huber (smooth L1, delta 1), as SB3 DQN and the Nature DQN paper's error clipping.
    Huber,
}

/// Optimizer algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba, 2015).
    Adam,
}

/// Shape of the epsilon-greedy schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Epsilon stays at `start` (`end` and `decay_steps` are ignored).
    Constant,
    /// Epsilon moves linearly from `start` to `end` over `decay_steps`, then stays at `end`.
    Linear,
}

/// Which training loop runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Procedure {
    /// Replay buffer, minibatches and a target network (Mnih et al., 2015).
    Dqn,
    /// The tutorial: collect a fresh memory, then fit every transition once, in order.
    Tutorial,
}

/// How the tutorial procedure decides that a memory is full enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepCounting {
    /// Stop once the memory holds more than `min_memory` transitions (the text's intent).
    Text,
    /// Add `len(memory)` to the counter after each episode (the code as written).
    Code,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings_round_trip() {
        for text in ["auto", "cpu", "cuda", "cuda:0", "cuda:12"] {
            let spec: DeviceSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(Some(3))));
    }

    #[test]
    fn bad_device_strings_are_rejected() {
        for text in ["gpu", "cuda:", "cuda:+1", "cuda:x", "CPU", "cuda:-1", ""] {
            let err = text.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains("expected auto, cpu, cuda or cuda:N"), "{err}");
        }
    }

    #[test]
    fn replay_auto_follows_training_device() {
        assert_eq!("auto".parse(), Ok(ReplayDevice::Auto));
        assert_eq!(
            "cuda:1".parse(),
            Ok(ReplayDevice::Device(DeviceSpec::Cuda(Some(1))))
        );
        assert_eq!(ReplayDevice::Device(DeviceSpec::Cpu).to_string(), "cpu");
    }
}
