//! Makes the qnet binaries self-contained against the libtorch they were linked with.
//!
//! torch-sys (`links = "tch"`) tells us where that libtorch lives through
//! `DEP_TCH_LIBTORCH_LIB`. From it we
//! - set an rpath, so `target/*/qnet` runs without LD_LIBRARY_PATH;
//! - force-link `libtorch_cuda` when it exists: rustc passes `--as-needed`, and a binary that
//!   references no CUDA symbol would otherwise drop it, so `tch::Cuda::is_available()`
//!   reports false even on a GPU box;
//! - compile `csrc/torchscript_export.cpp`, the C++ shim behind `qnet::export` (TorchScript
//!   modules with real, `nn.Sequential`-named parameters), against that libtorch's headers.

use std::env;
use std::path::{Path, PathBuf};

const SETUP_HINT: &str =
    "run ./scripts/setup.sh (README.md, first lines) to install libtorch into .venv, \
or export LIBTORCH=/path/to/libtorch";

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Some(lib_dir) = env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        fail("torch-sys did not report where libtorch is (DEP_TCH_LIBTORCH_LIB is unset)");
    };
    if !lib_dir.join("libtorch_cpu.so").exists() && !lib_dir.join("libtorch_cpu.dylib").exists() {
        fail(&format!("no libtorch_cpu library in {}", lib_dir.display()));
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    // For the test that checks the CUDA force-link below took effect.
    println!("cargo:rustc-env=QNET_LIBTORCH_LIB={}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    compile_shim(&lib_dir);
}

/// Builds the C++ shims (TorchScript export, fused Adam) into one static library. Cargo passes it to the linker before the libtorch
/// libraries that torch-sys (a dependency) emits, which is the order static archives need.
fn compile_shim(lib_dir: &Path) {
    const SHIM: &str = "csrc/torchscript_export.cpp";
    const FUSED_ADAM: &str = "csrc/fused_adam.cpp";
    println!("cargo:rerun-if-changed={SHIM}");
    println!("cargo:rerun-if-changed={FUSED_ADAM}");
    println!("cargo:rerun-if-changed=csrc/ffi_error.h");
    let Some(root) = lib_dir.parent() else {
        fail(&format!("{} has no parent directory", lib_dir.display()));
    };
    let include = root.join("include");
    if !include.join("torch").join("script.h").exists() {
        fail(&format!(
            "no C++ headers (torch/script.h) in {}",
            include.display()
        ));
    }
    // Same default and override as torch-sys, so both C++ objects agree on std::string's ABI.
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let cxx11_abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .file(SHIM)
        .file(FUSED_ADAM)
        // libtorch's own headers are not warning-clean; treat them as system headers.
        .flag("-isystem")
        .flag(include.display().to_string())
        .flag("-isystem")
        .flag(include.join("torch/csrc/api/include").display().to_string())
        .flag("-std=c++20")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"))
        .warnings(true)
        .compile("qnet_cxx");
}

fn fail(problem: &str) -> ! {
    eprintln!("error: qnet cannot find libtorch: {problem}.\n{SETUP_HINT}");
    std::process::exit(1);
}
