#!/usr/bin/env bash
# Sets up what qnet needs to build and test, and nothing that is already there:
#   - a project-local Python venv (.venv) holding PyPI's torch==2.13.0, the libtorch tch 0.26 expects,
#     plus numpy and safetensors for the Python interop checks;
#   - .cargo/config.toml pointing the build at that libtorch, so plain `cargo build|test|run` work.
# Idempotent: a second run takes well under a second.
# Bring your own libtorch by exporting LIBTORCH=/path/to/libtorch or LIBTORCH_USE_PYTORCH=1 (with a
# Python env whose torch matches tch): the environment wins over .cargo/config.toml.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

die() { echo "setup: $*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found; install Rust (https://rustup.rs) first"
python=${PYTHON:-python3}
command -v "$python" >/dev/null || die "$python not found; install Python >= 3.10 with the venv module"

venv=.venv

# Measured on a fresh install (df sampled every 0.5 s): pip holds the downloaded wheels (about
# 2.7 GB) in its temp directory while it unpacks them into the venv (5.3 GB), 8.0 GB at the peak;
# building then takes about 2.7 GB of target/. Check before pip starts rather than let it stop
# half-way with "No space left on device".
free_mb() { df -Pk "$1" | awk 'NR==2 { print int($4 / 1024) }'; }
check_space() {
  local tmp=${TMPDIR:-/tmp} venv_mb=5600 tmp_mb=2900 build_mb=2900
  local here_free tmp_free
  here_free=$(free_mb "$root") || die "could not read the free disk space of $root (df -Pk)"
  tmp_free=$(free_mb "$tmp") || die "could not read the free disk space of $tmp (df -Pk)"
  if [[ $(stat -c %d "$root") == "$(stat -c %d "$tmp")" ]]; then
    local need=$((venv_mb + tmp_mb + build_mb))
    ((here_free >= need)) || die "$root has ${here_free} MB of disk free; installing into $venv needs about $((venv_mb + tmp_mb)) MB there (${tmp_mb} MB of it pip's downloads in $tmp, on the same file system) and building about ${build_mb} MB more: free some space, or set TMPDIR to a larger file system"
  else
    ((here_free >= venv_mb + build_mb)) || die "$root has ${here_free} MB of disk free; $venv needs about ${venv_mb} MB and building about ${build_mb} MB more: free some space there"
    ((tmp_free >= tmp_mb)) || die "$tmp has ${tmp_free} MB of disk free; pip needs about ${tmp_mb} MB there for its downloads: free some space, or set TMPDIR to a larger file system"
  fi
}
stamp=$venv/.qnet-requirements
if [[ ! -f $stamp ]] || ! cmp -s scripts/requirements.txt "$stamp"; then
  # A first install (or one a full disk broke off) needs the space; changing a pin in a complete venv does not.
  compgen -G "$venv/lib/python3*/site-packages/torch/lib/libtorch_cpu.so" >/dev/null || check_space
  if [[ ! -x $venv/bin/python ]]; then
    echo "setup: creating $venv"
    "$python" -m venv "$venv" || die "could not create a venv with $python (Debian/Ubuntu: apt-get install python3-venv)"
  fi
  echo "setup: installing torch==2.13.0 (libtorch for tch), numpy, safetensors, tensorboard, rliable, and Gymnasium with its Box2D and MinAtar environments into $venv (about 5.4 GB, once)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt \
    || die "pip install -r scripts/requirements.txt failed (see above)"
  cp scripts/requirements.txt "$stamp"
fi

site=$("$venv/bin/python" - <<'PY'
import pathlib, sysconfig
print(pathlib.Path(sysconfig.get_paths()["purelib"]).resolve())
PY
)
torch_dir=$site/torch
[[ -f $torch_dir/lib/libtorch_cpu.so || -f $torch_dir/lib/libtorch_cpu.dylib ]] \
  || die "$torch_dir holds no libtorch; remove $venv and run this script again"
rel=${torch_dir#"$root"/}

mkdir -p .cargo
config=".cargo/config.toml"
want="# Written by scripts/setup.sh; LIBTORCH or LIBTORCH_USE_PYTORCH in the environment take precedence.
[env]
LIBTORCH = { value = \"$rel\", relative = true }"
if [[ ! -f $config ]] || [[ "$(cat "$config")" != "$want" ]]; then
  printf '%s\n' "$want" > "$config.tmp" && mv "$config.tmp" "$config"
  echo "setup: wrote $config (LIBTORCH=$rel)"
fi
if [[ -n ${LIBTORCH:-} || -n ${LIBTORCH_USE_PYTORCH:-} ]]; then
  echo "setup: building against your own libtorch (LIBTORCH=${LIBTORCH:-} LIBTORCH_USE_PYTORCH=${LIBTORCH_USE_PYTORCH:-})"
fi
