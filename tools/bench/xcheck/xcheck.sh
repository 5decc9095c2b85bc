#!/usr/bin/env bash
# Cross-checks `gwx-bench compare` with the independent pair gwx-xload / gwx-xecho (plain C,
# nothing of gwx): the issue's three phases (echo at 8 in flight, echo at 1 in flight, fan-out to
# --receivers), --rounds times, interleaved over three systems, each started fresh for every run:
#   xecho      gwx-xecho (echo and broadcast listeners)
#   reference  gwx-bench reference
#   cluster    gwx-register, gwx-gateway, gwx-worker --app echo (fan-out: --app commands, the
#              sender's messages prefixed 'to-all '), started as gwx-bench compare starts them
# all loaded by gwx-xload; and in each echo phase gwx-bench echo against gwx-xecho as well, so
# both generators are seen on both references (--gwx-bench all: gwx-bench on every system and
# phase too, right after gwx-xload, so each generator's ratios come from the same minutes).
# Prints every run line, then per generator the medians and the ratios (cluster / xecho and
# cluster / reference; fan-out: the gateway's CPU per delivery over the server's). Every process
# it starts is stopped on exit; ports come from port 0; logs go to --log-dir (default: a new
# temporary directory). Exit status 1 if any run had errors.
#
#   bash tools/bench/xcheck/xcheck.sh --bin build/bin [--rounds 3] [--phases echo8,echo1,fanout]
#        [--connections 100] [--size 32] [--receivers 900] [--duration 5] [--warmup 1]
#        [--gwx-bench xecho|all] [--log-dir DIR]
set -uo pipefail

bin="" rounds=3 phases="echo8,echo1,fanout" conns=100 size=32 receivers=900 duration=5 warmup=1
log_dir="" gwx_bench=xecho
usage() {
  sed -n '17,19p' "${BASH_SOURCE[0]}" | sed 's/^#  *//' >&2
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
    --gwx-bench) gwx_bench=$2 ;;
    *) usage ;;
  esac
  shift 2
done
[[ -n $bin && ($gwx_bench == xecho || $gwx_bench == all) ]] || usage
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
  local tool=("$bin/gwx-xload") common=(--duration "$duration" --warmup "$warmup" --size "$size")
  [[ $gen == gwx-bench ]] && tool=("$bin/gwx-bench")
  case "$phase" in
    echo8 | echo1)
      out=$("${tool[@]}" echo "$echo_url" --connections "$conns" --inflight "${phase#echo}" \
        "${common[@]}" "${pids[@]}" 2>>"$log_dir/$tag-gen.err")
      ;;
    fanout)
      out=$("${tool[@]}" fanout "$bcast_url" --receivers "$receivers" --inflight 1 \
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
done
for phase in "${phase_list[@]}"; do
  for ((round = 1; round <= rounds; ++round)); do
    for system in xecho reference cluster; do
      run_one "$phase" "$round" "$system" xload
      if [[ $gwx_bench == all || ($system == xecho && $phase != fanout) ]]; then
        run_one "$phase" "$round" "$system" gwx-bench
      fi
    done
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
median() { tr ' ' '\n' | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END {
  if (NR == 0) { print "?"; exit }
  print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# ratios A B (one figure per line, by round): per-round A/B, space-separated.
ratios() { paste -d' ' <(echo "$1") <(echo "$2") | awk '{
  printf "%s%s", (NR > 1 ? " " : ""), ($1 ~ /^[0-9.]+$/ && $2 + 0 > 0 ? sprintf("%.3f", $1 / $2) : "?") }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b + 0 > 0) printf "%.3f", a / b; else printf "?" }'; }
fmt() { awk -v v="$1" -v d="$2" 'BEGIN { if (v ~ /^-?[0-9.]+$/) printf "%.*f", d, v; else printf "?" }'; }
# ratio A B: "R (rounds: r1 r2 r3; median M)", R the ratio of the medians (as gwx-bench compare).
ratio() {
  local per
  per=$(ratios "$1" "$2")
  echo "$(div "$(median <<<"$1")" "$(median <<<"$2")") (rounds: $per; median $(fmt "$(median <<<"$per")" 3))"
}

# summary GEN: the medians and ratios of the runs loaded by GEN.
summary() {
  local gen=$1 k unit x r g
  for phase in "${phase_list[@]}"; do
    if [[ $phase == fanout ]]; then
      x=$(figure fanout xecho "$gen" 'cpu_us/delivery[xecho]')
      r=$(figure fanout reference "$gen" 'cpu_us/delivery[reference]')
      g=$(figure fanout cluster "$gen" 'cpu_us/delivery[gateway]')
      [[ $x$r$g == *[0-9]* ]] || continue
      echo "  fanout ($receivers receivers) [$gen]: CPU us/delivery xecho $(fmt "$(median <<<"$x")" 3) | reference $(fmt "$(median <<<"$r")" 3) | gateway $(fmt "$(median <<<"$g")" 3) (worker $(fmt "$(figure fanout cluster "$gen" 'cpu_us/delivery[worker]' | median)" 3))"
      echo "    gateway/xecho $(ratio "$g" "$x")"
      echo "    gateway/reference $(ratio "$g" "$r")"
      echo "    deliveries/s xecho $(fmt "$(figure fanout xecho "$gen" deliveries/s | median)" 0), reference $(fmt "$(figure fanout reference "$gen" deliveries/s | median)" 0), cluster $(fmt "$(figure fanout cluster "$gen" deliveries/s | median)" 0)"
      continue
    fi
    x=$(figure "$phase" xecho "$gen" msgs/s)
    r=$(figure "$phase" reference "$gen" msgs/s)
    g=$(figure "$phase" cluster "$gen" msgs/s)
    [[ $x$r$g == *[0-9]* ]] || continue
    p99() { fmt "$(figure "$phase" "$1" "$gen" p99_ms | median)" 3; }
    cpu() { fmt "$(figure "$phase" "$1" "$gen" "cpu_us/msg[$2]" | median)" 2; }
    self=xload
    [[ $gen == gwx-bench ]] && self=bench
    pct() { fmt "$(figure "$phase" "$1" "$gen" "cpu%[$self]" | median)" 0; }
    # Only the systems this generator ran on (by default gwx-bench runs on xecho alone).
    local line="  $phase [$gen]:" sep="" sys rates
    for sys in xecho reference cluster; do
      rates=$(figure "$phase" "$sys" "$gen" msgs/s)
      [[ $rates == *[0-9]* ]] || continue
      line+="$sep $sys $(fmt "$(median <<<"$rates")" 0) msgs/s p99 $(p99 "$sys") ms"
      sep=" |"
    done
    echo "$line"
    [[ $g == *[0-9]* ]] && echo "    cluster/xecho $(ratio "$g" "$x")"
    [[ $g == *[0-9]* ]] && echo "    cluster/reference $(ratio "$g" "$r")"
    local cpus=() own=() v
    for v in "xecho $(cpu xecho xecho)" "reference $(cpu reference reference)" \
      "gateway $(cpu cluster gateway)" "worker $(cpu cluster worker)"; do
      [[ $v == *\? ]] || cpus+=("$v")
    done
    for sys in xecho reference cluster; do
      v=$(pct "$sys")
      [[ $v == \? ]] || own+=("$v on $sys")
    done
    echo "    CPU us/msg $(IFS=,; echo "${cpus[*]}" | sed 's/,/, /g'); $gen's own CPU % of a core: $(IFS=,; echo "${own[*]}" | sed 's/,/, /g')"
  done
}

echo "summary rounds=$rounds conns=$conns size=$size receivers=$receivers (medians over the rounds; a ratio is that of the medians, as gwx-bench compare gives it, then each round's and their median); load average $load_start at the start, $load_end at the end"
summary xload
summary gwx-bench
if ((errors > 0)); then
  echo "  errors: $errors run(s) failed (see the run lines above; logs in $log_dir)"
  exit 1
fi
echo "  logs: $log_dir"
