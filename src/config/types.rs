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

/// The environment to train on: one of qnet's own by its Gymnasium id (`CartPole-v1`), or any
/// Gymnasium environment through the bridge as `gym:ID` (`gym:LunarLander-v3`,
/// `gym:minatar.gym:MinAtar/Breakout-v1`). Which ids exist is the environment registry's to
/// say (`crate::env::registry`); here an id is only checked to be one word.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct EnvId(String);

impl<'de> Deserialize<'de> for EnvId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Id;
        impl serde::de::Visitor<'_> for Id {
            type Value = EnvId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an environment id: one of qnet's (CartPole-v1, Acrobot-v1, \
                     MountainCar-v0) or gym:ID for any Gymnasium environment",
                )
            }

            fn visit_str<E: serde::de::Error>(self, id: &str) -> Result<EnvId, E> {
                id.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Id)
    }
}

/// Most characters of an `env.id`.
const MAX_ENV_ID_CHARS: usize = 500;

impl EnvId {
    /// What a Gymnasium environment's id starts with.
    pub const GYM_PREFIX: &'static str = "gym:";

    /// The id as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id Gymnasium is given (what follows `gym:`), for an environment of the bridge.
    pub fn gym_id(&self) -> Option<&str> {
        self.0.strip_prefix(Self::GYM_PREFIX)
    }
}

impl Default for EnvId {
    /// CartPole-v1.
    fn default() -> Self {
        Self("CartPole-v1".to_owned())
    }
}

impl std::str::FromStr for EnvId {
    type Err = String;

    /// An id of one word: not empty, no spaces or control characters, at most 500
    /// characters, and something after `gym:`.
    fn from_str(id: &str) -> Result<Self, String> {
        let why = if id.is_empty() {
            Some("it is empty")
        } else if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some("it holds spaces or control characters")
        } else if id.chars().count() > MAX_ENV_ID_CHARS {
            Some("it is longer than 500 characters")
        } else if id == Self::GYM_PREFIX {
            Some("gym: names no environment")
        } else {
            None
        };
        match why {
            None => Ok(Self(id.to_owned())),
            Some(why) => Err(format!(
                "{:?} is not an environment id ({why}): write one of qnet's (CartPole-v1, \
                 Acrobot-v1, MountainCar-v0) or gym:ID for any Gymnasium environment",
                super::clip(id)
            )),
        }
    }
}

impl From<EnvId> for String {
    fn from(id: EnvId) -> Self {
        id.0
    }
}

impl std::fmt::Display for EnvId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Gymnasium wrapper around a bridged environment: a `gymnasium.Wrapper` class by its
/// dotted path, with its keyword arguments. Written as rl-baselines3-zoo writes its
/// `env_wrapper` entries: `- gymnasium.wrappers.TimeAwareObservation` or
/// `- gymnasium.wrappers.FrameStackObservation: {stack_size: 4}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrapper {
    /// `module.Class`.
    pub class: String,
    /// Keyword arguments, as JSON values.
    pub kwargs: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Serialize for Wrapper {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(&self.class, &self.kwargs)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Wrapper {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bare(String),
            WithArguments(
                std::collections::BTreeMap<
                    String,
                    Option<std::collections::BTreeMap<String, serde_json::Value>>,
                >,
            ),
        }
        match Written::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(
                "a wrapper is written `module.Class` or `module.Class: {argument: value}`",
            )
        })? {
            Written::Bare(class) => Ok(Self {
                class,
                kwargs: Default::default(),
            }),
            Written::WithArguments(map) if map.len() == 1 => {
                let (class, kwargs) = map.into_iter().next().unwrap_or_default();
                Ok(Self {
                    class,
                    kwargs: kwargs.unwrap_or_default(),
                })
            }
            Written::WithArguments(_) => Err(serde::de::Error::custom(
                "a wrapper is one `module.Class: {argument: value}` entry of the list",
            )),
        }
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
