#!/usr/bin/python3
"""The push bus through Redis pub/sub (issue 8).

A private redis-server (own port, no persistence, own folder), one register, two gateways with
`--bus redis://127.0.0.1:P/gwx.push`, a worker with the `commands` app and four clients. Bus
messages are published from outside with `redis-cli PUBLISH` and python3-redis:

1. every op of the README reaches exactly its clients on both gateways and nobody else;
2. hostile messages (garbage, 10 MB, deep nesting, wrong types, unknown op) are counted by
   reason and leave the gateways serving;
3. `gwxctl --push-via bus` pushes through Redis; `gwxctl stats` shows the bus state;
4. redis-server is killed: no client is disconnected, the bus shows disconnected, clients are
   served; restarted on the same port: the gateways subscribe again and pushes resume.
"""

import asyncio
import os
import re
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, expect_reply, log, run_test  # noqa: E402
from bus_brokers import RedisServer  # noqa: E402
from bus_checks import BusCluster, check_every_op, check_hostile, expect_push, op  # noqa: E402

try:
    import redis
except ImportError:
    sys.stderr.write("test_bus_redis: python3-redis is missing (apt-get install python3-redis)\n")
    sys.exit(1)

CHANNEL = "gwx.push"


async def main(h):
    server = await RedisServer(h).start()
    bc = await BusCluster(h).start(server.url(CHANNEL))
    r = redis.Redis(host="127.0.0.1", port=server.port)
    cli = shutil.which("redis-cli")
    check(cli, "redis-cli not found (apt-get install redis-tools)")
    use_cli = [True]

    async def publish(pubs):
        # Alternate between redis-cli (as a shell user would) and python3-redis.
        for _key, text in pubs:
            if use_cli[0]:
                status, out, err = await h.cluster.run(
                    "redis-cli", [cli, "-p", str(server.port), "PUBLISH", CHANNEL, text])
                check(status == 0 and re.match(r"^\d+$", out.strip()),
                      f"redis-cli PUBLISH: status {status}, {out!r} {err!r}")
                check_eq(int(out.strip()), 2, "redis-cli PUBLISH: subscribers reached")
            else:
                check_eq(await asyncio.to_thread(r.publish, CHANNEL, text), 2,
                         "PUBLISH: subscribers reached")
            use_cli[0] = not use_cli[0]

    async def publish_raw(payload):
        await asyncio.to_thread(r.publish, CHANNEL, payload)

    await check_every_op(bc, publish)
    await check_hostile(bc, publish_raw)

    # gwxctl: writes through the bus, stats from the links.
    regs = [bc.register.addr]
    base = [h.cluster.binary("gwxctl"), "--register", ",".join(regs), "--secret",
            h.cluster.secret, "--timeout-ms", "5000"]
    status, out, err = await h.cluster.run(
        "gwxctl", base + ["--push-via", "bus", "--bus", server.url(CHANNEL),
                          "send-to-uid", "alice", "via gwxctl"], timeout=30)
    check(status == 0, f"gwxctl --push-via bus send-to-uid: {status} {out!r} {err!r}")
    await expect_push([bc.a1, bc.b1], "via gwxctl", bc.everyone, "gwxctl --push-via bus")
    status, out, err = await h.cluster.run("gwxctl", base + ["stats"], timeout=30)
    check(status == 0, f"gwxctl stats: {status} {err!r}")
    for g in bc.gateways:
        line = next((ln for ln in out.splitlines() if ln.startswith(g.internal + " ")), "")
        m = re.search(r" bus=redis bus_connected=1 bus_received=(\d+) bus_applied=(\d+) "
                      r"bus_rejected=(\d+) bus_dropped=0 bus_bindings=0", line)
        check(m, f"gwxctl stats: no bus state for {g.name} in {line!r}")
        check(int(m.group(3)) >= 8 and int(m.group(2)) >= 15,
              f"gwxctl stats: {g.name} bus counters {m.groups()}")
    log("gwxctl: send-to-uid through the bus; stats show the bus state of both gateways")
    status, out, err = await h.cluster.run(
        "gwxctl", base + ["--push-via", "bus", "--bus", "redis://127.0.0.1:1", "send-to-all", "x"])
    check(status == 2 and "bad --bus URL" in err, f"gwxctl bad --bus: {status} {err!r}")

    # The broker goes away and comes back.
    await server.kill()
    await bc.wait_connected(False)
    for x in bc.everyone:
        await expect_reply(x, "echo served", "served")
    await server.start()
    await bc.wait_connected(True)
    await publish([("all", op(op="send_to_uid", uids=["alice"], data="after restart"))])
    await expect_push([bc.a1, bc.b1], "after restart", bc.everyone, "push after a Redis restart")
    log("redis killed and restarted: no client disconnected, pushes resumed")


if __name__ == "__main__":
    run_test(main)
