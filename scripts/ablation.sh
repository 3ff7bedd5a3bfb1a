#!/usr/bin/env bash
# The default experiment's ablation (docs/results.md): the default; the default with each of
# its learner options switched off (no-n-step, no-lr-decay, no-dueling), with gamma 0.99, with
# a peak learning rate of 2e-3 (lr-2e-3), with gamma 0.99 and minibatches of 256
# (gamma-0.99-batch-256), and configs/cartpole-fast.yaml (cartpole-fast), each trained to its
# full budget (no early stopping) on seeds 0-19; the default again on seeds 20-39 and 40-59;
# then qnet report against the default.
#   ./scripts/ablation.sh [OUT [--set KEY=VALUE ...]]   (default OUT: runs/ablation)
# The --set overrides apply to every variant (e.g. --set train.total_env_steps=100000). 200 runs
# of 50,000 steps, one worker per core. Run again, it skips the runs already finished.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${1:-runs/ablation}
shift $(($# > 0 ? 1 : 0))
common=("$@")
qnet=target/release/qnet
[[ -x $qnet ]] || cargo build --release
config=configs/cartpole.yaml
variant() { # name, then --set overrides
  local name=$1
  shift
  "$qnet" sweep --quiet --config "$config" --seeds 20 "${seeds[@]}" --out "$out/$name" \
    --set eval.stop_when_solved=false --set "experiment=$name" "${common[@]}" "$@"
}
seeds=(--first-seed 0)
variant default
variant no-n-step --set agent.n_step=1
variant no-dueling --set network.dueling=false
variant no-lr-decay --set optimizer.lr_schedule=constant
variant gamma-0.99 --set agent.gamma=0.99
variant lr-2e-3 --set optimizer.lr=2.0e-3
variant gamma-0.99-batch-256 --set agent.gamma=0.99 --set replay.batch_size=256
# Evaluated as often as the default (its own file says every 500 steps; training is the same).
config=configs/cartpole-fast.yaml variant cartpole-fast --set eval.every=1000
seeds=(--first-seed 20)
variant default-seeds-20-39
seeds=(--first-seed 40)
variant default-seeds-40-59
"$qnet" report "$out" --baseline default
