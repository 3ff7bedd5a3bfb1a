//! Exporting a trained Q-network for use outside qnet: `model.pt` and `model.safetensors`
//! (written here and in [`crate::artifacts::safetensors`]; read back by
//! [`crate::artifacts::safetensors::load_safetensors`] and, on request,
//! [`crate::artifacts::torchscript`]).
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
use std::os::raw::c_char;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tch::Tensor;

use crate::artifacts::safetensors::save_safetensors;
use crate::learn::qfunction::{ModuleDef, NetworkSpec};
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
    let module = ModuleArrays::new(&spec.torchscript_modules(), &params, extra)?;
    commit_atomic(path, |tmp| module.save(tmp))
}

/// Strings as the shim reads them: C copies and the array of pointers into them.
struct CStringArray {
    /// The copies; moving the vector leaves their bytes, and so `pointers`, in place.
    _owned: Vec<CString>,
    pointers: Vec<*const c_char>,
}

impl CStringArray {
    /// `texts` as C strings; `what` names them in the error about a NUL byte.
    fn new<'t>(texts: impl Iterator<Item = &'t str>, what: &str) -> Result<Self> {
        let owned = texts
            .map(|text| c_string(text, what))
            .collect::<Result<Vec<_>>>()?;
        let pointers = owned.iter().map(|s| s.as_ptr()).collect();
        Ok(Self {
            _owned: owned,
            pointers,
        })
    }
}

/// A network as the arrays `ffi::qnet_save_module` reads: its modules, its named parameters
/// and the archive's extra files.
struct ModuleArrays<'a> {
    module_paths: CStringArray,
    module_classes: CStringArray,
    module_sources: CStringArray,
    param_names: CStringArray,
    params: &'a [(String, Tensor)],
    extra_keys: CStringArray,
    extra: &'a [(String, String)],
}

impl<'a> ModuleArrays<'a> {
    fn new(
        modules: &[ModuleDef],
        params: &'a [(String, Tensor)],
        extra: &'a [(String, String)],
    ) -> Result<Self> {
        Ok(Self {
            module_paths: CStringArray::new(
                modules.iter().map(|m| m.path.as_str()),
                "module path",
            )?,
            module_classes: CStringArray::new(modules.iter().map(|m| m.class), "module class")?,
            module_sources: CStringArray::new(
                modules.iter().map(|m| m.source.as_str()),
                "module source",
            )?,
            param_names: CStringArray::new(
                params.iter().map(|(n, _)| n.as_str()),
                "parameter name",
            )?,
            params,
            extra_keys: CStringArray::new(
                extra.iter().map(|(k, _)| k.as_str()),
                "extra file name",
            )?,
            extra,
        })
    }

    /// Has the shim write the module to `path`.
    fn save(&self, path: &Path) -> Result<()> {
        let c_path = path_to_cstring(path)?;
        let tensors: Vec<_> = self.params.iter().map(|(_, t)| t.as_ptr()).collect();
        // Extra files are bytes with a length, not C strings: they may hold NUL bytes.
        let extra_values: Vec<*const c_char> = self
            .extra
            .iter()
            .map(|(_, v)| v.as_ptr().cast::<c_char>())
            .collect();
        let extra_value_lens: Vec<usize> = self.extra.iter().map(|(_, v)| v.len()).collect();
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: every pointer refers to data (`self`, the parameters and extra files it
        // borrows, and the vectors above) that outlives the call; the C++ side copies what it
        // keeps and catches all exceptions.
        let rc = unsafe {
            ffi::qnet_save_module(
                c_path.as_ptr(),
                self.module_paths.pointers.len(),
                self.module_paths.pointers.as_ptr(),
                self.module_classes.pointers.as_ptr(),
                self.module_sources.pointers.as_ptr(),
                tensors.len(),
                self.param_names.pointers.as_ptr(),
                tensors.as_ptr(),
                self.extra_keys.pointers.as_ptr(),
                extra_values.as_ptr(),
                extra_value_lens.as_ptr(),
                self.extra.len(),
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
    }
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

/// `path` as libtorch takes it: its bytes, UTF-8 or not, as a C string.
fn path_to_cstring(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains a NUL byte", path.display()))
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
