//! Makes the qnet binaries self-contained against the libtorch they were linked with.
//!
//! torch-sys (`links = "tch"`) tells us where that libtorch lives through
//! `DEP_TCH_LIBTORCH_LIB`. From it we
//! - set an rpath, so `target/*/qnet` runs without LD_LIBRARY_PATH;
//! - force-link `libtorch_cuda` when it exists: rustc passes `--as-needed`, and a binary that
//!   references no CUDA symbol would otherwise drop it, so `tch::Cuda::is_available()`
//!   reports false even on a GPU box;
//! - compile `csrc/torchscript_export.cpp`, the C++ shim behind `qnet::artifacts::export` (TorchScript
//!   modules with real, `nn.Sequential`-named parameters), against that libtorch's headers.

use std::collections::hash_map::DefaultHasher;
use std::env;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    record_git_commit();
}

/// Hands the checkout's commit to the crate as `QNET_GIT_COMMIT` (summary.json's provenance),
/// when qnet is built from a git checkout; rebuilt when HEAD moves (a commit or a checkout).
fn record_git_commit() {
    // `git rev-parse --git-path` finds HEAD and the refs in a worktree (whose `.git` is a
    // file) as in a plain checkout.
    let git_path = |name: &str| {
        Command::new("git")
            .args(["rev-parse", "--git-path", name])
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    };
    let Some(head) = git_path("HEAD") else {
        return;
    };
    let Ok(head_text) = fs::read_to_string(&head) else {
        return;
    };
    let mut watched = vec![head];
    watched.extend(git_path("packed-refs"));
    if let Some(name) = head_text.trim().strip_prefix("ref: ") {
        watched.extend(git_path(name));
    }
    // Only files that exist: cargo reruns a script on every build for a missing one.
    for path in watched.iter().filter(|path| path.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--verify", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if let Some(commit) =
        commit.filter(|c| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        println!("cargo:rustc-env=QNET_GIT_COMMIT={commit}");
    }
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
    let flags = [
        // libtorch's own headers are not warning-clean; treat them as system headers.
        "-isystem".to_owned(),
        include.display().to_string(),
        "-isystem".to_owned(),
        include.join("torch/csrc/api/include").display().to_string(),
        "-std=c++20".to_owned(),
        format!("-D_GLIBCXX_USE_CXX11_ABI={cxx11_abi}"),
    ];
    // The script also reruns when HEAD moves (record_git_commit); the shim, which takes a
    // minute to compile against libtorch's headers, is rebuilt only when its inputs changed.
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let mut hasher = DefaultHasher::new();
    for source in [SHIM, FUSED_ADAM, "csrc/ffi_error.h"] {
        fs::read(source).unwrap_or_default().hash(&mut hasher);
    }
    flags.hash(&mut hasher);
    let fingerprint = format!("{:016x}\n", hasher.finish());
    let stamp = out_dir.join("qnet_cxx.fingerprint");
    let fresh = out_dir.join("libqnet_cxx.a").exists()
        && fs::read_to_string(&stamp).is_ok_and(|old| old == fingerprint);
    if !fresh {
        let mut build = cc::Build::new();
        build
            .cpp(true)
            .file(SHIM)
            .file(FUSED_ADAM)
            .warnings(true)
            .cargo_metadata(false);
        for flag in &flags {
            build.flag(flag);
        }
        build.compile("qnet_cxx");
        if let Err(err) = fs::write(&stamp, &fingerprint) {
            println!("cargo:warning=cannot write {}: {err}", stamp.display());
        }
    }
    println!("cargo:rustc-link-search=native={}", out_dir.display());
    println!("cargo:rustc-link-lib=static=qnet_cxx");
    println!("cargo:rustc-link-lib=stdc++");
}

fn fail(problem: &str) -> ! {
    eprintln!("error: qnet cannot find libtorch: {problem}.\n{SETUP_HINT}");
    std::process::exit(1);
}
