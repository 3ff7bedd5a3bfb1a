//! `model.safetensors`: a network's parameters as float32 tensors with qnet's metadata, written
//! for PyTorch (`safetensors.torch.load_file`) and read back by `qnet eval` and `qnet render`.
//!
//! Reading one is safe whatever the file holds: a safetensors file is data (a JSON header and
//! raw numbers), so loading it runs nothing, unlike a TorchScript `model.pt`, whose loading
//! executes the code it contains. Every name, shape and size is checked against the network
//! the metadata's config describes before anything is allocated.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};
use tch::{Device, Kind, Tensor};

use crate::config::{Config, EnvConfig};
use crate::learn::qfunction::NetworkSpec;
use crate::platform::atomic::write_bytes_atomic;
use crate::platform::read::read_bytes;

/// The largest model file qnet reads: far above any network it trains (a 4-1024-1024-2
/// network is 4 MiB), far below what would strain a machine's memory.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;

/// Writes the parameters `flat` of the network `spec` describes to `path` in the
/// safetensors format (atomically), under the same names as the TorchScript export, as
/// float32 little-endian, with `metadata` as `__metadata__`.
pub fn save_safetensors(
    path: &Path,
    spec: &NetworkSpec,
    flat: &Tensor,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes = safetensors_bytes(spec, flat, metadata)
        .with_context(|| format!("cannot export {}", path.display()))?;
    write_bytes_atomic(path, &bytes)
}

fn safetensors_bytes(
    spec: &NetworkSpec,
    flat: &Tensor,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in spec.named_parameters(flat)? {
        let cpu = t
            .f_detach()
            .and_then(|t| t.f_to_device_(Device::Cpu, Kind::Float, false, false))
            .and_then(|t| t.f_contiguous())
            .with_context(|| format!("cannot copy {name} to CPU float32"))?;
        let shape = cpu
            .size()
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()?;
        let numel = shape.iter().product();
        let mut values = vec![0f32; numel];
        cpu.f_copy_data(&mut values, numel)
            .with_context(|| format!("cannot read {name}"))?;
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, shape, data));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|view| (name.as_str(), view))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    canonical_safetensors(safetensors::tensor::serialize(views, Some(info))?)
}

/// Rewrites a safetensors file's JSON header with its keys sorted.
///
/// The `safetensors` crate keeps metadata in a `HashMap`, whose iteration order changes from
/// process to process, so the same tensors and metadata would give different bytes in
/// different runs. Data offsets are relative to the end of the header, so only the header
/// (re-padded with spaces to a multiple of 8 bytes, as the format asks) changes.
fn canonical_safetensors(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let header_len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .context("safetensors data shorter than its 8-byte header length")?;
    let header_end = usize::try_from(header_len)
        .ok()
        .and_then(|len| len.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .context("safetensors header length exceeds the data")?;
    // serde_json's default map is ordered by key.
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..header_end]).context("safetensors header is not JSON")?;
    let mut text = serde_json::to_vec(&header)?;
    text.resize(text.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - header_end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[header_end..]);
    Ok(out)
}

/// A network read from a `model.safetensors` qnet wrote: what its metadata describes, with
/// the file's parameters.
#[derive(Debug)]
pub struct SafetensorsModel {
    /// The network, from the metadata's `config`, `obs_dim` and `n_actions`.
    pub spec: NetworkSpec,
    /// Its parameters in [`NetworkSpec::layers`] order, float32 on the CPU.
    pub flat: Tensor,
}

/// Reads the network in the safetensors file `path` (written by [`save_safetensors`]);
/// `fits` checks the network its metadata describes against the environment it names before
/// the tensors are read (that it maps that environment's observations to its actions). Every
/// problem (a file that is missing, too large, not safetensors, without qnet's metadata, or
/// whose tensors do not match the network it describes) is an error naming the file.
pub fn load_safetensors(
    path: &Path,
    fits: impl FnOnce(&EnvConfig, &NetworkSpec) -> Result<()>,
) -> Result<SafetensorsModel> {
    let bytes = read_bytes(path, MAX_MODEL_BYTES)?;
    let problem = |what: String| {
        anyhow::anyhow!(
            "cannot use {} as a Q-network: {what}. It should be the model.safetensors that qnet \
             writes into a run directory",
            path.display()
        )
    };
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| problem(format!("not safetensors ({e})")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| problem(format!("not safetensors ({e})")))?;
    let metadata = header
        .metadata()
        .as_ref()
        .ok_or_else(|| problem("it has no metadata".to_owned()))?;
    let (spec, env) = spec_of(metadata).map_err(|e| problem(format!("{e:#}")))?;
    fits(&env, &spec)?;
    let flat = parameters(&spec, &file).map_err(|e| problem(format!("{e:#}")))?;
    Ok(SafetensorsModel { spec, flat })
}

/// The network the metadata describes: the run's validated config, and the sizes.
fn spec_of(metadata: &HashMap<String, String>) -> Result<(NetworkSpec, EnvConfig)> {
    let get = |key: &str| {
        metadata
            .get(key)
            .with_context(|| format!("its metadata has no {key:?}"))
    };
    let size = |key: &str| -> Result<i64> {
        let text = get(key)?;
        text.parse::<i64>()
            .ok()
            .filter(|&n| (1..=1 << 20).contains(&n))
            .with_context(|| format!("its metadata's {key} is {text:?}, not a size"))
    };
    let cfg = Config::from_yaml_str(get("config")?, "its metadata's config", &[])?;
    let spec = NetworkSpec::new(&cfg.network, size("obs_dim")?, size("n_actions")?)?;
    Ok((spec, cfg.env))
}

/// The file's tensors, checked name by name against `spec`, as one flat float32 tensor.
fn parameters(spec: &NetworkSpec, file: &SafeTensors) -> Result<Tensor> {
    let (trunk, head) = spec.layers();
    let layers: Vec<_> = trunk.iter().chain(&head).collect();
    let expected = 2 * layers.len();
    if file.len() != expected {
        bail!(
            "it holds {} tensors; the network its metadata describes has {expected}",
            file.len()
        );
    }
    let mut flat = Vec::new();
    for layer in layers {
        for (suffix, shape) in [
            ("weight", vec![layer.fan_out, layer.fan_in]),
            ("bias", vec![layer.fan_out]),
        ] {
            let name = format!("{}.{suffix}", layer.name);
            let view = file
                .tensor(&name)
                .with_context(|| format!("it has no tensor {name}"))?;
            let found: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            if view.dtype() != Dtype::F32 || found != shape {
                bail!(
                    "tensor {name} is {:?} {found:?}; the network needs F32 {shape:?}",
                    view.dtype()
                );
            }
            let start = flat.len();
            flat.extend(
                view.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            );
            check_finite(&name, &flat[start..])?;
        }
    }
    Tensor::f_from_slice(&flat).context("cannot hold the parameters")
}

/// Refuses a tensor `name` with a NaN or infinite value: qnet never saves such a model (a run
/// that diverges keeps its last finite one), and played, it would act on garbage and report
/// returns as if it were a policy.
pub fn check_finite(name: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => bail!(
            "its tensor {name} holds a non-finite value ({} at element {index}), so it is \
             no trained network",
            values[index]
        ),
    }
}
