#!/usr/bin/python3
"""`--delivery at-most-once` on a real gateway: an event whose worker dies unacknowledged is never
handed to another worker, while the default (at-least-once) gateway next to it redelivers.

Cluster: 1 register, gateway `amo` (--delivery at-most-once) and gateway `alo` (default), worker A
with the `commands` app. Clients on both gateways (WebSocket and tcp+line) get an echo from A.
Then A is stopped (SIGSTOP) and every client sends `echo m1`: the events go out to A and stay
unacknowledged. Worker B starts and links, A is killed (SIGKILL), and the test waits until
neither gateway lists A (`gwxctl stats`): a message routed to A before its gateway saw the link
close is lost at most once, as m1 is.

- On `alo` every client gets `m1` (redelivered to B), then `m2` for its next `echo m2`.
- On `amo` no client ever gets `m1`: its next message is the answer to `echo m2` (events of one
  client keep their order, so a redelivered m1 would come first), and the gateway counts no
  redelivery (gwxctl stats), while `alo` counts one per client.
"""

import asyncio
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, connect, log, poll_until, run_test  # noqa: E402

CLIENTS_PER_KIND = 3


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    listeners = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
    amo = await c.start_gateway([reg.addr], name="amo", listeners=listeners,
                                extra=["--delivery", "at-most-once"])
    alo = await c.start_gateway([reg.addr], name="alo", listeners=listeners)
    a = await c.start_worker([reg.addr], "commands", name="worker-a")
    await c.wait_linked([a], [amo, alo])

    clients = {}
    for gw in (amo, alo):
        clients[gw.name] = []
        for kind in ("ws", "tcp+line"):
            for i in range(CLIENTS_PER_KIND):
                x = await connect(gw, kind, f"{gw.name}-{kind}-{i}")
                check_eq(await x.cmd("echo hello"), "hello", f"{x.name}: echo before")
                clients[gw.name].append(x)
    everyone = clients["amo"] + clients["alo"]

    async def stats():
        status, out, err = await c.run("gwxctl", [c.binary("gwxctl"), "--register", reg.addr,
                                                  "--secret", c.secret, "stats"], timeout=30)
        check_eq(status, 0, f"gwxctl stats ({err!r})")
        return out

    # The replies came before worker A's acknowledgements may have: stop it only once both
    # gateways have every event acknowledged, so that m1 is the only event in flight (an
    # unacknowledged 'echo hello' would rightly be redelivered too).
    async def in_flight():
        return sum(int(n) for n in re.findall(r"events_in_flight=(\d+)", await stats()))
    await poll_until(in_flight, lambda n: n == 0, 30, "worker A acknowledged every event")

    await a.pause()
    for x in everyone:
        await x.send("echo m1")
    b = await c.start_worker([reg.addr], "commands", name="worker-b")
    await c.wait_linked([b], [amo, alo])
    await a.kill()
    # Until a gateway has seen A's link close, A is still its clients' worker: at most once, an
    # 'echo m2' routed to A then is lost with it as m1 is. Send m2 only once neither gateway
    # lists A among its workers.
    async def gateways_listing_a():
        return [line.split()[0] for line in (await stats()).splitlines()
                if re.search(r" workers=\d+\([^)]*\bworker-a\b", line)]
    await poll_until(gateways_listing_a, lambda names: not names, 30,
                     "both gateways saw worker A's link close")
    log(f"worker A stopped with {len(everyone)} events in flight, worker B linked, A killed")

    async def redelivered(x):
        check_eq(await x.recv(), "m1", f"{x.name}: at-least-once redelivers m1 to worker B")
        check_eq(await x.cmd("echo m2"), "m2", f"{x.name}: next echo")

    async def not_redelivered(x):
        check_eq(await x.cmd("echo m2"), "m2",
                 f"{x.name}: at-most-once: the next message must answer 'echo m2' (m1 was lost "
                 f"with its worker, never redelivered)")

    await asyncio.gather(*(redelivered(x) for x in clients["alo"]),
                         *(not_redelivered(x) for x in clients["amo"]))

    out = await stats()
    counts = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+) .*events_redelivered=(\d+)", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    check_eq(counts.get(amo.internal), 0, f"amo: redeliveries counted ({out!r})")
    check(counts.get(alo.internal, 0) >= len(clients["alo"]),
          f"alo: expected >= {len(clients['alo'])} redeliveries, stats {out!r}")
    log(f"at-most-once: {len(clients['amo'])} in-flight events lost with their worker, none "
        f"redelivered; at-least-once next to it: {counts.get(alo.internal)} redelivered")


if __name__ == "__main__":
    run_test(main)
