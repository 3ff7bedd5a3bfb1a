//! model.pt / model.safetensors export: interop with plain PyTorch, loading back, bad inputs.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::common::python_script;

use qnet::artifacts::export::{
    read_torchscript_extra, read_torchscript_metadata, save_model_files, save_torchscript,
    torchscript_extra_files, MODEL_PT, MODEL_SAFETENSORS, TORCHSCRIPT_METADATA_FILE,
};
use qnet::artifacts::torchscript::load_torchscript;
use qnet::config::{Activation, Implementation, Init, NetworkConfig};
use qnet::learn::qfunction::{self, NetworkSpec, QFunction};
use tch::{Device, Kind, Tensor};

const OBS_DIM: i64 = 4;
const N_ACTIONS: i64 = 2;

fn network_config(hidden: &[i64], activation: Activation, dueling: bool) -> NetworkConfig {
    NetworkConfig {
        hidden: hidden.to_vec(),
        activation,
        init: Init::Torch,
        dueling,
        implementation: Implementation::Fast,
    }
}

/// A freshly initialised Q-network, as the trainer builds it.
fn net(hidden: &[i64], activation: Activation, dueling: bool, seed: i64) -> Box<dyn QFunction> {
    tch::manual_seed(seed);
    qfunction::build(
        &network_config(hidden, activation, dueling),
        OBS_DIM,
        N_ACTIONS,
        Device::Cpu,
    )
    .expect("network")
}

/// A network of other sizes than CartPole's, for the load checks.
fn odd_net(obs_dim: i64, n_actions: i64) -> (NetworkSpec, Tensor) {
    let spec = NetworkSpec::new(
        &network_config(&[8], Activation::Relu, false),
        obs_dim,
        n_actions,
    )
    .expect("spec");
    let flat = spec.init_flat(Device::Cpu).expect("init");
    (spec, flat)
}

fn states() -> Tensor {
    let values: [f32; 20] = [
        0.0, 0.0, 0.0, 0.0, //
        0.01, -0.2, 0.03, 0.1, //
        -1.5, 0.7, -0.18, -1.2, //
        2.0, 1.0, 0.2, 2.5, //
        0.3, -0.4, -0.05, 0.6,
    ];
    Tensor::from_slice(&values).reshape([5, OBS_DIM])
}

fn to_rows(t: &Tensor) -> Vec<Vec<f32>> {
    Vec::<Vec<f32>>::try_from(t.to_kind(Kind::Float)).expect("2-D float tensor")
}

fn metadata(hidden: &[i64], activation: &str) -> BTreeMap<String, String> {
    [
        ("obs_dim", OBS_DIM.to_string()),
        ("n_actions", N_ACTIONS.to_string()),
        ("hidden", serde_json::to_string(hidden).expect("json")),
        ("activation", activation.to_owned()),
        ("env_id", "CartPole-v1".to_owned()),
        ("env_step", "12345".to_owned()),
        ("qnet_version", env!("CARGO_PKG_VERSION").to_owned()),
        (
            "config",
            "seed: 1\nnetwork:\n  hidden: [32, 32]\n".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn check_interop(activation: Activation, dueling: bool) {
    let hidden = [32, 32];
    let net = net(&hidden, activation, dueling, 7);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut meta = metadata(&hidden, activation.name());
    meta.insert("head".to_owned(), net.spec().head_name().to_owned());
    save_model_files(dir.path(), "model", net.spec(), net.flat(), &meta).expect("export");

    let obs = states();
    let q = net.forward(&obs);
    let expected = serde_json::json!({
        "hidden": hidden,
        "activation": activation.name(),
        "head": net.spec().head_name(),
        "states": to_rows(&obs),
        "q_values": to_rows(&q),
    });
    let expected_path = dir.path().join("expected.json");
    fs::write(&expected_path, expected.to_string()).expect("write expected.json");

    let out = python_script("tests/python/check_interop.py")
        .arg(dir.path().join(MODEL_PT))
        .arg(dir.path().join(MODEL_SAFETENSORS))
        .arg(&expected_path)
        .output()
        .expect("run check_interop.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check_interop.py failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("OK"), "{stdout}");
}

#[test]
fn pytorch_opens_relu_export() {
    check_interop(Activation::Relu, false);
}

#[test]
fn pytorch_opens_tanh_export() {
    check_interop(Activation::Tanh, false);
}

#[test]
fn pytorch_opens_dueling_export() {
    check_interop(Activation::Relu, true);
    check_interop(Activation::Tanh, true);
}

#[test]
fn loaded_module_reproduces_q_values_and_metadata() {
    for dueling in [false, true] {
        let net = net(&[16], Activation::Tanh, dueling, 3);
        let dir = tempfile::tempdir().expect("tempdir");
        let meta = metadata(&[16], "tanh");
        save_model_files(dir.path(), "model", net.spec(), net.flat(), &meta).expect("export");
        let path = dir.path().join(MODEL_PT);

        let model = load_torchscript(&path, Device::Cpu, OBS_DIM, N_ACTIONS).expect("load");
        let obs = states();
        let got = model.q_values(&obs).expect("q_values");
        let want = net.forward(&obs);
        let diff = (got - want).abs().max().double_value(&[]);
        assert!(diff <= 1e-6, "dueling {dueling}: max abs difference {diff}");

        let err = model
            .q_values(&Tensor::zeros([3, 5], (Kind::Float, Device::Cpu)))
            .expect_err("wrong obs width");
        assert!(format!("{err:#}").contains("[batch, 4]"), "{err:#}");

        assert_eq!(
            read_torchscript_metadata(&path).expect("metadata"),
            Some(meta)
        );
        let raw = read_torchscript_extra(&path, TORCHSCRIPT_METADATA_FILE)
            .expect("extra")
            .expect("present");
        assert!(raw.contains("CartPole-v1"), "{raw}");
        assert_eq!(
            read_torchscript_extra(&path, "absent.txt").expect("extra"),
            None
        );
    }
}

#[test]
fn no_temp_files_left_and_overwrite_works() {
    let net = net(&[8], Activation::Relu, false, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&[8], "relu");
    save_model_files(dir.path(), "model", net.spec(), net.flat(), &meta).expect("first export");
    save_model_files(dir.path(), "model", net.spec(), net.flat(), &meta).expect("second export");
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [MODEL_PT, MODEL_SAFETENSORS]);
}

/// Loads `path` as a 4-observation, 2-action Q-network and returns the error message.
fn load_error(path: &Path) -> String {
    let err = load_torchscript(path, Device::Cpu, OBS_DIM, N_ACTIONS).expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    msg
}

#[test]
fn load_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = load_error(&dir.path().join(MODEL_PT));
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn load_empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    fs::write(&path, b"").expect("write");
    let msg = load_error(&path);
    assert!(msg.contains("empty"), "{msg}");
}

#[test]
fn load_text_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    fs::write(&path, "version https://git-lfs.github.com/spec/v1\n").expect("write");
    let msg = load_error(&path);
    assert!(
        msg.contains("text file") && msg.contains("git-lfs"),
        "{msg}"
    );
}

#[test]
fn load_truncated_file() {
    let net = net(&[8], Activation::Relu, false, 9);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, net.spec(), net.flat(), &[]).expect("export");
    let bytes = fs::read(&path).expect("read");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let msg = load_error(&path);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn load_corrupt_archive() {
    let net = net(&[8], Activation::Relu, false, 9);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, net.spec(), net.flat(), &[]).expect("export");
    let mut bytes = fs::read(&path).expect("read");
    // Keep the zip's first and last bytes, wipe the middle.
    let n = bytes.len();
    bytes[64..n - 200].fill(0);
    fs::write(&path, &bytes).expect("write");
    let msg = load_error(&path);
    assert!(msg.contains("TorchScript"), "{msg}");
}

#[test]
fn load_network_with_wrong_input_size() {
    let (spec, flat) = odd_net(3, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, &spec, &flat, &[]).expect("export");
    let msg = load_error(&path);
    assert!(
        msg.contains("forward failed") && msg.contains("taking 4 observation values"),
        "{msg}"
    );
}

#[test]
fn load_network_with_wrong_output_size() {
    let (spec, flat) = odd_net(4, 5);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, &spec, &flat, &[]).expect("export");
    let msg = load_error(&path);
    assert!(msg.contains("[1, 5]") && msg.contains("[1, 2]"), "{msg}");
}

#[test]
fn parameters_that_do_not_fit_the_network_are_rejected() {
    let net = net(&[8], Activation::Relu, false, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    let short = net.flat().narrow(0, 0, 10);
    let err = save_torchscript(&path, net.spec(), &short, &[]).expect_err("too few");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("model.pt") && msg.contains("parameters"),
        "{msg}"
    );
    assert!(!path.exists());
    let doubles = net.flat().to_kind(Kind::Double);
    assert!(save_torchscript(&path, net.spec(), &doubles, &[]).is_err());
    assert!(!path.exists());
}

#[test]
fn extra_files_hold_one_json_object() {
    let meta = metadata(&[32, 32], "relu");
    let files = torchscript_extra_files(&meta).expect("extra files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].0, TORCHSCRIPT_METADATA_FILE);
    let back: BTreeMap<String, String> = serde_json::from_str(&files[0].1).expect("json");
    assert_eq!(back, meta);
}

/// A network trained on the GPU exports to files that load on the CPU. Without a GPU it
/// skips, saying so; QNET_REQUIRE_CUDA=1 (for a GPU machine) makes that a failure.
#[test]
fn cuda_weights_export_to_cpu_files() {
    if !tch::Cuda::is_available() {
        assert!(
            std::env::var("QNET_REQUIRE_CUDA").map_or(true, |v| v != "1"),
            "QNET_REQUIRE_CUDA=1 but libtorch reports no CUDA device"
        );
        eprintln!("skipped: no CUDA device (QNET_REQUIRE_CUDA=1 makes this a failure)");
        return;
    }
    tch::manual_seed(11);
    let cfg = network_config(&[16], Activation::Relu, true);
    let net = qfunction::build(&cfg, OBS_DIM, N_ACTIONS, Device::Cuda(0)).expect("network");
    let dir = tempfile::tempdir().expect("tempdir");
    save_model_files(
        dir.path(),
        "model",
        net.spec(),
        net.flat(),
        &metadata(&[16], "relu"),
    )
    .expect("export");
    let model = load_torchscript(&dir.path().join(MODEL_PT), Device::Cpu, OBS_DIM, N_ACTIONS)
        .expect("load");
    let obs = states();
    let got = model.q_values(&obs).expect("q_values");
    let want = net
        .forward(&obs.to_device(Device::Cuda(0)))
        .to_device(Device::Cpu);
    let diff = (got - want).abs().max().double_value(&[]);
    assert!(diff <= 1e-5, "max abs difference {diff}");
}
