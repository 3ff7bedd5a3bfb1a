#!/usr/bin/env bash
# The CUDA check in one command, on a Linux box with an NVIDIA GPU and PyTorch:
#   ./scripts/gpu-check.sh            (builds qnet against that PyTorch's libtorch)
#   QNET_BIN=path/to/qnet ./scripts/gpu-check.sh   (a binary built elsewhere, see --build-only)
# It (1) builds qnet against the installed torch (tch 0.24 for torch 2.11, 0.26 for 2.13;
# no tch release on crates.io targets 2.12), (2) trains configs/cartpole.yaml and
# configs/cartpole-large.yaml with --device cuda, checks that summary.json records CUDA and
# prints the peak GPU memory qnet held, (3) prints gradient updates/s and env steps/s on CPU
# and CUDA for both configs.
# A GPU box without cargo or crates.io: on a machine that has them, with a Python holding the
# box's torch version (CUDA not needed there), run
#   PYTHON=/path/to/venv/bin/python ./scripts/gpu-check.sh --build-only
# and copy target/gpu-check/release/qnet over; it runs against the box's own libtorch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
out=${OUT:-runs/gpu-check}
mkdir -p "$out"

build_only=false
[[ ${1:-} == --build-only ]] && build_only=true

torch_version=$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')
if ! $build_only; then
  "$python" -c 'import torch; assert torch.cuda.is_available(), "PyTorch sees no CUDA device"'
  echo "gpu-check: torch $torch_version, $("$python" -c 'import torch; print(torch.cuda.get_device_name(0))')"
fi

if [[ -z ${QNET_BIN:-} ]]; then
  case $torch_version in
    2.11.*) tch=0.24.0 ;;
    2.13.*) tch=0.26.0 ;;
    *) echo "gpu-check: torch $torch_version has no matching tch release in qnet's range" >&2; exit 1 ;;
  esac
  # Pick the tch release for this torch, and put Cargo.lock back afterwards.
  cp Cargo.lock "$out/Cargo.lock.orig"
  trap 'cp "$out/Cargo.lock.orig" Cargo.lock' EXIT
  cargo update -p tch --precise "$tch" && cargo update -p torch-sys --precise "$tch"
  # The libtorch inside this very Python's torch package (not whichever python is on PATH).
  # Stripped of debug info: the binary stays small enough to carry to another machine.
  LIBTORCH=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') \
    CARGO_TARGET_DIR=target/gpu-check CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo build --release
  QNET_BIN=target/gpu-check/release/qnet
fi
if $build_only; then
  echo "gpu-check: built $QNET_BIN against torch $torch_version"
  exit 0
fi

# A binary built on another machine carries an rpath to that machine's libtorch: run it against
# this Python's (same torch version) instead. LD_LIBRARY_PATH takes precedence over RUNPATH.
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
"$QNET_BIN" --version

# Peak GPU memory (MiB) that process $1 holds, polled every 0.2 s until it exits.
peak_gpu_memory() {
  local pid=$1 peak=0 used
  while kill -0 "$pid" 2>/dev/null; do
    used=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null \
      | awk -F', *' -v pid="$pid" '$1 == pid { print $2 }')
    [[ -n $used && $used -gt $peak ]] && peak=$used
    sleep 0.2
  done
  echo "$peak"
}

for config in cartpole cartpole-large; do
  run=$out/$config-cuda
  rm -rf "$run"
  args=(train --config "configs/$config.yaml" --device cuda --out "$run" --quiet)
  [[ $config == cartpole-large ]] && args+=(--set train.total_env_steps=200000)
  "$QNET_BIN" "${args[@]}" &
  pid=$!
  peak=$(peak_gpu_memory "$pid")
  wait "$pid"
  echo "gpu-check: $config: peak GPU memory held by qnet (nvidia-smi): $peak MiB"
  [[ $peak -gt 0 ]] || { echo "gpu-check: qnet held no GPU memory" >&2; exit 1; }
  "$python" - "$run/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"gpu-check: {sys.argv[1]}: device {s['device']}, {s['env_steps']} env steps, "
      f"{s['gradient_updates']} updates in {s['train_seconds']:.1f} s, final eval {s['final_eval_mean']:.1f}")
assert s["device"].startswith("cuda"), "summary.json does not say cuda"
PY
done

for config in cartpole cartpole-large; do
  for device in cpu cuda; do
    echo "gpu-check: throughput $config on $device"
    "$QNET_BIN" bench throughput --config "configs/$config.yaml" --device "$device" --seconds 5 | tail -1
  done
done
