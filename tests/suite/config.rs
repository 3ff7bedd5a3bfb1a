//! Loading configs end to end: the shipped files, every error a user can cause
//! (asserting on the message), `--set` overrides and the `to_yaml` round trip.

use std::fs;
use std::path::{Path, PathBuf};

use qnet::config::{
    Activation, Config, DeviceSpec, Init, Loss, Procedure, ReplayDevice, Schedule, StepCounting,
};
use qnet::platform::read::load_config;
use serde_yaml::Value;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn sets(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

/// The full error chain of loading `text` (named `x.yaml`) with `overrides`.
fn error_of(text: &str, overrides: &[&str]) -> String {
    match Config::from_yaml_str(text, "x.yaml", &sets(overrides)) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => format!("{err:#}"),
    }
}

/// Dotted paths of every leaf of the default config's YAML tree.
fn default_leaf_keys() -> Vec<String> {
    fn walk(node: &Value, prefix: &str, keys: &mut Vec<String>) {
        match node {
            Value::Mapping(entries) => {
                for (key, child) in entries {
                    let key = key.as_str().expect("config keys are strings");
                    let path = if prefix.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(child, &path, keys);
                }
            }
            _ => keys.push(prefix.to_owned()),
        }
    }
    let tree = serde_yaml::to_value(Config::default()).unwrap();
    let mut keys = Vec::new();
    walk(&tree, "", &mut keys);
    keys
}

/// Asserts that the YAML file at `path` spells out every key (not relying on defaults).
fn assert_explicit(path: &Path) {
    let tree: Value = serde_yaml::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    for key in default_leaf_keys() {
        let found = key
            .split('.')
            .try_fold(&tree, |node, segment| node.get(segment));
        assert!(found.is_some(), "{} does not set '{key}'", path.display());
    }
}

#[test]
fn reference_yaml_is_exactly_the_defaults() {
    let config = load_config(&configs_dir().join("reference.yaml"), &[]).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn reference_yaml_documents_every_key() {
    let path = configs_dir().join("reference.yaml");
    assert_explicit(&path);
    // Every value line carries a comment right above it, so no key goes undocumented.
    let text = fs::read_to_string(&path).unwrap();
    let mut previous = "";
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if !line.starts_with('#') && !line.ends_with(':') {
            assert!(
                previous.starts_with('#'),
                "reference.yaml: no comment above '{line}'"
            );
        }
        previous = line;
    }
}

#[test]
fn every_config_file_validates_and_is_explicit() {
    let mut count = 0;
    for entry in fs::read_dir(configs_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("yaml") {
            continue;
        }
        let config = load_config(&path, &[]).unwrap_or_else(|err| panic!("{err:#}"));
        assert_explicit(&path);
        let stem = path.file_stem().unwrap().to_str().unwrap();
        if stem != "reference" {
            assert_eq!(
                config.experiment, stem,
                "experiment name should match the file name"
            );
        }
        count += 1;
    }
    assert!(
        count >= 6,
        "expected reference + 5 experiment files, found {count}"
    );
}

#[test]
fn experiment_files_say_what_they_claim() {
    let load = |name: &str| load_config(&configs_dir().join(name), &[]).unwrap();

    let tutorial = load("tutorial.yaml");
    assert_eq!(tutorial.train.procedure, Procedure::Tutorial);
    assert_eq!(tutorial.train.tutorial.min_memory, 2500);
    assert_eq!(tutorial.train.tutorial.step_counting, StepCounting::Text);
    assert_eq!(tutorial.exploration.schedule, Schedule::Constant);
    assert_eq!(tutorial.exploration.start, 0.3);
    assert_eq!(tutorial.agent.gamma, 0.95);
    assert_eq!(tutorial.agent.target_update_every, 0);
    assert_eq!(tutorial.network.hidden, vec![32, 32]);
    assert_eq!(tutorial.network.init, Init::GlorotUniform);
    assert_eq!(tutorial.optimizer.eps, 1e-7);
    assert_eq!(tutorial.replay.batch_size, 1);

    let cleanrl = load("cleanrl.yaml");
    assert_eq!(cleanrl.network.hidden, vec![120, 84]);
    assert_eq!(cleanrl.exploration.decay_steps, 250_000);
    assert_eq!(
        (cleanrl.train.train_freq, cleanrl.replay.batch_size),
        (10, 128)
    );

    let zoo = load("sb3-zoo.yaml");
    assert_eq!((zoo.train.train_freq, zoo.train.gradient_steps), (256, 128));
    assert_eq!(
        (zoo.exploration.decay_steps, zoo.exploration.end),
        (8000, 0.04)
    );
    assert_eq!(
        (zoo.agent.loss, zoo.optimizer.max_grad_norm),
        (Loss::Huber, Some(10.0))
    );

    let large = load("cartpole-large.yaml");
    assert_eq!(large.network.hidden, vec![1024, 1024]);
    assert_eq!(large.replay.capacity, 1_000_000);
}

#[test]
fn missing_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let err = format!("{:#}", load_config(&path, &[]).unwrap_err());
    assert!(
        err.contains("reading config file") && err.contains("nope.yaml"),
        "{err}"
    );
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let err = error_of("seed: 1\nagent:\n  gamma: [0.9\n", &[]);
    assert!(err.starts_with("x.yaml:"), "{err}");
    assert!(err.contains("malformed YAML"), "{err}");
    let err = error_of("agent:\n  gamma: 1\n  gamma: 2\n", &[]);
    assert!(
        err.contains("x.yaml:") && err.contains("duplicate"),
        "{err}"
    );
}

#[test]
fn a_list_where_a_map_belongs_is_rejected() {
    let err = error_of("seed: 3\nnetwork:\n  - 64\n  - 64\n", &[]);
    assert_eq!(
        err,
        "x.yaml:2: 'network' must be a mapping of keys (hidden, activation, init, dueling, implementation), found a list"
    );
    let err = error_of("- 1\n- 2\n", &[]);
    assert!(
        err.contains("the config must be a mapping of keys"),
        "{err}"
    );
}

#[test]
fn unknown_keys_name_path_and_line() {
    let text = "# comment\nexperiment: x\n\nnetwork:\n  hidden: [8]\n  hiden: [8]\n";
    let err = error_of(text, &[]);
    assert_eq!(
        err,
        "x.yaml:6: unknown key 'network.hiden' (known keys in 'network': hidden, activation, init, dueling, implementation)"
    );
    let err = error_of(
        "train:\n  tutorial:\n    iterations: 3\n    min_mem: 4\n",
        &[],
    );
    assert!(
        err.starts_with("x.yaml:4: unknown key 'train.tutorial.min_mem'"),
        "{err}"
    );
    assert!(
        err.contains("known keys in 'train.tutorial': iterations, min_memory"),
        "{err}"
    );
    let err = error_of("seed: 1\nseeds: 2\n", &[]);
    assert!(
        err.starts_with("x.yaml:2: unknown key 'seeds' (known top-level keys: experiment, seed"),
        "{err}"
    );
    let err = error_of("agent:\n  gamma:\n    x: 1\n", &[]);
    assert_eq!(
        err,
        "x.yaml:2: 'agent.gamma' takes a single value, not a mapping"
    );
}

#[test]
fn wrong_types_name_key_and_line() {
    let err = error_of("seed: 1\nagent:\n  tau: 1.0\n  gamma: high\n", &[]);
    assert!(
        err.starts_with("x.yaml:4: agent.gamma: invalid type: string \"high\""),
        "{err}"
    );
    let err = error_of("network:\n  activation: sigmoid\n", &[]);
    assert!(
        err.starts_with("x.yaml:2: network.activation: unknown variant `sigmoid`"),
        "{err}"
    );
    let err = error_of("replay:\n  capacity: -5\n", &[]);
    assert!(err.starts_with("x.yaml:2: replay.capacity:"), "{err}");
    let err = error_of("device: gpu\n", &[]);
    assert!(
        err.contains("x.yaml:1: device: invalid device 'gpu'"),
        "{err}"
    );
}

#[test]
fn out_of_range_values_name_key_range_and_value() {
    let err = error_of("agent:\n  gamma: 1.5\n", &[]);
    assert_eq!(
        err,
        "x.yaml:2: agent.gamma = 1.5 is out of range: must be in [0, 1]"
    );
    let err = error_of("optimizer:\n  lr: -0.001\n", &[]);
    assert!(
        err.contains("x.yaml:2: optimizer.lr = -0.001 is out of range: must be > 0"),
        "{err}"
    );
    let err = error_of("optimizer: {lr: 0}\n", &[]);
    assert!(
        err.contains("optimizer.lr = 0 is out of range: must be > 0"),
        "{err}"
    );
    let err = error_of("network:\n  hidden: []\n", &[]);
    assert_eq!(err, "x.yaml:2: network.hidden must not be empty");
    let err = error_of("replay:\n  batch_size: 0\n", &[]);
    assert_eq!(
        err,
        "x.yaml:2: replay.batch_size = 0 is out of range: must be >= 1"
    );
    // The rule spans two keys; batch_size is the default here, so only the file is named.
    let err = error_of("replay:\n  capacity: 10\n", &[]);
    assert_eq!(
        err,
        "x.yaml: replay.batch_size (64) must not exceed replay.capacity (10)"
    );
}

#[test]
fn bad_overrides_are_explained() {
    let err = error_of("", &["agent.gama=0.9"]);
    assert!(
        err.starts_with("--set agent.gama=0.9: unknown key 'agent.gama'"),
        "{err}"
    );
    assert!(
        err.contains(
            "(known keys in 'agent': gamma, double_dqn, loss, target_update_every, tau, n_step)"
        ),
        "{err}"
    );
    let err = error_of("", &["nope=1"]);
    assert!(
        err.contains("unknown key 'nope' (known top-level keys: experiment, seed, device, env"),
        "{err}"
    );
    let err = error_of("", &["agent.gamma"]);
    assert!(
        err.contains("--set agent.gamma: expected KEY=VALUE") && err.contains("no '='"),
        "{err}"
    );
    let err = error_of("", &["agent.gamma=high"]);
    assert!(
        err.starts_with("--set agent.gamma=high: agent.gamma: invalid type: string \"high\""),
        "{err}"
    );
    let err = error_of("", &["agent.gamma=2"]);
    assert_eq!(
        err,
        "--set agent.gamma=2: agent.gamma = 2 is out of range: must be in [0, 1]"
    );
    let err = error_of("", &["network.hidden=[64,"]);
    assert!(
        err.contains("--set network.hidden=[64,: the value is not valid YAML"),
        "{err}"
    );
    let err = error_of("", &["agent..gamma=1"]);
    assert!(err.contains("is not a dotted key"), "{err}");
    let err = error_of("", &["agent.gamma.x=1"]);
    assert!(
        err.contains("'agent.gamma' takes a single value, not a mapping"),
        "{err}"
    );
}

#[test]
fn overrides_are_typed_and_applied_in_order_after_the_file() {
    let text = "agent:\n  gamma: 0.5\nnetwork:\n  hidden: [8]\n";
    let overrides = sets(&[
        "network.hidden=[128, 32]",
        "agent.double_dqn=true",
        "optimizer.max_grad_norm=5",
        "optimizer.max_grad_norm=null",
        "device=cuda:1",
        "replay.device=cpu",
        "network.activation=tanh",
        "agent.gamma=0.9",
        "agent.gamma=0.95",
        "experiment=run-2",
        "train={procedure: tutorial, tutorial: {step_counting: code}}",
    ]);
    let config = Config::from_yaml_str(text, "x.yaml", &overrides).unwrap();
    assert_eq!(config.network.hidden, vec![128, 32]);
    assert!(config.agent.double_dqn);
    assert_eq!(config.optimizer.max_grad_norm, None);
    assert_eq!(config.device, DeviceSpec::Cuda(Some(1)));
    assert_eq!(config.replay.device, ReplayDevice::Device(DeviceSpec::Cpu));
    assert_eq!(config.network.activation, Activation::Tanh);
    assert_eq!(config.agent.gamma, 0.95);
    assert_eq!(config.experiment, "run-2");
    assert_eq!(config.train.procedure, Procedure::Tutorial);
    assert_eq!(config.train.tutorial.step_counting, StepCounting::Code);
    // Keys no one set keep their defaults.
    assert_eq!(config.train.tutorial.min_memory, 2500);
}

#[test]
fn partial_and_empty_files_take_defaults() {
    assert_eq!(
        Config::from_yaml_str("", "x.yaml", &[]).unwrap(),
        Config::default()
    );
    // A section whose children are all commented out parses as null: defaults.
    let config = Config::from_yaml_str("agent:\n  # gamma: 0.5\nseed: 7\n", "x.yaml", &[]).unwrap();
    assert_eq!(
        config,
        Config {
            seed: 7,
            ..Config::default()
        }
    );
}

#[test]
fn to_yaml_round_trips_through_load() {
    let mut config = Config {
        experiment: "round.trip_1".into(),
        seed: u64::MAX,
        device: DeviceSpec::Cuda(Some(3)),
        ..Config::default()
    };
    config.env.n_envs = 16;
    config.network.hidden = vec![7, 5, 3];
    config.network.init = Init::GlorotUniform;
    config.agent.gamma = 0.1 + 0.2;
    config.agent.tau = 0.005;
    config.optimizer.lr = 2.3e-3;
    config.optimizer.eps = 1e-12;
    config.optimizer.max_grad_norm = Some(0.5);
    config.replay.device = ReplayDevice::Device(DeviceSpec::Cuda(None));
    config.exploration.schedule = Schedule::Constant;
    config.train.tutorial.step_counting = StepCounting::Code;
    config.eval.stop_when_solved = true;
    for original in [Config::default(), config] {
        let yaml = original.to_yaml().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolved.yaml");
        fs::write(&path, &yaml).unwrap();
        assert_eq!(load_config(&path, &[]).unwrap(), original, "{yaml}");
    }
}
