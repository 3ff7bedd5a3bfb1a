//! model.pt / model.safetensors export: interop with plain PyTorch, loading back, bad inputs.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::python;

use qnet::config::Activation;
use qnet::export::{
    load_torchscript, read_torchscript_extra, read_torchscript_metadata, save_model_files,
    save_torchscript, torchscript_extra_files, MlpWeights, MODEL_PT, MODEL_SAFETENSORS,
    TORCHSCRIPT_METADATA_FILE,
};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Kind, Tensor};

const OBS_DIM: i64 = 4;
const N_ACTIONS: i64 = 2;

/// An MLP built the way the trainer builds its Q-network: `nn::seq()` with linear layers
/// under `root / "0"`, `/ "2"`, ...
fn build_net(vs: &VarStore, sizes: &[i64], activation: Activation) -> nn::Sequential {
    let root = vs.root();
    let mut net = nn::seq();
    for (i, pair) in sizes.windows(2).enumerate() {
        if i > 0 {
            net = match activation {
                Activation::Relu => net.add_fn(|x| x.relu()),
                Activation::Tanh => net.add_fn(|x| x.tanh()),
            };
        }
        let name = (2 * i).to_string();
        net = net.add(nn::linear(
            &root / name,
            pair[0],
            pair[1],
            Default::default(),
        ));
    }
    net
}

fn net_and_store(sizes: &[i64], activation: Activation, seed: i64) -> (VarStore, nn::Sequential) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let net = build_net(&vs, sizes, activation);
    (vs, net)
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

fn check_interop(activation: Activation, activation_name: &str) {
    let hidden = [32, 32];
    let sizes = [OBS_DIM, hidden[0], hidden[1], N_ACTIONS];
    let (vs, net) = net_and_store(&sizes, activation, 7);
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = MlpWeights::from_var_store(&vs, activation).expect("weights");
    save_model_files(
        dir.path(),
        "model",
        &weights,
        &metadata(&hidden, activation_name),
    )
    .expect("export");

    let obs = states();
    let q = tch::no_grad(|| net.forward(&obs));
    let expected = serde_json::json!({
        "hidden": hidden,
        "activation": activation_name,
        "states": to_rows(&obs),
        "q_values": to_rows(&q),
    });
    let expected_path = dir.path().join("expected.json");
    fs::write(&expected_path, expected.to_string()).expect("write expected.json");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/check_interop.py");
    let out = Command::new(python())
        .arg(script)
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
    check_interop(Activation::Relu, "relu");
}

#[test]
fn pytorch_opens_tanh_export() {
    check_interop(Activation::Tanh, "tanh");
}

#[test]
fn var_store_layers_are_named_like_nn_sequential() {
    let (vs, _net) = net_and_store(&[4, 8, 8, 2], Activation::Relu, 1);
    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    assert_eq!(
        names,
        ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
    );
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    assert_eq!(weights.layer_sizes().expect("sizes"), [4, 8, 8, 2]);
}

#[test]
fn loaded_module_reproduces_q_values_and_metadata() {
    let (vs, net) = net_and_store(&[4, 16, 2], Activation::Tanh, 3);
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = MlpWeights::from_var_store(&vs, Activation::Tanh).expect("weights");
    let meta = metadata(&[16], "tanh");
    save_model_files(dir.path(), "model", &weights, &meta).expect("export");
    let path = dir.path().join(MODEL_PT);

    let model = load_torchscript(&path, Device::Cpu, OBS_DIM, N_ACTIONS).expect("load");
    let obs = states();
    let got = model.q_values(&obs).expect("q_values");
    let want = tch::no_grad(|| net.forward(&obs));
    let diff = (got - want).abs().max().double_value(&[]);
    assert!(diff <= 1e-6, "max abs difference {diff}");

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

#[test]
fn no_temp_files_left_and_overwrite_works() {
    let (vs, _net) = net_and_store(&[4, 8, 2], Activation::Relu, 5);
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&[8], "relu");
    save_model_files(dir.path(), "model", &weights, &meta).expect("first export");
    save_model_files(dir.path(), "model", &weights, &meta).expect("second export");
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
    let (vs, _net) = net_and_store(&[4, 8, 2], Activation::Relu, 9);
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, &weights, &[]).expect("export");
    let bytes = fs::read(&path).expect("read");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let msg = load_error(&path);
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn load_corrupt_archive() {
    let (vs, _net) = net_and_store(&[4, 8, 2], Activation::Relu, 9);
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, &weights, &[]).expect("export");
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
    let (vs, _net) = net_and_store(&[3, 8, 2], Activation::Relu, 2);
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, &weights, &[]).expect("export");
    let msg = load_error(&path);
    assert!(
        msg.contains("forward failed") && msg.contains("taking 4 observation values"),
        "{msg}"
    );
}

#[test]
fn load_network_with_wrong_output_size() {
    let (vs, _net) = net_and_store(&[4, 8, 5], Activation::Relu, 2);
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    save_torchscript(&path, &weights, &[]).expect("export");
    let msg = load_error(&path);
    assert!(msg.contains("[1, 5]") && msg.contains("[1, 2]"), "{msg}");
}

#[test]
fn mismatched_layers_are_rejected() {
    let layer = |o: i64, i: i64| {
        (
            Tensor::zeros([o, i], (Kind::Float, Device::Cpu)),
            Tensor::zeros([o], (Kind::Float, Device::Cpu)),
        )
    };
    let weights = MlpWeights {
        layers: vec![layer(8, 4), layer(2, 7)],
        activation: Activation::Relu,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(MODEL_PT);
    let err = save_torchscript(&path, &weights, &[]).expect_err("7 != 8");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("2.weight") && msg.contains("model.pt"),
        "{msg}"
    );
    assert!(!path.exists());

    let empty = MlpWeights {
        layers: vec![],
        activation: Activation::Tanh,
    };
    assert!(save_torchscript(&path, &empty, &[]).is_err());
}

#[test]
fn var_store_that_is_not_a_sequential_mlp_is_rejected() {
    let vs = VarStore::new(Device::Cpu);
    let _layer = nn::linear(vs.root() / "body", 4, 2, Default::default());
    let err = MlpWeights::from_var_store(&vs, Activation::Relu).expect_err("not seq names");
    assert!(format!("{err:#}").contains("0.weight"), "{err:#}");
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

/// A network trained on the GPU exports to files that load on the CPU.
#[test]
fn cuda_weights_export_to_cpu_files() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device; skipping the GPU export check");
        return;
    }
    tch::manual_seed(11);
    let vs = VarStore::new(Device::Cuda(0));
    let net = build_net(&vs, &[4, 16, 2], Activation::Relu);
    let weights = MlpWeights::from_var_store(&vs, Activation::Relu).expect("weights");
    let dir = tempfile::tempdir().expect("tempdir");
    save_model_files(dir.path(), "model", &weights, &metadata(&[16], "relu")).expect("export");
    let model = load_torchscript(&dir.path().join(MODEL_PT), Device::Cpu, OBS_DIM, N_ACTIONS)
        .expect("load");
    let obs = states();
    let want = tch::no_grad(|| net.forward(&obs.to_device(Device::Cuda(0)))).to_device(Device::Cpu);
    let got = model.q_values(&obs).expect("q");
    let diff = (got - want).abs().max().double_value(&[]);
    assert!(diff <= 1e-5, "max abs difference {diff}");
}
