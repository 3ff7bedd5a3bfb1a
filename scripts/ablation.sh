#!/usr/bin/env bash
# The default experiment's ablation (README "Results"): the default, the default with each of
# its new learner options switched off, and the previous default (all of them off), each trained
# to its full budget (no early stopping) on seeds 0-19, and the default on seeds 20-39 it was
# not tuned on; then qnet report against the default.
#   ./scripts/ablation.sh [OUT [--set KEY=VALUE ...]]   (default OUT: runs/ablation)
# The --set overrides apply to every variant (e.g. --set train.total_env_steps=100000). It took
# 52 minutes here (140 runs of 50,000 steps, two at a time, beside other work on the 2 cores).
# Run again, it skips the runs already finished.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-runs/ablation}
shift $(($# > 0 ? 1 : 0))
common=("$@")
qnet=target/release/qnet
[[ -x $qnet ]] || cargo build --release
variant() { # name, then --set overrides
  local name=$1
  shift
  "$qnet" sweep --quiet --seeds 20 "${seeds[@]}" --out "$out/$name" \
    --set eval.stop_when_solved=false --set "experiment=$name" "${common[@]}" "$@"
}
seeds=(--first-seed 0)
variant default
variant no-n-step --set agent.n_step=1
variant no-dueling --set network.dueling=false
variant no-lr-decay --set optimizer.lr_schedule=constant
variant batch-128 --set replay.batch_size=128
variant previous-default --set agent.n_step=1 --set network.dueling=false \
  --set optimizer.lr_schedule=constant --set replay.batch_size=128
seeds=(--first-seed 20)
variant default-seeds-20-39
"$qnet" report "$out" --baseline default
