#!/usr/bin/env bash
# Checks that two qnet binaries train byte-identically on the CPU: the check before a change to
# the learner that should not change its arithmetic (a refactor, a faster kernel).
#   scripts/byte-identity.sh BEFORE_QNET [AFTER_QNET]     (AFTER default: target/release/qnet)
# Trains each config below with both binaries, same seed and budget, and compares metrics.csv
# without its wall_seconds column, and the tensor bytes of model.safetensors (its header holds
# metadata such as qnet's version, which a version bump changes). Exits 1 on a difference.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
before=${1:?usage: scripts/byte-identity.sh BEFORE_QNET [AFTER_QNET]}
after=${2:-target/release/qnet}
work=$(mktemp -d "${TMPDIR:-/tmp}/qnet-identity.XXXXXX")
trap 'rm -rf "$work"' EXIT

# name|config and overrides: each learner path and each environment at least once, on short
# budgets.
cases=(
  "default|--config configs/cartpole.yaml --set eval.stop_when_solved=false --set train.total_env_steps=15000"
  "prioritized|--config configs/cartpole.yaml --set replay.prioritized=true --set eval.stop_when_solved=false --set train.total_env_steps=15000"
  "per-nstep-dueling|--config configs/cartpole.yaml --set replay.prioritized=true --set agent.n_step=3 --set network.dueling=true --set eval.stop_when_solved=false --set train.total_env_steps=15000"
  "plain-head|--config configs/cartpole-fast.yaml --set eval.stop_when_solved=false --set train.total_env_steps=15000"
  "huber-256|--config configs/sb3-zoo.yaml --set train.total_env_steps=5000"
  "reference|--config configs/cartpole.yaml --set network.implementation=reference --set eval.stop_when_solved=false --set train.total_env_steps=5000"
  "tutorial|--config configs/tutorial.yaml --set train.tutorial.iterations=5 --set eval.every=0"
  "acrobot|--config configs/acrobot.yaml --set eval.stop_when_solved=false --set train.total_env_steps=10000"
  "mountaincar|--config configs/mountaincar.yaml --set eval.stop_when_solved=false --set train.total_env_steps=10000"
)

# metrics.csv without the wall_seconds column.
without_wall_time() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "wall_seconds") skip = i }
    { line = ""; for (i = 1; i <= NF; i++) if (i != skip) line = line (line == "" ? "" : ",") $i; print line }' "$1"
}

# model.safetensors past its header: the tensors' bytes (a u64 header length, then the header).
tensor_bytes() {
  local header
  header=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  tail -c +$((8 + header + 1)) "$1"
}

failed=0
for case in "${cases[@]}"; do
  name=${case%%|*}
  read -r -a args <<<"${case#*|}"
  for side in before after; do
    bin=$before
    [[ $side == after ]] && bin=$after
    "$bin" train "${args[@]}" --device cpu --seed 3 --out "$work/$name-$side" --quiet >/dev/null
  done
  if cmp -s <(without_wall_time "$work/$name-before/metrics.csv") <(without_wall_time "$work/$name-after/metrics.csv") \
    && cmp -s <(tensor_bytes "$work/$name-before/model.safetensors") <(tensor_bytes "$work/$name-after/model.safetensors"); then
    echo "identical: $name"
  else
    echo "DIFFERENT: $name (metrics.csv without wall_seconds, or the tensors of model.safetensors)"
    failed=1
  fi
done
exit $failed
