#!/usr/bin/env bash
# tests/slurm_cluster.sh - a real single-node SLURM cluster (munge + slurmctld + slurmd) on this machine,
# for tests/test_slurm.py and CI. Adapted from shared/reference/slurm_local.sh (Debian 12, SLURM 22.05).
#
#   tests/slurm_cluster.sh start            install (apt) if needed, configure, start; waits for an idle node
#   tests/slurm_cluster.sh stop             cancel leftover jobs, stop the daemons this script started
#   tests/slurm_cluster.sh status           which daemons (started by this script) run; sinfo; exit 0 if all run
#   tests/slurm_cluster.sh run -- CMD...    start, run CMD, always stop (even when CMD fails or is interrupted)
#
# Environment:
#   SLURM_CLUSTER_DIR        pid/log/state directory                    (default /tmp/forgetbench-slurm)
#   SLURM_CLUSTER_PARTITION  the one partition                          (default debug)
#   SLURM_CLUSTER_MIN_JOB_AGE seconds a finished job stays in squeue    (default 300)
#   SLURM_CLUSTER_FRESH=1    wipe SLURM state (job ids, node state) before starting
#
# No slurmdbd: AccountingStorageType=accounting_storage/none, so `sacct` fails ("accounting storage is
# disabled") and Snakemake must be told `--slurm-status-command squeue`. The SLURM executor plugin only keeps
# squeue when MinJobAge >= 3 x --slurm-init-seconds-before-status-checks (otherwise it falls back to sacct,
# which fails here, and waits forever); a finished job must also still be listed when the next status check
# comes, and the plugin spaces checks up to 180 s apart. Hence MinJobAge=300 (must be >= 180).
#
# Only ever stops processes whose PIDs it recorded itself (pid files in $SLURM_CLUSTER_DIR/run) and whose
# /proc/PID/comm is the expected daemon name. A `start` that fails stops whatever it had started (trap).
# Exit codes: 0 ok, 1 usage/other error, 2 not root, 3 packages could not be installed, 4 cluster did not start.
set -euo pipefail

ACTION="${1:-start}"
BASE="${SLURM_CLUSTER_DIR:-/tmp/forgetbench-slurm}"
PART="${SLURM_CLUSTER_PARTITION:-debug}"
MIN_JOB_AGE="${SLURM_CLUSTER_MIN_JOB_AGE:-300}"
RUN="$BASE/run"; LOG="$BASE/log"; STATE="$BASE/state"
CONF=/etc/slurm/slurm.conf
STARTED=()          # daemons started by this invocation (stopped again if `start` fails)
STARTING=0

log() { printf '[slurm_cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { local code=$1; shift; log "ERROR: $*"; exit "$code"; }

# ---------- pid helpers (stop only what we started) ----------
alive() {  # alive NAME -> 0 if our pid file names a live process whose comm is NAME
  local name=$1 f="$RUN/$1.pid" pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [[ -r /proc/$pid/comm && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]
}

stop_one() {  # stop_one NAME
  local name=$1 f="$RUN/$1.pid" pid i
  if alive "$name"; then
    pid=$(<"$f")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do
      [[ -d /proc/$pid ]] || break
      sleep 0.25
    done
    if [[ -d /proc/$pid && "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]; then
      log "$name (pid $pid) did not exit, SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    (( SECONDS < end )) || die 4 "timeout (${t}s) waiting for: $what"
    sleep 0.5
  done
}

# ---------- install ----------
install_pkgs() {
  local pkgs=(slurmctld slurmd slurm-client munge) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq >"$LOG/apt.log" 2>&1 \
      || die 3 "apt-get update failed (see $LOG/apt.log)"
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >>"$LOG/apt.log" 2>&1 \
      || die 3 "apt-get install ${missing[*]} failed (see $LOG/apt.log)"
  fi
}

# ---------- munge ----------
start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating munge key"
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null \
      || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge; chmod 0755 /run/munge
  if alive munged; then return; fi
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "a munged not started by this script is already working; reusing it (it will not be stopped)"; return
  fi
  rm -f /run/munge/munge.socket.2.lock /run/munge/munge.socket.2 /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid </dev/null >>"$LOG/munged.out" 2>&1
  wait_for 15 "munged" bash -c 'munge -n | unmunge'
  wait_for 10 "munged pid file" test -s /run/munge/munged.pid
  cp /run/munge/munged.pid "$RUN/munged.pid"
  STARTED+=(munged)
  log "munged up (pid $(<"$RUN/munged.pid"))"
}

# ---------- slurm.conf ----------
write_conf() {
  local host node_c cpus boards sockets cores threads memmb
  host=$(hostname -s)
  # The node as slurmd itself sees it; RealMemory must not exceed what slurmd -C reports (else the node is
  # drained "Low RealMemory"), so it is 90% of that, leaving room for the daemons and the submitting snakemake.
  node_c=$(/usr/sbin/slurmd -C 2>/dev/null | head -1) || true
  field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$node_c"; }
  cpus=$(field CPUs); boards=$(field Boards); sockets=$(field SocketsPerBoard)
  cores=$(field CoresPerSocket); threads=$(field ThreadsPerCore); memmb=$(field RealMemory)
  [[ -n $cpus && -n $memmb ]] || die 4 "could not read the node's CPUs/RealMemory from 'slurmd -C': $node_c"
  memmb=$(( memmb * 90 / 100 ))
  (( MIN_JOB_AGE >= 180 )) \
    || die 1 "SLURM_CLUSTER_MIN_JOB_AGE=$MIN_JOB_AGE: must be >= 180 (the plugin's longest status interval)"
  mkdir -p /etc/slurm
  cat > "$CONF.new" <<EOF
# generated by forgetbench tests/slurm_cluster.sh
ClusterName=forgetbench
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
# cores are consumable, memory is not: every job's --mem must fit the node (so the rules' real requests are
# checked) but jobs are not serialized on the sum of their requests on this small node (no cgroups: nothing
# enforces --mem here anyway). A real cluster uses CR_Core_Memory.
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no slurmdbd: sacct does not work; snakemake must use --slurm-status-command squeue
AccountingStorageType=accounting_storage/none
# one line per finished job (id, name = the snakemake run id, state): the tests read it
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
# finished jobs stay visible to squeue this long: >= 3 x the plugin's first status-check delay, >= 180 s
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
DefMemPerCPU=1000
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Boards=${boards:-1} SocketsPerBoard=${sockets:-1} CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=$memmb State=UNKNOWN
PartitionName=$PART Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$CONF.new" "$CONF"; then
    mv "$CONF.new" "$CONF"; CONF_CHANGED=1
  else
    rm -f "$CONF.new"; CONF_CHANGED=0
  fi
}

node_ready() {
  local st
  st=$(sinfo -h -N -o '%t' 2>/dev/null | head -1)
  [[ $st == idle* || $st == mix* || $st == alloc* ]]
}

on_start_exit() {  # trap: a start that did not finish stops what it started, and shows why
  local rc=$?
  (( STARTING )) || return 0
  log "start failed (exit $rc); stopping the daemons this run started: ${STARTED[*]:-none}"
  local f
  for f in slurmctld.log slurmd.log; do
    [[ -s $LOG/$f ]] && { log "--- tail $LOG/$f"; tail -n 15 "$LOG/$f" >&2; }
  done
  local i
  for (( i=${#STARTED[@]}-1; i>=0; i-- )); do stop_one "${STARTED[i]}"; done
  (( rc )) || rc=4
  exit "$rc"
}

start() {
  [[ $EUID -eq 0 ]] || die 2 "must run as root (installs packages, writes /etc/slurm and /etc/munge)"
  mkdir -p "$RUN" "$LOG" "$STATE/ctld" "$STATE/spool"
  STARTING=1
  trap on_start_exit EXIT
  trap 'exit 130' INT TERM
  install_pkgs
  CONF_CHANGED=0
  write_conf
  if [[ ${SLURM_CLUSTER_FRESH:-0} == 1 || $CONF_CHANGED == 1 ]]; then
    if alive slurmd || alive slurmctld; then
      log "config changed or fresh start requested: restarting the slurm daemons"
      stop_one slurmd; stop_one slurmctld
    fi
    [[ ${SLURM_CLUSTER_FRESH:-0} == 1 ]] && rm -rf "${STATE:?}/ctld"/* "${STATE:?}/spool"/*
  fi
  if ! alive slurmctld && timeout 5 scontrol ping 2>/dev/null | grep -q UP; then
    die 4 "a slurmctld not started by this script answers on this machine; stop it first"
  fi
  start_munge
  if ! alive slurmctld; then
    /usr/sbin/slurmctld </dev/null >>"$LOG/slurmctld.out" 2>&1   # daemonizes, writes SlurmctldPidFile
    wait_for 30 "slurmctld pid file" test -s "$RUN/slurmctld.pid"
    STARTED+=(slurmctld)
    wait_for 60 "slurmctld" scontrol ping
    log "slurmctld up (pid $(<"$RUN/slurmctld.pid"))"
  fi
  if ! alive slurmd; then
    /usr/sbin/slurmd </dev/null >>"$LOG/slurmd.out" 2>&1
    wait_for 30 "slurmd pid file" test -s "$RUN/slurmd.pid"
    STARTED+=(slurmd)
    log "slurmd up (pid $(<"$RUN/slurmd.pid"))"
  fi
  # a node left DOWN/DRAIN by an earlier unclean stop: resume it
  if ! node_ready; then
    sleep 2
    node_ready || scontrol update NodeName="$(hostname -s)" State=RESUME 2>/dev/null || true
  fi
  wait_for 60 "node idle" node_ready
  timeout 60 srun -p "$PART" -N1 -n1 -t 1 --mem=100 hostname >/dev/null 2>>"$LOG/srun.err" \
    || die 4 "srun smoke test failed (see $LOG/srun.err)"
  sinfo >&2
  STARTING=0
  trap - EXIT INT TERM
  log "cluster ready: partition '$PART', no accounting (use --slurm-status-command squeue), logs in $LOG"
}

stop() {
  # cancel jobs still queued/running first, otherwise slurmstepd and the job's processes outlive slurmd
  if alive slurmctld; then
    local ids i
    ids=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [[ -n ${ids// } ]]; then
      log "cancelling leftover jobs: $ids"
      # shellcheck disable=SC2086
      scancel $ids 2>/dev/null || true
      for i in $(seq 1 60); do
        [[ -z $(squeue -h -t R,CG,PD -o %i 2>/dev/null) ]] && break
        sleep 0.5
      done
    fi
  fi
  stop_one slurmd
  stop_one slurmctld
  stop_one munged
  log "stopped"
}

status() {
  local n rc=0
  for n in munged slurmctld slurmd; do
    if alive "$n"; then
      echo "$n: running (pid $(<"$RUN/$n.pid"))"
    else
      echo "$n: not running (by this script)"; rc=3
    fi
  done
  sinfo 2>/dev/null || true
  return $rc
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  status) status ;;
  run)
    shift
    [[ ${1:-} == -- ]] && shift
    (( $# )) || die 1 "usage: $0 run -- CMD [ARGS...]"
    start
    trap stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    "$@"
    ;;
  *) die 1 "usage: $0 [start|stop|status|restart|run -- CMD...]" ;;
esac
