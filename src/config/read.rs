//! Typing the merged tree: one line per key, so a type error names exactly
//! the key (and, through the tree, the file line or `--set` it came from).

use anyhow::Result;

use super::tree::RawTree;
use super::{
    AgentConfig, CheckpointConfig, Config, EnvConfig, EvalConfig, ExplorationConfig, NetworkConfig,
    OptimizerConfig, ReplayConfig, TrainConfig, TutorialConfig,
};

/// Builds the typed (not yet range-checked) config from the merged tree.
// One literal with one line per key, nested as `Config` is: whole, it shows at a glance
// that every key is read once; split by section it would not read any better.
pub(super) fn config_from_tree(tree: &RawTree) -> Result<Config> {
    Ok(Config {
        experiment: tree.get("experiment")?,
        seed: tree.get("seed")?,
        device: tree.get("device")?,
        env: EnvConfig {
            id: tree.get("env.id")?,
            max_episode_steps: tree.get("env.max_episode_steps")?,
            n_envs: tree.get("env.n_envs")?,
            kwargs: tree.get("env.kwargs")?,
            wrappers: tree.get("env.wrappers")?,
            processes: tree.get("env.processes")?,
            timeout_seconds: tree.get("env.timeout_seconds")?,
        },
        network: NetworkConfig {
            hidden: tree.get("network.hidden")?,
            activation: tree.get("network.activation")?,
            init: tree.get("network.init")?,
            dueling: tree.get("network.dueling")?,
            implementation: tree.get("network.implementation")?,
        },
        agent: AgentConfig {
            gamma: tree.get("agent.gamma")?,
            double_dqn: tree.get("agent.double_dqn")?,
            loss: tree.get("agent.loss")?,
            target_update_every: tree.get("agent.target_update_every")?,
            tau: tree.get("agent.tau")?,
            n_step: tree.get("agent.n_step")?,
        },
        optimizer: OptimizerConfig {
            kind: tree.get("optimizer.kind")?,
            lr: tree.get("optimizer.lr")?,
            eps: tree.get("optimizer.eps")?,
            beta1: tree.get("optimizer.beta1")?,
            beta2: tree.get("optimizer.beta2")?,
            max_grad_norm: tree.get("optimizer.max_grad_norm")?,
            lr_schedule: tree.get("optimizer.lr_schedule")?,
            lr_end: tree.get("optimizer.lr_end")?,
            lr_decay_steps: tree.get("optimizer.lr_decay_steps")?,
        },
        replay: ReplayConfig {
            capacity: tree.get("replay.capacity")?,
            batch_size: tree.get("replay.batch_size")?,
            learning_starts: tree.get("replay.learning_starts")?,
            device: tree.get("replay.device")?,
            prioritized: tree.get("replay.prioritized")?,
            alpha: tree.get("replay.alpha")?,
            beta_start: tree.get("replay.beta_start")?,
            beta_end: tree.get("replay.beta_end")?,
            beta_steps: tree.get("replay.beta_steps")?,
            priority_eps: tree.get("replay.priority_eps")?,
        },
        exploration: ExplorationConfig {
            schedule: tree.get("exploration.schedule")?,
            start: tree.get("exploration.start")?,
            end: tree.get("exploration.end")?,
            decay_steps: tree.get("exploration.decay_steps")?,
        },
        train: TrainConfig {
            procedure: tree.get("train.procedure")?,
            total_env_steps: tree.get("train.total_env_steps")?,
            train_freq: tree.get("train.train_freq")?,
            gradient_steps: tree.get("train.gradient_steps")?,
            tutorial: TutorialConfig {
                iterations: tree.get("train.tutorial.iterations")?,
                min_memory: tree.get("train.tutorial.min_memory")?,
                step_counting: tree.get("train.tutorial.step_counting")?,
            },
        },
        eval: EvalConfig {
            every: tree.get("eval.every")?,
            episodes: tree.get("eval.episodes")?,
            final_episodes: tree.get("eval.final_episodes")?,
            stop_when_solved: tree.get("eval.stop_when_solved")?,
        },
        checkpoint: CheckpointConfig {
            every: tree.get("checkpoint.every")?,
            every_seconds: tree.get("checkpoint.every_seconds")?,
        },
    })
}
