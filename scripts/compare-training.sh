#!/usr/bin/env bash
# Usage: scripts/compare-training.sh OLD_QNET NEW_QNET OUT_DIR
#
# Trains the same five runs with two qnet binaries and checks that they are byte-identical:
# metrics.csv without its wall_seconds column, and model.safetensors. Run it before and after
# any change that should not move the numbers (see CONTRIBUTING.md); keep a copy of the old
# binary (e.g. `cp target/release/qnet /tmp/qnet-old` before the change). Runs already in
# OUT_DIR are reused, so the old binary's runs are trained once. Bit-for-bit comparisons hold
# on one machine (MKL may choose other kernels on another CPU).
set -uo pipefail
if (($# != 3)); then
  sed -n '2,9s/^# \{0,1\}//p' "$0" >&2
  exit 2
fi
old=$1 new=$2 out=$3
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p "$out"
runs=(
  "default:--config configs/cartpole.yaml --seed 3"
  "fast:--config configs/cartpole-fast.yaml --seed 1"
  "tutorial:--config configs/tutorial.yaml --seed 2"
  "sb3-zoo:--config configs/sb3-zoo.yaml --seed 4"
  "per-nstep-dueling:--config configs/cartpole.yaml --seed 5 --set replay.prioritized=true --set agent.n_step=3 --set network.dueling=true"
)
without_wall_seconds() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "wall_seconds") w = i }
           { line = ""; for (i = 1; i <= NF; i++) if (i != w) line = line (line == "" ? "" : ",") $i; print line }' "$1"
}
status=0
for run in "${runs[@]}"; do
  name=${run%%:*}
  read -r -a args <<< "${run#*:}"
  for which in old new; do
    bin=$old
    [[ $which == new ]] && bin=$new
    dir=$out/$name-$which
    [[ -f $dir/model.safetensors ]] && continue
    rm -rf "$dir"
    "$bin" train "${args[@]}" --device cpu --quiet --out "$dir" > "$dir.log" 2>&1 \
      || { echo "$name: $which binary failed (see $dir.log)"; status=1; continue 2; }
  done
  if cmp -s <(without_wall_seconds "$out/$name-old/metrics.csv") <(without_wall_seconds "$out/$name-new/metrics.csv") \
    && cmp -s "$out/$name-old/model.safetensors" "$out/$name-new/model.safetensors"; then
    echo "$name: identical ($(($(wc -l < "$out/$name-new/metrics.csv") - 1)) rows)"
  else
    echo "$name: DIFFERENT"
    status=1
  fi
done
exit $status
