//! Range checks on the typed config: every rule names the key, the allowed
//! range and the value given, so the message alone says what to change.

use std::fmt::Display;

use super::{clip, Config, Procedure, Schedule};

/// A violated rule: the key it is reported against, and the message.
#[derive(Debug)]
pub(super) struct Invalid {
    pub(super) key: &'static str,
    /// The other keys the rule reads: where one of them came from a `--set`, that override
    /// is what the message names.
    pub(super) also: &'static [&'static str],
    pub(super) message: String,
}

impl Invalid {
    /// The violation with the other keys its rule reads.
    fn with(self, also: &'static [&'static str]) -> Self {
        Self { also, ..self }
    }
}

/// Upper bound of layer widths and of `env.n_envs`: far beyond useful, well below overflow.
const MAX_WIDTH: usize = 65_536;
/// Upper bound of `env.max_episode_steps`.
const MAX_EPISODE_STEPS: u32 = 100_000;
/// Upper bound of `agent.n_step`: longer windows only delay learning.
const MAX_N_STEP: usize = 100;
/// Upper bound of `env.timeout_seconds`: a day.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;
/// Upper bound of a training run's evaluations, which it repeats: far beyond what a mean needs.
const MAX_EVAL_EPISODES: usize = 100_000;

/// Checks every value of `config`; the first violation found is returned.
pub(super) fn check(config: &Config) -> Result<(), Invalid> {
    check_experiment(&config.experiment)?;
    check_env(config)?;
    check_network(config)?;
    check_agent(config)?;
    check_optimizer(config)?;
    check_replay(config)?;
    check_exploration(config)?;
    check_train(config)?;
    check_eval(config)
}

/// The environment: its id and the sizes of its episodes and batches.
fn check_env(config: &Config) -> Result<(), Invalid> {
    let env = &config.env;
    if let Some(steps) = env.max_episode_steps {
        require(
            (1..=MAX_EPISODE_STEPS).contains(&steps),
            "env.max_episode_steps",
            steps,
            &format!("in [1, {MAX_EPISODE_STEPS}]"),
        )?;
    }
    require(
        (1..=MAX_WIDTH).contains(&env.n_envs),
        "env.n_envs",
        env.n_envs,
        &format!("in [1, {MAX_WIDTH}]"),
    )?;
    require(
        (1..=env.n_envs).contains(&env.processes),
        "env.processes",
        env.processes,
        &format!("in [1, env.n_envs = {}]", env.n_envs),
    )?;
    require(
        env.timeout_seconds > 0.0 && env.timeout_seconds <= MAX_TIMEOUT_SECONDS,
        "env.timeout_seconds",
        env.timeout_seconds,
        &format!("in (0, {MAX_TIMEOUT_SECONDS}]"),
    )?;
    if env.id.gym_id().is_none() {
        // What only the Gymnasium bridge takes.
        for (key, set) in [
            ("env.kwargs", !env.kwargs.is_empty()),
            ("env.wrappers", !env.wrappers.is_empty()),
            ("env.processes", env.processes != 1),
        ] {
            if set {
                return Err(invalid(
                    key,
                    format!(
                        "{key} applies to a Gymnasium environment (env.id: gym:ID), and {} is \
                         one of qnet's own: remove {key}, or train gym:{} through the bridge",
                        env.id, env.id
                    ),
                ));
            }
        }
    }
    for wrapper in &env.wrappers {
        let dotted = wrapper.class.split('.').count() >= 2
            && wrapper.class.split('.').all(|part| {
                let mut chars = part.chars();
                chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
                    && chars.all(|c| c.is_alphanumeric() || c == '_')
            });
        if !dotted {
            return Err(invalid(
                "env.wrappers",
                format!(
                    "env.wrappers: {:?} is not a class's dotted path such as \
                     gymnasium.wrappers.FrameStackObservation",
                    clip(&wrapper.class)
                ),
            ));
        }
    }
    Ok(())
}

/// The Q-network's hidden layers.
fn check_network(config: &Config) -> Result<(), Invalid> {
    let hidden = &config.network.hidden;
    if hidden.is_empty() {
        return Err(invalid(
            "network.hidden",
            "network.hidden must not be empty".to_owned(),
        ));
    }
    for (layer, &width) in hidden.iter().enumerate() {
        if !(1..=MAX_WIDTH as i64).contains(&width) {
            let message = format!(
                "network.hidden[{layer}] = {width} is out of range: must be in [1, {MAX_WIDTH}]"
            );
            return Err(invalid("network.hidden", message));
        }
    }
    Ok(())
}

/// The TD update: discount, target updates, n-step returns.
fn check_agent(config: &Config) -> Result<(), Invalid> {
    let agent = &config.agent;
    require(
        (0.0..=1.0).contains(&agent.gamma),
        "agent.gamma",
        agent.gamma,
        "in [0, 1]",
    )?;
    require(
        agent.tau > 0.0 && agent.tau <= 1.0,
        "agent.tau",
        agent.tau,
        "in (0, 1]",
    )?;
    require(
        (1..=MAX_N_STEP).contains(&agent.n_step),
        "agent.n_step",
        agent.n_step,
        &format!("in [1, {MAX_N_STEP}]"),
    )?;
    Ok(())
}

/// Adam, its learning-rate schedule, the loss and gradient clipping.
fn check_optimizer(config: &Config) -> Result<(), Invalid> {
    let optimizer = &config.optimizer;
    require(
        is_positive(optimizer.lr),
        "optimizer.lr",
        optimizer.lr,
        "> 0 (and finite)",
    )?;
    require(
        is_positive(optimizer.eps),
        "optimizer.eps",
        optimizer.eps,
        "> 0 (and finite)",
    )?;
    require(
        (0.0..1.0).contains(&optimizer.beta1),
        "optimizer.beta1",
        optimizer.beta1,
        "in [0, 1)",
    )?;
    require(
        (0.0..1.0).contains(&optimizer.beta2),
        "optimizer.beta2",
        optimizer.beta2,
        "in [0, 1)",
    )?;
    if optimizer.lr_schedule == Schedule::Linear {
        require(
            is_positive(optimizer.lr_end),
            "optimizer.lr_end",
            optimizer.lr_end,
            "> 0 (and finite) when optimizer.lr_schedule is linear",
        )
        .map_err(|i| i.with(&["optimizer.lr_schedule"]))?;
        require(
            optimizer.lr_decay_steps >= 1,
            "optimizer.lr_decay_steps",
            optimizer.lr_decay_steps,
            ">= 1 when optimizer.lr_schedule is linear",
        )
        .map_err(|i| i.with(&["optimizer.lr_schedule"]))?;
    }
    if let Some(norm) = optimizer.max_grad_norm {
        require(
            is_positive(norm),
            "optimizer.max_grad_norm",
            norm,
            "> 0 and finite, or null for no clipping",
        )?;
    }
    Ok(())
}

/// The replay buffer and prioritized replay.
fn check_replay(config: &Config) -> Result<(), Invalid> {
    let replay = &config.replay;
    require(
        replay.capacity >= 1,
        "replay.capacity",
        replay.capacity,
        ">= 1",
    )?;
    require(
        replay.batch_size >= 1,
        "replay.batch_size",
        replay.batch_size,
        ">= 1",
    )?;
    if replay.batch_size > replay.capacity {
        let message = format!(
            "replay.batch_size ({}) must not exceed replay.capacity ({})",
            replay.batch_size, replay.capacity
        );
        return Err(invalid("replay.batch_size", message).with(&["replay.capacity"]));
    }

    if replay.prioritized && config.train.procedure == Procedure::Tutorial {
        return Err(invalid(
            "replay.prioritized",
            "replay.prioritized applies to train.procedure dqn; the tutorial procedure fits \
             its memory in order"
                .to_owned(),
        )
        .with(&["train.procedure"]));
    }
    if replay.prioritized {
        for (key, value) in [
            ("replay.alpha", replay.alpha),
            ("replay.beta_start", replay.beta_start),
            ("replay.beta_end", replay.beta_end),
        ] {
            require((0.0..=1.0).contains(&value), key, value, "in [0, 1]")
                .map_err(|i| i.with(&["replay.prioritized"]))?;
        }
        require(
            replay.beta_steps >= 1,
            "replay.beta_steps",
            replay.beta_steps,
            ">= 1",
        )
        .map_err(|i| i.with(&["replay.prioritized"]))?;
        require(
            is_positive(replay.priority_eps),
            "replay.priority_eps",
            replay.priority_eps,
            "> 0 (and finite)",
        )
        .map_err(|i| i.with(&["replay.prioritized"]))?;
    }
    Ok(())
}

/// Epsilon-greedy exploration.
fn check_exploration(config: &Config) -> Result<(), Invalid> {
    let exploration = &config.exploration;
    require(
        (0.0..=1.0).contains(&exploration.start),
        "exploration.start",
        exploration.start,
        "in [0, 1]",
    )?;
    require(
        (0.0..=1.0).contains(&exploration.end),
        "exploration.end",
        exploration.end,
        "in [0, 1]",
    )?;
    if exploration.schedule == Schedule::Linear {
        let steps = exploration.decay_steps;
        require(
            steps >= 1,
            "exploration.decay_steps",
            steps,
            ">= 1 when exploration.schedule is linear",
        )
        .map_err(|i| i.with(&["exploration.schedule"]))?;
    }
    Ok(())
}

/// The training budget and procedure.
fn check_train(config: &Config) -> Result<(), Invalid> {
    let train = &config.train;
    require(
        train.total_env_steps >= 1,
        "train.total_env_steps",
        train.total_env_steps,
        ">= 1",
    )?;
    require(
        train.train_freq >= 1,
        "train.train_freq",
        train.train_freq,
        ">= 1",
    )?;
    require(
        train.gradient_steps >= 1,
        "train.gradient_steps",
        train.gradient_steps,
        ">= 1",
    )?;
    let tutorial = &train.tutorial;
    require(
        tutorial.iterations >= 1,
        "train.tutorial.iterations",
        tutorial.iterations,
        ">= 1",
    )?;
    require(
        tutorial.min_memory >= 1,
        "train.tutorial.min_memory",
        tutorial.min_memory,
        ">= 1",
    )?;
    Ok(())
}

/// Evaluations and checkpoints.
fn check_eval(config: &Config) -> Result<(), Invalid> {
    let eval = &config.eval;
    require(
        (1..=MAX_EVAL_EPISODES).contains(&eval.episodes),
        "eval.episodes",
        eval.episodes,
        &format!("in [1, {MAX_EVAL_EPISODES}]"),
    )?;
    require(
        (1..=MAX_EVAL_EPISODES).contains(&eval.final_episodes),
        "eval.final_episodes",
        eval.final_episodes,
        &format!("in [1, {MAX_EVAL_EPISODES}]"),
    )?;

    let seconds = config.checkpoint.every_seconds;
    require(
        seconds >= 0.0 && seconds.is_finite(),
        "checkpoint.every_seconds",
        seconds,
        ">= 0 and finite (0 = no checkpoints by time)",
    )?;
    Ok(())
}

/// The name becomes a directory under `runs/`, so it must be one plain path segment.
fn check_experiment(name: &str) -> Result<(), Invalid> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    // "." and ".." use only allowed characters but would escape `runs/`.
    if name.is_empty() || !name.chars().all(allowed) || name.chars().all(|c| c == '.') {
        let message = format!(
            "experiment = '{}' is not a valid run name: must be non-empty, \
             use only A-Z a-z 0-9 . _ - and not be all dots",
            super::clip(name)
        );
        return Err(invalid("experiment", message));
    }
    Ok(())
}

/// True for finite values above zero (NaN and infinity fail).
fn is_positive(value: f64) -> bool {
    value > 0.0 && value.is_finite()
}

/// Fails with the standard "is out of range" message unless `ok`.
fn require(ok: bool, key: &'static str, value: impl Display, rule: &str) -> Result<(), Invalid> {
    if ok {
        return Ok(());
    }
    Err(invalid(
        key,
        format!("{key} = {value} is out of range: must be {rule}"),
    ))
}

fn invalid(key: &'static str, message: String) -> Invalid {
    Invalid {
        key,
        also: &[],
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message for `config` after `edit`, asserting it is reported against `key`.
    fn violation(key: &str, edit: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        edit(&mut config);
        let err = check(&config).expect_err("the edit should be rejected");
        assert_eq!(err.key, key, "{}", err.message);
        err.message
    }

    #[test]
    fn defaults_are_valid() {
        assert!(check(&Config::default()).is_ok());
    }

    #[test]
    fn floats_name_key_value_and_range() {
        let msg = violation("agent.gamma", |c| c.agent.gamma = 1.5);
        assert_eq!(msg, "agent.gamma = 1.5 is out of range: must be in [0, 1]");
        let msg = violation("optimizer.lr", |c| c.optimizer.lr = -0.001);
        assert_eq!(
            msg,
            "optimizer.lr = -0.001 is out of range: must be > 0 (and finite)"
        );
        assert!(violation("optimizer.lr", |c| c.optimizer.lr = 0.0).contains("must be > 0"));
        assert!(violation("optimizer.lr", |c| c.optimizer.lr = f64::NAN).contains("NaN"));
        assert!(violation("agent.tau", |c| c.agent.tau = 0.0).contains("(0, 1]"));
        assert!(violation("optimizer.beta2", |c| c.optimizer.beta2 = 1.0).contains("[0, 1)"));
        assert!(violation("exploration.end", |c| c.exploration.end = -0.1).contains("[0, 1]"));
        let msg = violation("optimizer.max_grad_norm", |c| {
            c.optimizer.max_grad_norm = Some(0.0)
        });
        assert!(msg.contains("or null for no clipping"), "{msg}");
    }

    #[test]
    fn integer_and_structural_rules() {
        assert_eq!(
            violation("network.hidden", |c| c.network.hidden.clear()),
            "network.hidden must not be empty"
        );
        let msg = violation("network.hidden", |c| c.network.hidden = vec![64, 0]);
        assert_eq!(
            msg,
            "network.hidden[1] = 0 is out of range: must be in [1, 65536]"
        );
        let msg = violation("replay.batch_size", |c| c.replay.batch_size = 0);
        assert_eq!(msg, "replay.batch_size = 0 is out of range: must be >= 1");
        let msg = violation("replay.batch_size", |c| {
            c.replay.batch_size = 512;
            c.replay.capacity = 100;
        });
        assert_eq!(
            msg,
            "replay.batch_size (512) must not exceed replay.capacity (100)"
        );
        assert!(violation("env.n_envs", |c| c.env.n_envs = 0).contains("[1, 65536]"));
        assert!(
            violation("exploration.decay_steps", |c| c.exploration.decay_steps = 0)
                .contains("linear")
        );
        assert!(
            violation("eval.final_episodes", |c| c.eval.final_episodes = 0)
                .contains("in [1, 100000]")
        );
        assert!(violation("eval.episodes", |c| c.eval.episodes = 10_000_000).contains("100000"));
        assert!(
            violation("checkpoint.every_seconds", |c| c.checkpoint.every_seconds =
                -1.0)
            .contains(">= 0 and finite")
        );
    }

    #[test]
    fn learner_options_name_key_and_range() {
        assert!(violation("agent.n_step", |c| c.agent.n_step = 0).contains("[1, 100]"));
        assert!(violation("agent.n_step", |c| c.agent.n_step = 101).contains("[1, 100]"));
        let linear = |c: &mut Config| c.optimizer.lr_schedule = Schedule::Linear;
        let msg = violation("optimizer.lr_end", |c| {
            linear(c);
            c.optimizer.lr_end = 0.0;
        });
        assert!(
            msg.contains("when optimizer.lr_schedule is linear"),
            "{msg}"
        );
        assert!(violation("optimizer.lr_decay_steps", |c| {
            linear(c);
            c.optimizer.lr_decay_steps = 0;
        })
        .contains(">= 1"));
        let per = |c: &mut Config| c.replay.prioritized = true;
        for (key, edit) in [
            (
                "replay.alpha",
                (|c: &mut Config| c.replay.alpha = 1.5) as fn(&mut Config),
            ),
            ("replay.beta_start", |c| c.replay.beta_start = -0.1),
            ("replay.beta_end", |c| c.replay.beta_end = 2.0),
        ] {
            let msg = violation(key, |c| {
                per(c);
                edit(c);
            });
            assert!(msg.contains("in [0, 1]"), "{msg}");
        }
        assert!(violation("replay.beta_steps", |c| {
            per(c);
            c.replay.beta_steps = 0;
        })
        .contains(">= 1"));
        assert!(violation("replay.priority_eps", |c| {
            per(c);
            c.replay.priority_eps = 0.0;
        })
        .contains("> 0"));
        let msg = violation("replay.prioritized", |c| {
            per(c);
            c.train.procedure = Procedure::Tutorial;
        });
        assert!(msg.contains("dqn"), "{msg}");
        // Unused settings of an option that is off are not checked.
        let mut config = Config::default();
        config.replay.alpha = 7.0;
        config.optimizer.lr_end = -1.0;
        assert!(check(&config).is_ok());
    }

    #[test]
    fn constant_schedule_ignores_decay_steps() {
        let mut config = Config::default();
        config.exploration.schedule = Schedule::Constant;
        config.exploration.decay_steps = 0;
        assert!(check(&config).is_ok());
    }

    #[test]
    fn run_names_are_single_path_segments() {
        for name in ["", "..", ".", "a/b", "a b", "ünï"] {
            let msg = violation("experiment", |c| c.experiment = name.into());
            assert!(msg.contains("not a valid run name"), "{msg}");
        }
        let config = Config {
            experiment: "cartpole_v1.2-b".into(),
            ..Config::default()
        };
        assert!(check(&config).is_ok());
    }
}
