//! Experiment configuration: raw YAML in, one validated, typed [`Config`](crate::config::Config) out.
//!
//! As ripgrep turns `LowArgs` into `HiArgs`, loading goes through three stages,
//! each in its own submodule, and the rest of qnet only ever sees the result:
//! 1. `tree`: the file's YAML and then each `--set` are merged over the
//!    defaults' YAML tree, rejecting unknown keys (the defaults are the schema);
//! 2. `read`: every key is typed, a type error naming the key, file and line;
//! 3. `validate`: every value is range-checked.
//!
//! `configs/reference.yaml` documents every key with its default; a test keeps
//! it equal to [`Config::default`](crate::config::Config::default).

mod clip;
mod locate;
mod read;
mod tree;
mod types;
mod validate;

use std::collections::BTreeMap;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

pub use clip::{clip, clip_middle};
pub use types::{
    Activation, DeviceSpec, EnvId, Implementation, Init, Loss, OptimizerKind, Procedure,
    ReplayDevice, Schedule, StepCounting, Wrapper,
};

/// A complete, validated experiment configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Run name, used as `runs/<experiment>/`; non-empty, `[A-Za-z0-9._-]`, not all dots.
    pub experiment: String,
    /// The one seed every random stream is derived from.
    pub seed: u64,
    /// Device for the network and its updates.
    pub device: DeviceSpec,
    /// The environment.
    pub env: EnvConfig,
    /// The Q-network's shape and initialisation.
    pub network: NetworkConfig,
    /// The TD update.
    pub agent: AgentConfig,
    /// The optimizer of the online network.
    pub optimizer: OptimizerConfig,
    /// The replay buffer (`dqn` procedure).
    pub replay: ReplayConfig,
    /// The epsilon-greedy schedule.
    pub exploration: ExplorationConfig,
    /// The training loop.
    pub train: TrainConfig,
    /// Greedy evaluation.
    pub eval: EvalConfig,
    /// Resumable checkpoints.
    pub checkpoint: CheckpointConfig,
}

/// The environment and how many copies step together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvConfig {
    /// The environment: one of qnet's by Gymnasium id, or `gym:ID` for any Gymnasium one.
    pub id: EnvId,
    /// Time limit: episodes are truncated (not terminated) after this many steps; 1..=100000,
    /// or `None` for the environment's registered limit.
    pub max_episode_steps: Option<u32>,
    /// Environments stepped as one batch; 1..=65536.
    pub n_envs: usize,
    /// Keyword arguments of `gymnasium.make` (a `gym:` environment only).
    pub kwargs: BTreeMap<String, serde_json::Value>,
    /// Gymnasium wrappers around each env, innermost first (a `gym:` environment only).
    pub wrappers: Vec<Wrapper>,
    /// Worker processes the envs of a `gym:` environment are split over, stepping in
    /// parallel; 1..=n_envs.
    pub processes: usize,
    /// Seconds any one request to a `gym:` environment's worker may take before it is taken
    /// to hang and stopped; in (0, 86400].
    pub timeout_seconds: f64,
}

/// The multilayer perceptron mapping an observation to one Q-value per action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkConfig {
    /// Widths of the hidden layers, input side first; non-empty, each 1..=65536.
    pub hidden: Vec<i64>,
    /// Nonlinearity after each hidden layer.
    pub activation: Activation,
    /// Weight initialisation.
    pub init: Init,
    /// Dueling head: value and advantage streams, `Q = V + A - mean(A)` (Wang et al., 2016).
    pub dueling: bool,
    /// Which implementation trains it.
    pub implementation: Implementation,
}

/// The TD update: target `r + gamma * max_a' Q_target(s', a') * (1 - terminated)`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentConfig {
    /// Discount factor; [0, 1].
    pub gamma: f64,
    /// Pick the next action with the online net and value it with the target net (van Hasselt et al., 2016).
    pub double_dqn: bool,
    /// Loss between Q(s, a) and the TD target.
    pub loss: Loss,
    /// Env steps between target-network updates; 0 = no target network (bootstrap from the online net).
    pub target_update_every: u64,
    /// Target update weight; (0, 1]: 1 copies the online net, < 1 is a Polyak average.
    pub tau: f64,
    /// Steps of reward summed per transition (n-step returns); 1..=100.
    pub n_step: usize,
}

/// The optimizer and gradient clipping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptimizerConfig {
    /// Algorithm.
    pub kind: OptimizerKind,
    /// Learning rate; finite, > 0.
    pub lr: f64,
    /// Adam's denominator epsilon; finite, > 0.
    pub eps: f64,
    /// Adam's first-moment decay; [0, 1).
    pub beta1: f64,
    /// Adam's second-moment decay; [0, 1).
    pub beta2: f64,
    /// Clip the global gradient norm to this; `None` = no clipping, else finite, > 0.
    pub max_grad_norm: Option<f64>,
    /// Shape of the learning-rate schedule.
    pub lr_schedule: Schedule,
    /// Learning rate after `lr_decay_steps` (linear only); finite, > 0.
    pub lr_end: f64,
    /// Env steps from `lr` to `lr_end` (linear only, then >= 1).
    pub lr_decay_steps: u64,
}

/// The experience replay buffer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayConfig {
    /// Transitions held; the oldest is overwritten first; >= 1.
    pub capacity: usize,
    /// Transitions per gradient step; 1..=capacity.
    pub batch_size: usize,
    /// Env steps of pure exploration before the first update.
    pub learning_starts: u64,
    /// Where transitions are stored.
    pub device: ReplayDevice,
    /// Proportional prioritized replay (Schaul et al., 2016) instead of uniform sampling.
    pub prioritized: bool,
    /// Prioritization exponent: P(i) ~ p_i^alpha; [0, 1].
    pub alpha: f64,
    /// Importance-sampling exponent at env step 0; [0, 1].
    pub beta_start: f64,
    /// Importance-sampling exponent after `beta_steps`; [0, 1].
    pub beta_end: f64,
    /// Env steps over which beta moves linearly from `beta_start` to `beta_end`; >= 1.
    pub beta_steps: u64,
    /// Added to |TD error| so no transition's priority is zero; finite, > 0.
    pub priority_eps: f64,
}

/// Epsilon-greedy exploration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExplorationConfig {
    /// Shape of the schedule.
    pub schedule: Schedule,
    /// Epsilon at env step 0; [0, 1].
    pub start: f64,
    /// Epsilon after `decay_steps` (linear only); [0, 1].
    pub end: f64,
    /// Env steps from `start` to `end` (linear only, then >= 1).
    pub decay_steps: u64,
}

/// The training loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Which loop runs.
    pub procedure: Procedure,
    /// Env steps (summed over all envs) to train for (`dqn`); >= 1.
    pub total_env_steps: u64,
    /// Vector-env steps between training phases (`dqn`); >= 1.
    pub train_freq: u64,
    /// Gradient steps per training phase (`dqn`); >= 1.
    pub gradient_steps: u64,
    /// Settings of the `tutorial` procedure.
    pub tutorial: TutorialConfig,
}

/// The tutorial's collect-then-fit loop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TutorialConfig {
    /// Collect-then-fit iterations; >= 1.
    pub iterations: u64,
    /// The tutorial's `min_timesteps_per_batch`; >= 1.
    pub min_memory: usize,
    /// How collected steps are counted against `min_memory`.
    pub step_counting: StepCounting,
}

/// Greedy evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalConfig {
    /// Env steps between evaluations; 0 = only the final one.
    pub every: u64,
    /// Episodes per periodic evaluation; >= 1.
    pub episodes: usize,
    /// Episodes of the final evaluation; >= 1.
    pub final_episodes: usize,
    /// Stop training at the first periodic evaluation whose mean return reaches the
    /// environment's threshold (`learn::eval::SOLVED_RETURN`).
    pub stop_when_solved: bool,
}

/// Resumable training checkpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointConfig {
    /// Env steps between checkpoints; 0 = none by env steps.
    pub every: u64,
    /// Seconds of training between checkpoints; 0 = none by time; finite, >= 0.
    pub every_seconds: f64,
}

impl Default for Config {
    /// The defaults documented in `configs/reference.yaml`: a plain DQN
    /// (CleanRL/SB3-like) that trains CartPole-v1 on one environment.
    // One literal nested as `configs/reference.yaml` is, to be read beside it: it reads
    // better whole than split by section.
    fn default() -> Self {
        Config {
            experiment: "cartpole".to_owned(),
            seed: 0,
            device: DeviceSpec::Auto,
            env: EnvConfig {
                id: EnvId::default(),
                max_episode_steps: None,
                n_envs: 1,
                kwargs: BTreeMap::new(),
                wrappers: Vec::new(),
                processes: 1,
                timeout_seconds: 60.0,
            },
            network: NetworkConfig {
                hidden: vec![64, 64],
                activation: Activation::Relu,
                init: Init::Torch,
                dueling: false,
                implementation: Implementation::Fast,
            },
            agent: AgentConfig {
                gamma: 0.99,
                double_dqn: false,
                loss: Loss::Mse,
                target_update_every: 500,
                tau: 1.0,
                n_step: 1,
            },
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Adam,
                lr: 1e-3,
                eps: 1e-8,
                beta1: 0.9,
                beta2: 0.999,
                max_grad_norm: None,
                lr_schedule: Schedule::Constant,
                lr_end: 1e-3,
                lr_decay_steps: 50_000,
            },
            replay: ReplayConfig {
                capacity: 50_000,
                batch_size: 64,
                learning_starts: 1_000,
                device: ReplayDevice::Auto,
                prioritized: false,
                alpha: 0.6,
                beta_start: 0.4,
                beta_end: 1.0,
                beta_steps: 50_000,
                priority_eps: 1e-6,
            },
            exploration: ExplorationConfig {
                schedule: Schedule::Linear,
                start: 1.0,
                end: 0.05,
                decay_steps: 10_000,
            },
            train: TrainConfig {
                procedure: Procedure::Dqn,
                total_env_steps: 50_000,
                train_freq: 1,
                gradient_steps: 1,
                tutorial: TutorialConfig {
                    iterations: 500,
                    min_memory: 2_500,
                    step_counting: StepCounting::Text,
                },
            },
            eval: EvalConfig {
                every: 5_000,
                episodes: 10,
                final_episodes: 100,
                stop_when_solved: false,
            },
            checkpoint: CheckpointConfig {
                every: 0,
                every_seconds: 60.0,
            },
        }
    }
}

impl Config {
    /// The config that YAML `text` describes (merged over the defaults), with `overrides`
    /// (`"dotted.key=VALUE"`, in order) applied, validated; `source` names the text in error
    /// messages. `crate::platform::read::load_config` reads it from a file.
    pub fn from_yaml_str(text: &str, source: &str, overrides: &[String]) -> Result<Config> {
        let mut tree = tree::RawTree::new(Self::default_tree()?, source, text);
        tree.merge_file()?;
        for arg in overrides {
            tree.apply_override(arg)?;
        }
        let config = read::config_from_tree(&tree)?;
        validate::check(&config).map_err(|invalid| {
            anyhow!(
                "{}: {}",
                tree.origin_of_rule(invalid.key, invalid.also),
                invalid.message
            )
        })?;
        Ok(config)
    }

    /// Every key with its value, as YAML that [`Config::from_yaml_str`] reads back to an equal `Config`.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).context("serializing the config to YAML")
    }

    /// The dotted keys whose values differ between `self` and `other`, in file order.
    pub fn differing_keys(&self, other: &Config) -> Result<Vec<String>> {
        let a = serde_yaml::to_value(self).context("serializing a config")?;
        let b = serde_yaml::to_value(other).context("serializing a config")?;
        let mut keys = Vec::new();
        tree::differing_leaves(&a, &b, &mut Vec::new(), &mut keys);
        Ok(keys)
    }

    /// The defaults as a YAML tree: the starting values and the schema of known keys.
    fn default_tree() -> Result<serde_yaml::Value> {
        serde_yaml::to_value(Config::default()).context("serializing the default config")
    }
}
