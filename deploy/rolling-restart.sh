#!/usr/bin/env bash
# Rolling restart of gwx-worker processes on one machine, one worker at a time, without losing a
# client connection, an event or a push (see deploy/UPGRADING.md).
#
# Usage:
#   rolling-restart.sh --pid-dir DIR [--slots A,B,...] (--gateways N | --gwxctl 'CMD' | both)
#                      [--ready-timeout S] [--drain-timeout S] [--start-missing]
#                      -- WORKER-COMMAND [ARG...]
#
# Options: --ready-timeout (default 60 s) bounds step 2, --drain-timeout (default 120 s) step 3;
# --slots defaults to every DIR/*.pid; -h/--help prints this text.
#
# Every worker occupies a "slot" (a short stable name, e.g. w1). The script keeps, in DIR:
#   SLOT.pid     pid of the slot's current worker (may be written by whoever started it)
#   SLOT.name    its instance name (what gateways and `gwxctl drain` know it by)
#   SLOT.gen     the slot's generation counter
#   NAME.log     stdout and stderr of an instance this script started
#   NAME.workerpid  its pid
#   NAME.status  that instance's exit status, written when it exits
# For each slot, in order:
#   1. start WORKER-COMMAND with every "{name}" replaced by a fresh instance name, SLOT-gN
#      (pass it on as --name {name}), detached (own session, stdin /dev/null, output NAME.log);
#   2. wait until the new instance is ready: it printed "linked ADDRESS" for N distinct gateways
#      (--gateways N) and/or `CMD stats` lists it among the workers of every gateway and every
#      gateway answered (--gwxctl 'CMD'); if it exits or is not ready in time: stop, status 1;
#   3. send SIGTERM to the old worker (it drains: gateways route nothing new to it, it finishes
#      and acknowledges what it holds, flushes its pushes, exits 0) and wait for it to exit;
#      its exit status is checked when this script started it (NAME.status); not exited within
#      --drain-timeout, or a non-zero status: stop, status 1 (nothing is killed: the operator
#      decides);
#      (a drain that ran out of time still exits 0: its log says "drain incomplete", and the
#      script prints a warning);
#   4. record the new pid and name in SLOT.pid / SLOT.name.
# A slot without a live worker just gets one started (step 1, 2, 4) — with --start-missing for
# slots that have no SLOT.pid yet, which is how a first start looks.
#
# Exit status: 0 every slot restarted; 1 a worker failed to start, get ready or drain (the
# slots already done stay done; the failing slot keeps whatever runs); 2 bad command line.
#
# Example (3 workers behind 2 gateways; the secret comes from the environment):
#   export GWX_SECRET=...
#   deploy/rolling-restart.sh --pid-dir /run/gwx --slots w1,w2,w3 --start-missing \
#       --gwxctl 'gwxctl --register 10.0.0.5:7700' -- \
#       gwx-worker --register 10.0.0.5:7700 --app ./libshop.so --name {name}
set -euo pipefail

prog=${0##*/}
pid_dir=""
slots=""
gateways=0
gwxctl=""
ready_timeout=60
drain_timeout=120
start_missing=0
command=()

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

die_usage() {
  echo "$prog: $*" >&2
  echo "$prog: see --help" >&2
  exit 2
}

say() {
  printf '%s %s: %s\n' "$(date '+%H:%M:%S')" "$prog" "$*"
}

fail() {
  say "FAILED: $*" >&2
  exit 1
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while (($#)); do
  case $1 in
    --pid-dir) pid_dir=${2:?}; shift 2 ;;
    --slots) slots=${2:?}; shift 2 ;;
    --gateways) gateways=${2:?}; shift 2 ;;
    --gwxctl) gwxctl=${2:?}; shift 2 ;;
    --ready-timeout) ready_timeout=${2:?}; shift 2 ;;
    --drain-timeout) drain_timeout=${2:?}; shift 2 ;;
    --start-missing) start_missing=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; command=("$@"); break ;;
    *) die_usage "unknown option '$1'" ;;
  esac
done

[[ -n $pid_dir ]] || die_usage "--pid-dir is required"
((${#command[@]})) || die_usage "the worker command is missing (after --)"
is_uint "$gateways" || die_usage "--gateways wants a number"
is_uint "$ready_timeout" || die_usage "--ready-timeout wants seconds"
is_uint "$drain_timeout" || die_usage "--drain-timeout wants seconds"
((gateways > 0)) || [[ -n $gwxctl ]] ||
  die_usage "say how to tell a worker is ready: --gateways N and/or --gwxctl 'CMD'"
has_name=0
for arg in "${command[@]}"; do
  [[ $arg == *"{name}"* ]] && has_name=1
done
((has_name)) || die_usage "the worker command must contain {name} (e.g. --name {name})"
[[ -d $pid_dir ]] || die_usage "--pid-dir $pid_dir is not a directory"
pid_dir=$(cd "$pid_dir" && pwd)

if [[ -z $slots ]]; then
  shopt -s nullglob
  files=("$pid_dir"/*.pid)
  shopt -u nullglob
  ((${#files[@]})) || die_usage "no $pid_dir/*.pid: name the slots with --slots"
  list=()
  for f in "${files[@]}"; do
    b=${f##*/}
    list+=("${b%.pid}")
  done
  slots=$(IFS=,; echo "${list[*]}")
fi
IFS=, read -r -a slot_list <<<"$slots"
for s in "${slot_list[@]}"; do
  [[ $s =~ ^[A-Za-z0-9_.-]+$ ]] || die_usage "bad slot name '$s' (letters, digits, . _ -)"
done

# True while pid runs (a zombie counts as gone: it has exited).
alive() {
  local pid=$1 state
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]]
}

# Starts one instance; prints its pid.
start_instance() {
  local name=$1 log=$pid_dir/$1.log status=$pid_dir/$1.status pidfile=$pid_dir/$1.workerpid
  local argv=() arg
  for arg in "${command[@]}"; do
    argv+=("${arg//\{name\}/$name}")
  done
  rm -f "$status" "$pidfile"
  # Not started with '&': bash would make the worker ignore SIGINT; setsid --fork returns at
  # once instead. A small supervising shell in its own session runs the worker in the
  # foreground (so the worker keeps the default signal dispositions) and writes its exit status
  # when it exits. The inner shell records its pid and execs the worker, so the recorded pid is
  # the worker's.
  GWX_RR_LOG=$log GWX_RR_STATUS=$status GWX_RR_PIDFILE=$pidfile \
    setsid --fork bash -c '
      bash -c '\''echo $$ >"$GWX_RR_PIDFILE.tmp" && mv "$GWX_RR_PIDFILE.tmp" "$GWX_RR_PIDFILE" &&
               exec "$@"'\'' gwx-worker-exec "$@" </dev/null >>"$GWX_RR_LOG" 2>&1
      echo $? >"$GWX_RR_STATUS.tmp" && mv "$GWX_RR_STATUS.tmp" "$GWX_RR_STATUS"
    ' gwx-rolling-restart "${argv[@]}" </dev/null >/dev/null 2>&1
  local waited=0
  while [[ ! -s $pidfile ]]; do
    ((waited++ < 100)) || fail "$name: no pid recorded within 10 s"
    sleep 0.1
  done
  cat "$pidfile"
}

# Ready: linked to N distinct gateways (its log) and/or listed by every gateway (gwxctl stats).
ready() {
  local name=$1 log=$pid_dir/$1.log
  if ((gateways > 0)); then
    local linked
    linked=$(grep -E '^linked [^ ]+$' "$log" 2>/dev/null | awk '{print $2}' | sort -u | wc -l)
    ((linked >= gateways)) || return 1
  fi
  if [[ -n $gwxctl ]]; then
    local out
    # shellcheck disable=SC2086 # CMD is a command line, split on purpose
    out=$($gwxctl stats 2>/dev/null) || return 1
    awk -v name="$name" -v want="$gateways" '
      / id=/ && / workers=/ {
        seen++
        listed = 0
        if (match($0, / workers=[0-9]+\([^)]*\)/)) {
          list = substr($0, RSTART, RLENGTH)
          sub(/^ workers=[0-9]+\(/, "", list); sub(/\)$/, "", list)
          n = split(list, names, ",")
          for (i = 1; i <= n; i++) if (names[i] == name) listed = 1
        }
        if (!listed) missing++
      }
      END { exit !(seen > 0 && seen >= want && missing == 0) }' <<<"$out" || return 1
  fi
  return 0
}

wait_ready() {
  local name=$1 pid=$2 deadline=$((SECONDS + ready_timeout))
  until ready "$name"; do
    if ! alive "$pid"; then
      fail "$name (pid $pid) exited before it was ready; last lines of $pid_dir/$name.log:
$(tail -n 20 "$pid_dir/$name.log" 2>/dev/null)"
    fi
    ((SECONDS < deadline)) ||
      fail "$name (pid $pid) not ready within ${ready_timeout}s (see $pid_dir/$name.log)"
    sleep 0.2
  done
}

# SIGTERM, then wait for the exit; checks the status when this script started the worker.
drain_old() {
  local name=$1 pid=$2 deadline=$((SECONDS + drain_timeout))
  say "draining $name (pid $pid): SIGTERM"
  kill -TERM "$pid" 2>/dev/null || true
  while alive "$pid"; do
    ((SECONDS < deadline)) ||
      fail "$name (pid $pid) still running ${drain_timeout}s after SIGTERM (left running)"
    sleep 0.1
  done
  local status_file=$pid_dir/$name.status
  if [[ -n $name && -e $pid_dir/$name.log ]]; then
    # Started by this script: its supervising shell writes the status right after the exit.
    local waited=0
    while [[ ! -s $status_file ]]; do
      ((waited++ < 50)) || fail "$name (pid $pid) exited but no status was recorded"
      sleep 0.1
    done
    local status
    status=$(cat "$status_file")
    [[ $status == 0 ]] ||
      fail "$name (pid $pid) exited with status $status after SIGTERM (see $pid_dir/$name.log)"
    if grep -q 'drain incomplete' "$pid_dir/$name.log" 2>/dev/null; then
      say "WARNING: $name ran out of drain time; the gateways redelivered what it left" \
        "(see $pid_dir/$name.log)" >&2
    fi
    say "$name (pid $pid) drained and exited with status 0"
  else
    say "$name (pid $pid) drained and exited (status unknown: not started by $prog)"
  fi
}

restarted=0
for slot in "${slot_list[@]}"; do
  old_pid=""
  old_name=""
  [[ -s $pid_dir/$slot.pid ]] && old_pid=$(<"$pid_dir/$slot.pid")
  [[ -s $pid_dir/$slot.name ]] && old_name=$(<"$pid_dir/$slot.name")
  if [[ -n $old_pid ]] && ! is_uint "$old_pid"; then
    fail "$pid_dir/$slot.pid does not hold a pid: '$old_pid'"
  fi
  if [[ -z $old_pid ]] && ((!start_missing)); then
    fail "slot $slot has no $pid_dir/$slot.pid (use --start-missing to start it)"
  fi
  gen=0
  [[ -s $pid_dir/$slot.gen ]] && gen=$(<"$pid_dir/$slot.gen")
  is_uint "$gen" || gen=0
  gen=$((gen + 1))
  name="$slot-g$gen"
  echo "$gen" >"$pid_dir/$slot.gen"
  new_pid=$(start_instance "$name")
  say "slot $slot: started $name (pid $new_pid), waiting until it is ready"
  wait_ready "$name" "$new_pid"
  say "slot $slot: $name is ready"
  if [[ -n $old_pid ]] && alive "$old_pid"; then
    drain_old "$old_name" "$old_pid"
  elif [[ -n $old_pid ]]; then
    say "slot $slot: old pid $old_pid was not running"
  fi
  echo "$new_pid" >"$pid_dir/$slot.pid.tmp" && mv "$pid_dir/$slot.pid.tmp" "$pid_dir/$slot.pid"
  echo "$name" >"$pid_dir/$slot.name.tmp" && mv "$pid_dir/$slot.name.tmp" "$pid_dir/$slot.name"
  restarted=$((restarted + 1))
done
say "done: ${restarted} slot(s) restarted"
