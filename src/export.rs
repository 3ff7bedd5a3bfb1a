//! Exporting a trained Q-network for use outside qnet, and loading it back.
//!
//! Two files, both with the parameter names `torch.nn.Sequential` gives an MLP of
//! `Linear, act, Linear, act, ..., Linear` (`0.weight`, `0.bias`, `2.weight`, ...):
//! - `model.pt`: a TorchScript module (`torch.jit.load("model.pt")` in Python, no qnet code)
//!   with real parameters, so `m.state_dict()` loads into an `nn.Sequential`; its metadata is
//!   the extra file [`TORCHSCRIPT_METADATA_FILE`] (read it with
//!   `torch.jit.load(p, _extra_files={"qnet.json": ""})`);
//! - `model.safetensors`: the same tensors (float32, little-endian) with the same metadata as
//!   its `__metadata__` string map.
//!
//! Metadata is a string-to-string map (e.g. `obs_dim`, `n_actions`, `hidden` as a JSON list,
//! `activation`, `env_id`, `env_step`, `qnet_version`, `config`); `qnet.json` holds it as one
//! JSON object of strings, so both files carry exactly the same values.
//!
//! The TorchScript module is built by a small C++ shim (`csrc/torchscript_export.cpp`) because
//! tracing through tch turns the weights into constants.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CStr, CString};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::raw::{c_char, c_int};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::nn::VarStore;
use tch::{CModule, Device, Kind, TchError, Tensor};

use crate::atomic::{commit_atomic, write_bytes_atomic};
use crate::config::Activation;

/// Name of the TorchScript extra file (`extra/qnet.json` in the archive) holding the metadata.
pub const TORCHSCRIPT_METADATA_FILE: &str = "qnet.json";
/// File name of the TorchScript export inside a run directory.
pub const MODEL_PT: &str = "model.pt";
/// File name of the safetensors export inside a run directory.
pub const MODEL_SAFETENSORS: &str = "model.safetensors";

mod ffi {
    use std::os::raw::{c_char, c_int};

    use torch_sys::C_tensor;

    extern "C" {
        /// See `csrc/torchscript_export.cpp`. Returns 0 on success; otherwise sets
        /// `*error_out` to a message to be released with `qnet_free_string`.
        pub fn qnet_save_mlp(
            path: *const c_char,
            weights: *const *const C_tensor,
            biases: *const *const C_tensor,
            n_layers: usize,
            activation: c_int,
            extra_keys: *const *const c_char,
            extra_values: *const *const c_char,
            extra_value_lens: *const usize,
            n_extra: usize,
            error_out: *mut *mut c_char,
        ) -> c_int;

        /// Reads one extra file from a TorchScript archive; `*value_out` stays NULL when the
        /// archive has none of that name. Same error convention as `qnet_save_mlp`.
        pub fn qnet_read_extra(
            path: *const c_char,
            key: *const c_char,
            value_out: *mut *mut c_char,
            len_out: *mut usize,
            error_out: *mut *mut c_char,
        ) -> c_int;

        /// Frees a string returned by the functions above.
        pub fn qnet_free_string(s: *mut c_char);
    }
}

/// The parameters of an MLP Q-network `Linear, act, Linear, act, ..., Linear`.
#[derive(Debug)]
pub struct MlpWeights {
    /// `(weight [out, in], bias [out])` per linear layer, input layer first. Any device and
    /// floating-point kind; exports copy them to CPU float32.
    pub layers: Vec<(Tensor, Tensor)>,
    /// Nonlinearity between consecutive linear layers (none after the last).
    pub activation: Activation,
}

impl MlpWeights {
    /// Collects the layers of a network built with `nn::seq()` whose linear layers live under
    /// `vs.root() / "0"`, `/ "2"`, `/ "4"`, ... (variables `0.weight`, `0.bias`, `2.weight`,
    /// ...). The tensors share storage with the store's variables.
    pub fn from_var_store(vs: &VarStore, activation: Activation) -> Result<Self> {
        let mut vars = vs.variables();
        let mut names: Vec<String> = vars.keys().cloned().collect();
        names.sort();
        let mut layers = Vec::new();
        while !vars.is_empty() {
            let index = 2 * layers.len();
            let weight = vars.remove(&format!("{index}.weight"));
            let bias = vars.remove(&format!("{index}.bias"));
            match (weight, bias) {
                (Some(w), Some(b)) => layers.push((w, b)),
                _ => bail!(
                    "the variable store does not hold an nn.Sequential-style MLP: expected \
                     variables {index}.weight and {index}.bias next, found {names:?}"
                ),
            }
        }
        let weights = MlpWeights { layers, activation };
        weights.layer_sizes()?;
        Ok(weights)
    }

    /// Checks the layers chain up (`weight [out, in]`, `bias [out]`, each layer's `in` equal
    /// to the previous layer's `out`, floating-point tensors) and returns the layer widths
    /// `[obs_dim, hidden..., n_actions]`.
    pub fn layer_sizes(&self) -> Result<Vec<i64>> {
        if self.layers.is_empty() {
            bail!("an MLP needs at least one linear layer, got none");
        }
        let mut sizes = Vec::with_capacity(self.layers.len() + 1);
        for (i, (w, b)) in self.layers.iter().enumerate() {
            let name = 2 * i;
            for (t, what) in [(w, "weight"), (b, "bias")] {
                if !t.defined() {
                    bail!("{name}.{what} is an undefined tensor");
                }
                let kind = t.f_kind()?;
                if !is_float(kind) {
                    bail!("{name}.{what} has kind {kind:?}, expected a floating-point tensor");
                }
            }
            let (out_dim, in_dim) = match w.size().as_slice() {
                &[o, i] if o > 0 && i > 0 => (o, i),
                s => bail!("{name}.weight has shape {s:?}, expected [out_features, in_features]"),
            };
            if b.size() != [out_dim] {
                bail!(
                    "{name}.bias has shape {:?}, expected [{out_dim}] to match {name}.weight {:?}",
                    b.size(),
                    w.size()
                );
            }
            match sizes.last() {
                None => sizes.push(in_dim),
                Some(&prev) if prev != in_dim => bail!(
                    "{name}.weight has shape {:?}: it takes {in_dim} inputs but the previous \
                     layer produces {prev}",
                    w.size()
                ),
                Some(_) => {}
            }
            sizes.push(out_dim);
        }
        Ok(sizes)
    }
}

/// The `nn.Sequential` name of a parameter of linear layer `layer` (`"weight"` or `"bias"`).
fn param_name(layer: usize, what: &str) -> String {
    format!("{}.{what}", 2 * layer)
}

/// The TorchScript extra files carrying `metadata`: one, [`TORCHSCRIPT_METADATA_FILE`], with
/// the map as a JSON object of strings. Pass the result to [`save_torchscript`]; pass the same
/// map to [`save_safetensors`].
pub fn torchscript_extra_files(
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let json = serde_json::to_string_pretty(metadata).context("cannot encode metadata as JSON")?;
    Ok(vec![(TORCHSCRIPT_METADATA_FILE.to_owned(), json)])
}

/// Writes `weights` as a TorchScript module to `path` (atomically: a temporary file in the same
/// directory, fsynced, renamed over `path`). `extra` becomes the archive's extra files
/// (`name -> content`); see [`torchscript_extra_files`].
pub fn save_torchscript(
    path: &Path,
    weights: &MlpWeights,
    extra: &[(String, String)],
) -> Result<()> {
    weights
        .layer_sizes()
        .with_context(|| format!("cannot export {}", path.display()))?;
    let activation: c_int = match weights.activation {
        Activation::Relu => 0,
        Activation::Tanh => 1,
    };
    let extra_keys = extra
        .iter()
        .map(|(k, _)| CString::new(k.as_str()))
        .collect::<Result<Vec<_>, _>>()
        .context("extra file names must not contain NUL bytes")?;
    let extra_key_ptrs: Vec<*const c_char> = extra_keys.iter().map(|k| k.as_ptr()).collect();
    let extra_value_ptrs: Vec<*const c_char> = extra
        .iter()
        .map(|(_, v)| v.as_ptr().cast::<c_char>())
        .collect();
    let extra_value_lens: Vec<usize> = extra.iter().map(|(_, v)| v.len()).collect();
    let weight_ptrs: Vec<_> = weights.layers.iter().map(|(w, _)| w.as_ptr()).collect();
    let bias_ptrs: Vec<_> = weights.layers.iter().map(|(_, b)| b.as_ptr()).collect();

    commit_atomic(path, |tmp| {
        let c_path = path_to_cstring(tmp)?;
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer refers to data (`weights`, `extra`, the vectors above) that
        // outlives the call; the C++ side copies what it keeps and catches all exceptions.
        let rc = unsafe {
            ffi::qnet_save_mlp(
                c_path.as_ptr(),
                weight_ptrs.as_ptr(),
                bias_ptrs.as_ptr(),
                weight_ptrs.len(),
                activation,
                extra_key_ptrs.as_ptr(),
                extra_value_ptrs.as_ptr(),
                extra_value_lens.as_ptr(),
                extra.len(),
                &mut error,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(anyhow!(
                "libtorch could not save the module: {}",
                take_error(error)
            ))
        }
    })
}

/// Writes `weights` to `path` in the safetensors format (atomically), under the same names as
/// the TorchScript export, as float32 little-endian, with `metadata` as `__metadata__`.
pub fn save_safetensors(
    path: &Path,
    weights: &MlpWeights,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let bytes = safetensors_bytes(weights, metadata)
        .with_context(|| format!("cannot export {}", path.display()))?;
    write_bytes_atomic(path, &bytes)
}

fn safetensors_bytes(weights: &MlpWeights, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    weights.layer_sizes()?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (w, b)) in weights.layers.iter().enumerate() {
        for (t, what) in [(w, "weight"), (b, "bias")] {
            let name = param_name(i, what);
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

/// Writes `<dir>/<stem>.pt` and `<dir>/<stem>.safetensors` (e.g. [`MODEL_PT`] and
/// [`MODEL_SAFETENSORS`] for the stem `model`), both carrying `metadata`.
pub fn save_model_files(
    dir: &Path,
    stem: &str,
    weights: &MlpWeights,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_torchscript(
        &dir.join(format!("{stem}.pt")),
        weights,
        &torchscript_extra_files(metadata)?,
    )?;
    save_safetensors(&dir.join(format!("{stem}.safetensors")), weights, metadata)
}

/// Reads extra file `key` of the TorchScript archive at `path` (without loading the module);
/// `None` when the archive has no such file.
pub fn read_torchscript_extra(path: &Path, key: &str) -> Result<Option<String>> {
    let c_path = path_to_cstring(path)?;
    let c_key = CString::new(key).context("extra file names must not contain NUL bytes")?;
    let mut value: *mut c_char = std::ptr::null_mut();
    let mut len = 0usize;
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: valid NUL-terminated inputs and out-pointers; the C++ side catches all exceptions.
    let rc = unsafe {
        ffi::qnet_read_extra(
            c_path.as_ptr(),
            c_key.as_ptr(),
            &mut value,
            &mut len,
            &mut error,
        )
    };
    if rc != 0 {
        bail!(
            "cannot read extra file {key:?} of {}: {}",
            path.display(),
            take_error(error)
        );
    }
    if value.is_null() {
        return Ok(None);
    }
    // SAFETY: on success `value` points to `len` bytes (plus a NUL) allocated by the shim.
    let bytes = unsafe { std::slice::from_raw_parts(value.cast::<u8>(), len) }.to_vec();
    // SAFETY: allocated by the shim, released exactly once.
    unsafe { ffi::qnet_free_string(value) };
    String::from_utf8(bytes)
        .map(Some)
        .with_context(|| format!("extra file {key:?} of {} is not UTF-8", path.display()))
}

/// The metadata of a `model.pt` written by [`save_model_files`]; `None` when it has none.
pub fn read_torchscript_metadata(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    let Some(json) = read_torchscript_extra(path, TORCHSCRIPT_METADATA_FILE)? else {
        return Ok(None);
    };
    serde_json::from_str(&json).map(Some).with_context(|| {
        format!(
            "extra file {TORCHSCRIPT_METADATA_FILE} of {} is not a JSON object of strings",
            path.display()
        )
    })
}

/// A Q-network loaded from a TorchScript file and checked to map `[B, obs_dim]` float32
/// observations to `[B, n_actions]` Q-values.
#[derive(Debug)]
pub struct QModel {
    module: CModule,
    path: PathBuf,
    device: Device,
    obs_dim: i64,
    n_actions: i64,
}

/// Loads the TorchScript Q-network at `path` onto `device` and probes it with a zero
/// observation batch `[1, obs_dim]` (float32), which must give a floating-point `[1, n_actions]`
/// result. Every failure (missing, empty, truncated or non-TorchScript file, a network of
/// other sizes) is an error naming the file and what was expected.
pub fn load_torchscript(
    path: &Path,
    device: Device,
    obs_dim: i64,
    n_actions: i64,
) -> Result<QModel> {
    let problem = |what: String| {
        anyhow!(
            "cannot use {} as a Q-network: {what}. It should be the model.pt that qnet writes \
             into a run directory (a TorchScript archive)",
            path.display()
        )
    };
    check_archive_file(path).map_err(problem)?;
    let mut module = CModule::load_on_device(path, device).map_err(|e| {
        problem(format!(
            "libtorch cannot read it as TorchScript, so it is corrupt or not a TorchScript \
             module ({})",
            torch_message(&e)
        ))
    })?;
    module.f_set_eval().map_err(|e| {
        problem(format!(
            "cannot switch it to eval mode ({})",
            torch_message(&e)
        ))
    })?;
    let model = QModel {
        module,
        path: path.to_owned(),
        device,
        obs_dim,
        n_actions,
    };
    let zeros = Tensor::f_zeros([1, obs_dim], (Kind::Float, device))?;
    let _probe = model.forward_checked(&zeros).map_err(|e| {
        anyhow!(
            "{} does not fit this environment: {e}. Expected a Q-network taking {obs_dim} \
             observation values and returning {n_actions} Q-values",
            path.display()
        )
    })?;
    Ok(model)
}

impl QModel {
    /// Q-values `[B, n_actions]` (float32, on the model's device) of observations `[B, obs_dim]`
    /// (any floating-point kind and device; converted as needed).
    pub fn q_values(&self, obs: &Tensor) -> Result<Tensor> {
        match obs.size().as_slice() {
            &[_, d] if d == self.obs_dim => {}
            s => bail!(
                "observations for {} must have shape [batch, {}], got {s:?}",
                self.path.display(),
                self.obs_dim
            ),
        }
        let obs = obs.f_to_device_(self.device, Kind::Float, false, false)?;
        self.forward_checked(&obs)
            .with_context(|| format!("Q-network {}", self.path.display()))
    }

    fn forward_checked(&self, obs: &Tensor) -> Result<Tensor> {
        let batch = obs.size().first().copied().unwrap_or(0);
        let out = tch::no_grad(|| self.module.forward_ts(&[obs]))
            .map_err(|e| anyhow!("forward failed: {}", torch_message(&e)))?;
        let kind = out.f_kind()?;
        let shape = out.size();
        if !is_float(kind) || shape != [batch, self.n_actions] {
            bail!(
                "forward on a float32 [{batch}, {}] input returned a {kind:?} tensor of shape \
                 {shape:?}, expected floating point [{batch}, {}]",
                self.obs_dim,
                self.n_actions
            );
        }
        Ok(out.f_to_device_(self.device, Kind::Float, false, false)?)
    }

    /// The underlying TorchScript module.
    pub fn module(&self) -> &CModule {
        &self.module
    }

    /// The file the module was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The device the module runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Observation width the module was checked against.
    pub fn obs_dim(&self) -> i64 {
        self.obs_dim
    }

    /// Number of actions (Q-values per observation) the module was checked against.
    pub fn n_actions(&self) -> i64 {
        self.n_actions
    }
}

/// Cheap checks before handing `path` to libtorch, whose own messages for these cases are
/// obscure: exists, is a non-empty file, is a zip archive, and is not cut short.
fn check_archive_file(path: &Path) -> std::result::Result<(), String> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("the file does not exist".to_owned())
        }
        Err(e) => return Err(format!("cannot access it ({e})")),
    };
    if meta.is_dir() {
        return Err("it is a directory, not a file".to_owned());
    }
    let len = meta.len();
    if len == 0 {
        return Err("the file is empty (0 bytes)".to_owned());
    }
    let mut file = File::open(path).map_err(|e| format!("cannot open it ({e})"))?;
    let mut head = Vec::with_capacity(256);
    (&mut file)
        .take(256)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read it ({e})"))?;
    if !head.starts_with(b"PK\x03\x04") {
        return Err(match std::str::from_utf8(&head) {
            Ok(text) if !text.contains('\0') => {
                let first_line = text.lines().next().unwrap_or("").trim();
                let shown: String = first_line.chars().take(60).collect();
                format!("it is a text file (it begins with {shown:?}), not a TorchScript archive")
            }
            _ => format!("it is not a TorchScript archive (no zip header; {len} bytes)"),
        });
    }
    // A zip archive ends with an end-of-central-directory record ("PK\x05\x06") within its last
    // 22 + 65535 bytes; a file cut short during a copy or a crashed write has none.
    let tail_len = len.min(22 + 65535);
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(len - tail_len))
        .and_then(|_| file.take(tail_len).read_to_end(&mut tail))
        .map_err(|e| format!("cannot read it ({e})"))?;
    if !tail.windows(4).any(|w| w == b"PK\x05\x06") {
        return Err(format!(
            "it is truncated ({len} bytes, and the zip archive's closing directory is missing)"
        ));
    }
    Ok(())
}

/// The useful part of a libtorch error: the innermost `...Error: ...` line of a TorchScript
/// traceback, or else the first line, without the C++ backtrace.
fn torch_message(err: &TchError) -> String {
    let full = err.to_string();
    let text = full.split("Exception raised from").next().unwrap_or(&full);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .rev()
        .find(|l| l.contains("Error: "))
        .or(lines.first())
        .map_or_else(|| full.clone(), |l| (*l).to_owned())
}

fn path_to_cstring(path: &Path) -> Result<CString> {
    let s = path
        .to_str()
        .ok_or_else(|| anyhow!("path {} is not valid UTF-8", path.display()))?;
    CString::new(s).with_context(|| format!("path {} contains a NUL byte", path.display()))
}

/// Takes ownership of an error message from the shim.
fn take_error(error: *mut c_char) -> String {
    if error.is_null() {
        return "unknown error (no message)".to_owned();
    }
    // SAFETY: the shim returns a NUL-terminated malloc'd string, released exactly once here.
    let msg = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { ffi::qnet_free_string(error) };
    msg.split("Exception raised from")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn is_float(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Half | Kind::Float | Kind::Double | Kind::BFloat16
    )
}
