#!/usr/bin/env bash
# The CUDA check of issue 5 in one command, on a Linux box with an NVIDIA GPU and PyTorch:
#   ./scripts/gpu-check.sh            (builds qnet against that PyTorch's libtorch)
#   QNET_BIN=path/to/qnet ./scripts/gpu-check.sh   (uses a binary built elsewhere for it)
# It (1) builds qnet against the installed torch (tch 0.24 for torch 2.11, 0.26 for 2.13;
# no tch release on crates.io targets 2.12), (2) trains configs/cartpole.yaml and configs/cartpole-large.yaml with
# --device cuda and shows the device summary.json records and the GPU memory in use,
# (3) prints gradient updates/s and env steps/s on CPU and CUDA for both configs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python3}
out=${OUT:-runs/gpu-check}
mkdir -p "$out"

torch_version=$("$python" -c 'import torch; print(torch.__version__.split("+")[0])')
"$python" -c 'import torch; assert torch.cuda.is_available(), "PyTorch sees no CUDA device"'
echo "gpu-check: torch $torch_version, $("$python" -c 'import torch; print(torch.cuda.get_device_name(0))')"

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
  LIBTORCH=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))') \
    CARGO_TARGET_DIR=target/gpu-check cargo build --release
  QNET_BIN=target/gpu-check/release/qnet
fi

gpu_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null || echo "nvidia-smi unavailable"; }

for config in cartpole cartpole-large; do
  run=$out/$config-cuda
  rm -rf "$run"
  args=(train --config "configs/$config.yaml" --device cuda --out "$run" --quiet)
  [[ $config == cartpole-large ]] && args+=(--set train.total_env_steps=200000)
  "$QNET_BIN" "${args[@]}" &
  pid=$!
  sleep 5
  echo "gpu-check: $config: GPU memory in use while training: $(gpu_memory)"
  wait $pid
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
