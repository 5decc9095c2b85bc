#!/usr/bin/env bash
# gwx quick start. Run as root on Debian 12 (or with sudo):
#   bash tools/quickstart.sh demo   install what is missing, build, run a demo cluster on localhost
#   bash tools/quickstart.sh test   install what is missing, build, run the whole test suite
#   bash tools/quickstart.sh sanitize   the unit tests and the end-to-end tests of the data paths
#                                       built with ASan+UBSan (build-asan/); what it leaves out and
#                                       why is above sanitize() below
#   bash tools/quickstart.sh fuzz   every libFuzzer target in tests/fuzz, its seeds and a fixed
#                                   number of runs (clang, build-fuzz/)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

build_packages=(build-essential cmake ninja-build pkg-config libasio-dev libprotobuf-dev
  protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libboost-program-options-dev
  libspdlog-dev libgtest-dev libgmock-dev libssl-dev prometheus-cpp-dev libhiredis-dev
  librabbitmq-dev liburing-dev python3)
test_packages=(python3-websockets chromium procps iproute2 prometheus python3-yaml systemd openssl
  redis-server redis-tools rabbitmq-server python3-redis python3-pika valgrind)

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "quickstart: installing ${missing[*]}"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

build() {
  cmake --preset default >/dev/null
  cmake --build --preset default -j"$(nproc)"
}

demo() {
  install_packages "${build_packages[@]}" python3-websockets netcat-openbsd
  build
  local bin="$here/build/bin" run="$here/build/demo"
  mkdir -p "$run"
  local secret="${GWX_DEMO_SECRET:-demo-secret-$RANDOM$RANDOM}"
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; echo; echo "demo stopped"' EXIT
  trap 'exit 0' INT TERM
  "$bin/gwx-register" --listen 127.0.0.1:7700 >"$run/register.out" 2>"$run/register.log" &
  pids+=($!)
  "$bin/gwx-gateway" --register 127.0.0.1:7700 --secret "$secret" --internal 127.0.0.1:7800 \
    --listen ws://127.0.0.1:8080/ --listen tcp+line://127.0.0.1:8081 \
    >"$run/gateway.out" 2>"$run/gateway.log" &
  pids+=($!)
  "$bin/gwx-worker" --register 127.0.0.1:7700 --secret "$secret" --app chat \
    >"$run/worker.out" 2>"$run/worker.log" &
  pids+=($!)
  /usr/bin/python3 -m http.server --bind 127.0.0.1 --directory "$here/tools/demo" 8000 \
    >"$run/http.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    grep -q '^linked' "$run/worker.out" 2>/dev/null && break
    sleep 0.1
  done
  if ! grep -q '^linked' "$run/worker.out"; then
    echo "quickstart: the demo cluster did not come up; logs in $run" >&2
    tail -n 5 "$run"/*.log >&2
    exit 1
  fi
  cat <<MSG

gwx demo cluster is running (register 127.0.0.1:7700, gateway, worker with the chat app).
  Browser:    open http://127.0.0.1:8000/ in two tabs and chat ("/nick NAME" sets your name)
  WebSocket:  ws://127.0.0.1:8080/   e.g. /usr/bin/python3 -m websockets ws://127.0.0.1:8080/
  TCP lines:  nc 127.0.0.1 8081
  Logs:       $run/*.log
Press Ctrl-C to stop.
MSG
  wait
}

run_tests() {
  install_packages "${build_packages[@]}"
  # Test-only tools: a package whose post-install step cannot start its service (e.g. in a
  # container) must not stop the run; a test that needs a missing tool fails and says so.
  install_packages "${test_packages[@]}" ||
    echo "quickstart: warning: some test packages did not install cleanly" >&2
  build
  ctest --preset default --output-on-failure --timeout 600 -j2
}

# The sanitizer run (a CI stage, about 15 minutes of the CI machine's 2 cores with its build):
# every unit test and the end-to-end tests that drive the gateway, worker and register data paths
# (commands over every framing, with and without internal TLS, the Gateway API, resilience, the
# listener protections, malformed and non-UTF-8 input, TLS listeners (SNI, hostile handshakes,
# link certificate reloads), the Redis push bus, upgrades with no worker,
# SIGSTOP and draining pushes, gwxctl, Prometheus scrapes, the register's command line). Left
# out, by name below:
# - the load and soak tests (upgrade_rolling, upgrade_crash, upgrade_script, inflight_bound,
#   bench): 200 clients for minutes, 3-10x slower under ASan, past the stage's budget, and what
#   they add over the tests above is throughput and memory figures a sanitizer's allocator
#   changes; their code paths (redelivery, drain, queues) run in the upgrade tests kept here;
#   likewise xcheck (the independent load generator and reference server, tools/bench/xcheck,
#   and gwx-bench, which this stage does not build), and profile_callgrind (valgrind cannot run
#   a binary built with ASan);
# - the browser tests (browser_chat, tls_browser): Chromium's own start-up is most of their time
#   and the gateway paths they use are the ws/wss ones e2e_commands and e2e_tls run;
# - tls_memory (OpenSSL's bytes per idle connection, counted by a tool of its own: figures a
#   sanitizer's allocator changes) and memory_return (what glibc's allocator gives back, which
#   a sanitizer's allocator replaces; worker_memory_return runs, its resident sizes not
#   checked, for its pushes to a stopped gateway);
# - bus_amqp: RabbitMQ's start-up (twice) is most of its 50 s under ASan, and bus_redis, kept
#   here, drives the same gateway path (the bus message, the ops, the subscriber's reconnects);
# - install (rebuilds the whole tree into a prefix), deploy and config (files and --print-config,
#   no traffic), netns (needs root and namespaces; its paths are those of e2e_resilience);
# - one unit test, MetricsExposer.AcceptFailuresAtTheFileLimit...: it takes every file
#   descriptor, and UBSan's own check of a vtable pointer needs one (a pipe), so UBSan reports a
#   bad vptr in fmt where there is none.
sanitize_skip_e2e='^e2e_(upgrade_rolling|upgrade_crash|upgrade_script|inflight_bound|bench|xcheck|profile_callgrind|install|browser_chat|tls_browser|deploy|config|netns_.*|tls_memory|memory_return|bus_amqp)$'
sanitize_skip_unit='MetricsExposer.AcceptFailuresAtTheFileLimitAreLoggedOncePerInterval'

sanitize() {
  install_packages "${build_packages[@]}"
  install_packages "${test_packages[@]}" ||
    echo "quickstart: warning: some test packages did not install cleanly" >&2
  cmake --preset asan >/dev/null
  # Only what the tests run: the binaries, the unit tests, the example app.
  cmake --build --preset asan -j"$(nproc)" --target gwx_unit_tests gwx-register gwx-gateway \
    gwx-worker gwxctl gwx_example_app
  # A sanitizer report fails the process that found it (ASan halts; UBSan is built with
  # -fno-sanitize-recover), and leaks are checked in every process that exits by itself (SIGTERM,
  # drain, the unit tests). The e2e harness also fails a test when any process it started printed
  # a report (one it then killed, or whose exit status it did not look at). Third-party leaks
  # (never our own) are suppressed in tools/sanitizers/lsan.supp, each with its reason.
  # GWX_E2E_SANITIZER tells the e2e tests that memory figures (RSS) mean nothing here.
  local -x ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0"
  local -x UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
  local -x LSAN_OPTIONS="suppressions=$here/tools/sanitizers/lsan.supp:print_suppressions=0"
  local -x GWX_E2E_SANITIZER=asan
  local status=0
  # The unit tests in one process (ctest would start the 250 MB binary once per test: minutes of
  # ASan start-ups on 2 cores), then the e2e tests.
  echo "quickstart: unit tests under ASan+UBSan"
  timeout 900 build-asan/tests/gwx_unit_tests --gtest_brief=1 \
    --gtest_filter="-$sanitize_skip_unit" || status=1
  echo "quickstart: end-to-end tests under ASan+UBSan"
  ctest --preset asan --output-on-failure --timeout 900 -j2 -L e2e -E "$sanitize_skip_e2e" ||
    status=1
  return "$status"
}

fuzz() {
  install_packages "${build_packages[@]}" clang
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DGWX_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz -j"$(nproc)" --target fuzz
  # Each target: its seeds replayed (label fuzz), then GWX_FUZZ_RUNS mutations (fuzz_run).
  ctest --test-dir build-fuzz --output-on-failure -j"$(nproc)" -L '^fuzz'
}

case "${1:-}" in
  demo) demo ;;
  test) run_tests ;;
  sanitize) sanitize ;;
  fuzz) fuzz ;;
  build) install_packages "${build_packages[@]}"; build ;;
  *) echo "usage: bash tools/quickstart.sh demo|test|sanitize|fuzz|build" >&2; exit 2 ;;
esac
