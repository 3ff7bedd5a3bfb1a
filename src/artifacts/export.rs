//! Exporting a trained Q-network for use outside qnet, and loading it back.
//!
//! Two files, both with the parameter names of the PyTorch module the network's
//! [`NetworkSpec`] describes (`0.weight`, `0.bias`, `2.weight`, ... for a plain MLP as
//! `torch.nn.Sequential` names it; `trunk.0.weight`, ..., `value.*`, `advantage.*` for a
//! dueling head):
//! - `model.pt`: a TorchScript module (`torch.jit.load("model.pt")` in Python, no qnet code)
//!   with real parameters, so `m.state_dict()` loads into that module; its metadata is
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
//! tracing through tch turns the weights into constants. The shim knows no network: it
//! assembles the modules, parameters and `forward` sources the spec lists.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::raw::c_char;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use tch::{CModule, Device, Kind, TchError, Tensor};

use crate::artifacts::safetensors::save_safetensors;
use crate::learn::qfunction::NetworkSpec;
use crate::platform::atomic::commit_atomic;

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
        pub fn qnet_save_module(
            path: *const c_char,
            n_modules: usize,
            module_paths: *const *const c_char,
            module_classes: *const *const c_char,
            module_sources: *const *const c_char,
            n_params: usize,
            param_names: *const *const c_char,
            params: *const *const C_tensor,
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

/// The TorchScript extra files carrying `metadata`: one, [`TORCHSCRIPT_METADATA_FILE`], with
/// the map as a JSON object of strings. Pass the result to [`save_torchscript`]; pass the same
/// map to [`save_safetensors`].
pub fn torchscript_extra_files(
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>> {
    let json = serde_json::to_string_pretty(metadata).context("cannot encode metadata as JSON")?;
    Ok(vec![(TORCHSCRIPT_METADATA_FILE.to_owned(), json)])
}

/// `text` as a C string; `what` names it in the error.
fn c_string(text: &str, what: &str) -> Result<CString> {
    CString::new(text).with_context(|| format!("{what} {text:?} contains a NUL byte"))
}

/// Writes the network `spec` describes, with parameters `flat`, as a TorchScript module to
/// `path` (atomically: a temporary file in the same directory, fsynced, renamed over `path`).
/// `extra` becomes the archive's extra files (`name -> content`); see
/// [`torchscript_extra_files`].
pub fn save_torchscript(
    path: &Path,
    spec: &NetworkSpec,
    flat: &Tensor,
    extra: &[(String, String)],
) -> Result<()> {
    let params = spec
        .named_parameters(flat)
        .with_context(|| format!("cannot export {}", path.display()))?;
    let modules = spec.torchscript_modules();
    let strings = |texts: Vec<&str>, what: &str| -> Result<Vec<CString>> {
        texts.into_iter().map(|t| c_string(t, what)).collect()
    };
    let module_paths = strings(
        modules.iter().map(|m| m.path.as_str()).collect(),
        "module path",
    )?;
    let module_classes = strings(modules.iter().map(|m| m.class).collect(), "module class")?;
    let module_sources = strings(
        modules.iter().map(|m| m.source.as_str()).collect(),
        "module source",
    )?;
    let param_names = strings(
        params.iter().map(|(n, _)| n.as_str()).collect(),
        "parameter name",
    )?;
    let extra_keys = strings(
        extra.iter().map(|(k, _)| k.as_str()).collect(),
        "extra file name",
    )?;
    let pointers = |strings: &[CString]| -> Vec<*const c_char> {
        strings.iter().map(|s| s.as_ptr()).collect()
    };
    let (path_ptrs, class_ptrs, source_ptrs) = (
        pointers(&module_paths),
        pointers(&module_classes),
        pointers(&module_sources),
    );
    let (name_ptrs, key_ptrs) = (pointers(&param_names), pointers(&extra_keys));
    let tensor_ptrs: Vec<_> = params.iter().map(|(_, t)| t.as_ptr()).collect();
    let extra_value_ptrs: Vec<*const c_char> = extra
        .iter()
        .map(|(_, v)| v.as_ptr().cast::<c_char>())
        .collect();
    let extra_value_lens: Vec<usize> = extra.iter().map(|(_, v)| v.len()).collect();

    commit_atomic(path, |tmp| {
        let c_path = path_to_cstring(tmp)?;
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer refers to data (`params`, `modules`, `extra` and the vectors
        // above) that outlives the call; the C++ side copies what it keeps and catches all
        // exceptions.
        let rc = unsafe {
            ffi::qnet_save_module(
                c_path.as_ptr(),
                path_ptrs.len(),
                path_ptrs.as_ptr(),
                class_ptrs.as_ptr(),
                source_ptrs.as_ptr(),
                tensor_ptrs.len(),
                name_ptrs.as_ptr(),
                tensor_ptrs.as_ptr(),
                key_ptrs.as_ptr(),
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

/// Writes `<dir>/<stem>.pt` and `<dir>/<stem>.safetensors` (e.g. [`MODEL_PT`] and
/// [`MODEL_SAFETENSORS`] for the stem `model`) of the network `spec` describes with
/// parameters `flat`, both carrying `metadata`.
pub fn save_model_files(
    dir: &Path,
    stem: &str,
    spec: &NetworkSpec,
    flat: &Tensor,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    save_torchscript(
        &dir.join(format!("{stem}.pt")),
        spec,
        flat,
        &torchscript_extra_files(metadata)?,
    )?;
    save_safetensors(
        &dir.join(format!("{stem}.safetensors")),
        spec,
        flat,
        metadata,
    )
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
