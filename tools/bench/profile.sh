#!/usr/bin/env bash
# Where the gateway and the worker spend their CPU under echo load: starts a local cluster
# (gwx-register, gwx-gateway, gwx-worker --app echo) on free ports, drives it with gwx-bench echo,
# records both processes with `perf record -e cpu-clock -g` (software clock: works where hardware
# counters do not) and prints, per process, the CPU split by library and the top symbols.
# The perf data files stay in --out for `perf report -i FILE`.
# --tool callgrind runs one --process under `valgrind --tool=callgrind` instead, counts
# instructions only while the load runs (callgrind_control -i on/off, --seconds) and prints the
# instructions per echoed message (per call of the function --unit names) and the allocations
# per message: repeatable where cpu-clock samples are not. The rate under valgrind is lower,
# and fewer messages then share each read and write, so compare counts taken at similar rates.
#
# usage: tools/bench/profile.sh [--bin build/bin] [--protocol ws] [--inflight 8]
#                               [--connections 100] [--seconds 6] [--out DIR] [--top 25]
#                               [--call-graph fp|dwarf]   (dwarf: callers of malloc & co. too)
#                               [--tool perf|callgrind] [--process gateway|worker] [--unit RE]
set -euo pipefail

bin=build/bin protocol=ws inflight=8 connections=100 seconds=6 out="" top=25 call_graph=fp
tool=perf process=gateway unit=""
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
    --tool) tool=$2; shift 2 ;;
    --process) process=$2; shift 2 ;;
    --unit) unit=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$tool:$process" in
  perf:*) command -v perf >/dev/null ||
    { echo "profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; } ;;
  callgrind:gateway|callgrind:worker) command -v valgrind >/dev/null ||
    { echo "profile.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; } ;;
  callgrind:*) echo "profile.sh: --process must be gateway or worker" >&2; exit 2 ;;
  *) echo "profile.sh: --tool must be perf or callgrind" >&2; exit 2 ;;
esac
# One call per echoed message: the gateway executes each reply command, the worker encodes
# each reply.
if [[ -z "$unit" ]]; then
  unit='command_executor::execute\('
  [[ "$process" == worker ]] && unit='link_codec::encode_send_to_client\('
fi
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

# Under callgrind the chosen process starts with instrumentation off (start-up is not counted).
gateway_under=() worker_under=()
if [[ "$tool" == callgrind ]]; then
  declare -n under="${process}_under"
  under=(valgrind -q --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/$process.callgrind")
fi
secret="profile-$RANDOM$RANDOM"
"$bin/gwx-register" --listen 127.0.0.1:0 >"$out/register.out" 2>"$out/register.err" &
pids+=($!)
register=$(wait_line "$out/register.out" "listening grpc://")
url_suffix=""; [[ "$protocol" == ws ]] && url_suffix=/
"${gateway_under[@]}" "$bin/gwx-gateway" --register "$register" --secret "$secret" --internal 127.0.0.1:0 \
  --listen "$protocol://127.0.0.1:0$url_suffix" >"$out/gateway.out" 2>"$out/gateway.err" &
gateway=$!; pids+=($gateway)
url=$(wait_line "$out/gateway.out" "listening ")
"${worker_under[@]}" "$bin/gwx-worker" --register "$register" --secret "$secret" --app echo \
  >"$out/worker.out" 2>"$out/worker.err" &
worker=$!; pids+=($worker)
wait_line "$out/worker.out" "linked " >/dev/null

"$bin/gwx-bench" echo "$url" --connections "$connections" --inflight "$inflight" --warmup 1 \
  --duration $((seconds + 2)) --pid gateway=$gateway --pid worker=$worker >"$out/bench.out" 2>&1 &
bench=$!
sleep 2
if [[ "$tool" == callgrind ]]; then
  target=$gateway
  [[ "$process" == worker ]] && target=$worker
  callgrind_control -i on "$target" >/dev/null
  sleep "$seconds"
  callgrind_control -i off "$target" >/dev/null
  wait "$bench" || true
  echo "load (the $process under valgrind): $(cat "$out/bench.out")"
  kill "$target"  # callgrind writes its file as the process exits
  wait "$target" || true
  echo
  echo "== $process: instructions while the load ran"
  python3 "$(dirname "$0")/callgrind_per_call.py" "$out/$process.callgrind" "$unit" \
    --count '^operator new\(' --count '^malloc$'
  echo "== $process: top $top functions (instructions, exclusive)"
  set +o pipefail
  callgrind_annotate "$out/$process.callgrind" 2>/dev/null | grep -E '^ *[0-9,]+ \(' | sed -n "2,$((top + 1))p"
  echo
  echo "callgrind output in $out/$process.callgrind (callgrind_annotate, kcachegrind)"
  exit 0
fi
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
