#!/usr/bin/python3
"""gwx-bench works (functional only: no figure is asserted, speed never is).

Against `gwx-bench reference` (echo and broadcast listeners of every protocol) and against a real
cluster (gateway with every listener, worker with the echo app): each mode runs briefly and its
result line parses with errors=0 and something measured. A server that answers with the wrong
messages (echo mode against a broadcast listener) must be reported as errors with exit status 1,
and bad command lines exit 2 with one clear line.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, log, run_test  # noqa: E402

PROTOCOLS = ("ws", "tcp+line", "tcp+frame", "tcp+raw")
SHORT = ["--duration", "0.5", "--warmup", "0.2", "--drain-timeout", "5"]


async def main(h):
    c = h.cluster
    bench = c.binary("gwx-bench")

    async def run_bench(*args, expect_status=0):
        status, out, err = await c.run("gwx-bench", [bench] + list(args), timeout=60)
        check(status == expect_status,
              f"gwx-bench {' '.join(args)}: exit status {status}, expected {expect_status}; "
              f"stdout {out!r}; stderr {err!r}")
        return out, err

    async def run_json(*args, expect_status=0):
        out, _ = await run_bench(*args, "--json", expect_status=expect_status)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        check_eq(len(lines), 1, f"result lines of gwx-bench {' '.join(args)} ({out!r})")
        return json.loads(lines[0])

    def check_clean(r, what, mode):
        check_eq(r["mode"], mode, f"{what}: mode")
        check_eq(r["errors"], 0, f"{what}: errors (first: {r['first_error']!r})")
        check(r["messages"] > 0 and r["rate"] > 0, f"{what}: nothing measured: {r}")
        check(0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"], f"{what}: percentiles {r}")

    # ---- the reference server: one echo and one broadcast listener per protocol
    argv = [bench, "reference"]
    for p in PROTOCOLS:
        argv += ["--listen", f"{p}://127.0.0.1:0" + ("/" if p == "ws" else ""),
                 "--broadcast", f"{p}://127.0.0.1:0" + ("/" if p == "ws" else "")]
    ref = await c.spawn("reference", argv)
    echo_urls, bcast_urls = {}, {}
    for _ in range(2 * len(PROTOCOLS)):
        m, _ = await ref.wait_line(r"^listening (echo|broadcast) (([\w+]+)://\S+)$",
                                   start=len(echo_urls) + len(bcast_urls))
        (echo_urls if m.group(1) == "echo" else bcast_urls)[m.group(3)] = m.group(2)
    check_eq(sorted(echo_urls), sorted(PROTOCOLS), "reference echo listeners")
    pid = ["--pid", f"reference={ref.pid}"]

    # Both ways the generator can make its I/O: batched through io_uring (the default) and one
    # recv and one send per connection and turn.
    for p in PROTOCOLS:
        for uring in ("on", "off"):
            r = await run_json("echo", echo_urls[p], "--connections", "10", "--inflight", "4",
                               "--io-uring", uring, *SHORT, *pid)
            check_clean(r, f"echo {p} vs reference, generator --io-uring {uring}", "echo")
            check_eq(r["protocol"], p, "protocol")
            check(r["pids"]["reference"]["cpu_us_per_msg"] is not None, f"reference CPU: {r}")
            log(f"echo {p} reference, generator --io-uring {uring}: {r['rate']:.0f} msgs/s")

    # The plain line format, as a user reads it.
    out, _ = await run_bench("echo", echo_urls["ws"], "--connections", "5", *SHORT, *pid)
    check(re.search(r"^mode=echo proto=ws conns=5 .* msgs/s=\d+ p50_ms=[\d.]+ p99_ms=[\d.]+ "
                    r"p999_ms=[\d.]+ errors=0 cpu_us/msg\[reference\]=[\d.]+", out, re.M),
          f"result line: {out!r}")

    r = await run_json("fanout", bcast_urls["ws"], "--receivers", "20", *SHORT, *pid)
    check_clean(r, "fanout ws vs reference", "fanout")
    check(r["pids"]["reference"]["cpu_us_per_msg"] is not None, f"reference CPU: {r}")
    r = await run_json("connect", echo_urls["ws"], "--connections", "4", *SHORT)
    check_clean(r, "connect ws vs reference", "connect")
    r = await run_json("idle", echo_urls["tcp+line"], "--connections", "300", "--per-process",
                       "150", *pid)
    check_eq((r["mode"], r["connections"], r["errors"]), ("idle", 300, 0), "idle vs reference")
    check(r["pids"]["reference"]["rss_per_conn"] is not None, f"idle RSS per conn: {r}")

    # Replies that are not the messages sent are errors: an echo client on a broadcast
    # listener also gets the other clients' messages.
    r = await run_json("echo", bcast_urls["tcp+frame"], "--connections", "3", *SHORT,
                       expect_status=1)
    check(r["errors"] > 0 and r["first_error"], f"wrong replies not reported: {r}")

    # ---- a real cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr])
    wk = await c.start_worker([reg.addr], "echo")
    await c.wait_linked([wk], [gw])
    cpid = ["--pid", f"gateway={gw.pid}", "--pid", f"worker={wk.pid}"]
    for p in PROTOCOLS:
        inflight = "1" if p == "tcp+raw" else "4"  # raw has no framing: one read, one message
        r = await run_json("echo", gw.url(p), "--connections", "10", "--inflight", inflight,
                           *SHORT, *cpid)
        check_clean(r, f"echo {p} vs cluster", "echo")
        check(r["pids"]["gateway"]["cpu_us_per_msg"] is not None, f"gateway CPU: {r}")
        log(f"echo {p} cluster: {r['rate']:.0f} msgs/s")

    # ---- compare: starts its own reference and cluster from the same directory
    out, err = await run_bench("compare", "--rounds", "1", "--phases", "echo8,fanout,idle",
                               "--receivers", "20", "--idle-connections", "100", *SHORT,
                               "--json")
    objs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    runs = [o for o in objs if "summary" not in o]
    check_eq(sorted((o["phase"], o["system"]) for o in runs),
             sorted((p, s) for p in ("echo8", "fanout", "idle")
                    for s in ("reference", "cluster")), "compare runs")
    check(all(o["errors"] == 0 for o in runs), f"compare runs with errors: {runs}")
    summary = objs[-1].get("summary")
    check(summary is not None and summary["errors"] == 0, f"compare summary: {objs[-1]}")
    for key, fields in (("echo8", ("reference", "cluster", "ratio")),
                        ("fanout", ("reference_cpu_us_per_delivery",
                                    "gateway_cpu_us_per_delivery", "ratio")),
                        ("idle", ("reference_rss_per_conn", "gateway_rss_per_conn"))):
        check(all(summary[key][f] is not None for f in fields), f"compare {key}: {summary}")
    check(re.search(r"^  echo8: reference \d+ msgs/s .* ratio [\d.]+", err, re.M),
          f"compare's readable summary on stderr with --json: {err!r}")

    # ---- bad command lines
    for args, pattern in (
            (["echo", "http://127.0.0.1:1/"], r"unknown protocol 'http'"),
            (["echo", "ws://127.0.0.1/"], r"bad address"),
            (["echo"], r"needs exactly one URL"),
            (["frobnicate", "ws://127.0.0.1:1/"], r"unknown mode 'frobnicate'"),
            (["echo", "ws://127.0.0.1:1/", "--size", "4"], r"--size must be at least 20"),
            (["echo", "ws://127.0.0.1:1/", "--pid", "gateway"], r"expected NAME=PID"),
            (["echo", "ws://127.0.0.1:1/", "--io-uring", "yes"], r"--io-uring must be on or off"),
            (["compare", "--phases", "echo9"], r"unknown phase 'echo9'"),
            (["reference"], r"at least one --listen")):
        _, err = await run_bench(*args, expect_status=2)
        check(re.search(pattern, err) and len(err.strip().splitlines()) == 1,
              f"gwx-bench {' '.join(args)}: stderr {err!r} should be one line matching {pattern!r}")
    _, err = await run_bench("echo", "tcp+line://127.0.0.1:1", "--open-timeout", "5",
                             expect_status=1)
    check("connect" in err, f"unreachable target: stderr {err!r}")


if __name__ == "__main__":
    run_test(main)
