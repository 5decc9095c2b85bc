#!/usr/bin/python3
"""Fan-out through the push bus next to the direct path: deliveries/s and gateway CPU per delivery.

For each mode a fresh gwx-register, gwx-gateway and gwx-worker (`commands` app) are started and
`gwx-bench fanout` drives them: one sender sends `to-all <msg>`, the worker calls send_to_all,
and every message must reach every receiver. The only difference between the modes is how the
worker's writes travel:

  direct        the link to the gateway (gwx-worker's default)
  redis         --push-via bus: PUBLISH to a private redis-server, the gateway SUBSCRIBEd
  amqp-fanout   --push-via bus: a private RabbitMQ node, fanout exchange
  amqp-routed   --push-via bus: the same node, direct exchange (send_to_all uses key `all`)

With --bindings N (amqp-routed only), N more clients then each bind a uid of their own (a
bind_uid through the bus, the gateway binding `uid.<uid>` at the broker) and close again; the
time until the gateway reports all N keys bound, and all unbound, gives the binding rate.

Usage (from the repository, after a build):
  /usr/bin/python3 tools/bench/bus_fanout.py --bin build/bin [--receivers 200] [--seconds 5]
      [--modes direct,redis,amqp-fanout,amqp-routed] [--bindings 2000]

Brokers run on their own loopback ports and folders (tests/e2e/bus_brokers.py) and are stopped
at the end; a system Redis or RabbitMQ is never used.
"""

import asyncio
import json
import os
import time
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))
from gwx_cluster import check, connect, log, poll_until, run_test  # noqa: E402
from bus_brokers import RabbitServer, RedisServer  # noqa: E402
from bus_checks import metric, scrape  # noqa: E402

MODES = ["direct", "redis", "amqp-fanout", "amqp-routed"]


def extra_args():
    return [(("--receivers",), {"type": int, "default": 200}),
            (("--seconds",), {"type": int, "default": 5}),
            (("--inflight",), {"type": int, "default": 4}),
            (("--modes",), {"default": ",".join(MODES)}),
            (("--bindings",), {"type": int, "default": 0})]


async def measure_bindings(h, gw, metrics_addr, n):
    """N clients bind a uid each, then close: seconds until the gateway's bound keys reflect it."""
    async def bound():
        return metric(await asyncio.to_thread(scrape, metrics_addr), "gwx_gateway_bus_bindings")
    base = await bound()
    clients = []
    for i in range(0, n, 200):
        batch = range(i, min(n, i + 200))
        clients += await asyncio.gather(*(connect(gw, "ws", f"b{j}") for j in batch))
    start = time.monotonic()
    replies = await asyncio.gather(*(c.cmd(f"bind bench-uid-{j}", 300) for j, c in enumerate(clients)))
    check(all(r == "ok" for r in replies), "bind replies")
    await poll_until(bound, lambda v: v == base + n, 120, f"{n} uid keys bound")
    bind_s = time.monotonic() - start
    start = time.monotonic()
    await asyncio.gather(*(c.close() for c in clients))
    await poll_until(bound, lambda v: v == base, 120, f"{n} uid keys unbound")
    unbind_s = time.monotonic() - start
    return {"bindings": n, "bind_s": round(bind_s, 3), "unbind_s": round(unbind_s, 3)}


async def run_mode(h, mode, url):
    c = h.cluster
    reg = await c.start_register(name=f"register-{mode}")
    gw_extra = ["--bus", url, "--metrics", "127.0.0.1:0"] if url else []
    gw = await c.start_gateway([reg.addr], name=f"gateway-{mode}", listeners=["ws://127.0.0.1:0/"],
                               threads=1, extra=gw_extra)
    w_extra = ["--push-via", "bus", "--bus", url] if url else []
    w = await c.start_worker([reg.addr], "commands", name=f"worker-{mode}", extra=w_extra)
    await c.wait_linked([w], [gw])
    metrics_addr = None
    if url:
        # Subscribed before the load starts (what is published earlier is lost: at-most-once).
        m, _ = await gw.wait_line(r"^listening metrics://(\S+)\s*$")
        metrics_addr = m.group(1)

        async def connected():
            return metric(await asyncio.to_thread(scrape, m.group(1)), "gwx_gateway_bus_connected")
        await poll_until(connected, lambda v: v == 1.0, 60, f"{mode}: bus connected")
    a = h.args
    status, out, err = await c.run("gwx-bench", [
        c.binary("gwx-bench"), "fanout", gw.url("ws"), "--prefix", "to-all ",
        "--receivers", str(a.receivers), "--inflight", str(a.inflight),
        "--duration", str(a.seconds), "--json",
        "--pid", f"gateway={gw.pid}", "--pid", f"worker={w.pid}"], timeout=a.seconds + 120)
    check(status == 0, f"gwx-bench fanout ({mode}): status {status}: {err}")
    result = json.loads(out.strip().splitlines()[-1])
    if mode == "amqp-routed" and a.bindings:
        result["binding"] = await measure_bindings(h, gw, metrics_addr, a.bindings)
    for p in (w, gw, reg):
        await p.stop()
    return result


async def main(h):
    modes = h.args.modes.split(",")
    urls = {"direct": None}
    if "redis" in modes:
        redis = await RedisServer(h).start()
        urls["redis"] = redis.url("gwx.bench")
    if any(m.startswith("amqp") for m in modes):
        rabbit = await RabbitServer(h).start()
        urls["amqp-fanout"] = rabbit.url("gwx.bench.fanout", "fanout")
        urls["amqp-routed"] = rabbit.url("gwx.bench.routed", "routed")
    results = {}
    for mode in modes:
        results[mode] = await run_mode(h, mode, urls[mode])
        log(f"{mode}: {json.dumps(results[mode])}")
    print(f"\nfan-out to {h.args.receivers} receivers, {h.args.inflight} in flight, "
          f"{h.args.seconds} s per mode")
    print("mode          deliveries/s   lost   gateway CPU us/delivery   worker CPU us/delivery")
    for mode, r in results.items():
        pids = r.get("pids", {})
        gw = (pids.get("gateway") or {}).get("cpu_us_per_msg") or 0
        wk = (pids.get("worker") or {}).get("cpu_us_per_msg") or 0
        print(f"{mode:<13} {r.get('rate', 0):>12.0f}   {r.get('lost', 0):>4}   {gw:>23.2f}   "
              f"{wk:>22.2f}")
    for mode, r in results.items():
        if "binding" in r:
            b = r["binding"]
            print(f"{mode}: {b['bindings']} uids bound in {b['bind_s']} s "
                  f"({b['bindings'] / b['bind_s']:.0f}/s), unbound on close in {b['unbind_s']} s "
                  f"({b['bindings'] / b['unbind_s']:.0f}/s)")


if __name__ == "__main__":
    run_test(main, extra_args())
