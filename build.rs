//! Makes the qnet binaries self-contained against the libtorch they were linked with.
//!
//! torch-sys (`links = "tch"`) tells us where that libtorch lives through
//! `DEP_TCH_LIBTORCH_LIB`. From it we
//! - set an rpath, so `target/*/qnet` runs without LD_LIBRARY_PATH;
//! - force-link `libtorch_cuda` when it exists: rustc passes `--as-needed`, and a binary that
//!   references no CUDA symbol would otherwise drop it, so `tch::Cuda::is_available()`
//!   reports false even on a GPU box.

use std::env;
use std::path::PathBuf;

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
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

fn fail(problem: &str) -> ! {
    eprintln!("error: qnet cannot find libtorch: {problem}.\n{SETUP_HINT}");
    std::process::exit(1);
}
