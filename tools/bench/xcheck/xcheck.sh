#!/usr/bin/env bash
# Cross-checks `gwx-bench compare` with the independent pair gwx-xload / gwx-xecho (plain C,
# nothing of gwx): the issue's three phases (echo at 8 in flight, echo at 1 in flight, fan-out to
# --receivers), --rounds times, interleaved over three systems, each started fresh for every run:
#   xecho      gwx-xecho (echo and broadcast listeners)
#   reference  gwx-bench reference
#   cluster    gwx-register, gwx-gateway, gwx-worker --app echo (fan-out: --app commands, the
#              sender's messages prefixed 'to-all '), started as gwx-bench compare starts them
# all loaded by gwx-xload; and in each echo phase gwx-bench echo against gwx-xecho as well, so
# both generators are seen on both references. Prints every run line, then the medians and the
# ratios (cluster / xecho and cluster / reference; fan-out: the gateway's CPU per delivery over
# the reference's). Every process it starts is stopped on exit; ports come from port 0; logs go
# to --log-dir (default: a new temporary directory). Exit status 1 if any run had errors.
#
#   bash tools/bench/xcheck/xcheck.sh --bin build/bin [--rounds 3] [--phases echo8,echo1,fanout]
#        [--connections 100] [--size 32] [--receivers 900] [--duration 5] [--warmup 1]
#        [--log-dir DIR]
set -uo pipefail

bin="" rounds=3 phases="echo8,echo1,fanout" conns=100 size=32 receivers=900 duration=5 warmup=1
log_dir=""
usage() {
  sed -n '15,17p' "${BASH_SOURCE[0]}" | sed 's/^#  *//' >&2
  exit 2
}
while (($#)); do
  [[ $# -ge 2 ]] || usage
  case "$1" in
    --bin) bin=$2 ;;
    --rounds) rounds=$2 ;;
    --phases) phases=$2 ;;
    --connections) conns=$2 ;;
    --size) size=$2 ;;
    --receivers) receivers=$2 ;;
    --duration) duration=$2 ;;
    --warmup) warmup=$2 ;;
    --log-dir) log_dir=$2 ;;
    *) usage ;;
  esac
  shift 2
done
[[ -n $bin ]] || usage
for b in gwx-register gwx-gateway gwx-worker gwx-bench gwx-xload gwx-xecho; do
  [[ -x $bin/$b ]] || { echo "xcheck.sh: $bin/$b not found (build it, or point --bin at it)" >&2; exit 2; }
done
if [[ -z $log_dir ]]; then
  log_dir=$(mktemp -d /tmp/gwx-xcheck.XXXXXX)
fi
mkdir -p "$log_dir"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- processes: started in the background, stopped by pid (never by name)

started=()
stop_all() {
  local pid
  for pid in "${started[@]}"; do
    kill "$pid" 2>/dev/null
  done
  for pid in "${started[@]}"; do
    wait "$pid" 2>/dev/null
  done
  started=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: runs CMD with stdout in $log_dir/NAME.out and stderr in NAME.err; sets $pid.
start() {
  local name=$1
  shift
  "$@" >"$log_dir/$name.out" 2>"$log_dir/$name.err" &
  pid=$!
  started+=("$pid")
}

# await NAME REGEX: the first stdout line of NAME matching REGEX (20 s at most); sets $line.
await() {
  local file=$log_dir/$1.out deadline=$((SECONDS + 20))
  while ((SECONDS < deadline)); do
    line=$(grep -m1 -E "$2" "$file" 2>/dev/null) && return 0
    sleep 0.05
  done
  echo "xcheck.sh: $1 did not print /$2/ within 20 s; its stderr ($log_dir/$1.err):" >&2
  tail -5 "$log_dir/$1.err" >&2
  exit 1
}

# Starts one system for a phase and round; sets $echo_url $bcast_url $prefix $pids (--pid args).
start_system() {
  local system=$1 tag=$2
  prefix=""
  case "$system" in
    xecho)
      start "$tag-xecho" "$bin/gwx-xecho" --listen 127.0.0.1:0 --broadcast 127.0.0.1:0
      pids=(--pid "xecho=$pid")
      await "$tag-xecho" '^listening echo ' && echo_url=${line##* }
      await "$tag-xecho" '^listening broadcast ' && bcast_url=${line##* }
      ;;
    reference)
      start "$tag-reference" "$bin/gwx-bench" reference --listen ws://127.0.0.1:0/ \
        --broadcast ws://127.0.0.1:0/
      pids=(--pid "reference=$pid")
      await "$tag-reference" '^listening echo ' && echo_url=${line##* }
      await "$tag-reference" '^listening broadcast ' && bcast_url=${line##* }
      ;;
    cluster)
      local secret app=echo
      secret="xcheck-$RANDOM$RANDOM$RANDOM"
      [[ $tag == fanout-* ]] && app=commands prefix="to-all "
      start "$tag-register" "$bin/gwx-register" --listen 127.0.0.1:0
      await "$tag-register" '^listening grpc://'
      local reg=${line#listening grpc://}
      start "$tag-gateway" "$bin/gwx-gateway" --register "$reg" --secret "$secret" \
        --internal 127.0.0.1:0 --listen ws://127.0.0.1:0/
      local gw=$pid
      await "$tag-gateway" '^listening ws://' && echo_url=${line#listening } bcast_url=$echo_url
      await "$tag-gateway" '^listening internal://'
      start "$tag-worker" "$bin/gwx-worker" --register "$reg" --secret "$secret" --app "$app"
      pids=(--pid "gateway=$gw" --pid "worker=$pid")
      await "$tag-worker" '^linked '
      ;;
  esac
}

# ---- runs: every line kept in $results as "PHASE ROUND SYSTEM GENERATOR <result line>"

results=$log_dir/results.txt
: >"$results"
errors=0
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# run_one PHASE ROUND SYSTEM GENERATOR
run_one() {
  local phase=$1 round=$2 system=$3 gen=$4 tag="$1-$2-$3-$4" out status
  start_system "$system" "$tag"
  local common=(--duration "$duration" --warmup "$warmup" --size "$size")
  case "$phase" in
    echo8 | echo1)
      local k=${phase#echo}
      if [[ $gen == xload ]]; then
        out=$("$bin/gwx-xload" echo "$echo_url" --connections "$conns" --inflight "$k" \
          "${common[@]}" "${pids[@]}" 2>>"$log_dir/$tag-gen.err")
      else
        out=$("$bin/gwx-bench" echo "$echo_url" --connections "$conns" --inflight "$k" \
          "${common[@]}" "${pids[@]}" 2>>"$log_dir/$tag-gen.err")
      fi
      ;;
    fanout)
      out=$("$bin/gwx-xload" fanout "$bcast_url" --receivers "$receivers" --inflight 1 \
        --prefix "$prefix" "${common[@]}" "${pids[@]}" 2>>"$log_dir/$tag-gen.err")
      ;;
  esac
  status=$?
  stop_all
  [[ -n $out ]] || out="errors=1 (no result line; see $log_dir/$tag-gen.err)"
  if ((status != 0)); then
    errors=$((errors + 1))
  fi
  echo "round=$round phase=$phase system=$system gen=$gen $out"
  echo "$phase $round $system $gen $out" >>"$results"
}

IFS=, read -r -a phase_list <<<"$phases"
for phase in "${phase_list[@]}"; do
  case "$phase" in echo8 | echo1 | fanout) ;; *) echo "xcheck.sh: unknown phase $phase" >&2; exit 2 ;; esac
  for ((round = 1; round <= rounds; ++round)); do
    for system in xecho reference cluster; do
      run_one "$phase" "$round" "$system" xload
    done
    if [[ $phase != fanout ]]; then
      run_one "$phase" "$round" xecho gwx-bench
    fi
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- summary

# figure PHASE SYSTEM GEN KEY: that field of each round's line, one per line in round order.
figure() {
  awk -v p="$1" -v s="$2" -v g="$3" -v k="$4" '
    $1 == p && $3 == s && $4 == g {
      v = "?"
      for (i = 5; i <= NF; ++i) {
        if (index($i, k "=") == 1) { v = substr($i, length(k) + 2) }
      }
      print v
    }' "$results"
}
median() { grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "?"; exit }
  print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# ratios A_FILE B_FILE: per-round A/B, space-separated.
ratios() { paste -d' ' <(echo "$1") <(echo "$2") | awk '{
  printf "%s%s", (NR > 1 ? " " : ""), ($1 ~ /^[0-9.]+$/ && $2 + 0 > 0 ? sprintf("%.3f", $1 / $2) : "?") }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.3f", a / b; else printf "?" }'; }
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v ~ /^-?[0-9.]+$/) printf "%.*f", d, v; else printf "?" }'; }

echo "summary rounds=$rounds conns=$conns size=$size receivers=$receivers (medians over rounds; ratio = cluster / reference system; per-round ratios in parentheses); load average $load_start at the start, $load_end at the end"
for phase in "${phase_list[@]}"; do
  if [[ $phase == fanout ]]; then
    x=$(figure fanout xecho xload 'cpu_us/delivery[xecho]')
    r=$(figure fanout reference xload 'cpu_us/delivery[reference]')
    g=$(figure fanout cluster xload 'cpu_us/delivery[gateway]')
    w=$(figure fanout cluster xload 'cpu_us/delivery[worker]')
    xm=$(median <<<"$x") rm=$(median <<<"$r") gm=$(median <<<"$g")
    echo "  fanout ($receivers receivers): CPU us/delivery xecho $(fmt "$xm" 3) | reference $(fmt "$rm" 3) | gateway $(fmt "$gm" 3) (worker $(fmt "$(median <<<"$w")" 3)) | gateway/xecho $(div "$gm" "$xm") ($(ratios "$g" "$x")) | gateway/reference $(div "$gm" "$rm") ($(ratios "$g" "$r"))  [deliveries/s xecho $(fmt "$(figure fanout xecho xload 'deliveries/s' | median)" 0), reference $(fmt "$(figure fanout reference xload 'deliveries/s' | median)" 0), cluster $(fmt "$(figure fanout cluster xload 'deliveries/s' | median)" 0)]"
    continue
  fi
  x=$(figure "$phase" xecho xload msgs/s)
  r=$(figure "$phase" reference xload msgs/s)
  g=$(figure "$phase" cluster xload msgs/s)
  b=$(figure "$phase" xecho gwx-bench msgs/s)
  xm=$(median <<<"$x") rm=$(median <<<"$r") gm=$(median <<<"$g")
  p99() { fmt "$(figure "$phase" "$1" "$2" p99_ms | median)" 3; }
  cpu() { fmt "$(figure "$phase" "$1" xload "cpu_us/msg[$2]" | median)" 2; }
  echo "  $phase: xecho $(fmt "$xm" 0) msgs/s p99 $(p99 xecho xload) ms | reference $(fmt "$rm" 0) msgs/s p99 $(p99 reference xload) ms | cluster $(fmt "$gm" 0) msgs/s p99 $(p99 cluster xload) ms | cluster/xecho $(div "$gm" "$xm") ($(ratios "$g" "$x")) | cluster/reference $(div "$gm" "$rm") ($(ratios "$g" "$r"))  [CPU us/msg xecho $(cpu xecho xecho), reference $(cpu reference reference), gateway $(cpu cluster gateway), worker $(cpu cluster worker); xload itself $(cpu xecho xload) on xecho, $(cpu cluster xload) on the cluster]"
  echo "    gwx-bench echo vs xecho: $(fmt "$(median <<<"$b")" 0) msgs/s p99 $(p99 xecho gwx-bench) ms (xload on xecho: $(fmt "$xm" 0) msgs/s, gwx-bench/xload $(div "$(median <<<"$b")" "$xm"))"
done
if ((errors > 0)); then
  echo "  errors: $errors run(s) failed (see the run lines above; logs in $log_dir)"
  exit 1
fi
echo "  logs: $log_dir"
