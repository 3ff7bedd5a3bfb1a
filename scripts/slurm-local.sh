#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, so qnet's tests can submit job arrays to a real Slurm:
#   sudo ./scripts/slurm-local.sh start    installs slurm-wlm + munge if missing, starts munged,
#                                          slurmctld, slurmd; waits until the node is idle
#   sudo ./scripts/slurm-local.sh stop     cancels leftover jobs, stops only what start started
#   ./scripts/slurm-local.sh status        exit 0 iff a cluster answers with a usable node
# Root on Debian/Ubuntu; no systemd needed (daemons are started directly). Idempotent: a second
# start while the cluster runs is a quick no-op, and so is a second stop. Partition: "local".
# Writes /etc/slurm/slurm.conf (marked as ours) and refuses to replace one it did not write.
# Logs: /var/log/slurm/{slurmctld,slurmd}.log, /var/log/munge/munged.log, and /run/qnet-slurm/.
set -euo pipefail

conf_dir=/etc/slurm
conf=$conf_dir/slurm.conf
marker="# Written by qnet's scripts/slurm-local.sh (it rewrites this file while this line is here)."
state=/run/qnet-slurm # PIDs of the daemons start started, their console output, apt's log
log_dir=/var/log/slurm
partition=local
timeout_s=${QNET_SLURM_TIMEOUT:-90}

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: $*" >&2; exit 1; }
need() { echo "slurm-local: $*" >&2; exit 2; } # the host lacks a prerequisite
usage() { sed -n '2,6p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }

logs_hint="see $log_dir/slurmctld.log, $log_dir/slurmd.log, /var/log/munge/munged.log and $state/*.console"

# True while a process with this PID runs the named program (not a zombie, not a recycled PID).
alive() {
  local pid=$1 name=$2 st
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] || return 1
  st=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $st != Z && $st != X ]]
}

# True if any live process runs the named program, whoever started it.
running() {
  local pid
  for pid in $(pgrep -x "$1" || true); do alive "$pid" "$1" && return 0; done
  return 1
}

# A process and all its descendants, children first.
tree() {
  local child
  for child in $(pgrep -P "$1" || true); do tree "$child"; done
  echo "$1"
}

# True if a controller answers and some node can take jobs (completing counts: it is busy, not broken).
cluster_up() {
  command -v sinfo >/dev/null || return 1
  # ping answers at once; sinfo spends 9 s retrying when no controller listens.
  timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || return 1
  local states
  states=$(timeout 20 sinfo -h -N -o '%t' 2>/dev/null) || return 1
  grep -qxE 'idle|mix|alloc|comp' <<<"$states"
}

# The name slurmctld and slurmd compare with SlurmctldHost and NodeName (uname: no hostname package needed).
short_host() { local h; h=$(uname -n); echo "${h%%.*}"; }

ours() { [[ -f $conf ]] && grep -qxF "$marker" "$conf"; }

check_root() { [[ $EUID -eq 0 ]] || need "must run as root (try: sudo $0 $1)"; }

check_debian() {
  if [[ ! -f /etc/debian_version ]] || ! command -v apt-get >/dev/null; then
    need "needs Debian or Ubuntu with apt-get (elsewhere install Slurm + munge and configure them by hand)"
  fi
}

install_packages() {
  local bin missing=false
  for bin in munged slurmctld slurmd sinfo sbatch pgrep; do
    command -v "$bin" >/dev/null || missing=true
  done
  $missing || return 0
  say "installing slurm-wlm, munge (and procps) with apt-get (once; under a minute on a fast mirror)"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages' maintainer scripts from starting daemons: we start them and track their PIDs.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  local apt=(apt-get -q -y -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confold)
  # Try the package lists we have first; a fresh image or stale lists need an update.
  if ! "${apt[@]}" install --no-install-recommends slurm-wlm munge procps >"$state/apt.log" 2>&1; then
    { "${apt[@]}" update && "${apt[@]}" install --no-install-recommends slurm-wlm munge procps; } >>"$state/apt.log" 2>&1 \
      || { tail -n 20 "$state/apt.log" >&2; die "apt-get install slurm-wlm munge failed (full log: $state/apt.log)"; }
  fi
}

write_conf() {
  local host cpus mem want
  host=$(short_host)
  # getconf, not nproc: nproc obeys OMP_NUM_THREADS, slurmd counts online CPUs.
  cpus=$(getconf _NPROCESSORS_ONLN)
  # RealMemory as slurmd measures it, so the node is not drained for "Low RealMemory".
  mem=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -n 1)
  [[ -n $mem ]] || mem=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
  # Addresses are 127.0.0.1 so that the host name need not resolve.
  want="$marker
# One-node local cluster for qnet's tests; start/stop it with scripts/slurm-local.sh.
ClusterName=qnet-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# Reject at submission a job no node could run (e.g. more CPUs than the node has) instead of
# leaving it pending forever (Reason=PartitionConfig).
EnforcePartLimits=ALL
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
# No slurmdbd, so sacct has no data; finished jobs are appended here (and stay in
# 'scontrol show job' for MinJobAge=300 s).
JobCompType=jobcomp/filetxt
JobCompLoc=$log_dir/jobcomp.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$partition Nodes=ALL Default=YES MaxTime=INFINITE State=UP"
  [[ -f $conf && "$(cat "$conf")" == "$want" ]] && return 0
  if running slurmctld || running slurmd; then
    say "warning: $conf is out of date but Slurm daemons run; rewriting it, run stop then start to apply"
  fi
  mkdir -p "$conf_dir"
  printf '%s\n' "$want" >"$conf.tmp" && mv "$conf.tmp" "$conf"
  chmod 644 "$conf"
  say "wrote $conf (node $host, $cpus CPUs, ${mem} MB, partition $partition)"
}

setup_munge() {
  local key=/etc/munge/munge.key
  if [[ ! -s $key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$key" --force
    else # munge < 0.5.14 (Ubuntu 20.04) has no mungekey
      dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
    fi
    say "created $key"
  fi
  chown munge:munge "$key"
  chmod 400 "$key"
  # Normally made by systemd-tmpfiles or the init script, neither of which ran.
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
}

# Starts a daemon in the foreground in its own session, so $! is its PID to record.
launch() {
  local name=$1
  shift
  setsid "$@" </dev/null >>"$state/$name.console" 2>&1 &
  echo $! >"$state/$name.pid"
  say "started $name (pid $!)"
}

start() {
  check_root start
  check_debian
  if cluster_up && { ! ours || { running munged && running slurmctld && running slurmd; }; }; then
    say "already up: $(sinfo -h -o '%P %D nodes %t' | head -n 1)"
    ours || say "(a cluster this script did not configure; stop leaves it alone)"
    return 0
  fi
  if [[ -f $conf ]] && ! ours; then
    die "refusing to overwrite $conf (not written by this script) and no cluster answers; start that cluster yourself, or move the file away"
  fi
  mkdir -p "$state"
  install_packages
  setup_munge
  write_conf
  install -d -m 0755 "$log_dir" /var/spool/slurmctld /var/spool/slurmd

  running munged || launch munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
  local i
  for ((i = 0; i < 50; i++)); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
  munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 || die "munged does not answer; $logs_hint"
  # -c: a fresh controller forgets jobs of an earlier, unclean run (they would hold the node).
  running slurmctld || launch slurmctld slurmctld -D -c
  running slurmd || launch slurmd slurmd -D

  local host name resumed=false st
  host=$(short_host)
  for ((i = 0; i < timeout_s; i++)); do
    cluster_up && { say "up: $(sinfo -h -o '%P %D nodes %t' | head -n 1)"; return 0; }
    for name in munged slurmctld slurmd; do
      [[ -f $state/$name.pid ]] && ! alive "$(cat "$state/$name.pid")" "$name" \
        && die "$name exited during start; $logs_hint ('$0 stop' ends the rest)"
    done
    # A node left drained or down by an earlier run stays so after registering; resume it once.
    st=$(timeout 10 sinfo -h -N -n "$host" -o '%t' 2>/dev/null | head -n 1 || true)
    if ! $resumed && ((i > 5)) && [[ $st =~ ^(drain|drng|down)$ ]]; then
      scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
      resumed=true
    fi
    sleep 1
  done
  sinfo -R >&2 || true
  die "node $host not idle after ${timeout_s}s (state: ${st:-none}); $logs_hint ('$0 stop' ends the daemons)"
}

stop() {
  check_root stop
  local name pid jobs i any=false
  for name in slurmd slurmctld munged; do
    [[ -f $state/$name.pid ]] && alive "$(cat "$state/$name.pid")" "$name" && any=true
  done
  if ! $any; then
    rm -f "$state"/*.pid 2>/dev/null || true
    say "nothing that start started is running"
    return 0
  fi
  # Cancel leftover jobs while the controller is still ours to ask, and let their steps end.
  if [[ -f $state/slurmctld.pid ]] && alive "$(cat "$state/slurmctld.pid")" slurmctld; then
    # One id per array (%F): scancel rejects squeue's "12_[1-3%1]" form of pending tasks.
    jobs=$(timeout 20 squeue -h -o '%F' 2>/dev/null | sort -u || true)
    if [[ -n $jobs ]]; then
      say "cancelling leftover job(s): $(tr '\n' ' ' <<<"$jobs")"
      xargs -r scancel <<<"$jobs" || true
      # Slurm sends SIGTERM, then SIGKILL after KillWait (30 s by default).
      for ((i = 0; i < 90; i++)); do
        [[ -z $(timeout 10 squeue -h -o '%i' 2>/dev/null || true) ]] && break
        sleep 0.5
      done
    fi
  fi
  # Reverse order of start: slurmd, then the controller, then munged (both need it to the end).
  for name in slurmd slurmctld munged; do
    [[ -f $state/$name.pid ]] || continue
    pid=$(cat "$state/$name.pid")
    if alive "$pid" "$name"; then
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" "$name" || break; sleep 0.2; done
      if alive "$pid" "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
      say "stopped $name (pid $pid)"
    fi
    rm -f "$state/$name.pid"
    # Job steps outlive slurmd; without it nobody ends them, so end them with their processes.
    if [[ $name == slurmd ]]; then
      for pid in $(pgrep -x slurmstepd || true); do
        alive "$pid" slurmstepd || continue
        # shellcheck disable=SC2046 # word splitting of the PID list is intended
        kill -KILL $(tree "$pid") 2>/dev/null || true
        say "killed leftover slurmstepd (pid $pid) and its processes"
      done
    fi
  done
}

status() {
  if cluster_up; then
    sinfo -h -N -o '%P %N %t %C' | sed 's/^/slurm-local: up: /'
    return 0
  fi
  say "no Slurm cluster answers with an idle/mixed/allocated node"
  return 1
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
