#!/usr/bin/env bash
# Where the gateway and the worker spend their CPU under echo load: starts a local cluster
# (gwx-register, gwx-gateway, gwx-worker --app echo) on free ports, drives it with gwx-bench echo,
# records both processes with `perf record -e cpu-clock -g` (software clock: works where hardware
# counters do not) and prints, per process, the CPU split by library and the top symbols.
# The perf data files stay in --out for `perf report -i FILE`.
#
# usage: tools/bench/profile.sh [--bin build/bin] [--protocol ws] [--inflight 8]
#                               [--connections 100] [--seconds 6] [--out DIR] [--top 25]
#                               [--call-graph fp|dwarf]   (dwarf: callers of malloc & co. too)
set -euo pipefail

bin=build/bin protocol=ws inflight=8 connections=100 seconds=6 out="" top=25 call_graph=fp
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --protocol) protocol=$2; shift 2 ;;
    --inflight) inflight=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --call-graph) call_graph=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
command -v perf >/dev/null || { echo "profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
for b in gwx-register gwx-gateway gwx-worker gwx-bench; do
  [[ -x "$bin/$b" ]] || { echo "profile.sh: $bin/$b not found (build first, or --bin DIR)" >&2; exit 1; }
done
out=${out:-$(mktemp -d /tmp/gwx-profile-XXXXXX)}
mkdir -p "$out"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT

# Waits for a line starting with $2 in file $1; prints the rest of it.
wait_line() {
  for _ in $(seq 200); do
    local line
    line=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
    if [[ -n "$line" ]]; then echo "${line#"$2"}"; return 0; fi
    sleep 0.1
  done
  echo "profile.sh: no '$2' line in $1; stderr: $(tail -n 3 "${1%.out}.err")" >&2
  exit 1
}

secret="profile-$RANDOM$RANDOM"
"$bin/gwx-register" --listen 127.0.0.1:0 >"$out/register.out" 2>"$out/register.err" &
pids+=($!)
register=$(wait_line "$out/register.out" "listening grpc://")
url_suffix=""; [[ "$protocol" == ws ]] && url_suffix=/
"$bin/gwx-gateway" --register "$register" --secret "$secret" --internal 127.0.0.1:0 \
  --listen "$protocol://127.0.0.1:0$url_suffix" >"$out/gateway.out" 2>"$out/gateway.err" &
gateway=$!; pids+=($gateway)
url=$(wait_line "$out/gateway.out" "listening ")
"$bin/gwx-worker" --register "$register" --secret "$secret" --app echo \
  >"$out/worker.out" 2>"$out/worker.err" &
worker=$!; pids+=($worker)
wait_line "$out/worker.out" "linked " >/dev/null

"$bin/gwx-bench" echo "$url" --connections "$connections" --inflight "$inflight" --warmup 1 \
  --duration $((seconds + 2)) --pid gateway=$gateway --pid worker=$worker >"$out/bench.out" 2>&1 &
bench=$!
sleep 2
perf record -q -e cpu-clock --call-graph "$call_graph" -p "$gateway" -o "$out/gateway.perf" -- sleep "$seconds" \
  >/dev/null 2>&1 &
perf_gw=$!
perf record -q -e cpu-clock --call-graph "$call_graph" -p "$worker" -o "$out/worker.perf" -- sleep "$seconds" \
  >/dev/null 2>&1
wait "$perf_gw"
wait "$bench" || true
echo "load: $(cat "$out/bench.out")"
set +o pipefail  # head ends perf report's output early on purpose
for p in gateway worker; do
  echo
  echo "== $p: CPU by library (cpu-clock samples)"
  perf report -i "$out/$p.perf" --no-children --sort dso -g none --stdio 2>/dev/null |
    grep '%' | head -n 8 | tee "$out/$p.dso.txt"
  echo "== $p: top $top symbols"
  perf report -i "$out/$p.perf" --no-children --sort dso,symbol -g none --stdio 2>/dev/null |
    grep '%' | head -n "$top" | sed 's/ \{2,\}/  /g; s/[ -]*$//' | tee "$out/$p.top.txt"
done
echo
echo "perf data and summaries in $out"
