#!/usr/bin/env bash
# gwx quick start. Run as root on Debian 12 (or with sudo):
#   bash tools/quickstart.sh demo   install what is missing, build, run a demo cluster on localhost
#   bash tools/quickstart.sh test   install what is missing, build, run the whole test suite
#   bash tools/quickstart.sh sanitize   the unit and end-to-end tests (not the load tests) built
#                                       with ASan+UBSan (build-asan/)
#   bash tools/quickstart.sh fuzz   every libFuzzer target in tests/fuzz, its seeds and a fixed
#                                   number of runs (clang, build-fuzz/)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

build_packages=(build-essential cmake ninja-build pkg-config libasio-dev libprotobuf-dev
  protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libboost-program-options-dev
  libspdlog-dev libgtest-dev libgmock-dev libssl-dev prometheus-cpp-dev libhiredis-dev
  librabbitmq-dev python3)
test_packages=(python3-websockets chromium procps iproute2 prometheus python3-yaml systemd openssl
  redis-server redis-tools rabbitmq-server python3-redis python3-pika)

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

# The end-to-end tests left out of the sanitizer run: load and soak tests (minutes each under a
# sanitizer, and what they assert is throughput and memory figures that a sanitizer's allocator
# changes), the browser, the install and the deploy-file checks (no gwx code of their own runs
# longer than in other tests).
sanitize_skip='e2e_(upgrade_rolling|upgrade_crash|upgrade_script|inflight_bound|bench|install|browser_chat|deploy|config|netns_.*)$'

sanitize() {
  install_packages "${build_packages[@]}"
  install_packages "${test_packages[@]}" ||
    echo "quickstart: warning: some test packages did not install cleanly" >&2
  cmake --preset asan >/dev/null
  # Only what the tests run: the binaries, the unit tests, the example app.
  cmake --build --preset asan -j"$(nproc)" --target gwx_unit_tests gwx-register gwx-gateway \
    gwx-worker gwxctl gwx_example_app
  # A sanitizer report fails the process that found it (and so the test): UBSan stops at the
  # first error too. Leaks are reported by processes that exit normally (SIGTERM, drain).
  # GWX_E2E_SANITIZER tells the e2e tests that memory figures (RSS) mean nothing here.
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0" \
  UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1" \
  GWX_E2E_SANITIZER=asan \
    ctest --preset asan --output-on-failure --timeout 900 -j2 -L 'unit|e2e' -E "$sanitize_skip"
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
