#!/usr/bin/env bash
# qnet beside the systems its published figures are compared with, on this machine, in one run:
# for each comparison, qnet's figure, the peer's figure and how many times faster qnet is.
#   bench/compare.sh [env] [update] [sb3] [sb3-acrobot] [sb3-mountaincar] [tutorial] [keras]
#   (default: all seven)
# The peers run from bench/peers/ in venvs of their own, made here on first use from pinned
# requirements: bench/peers/.venv (requirements.txt) and, for Keras, bench/peers/.venv-keras
# (requirements-keras.txt). Where the project's .venv exists (./scripts/setup.sh makes it) they
# are layered on it, so torch is not installed a second time.
# Environment:
#   QNET_BIN        the qnet binary (default target/release/qnet; built with cargo if absent)
#   QNET_ENV_BENCH  an already built benches/env.rs binary (default: cargo bench --bench env)
#   QNET_VENV       the project venv to layer on (default .venv)
#   SEEDS           seeds of the SB3 comparison, on each side (default 2)
# docs/benchmarks.md says what each comparison measures, and holds this script's output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() { echo "compare: $*" >&2; exit 1; }
which=("$@")
((${#which[@]})) || which=(env update sb3 sb3-acrobot sb3-mountaincar tutorial keras)
for name in "${which[@]}"; do
  [[ $name =~ ^(env|update|sb3|sb3-acrobot|sb3-mountaincar|tutorial|keras)$ ]] \
    || die "unknown comparison '$name' (env, update, sb3, sb3-acrobot, sb3-mountaincar, tutorial, keras)"
done

qnet=${QNET_BIN:-target/release/qnet}
if [[ ! -x $qnet ]]; then
  [[ -z ${QNET_BIN:-} ]] || die "QNET_BIN=$qnet is not an executable"
  cargo build --release
fi
seeds=${SEEDS:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/qnet-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT

# peer_venv DIR REQUIREMENTS: a venv at DIR holding REQUIREMENTS, made or brought up to date.
peer_venv() {
  local venv=$1 requirements=$2 project_venv=${QNET_VENV:-.venv} base=${PYTHON:-python3}
  if [[ ! -x $venv/bin/python ]]; then
    [[ -x $project_venv/bin/python ]] && base=$project_venv/bin/python
    echo "compare: creating $venv"
    "$base" -m venv "$venv" || die "could not create $venv with $base"
    if [[ -x $project_venv/bin/python ]]; then
      # The project's packages go on the peers' path after their own: pip then finds the
      # pinned torch, numpy and gymnasium there and installs only what is missing.
      local project_site peer_site
      project_site=$("$project_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      peer_site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
      (cd "$project_site" && pwd -P) >"$peer_site/qnet-project-venv.pth"
    fi
  fi
  if ! cmp -s "$requirements" "$venv/.requirements"; then
    echo "compare: installing $requirements into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
      || die "pip install -r $requirements failed (see above)"
    cp "$requirements" "$venv/.requirements"
  fi
}
# Keras has a venv of its own: with TensorFlow installed, SB3's TensorBoard import loads it
# beside torch, and the process crashes.
peer_venv bench/peers/.venv bench/peers/requirements.txt
py=bench/peers/.venv/bin/python
[[ " ${which[*]} " == *" keras "* ]] && peer_venv bench/peers/.venv-keras bench/peers/requirements-keras.txt

# field FILE KEY: a value from a JSON file or the median of a JSON-lines file's KEY, over the
# rows where it is not null ("nan" if there are none).
field() {
  "$py" - "$1" "$2" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
values = [row[sys.argv[2]] for row in rows if row[sys.argv[2]] is not None]
print(statistics.median(values) if values else "nan")
PY
}

# solved FILE: "K of N", the rows of a JSON-lines file whose solved_at_step is not null.
solved() {
  "$py" - "$1" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
print(f"{sum(row['solved_at_step'] is not None for row in rows)} of {len(rows)}")
PY
}

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
rows=$work/rows.tsv
: >"$rows"
# row WHAT UNIT QNET PEER HIGHER_IS_BETTER
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$rows"; }

compare_env() {
  echo "compare: env: qnet's Rust CartPole, Acrobot and MountainCar (criterion, benches/env.rs) and Gymnasium's"
  local out=$work/criterion.txt args=(--warm-up-time 1 --measurement-time 3)
  if [[ -n ${QNET_ENV_BENCH:-} ]]; then
    CRITERION_HOME=$work/criterion "$QNET_ENV_BENCH" --bench "${args[@]}" >"$out" 2>&1
  else
    cargo bench --bench env -- "${args[@]}" >"$out" 2>&1
  fi
  "$py" - "$out" >"$work/qnet-env.json" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
scale = {"elem": 1, "Kelem": 1e3, "Melem": 1e6, "Gelem": 1e9}
found = {name: float(mid) * scale[unit] for name, mid, unit in re.findall(
    r"((?:cartpole|acrobot|mountaincar)_\S+)\s+time:\s+\[[^\]]*\]\s+thrpt:\s+\[\S+ \S+ (\S+) (\S+)/s", text)}
print(json.dumps({f"{env}_{kind}": found[f"{env}_{group}"] for env in ("cartpole", "acrobot", "mountaincar")
                  for kind, group in (("scalar", "scalar/step_and_reset_on_done"), ("vec256", "batched/256"))}))
PY
  # ENV_ID SHORT SCALAR_STEPS VECTOR_STEPS PEER_VECTOR: one env's two rows.
  local id short steps vsteps peer
  while read -r id short steps vsteps peer; do
    "$py" bench/peers/gym_steps.py "$steps" "$id" "$vsteps" >"$work/gym-$short.json"
    row "$id env steps/s, one env (Gymnasium: gym.make)" "steps/s" \
      "$(field "$work/qnet-env.json" "${short}_scalar")" "$(field "$work/gym-$short.json" scalar_steps_per_s)" higher
    row "$id env steps/s, 256 envs batched (Gymnasium: $peer)" "steps/s" \
      "$(field "$work/qnet-env.json" "${short}_vec256")" "$(field "$work/gym-$short.json" vec256_steps_per_s)" higher
  done <<'ENVS'
CartPole-v1 cartpole 300000 4000 CartPoleVectorEnv
Acrobot-v1 acrobot 30000 100 SyncVectorEnv
MountainCar-v0 mountaincar 100000 300 SyncVectorEnv
ENVS
}

# us_per_update ARGS...: qnet bench throughput's microseconds per gradient update.
us_per_update() {
  "$qnet" bench throughput "$@" --device cpu --seconds 3 | tee -a "$work/throughput.txt" \
    | sed -n 's/.*(\([0-9.]*\) us\/update).*/\1/p'
}

compare_update() {
  echo "compare: update: one DQN gradient update, batch 64, one thread, qnet and eager PyTorch"
  local small big
  small=$(us_per_update --config configs/cartpole-fast.yaml --set 'network.hidden=[32,32]' \
    --set replay.batch_size=64 --set agent.double_dqn=false --set optimizer.max_grad_norm=null)
  "$py" bench/peers/torch_update.py --hidden 32 --batch 64 --loss mse --threads 1 >"$work/torch-32.json"
  row "DQN update, 4-32-32-2, MSE, batch 64, 1 thread (eager PyTorch, fastest Adam)" "us" \
    "$small" "$(field "$work/torch-32.json" us_per_update)" lower
  big=$(us_per_update --config configs/sb3-zoo.yaml --set optimizer.max_grad_norm=null)
  "$py" bench/peers/torch_update.py --hidden 256 --batch 64 --loss huber --threads 1 >"$work/torch-256.json"
  row "DQN update, 4-256-256-2, Huber, batch 64, 1 thread (eager PyTorch, fastest Adam)" "us" \
    "$big" "$(field "$work/torch-256.json" us_per_update)" lower
}

# compare_sb3 CONFIG ENV_ID: bench solve of CONFIG and SB3's DQN on the zoo's settings for ENV_ID.
compare_sb3() {
  local config=$1 id=$2 seed
  echo "compare: sb3: rl-baselines3-zoo's $id DQN, $seeds seeds each, qnet and Stable-Baselines3"
  "$qnet" bench solve --config "$config" --set eval.stop_when_solved=false --seeds "$seeds" \
    --out "$work/sb3-$id" >"$work/solve-$id.txt"
  cat "$work/solve-$id.txt"
  "$py" - "$work/sb3-$id" >"$work/qnet-sb3-$id.json" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).rglob("summary.json")):
    s = json.loads(path.read_text())
    print(json.dumps({"env_steps_per_s": s["env_steps_per_second"], "solved_at_step": s["solved_at_step"],
                      "solved_at_seconds": s["solved_at_seconds"], "final_mean": s["final_eval_mean"]}))
PY
  for ((seed = 0; seed < seeds; seed++)); do
    "$py" bench/peers/sb3_zoo.py "$seed" --env "$id" --threads 1 | tee -a "$work/sb3-$id.json"
  done
  row "SB3 DQN, zoo's $id settings, full budget (Stable-Baselines3, median of $seeds seeds)" \
    "env steps/s" "$(field "$work/qnet-sb3-$id.json" env_steps_per_s)" "$(field "$work/sb3-$id.json" env_steps_per_s)" higher
  row "SB3 DQN, zoo's $id settings, training time to the first solved evaluation (median of the seeds that solved: qnet $(solved "$work/qnet-sb3-$id.json"), SB3 $(solved "$work/sb3-$id.json"))" \
    "s" "$(field "$work/qnet-sb3-$id.json" solved_at_seconds)" "$(field "$work/sb3-$id.json" solved_at_seconds)" lower
}

compare_tutorial() {
  local backend=$1 iterations=$2
  echo "compare: tutorial: the tutorial's procedure, qnet and $backend"
  if [[ ! -f $work/qnet-tutorial.json ]]; then
    "$qnet" train --config configs/tutorial.yaml --set train.tutorial.iterations=20 \
      --set train.tutorial.step_counting=code --set eval.every=0 --out "$work/tutorial" --quiet
    "$py" -c 'import json, sys; s = json.load(open(sys.argv[1]));
print(json.dumps({"us": s["train_seconds"] / s["gradient_updates"] * 1e6}))' \
      "$work/tutorial/summary.json" >"$work/qnet-tutorial.json"
  fi
  local python=$py
  [[ $backend == keras ]] && python=bench/peers/.venv-keras/bin/python
  "$python" bench/peers/tutorial.py "$backend" "$iterations" 2>"$work/$backend.err" >"$work/tutorial-$backend.json" \
    || { cat "$work/$backend.err" >&2; die "bench/peers/tutorial.py $backend failed"; }
  row "the tutorial's procedure, time per replayed transition (its code in $backend)" "us" \
    "$(field "$work/qnet-tutorial.json" us)" "$(field "$work/tutorial-$backend.json" us_per_transition)" lower
}

for name in "${which[@]}"; do
  case $name in
    env) compare_env ;;
    update) compare_update ;;
    sb3) compare_sb3 configs/sb3-zoo.yaml CartPole-v1 ;;
    sb3-acrobot) compare_sb3 configs/sb3-zoo-acrobot.yaml Acrobot-v1 ;;
    sb3-mountaincar) compare_sb3 configs/sb3-zoo-mountaincar.yaml MountainCar-v0 ;;
    tutorial) compare_tutorial torch 20 ;;
    keras) compare_tutorial keras 1 ;;
  esac
done

echo
echo "$("$qnet" --version); $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load average at the start $load_at_start, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
"$py" - "$rows" <<'PY'
import sys
def fmt(x):
    x = float(x)
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"
lines = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
print("| comparison | unit | qnet | peer | qnet is |")
print("|---|---|---|---|---|")
for what, unit, qnet, peer, better in lines:
    ratio = float(qnet) / float(peer) if better == "higher" else float(peer) / float(qnet)
    print(f"| {what} | {unit} | {fmt(qnet)} | {fmt(peer)} | {ratio:,.1f}x faster |")
PY
