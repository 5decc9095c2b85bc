#!/usr/bin/python3
"""Resilience: a register killed with SIGKILL, then a gateway killed with SIGKILL.

Cluster: 2 registers, 2 gateways (--lease-ttl-ms 2000), 2 workers with the `commands` app.
1. SIGKILL register 1. For three lease periods the cluster keeps working (commands and
   cross-gateway pushes, no worker prints `unlinked`); new clients connect on both gateways; a
   worker started now (with the dead register first in its list) links to both gateways.
   Register 1 restarted on its address gets both gateways back.
2. SIGKILL gateway A. Every worker prints `unlinked <A>`; both registers drop A when its lease
   lapses; from a client on gateway B, `count` settles on exactly B's clients, A's client_ids read
   offline, uid lists hold only B's clients, pushes reach B's clients, and gateway B keeps
   accepting clients.
"""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    START_TIMEOUT, check, check_eq, connect, expect_list, expect_reply, fetch_id, log,
    poll_until, push_and_check, query_int, run_test)

LEASE_MS = 2000


async def main(h):
    c = h.cluster
    r1 = await c.start_register()
    r2 = await c.start_register()
    regs = [r1.addr, r2.addr]
    ga = await c.start_gateway(regs, name="gw-a", lease_ttl_ms=LEASE_MS)
    gb = await c.start_gateway(regs, name="gw-b", lease_ttl_ms=LEASE_MS)
    w1 = await c.start_worker(regs, "commands", name="worker1")
    w2 = await c.start_worker(regs, "commands", name="worker2")
    workers = [w1, w2]
    await c.wait_linked(workers, [ga, gb])

    a1 = await connect(ga, "ws", "a1")
    a2 = await connect(ga, "tcp+line", "a2")
    b1 = await connect(gb, "ws", "b1")
    b2 = await connect(gb, "tcp+frame", "b2")
    clients = [a1, a2, b1, b2]
    for x in clients:
        await fetch_id(x)
    for x in (a1, b1):
        await expect_reply(x, "bind u", "ok")
    for x in (a2, b2):
        await expect_reply(x, "join room", "ok")
    check_eq(await query_int(a1, "count", "count"), 4, "count before any kill")

    # --- 1. kill a register -----------------------------------------------------------------
    await r1.kill()
    window = 3 * LEASE_MS / 1000
    deadline = time.monotonic() + window
    rounds = 0
    while time.monotonic() < deadline:
        # Work keeps flowing for three lease periods: the gateways' leases must live on at the
        # other register, so no worker may drop a gateway.
        await push_and_check(b2, f"to-uid u still-{rounds}", f"still-{rounds}", [a1, b1], clients,
                             f"uid push {rounds} with register 1 down", quiet=True)
        await push_and_check(a1, f"to-group room r-{rounds}", f"r-{rounds}", [a2, b2], clients,
                             f"group push {rounds} with register 1 down", quiet=True)
        for w in workers:
            check(not w.has_line(r"^unlinked\b"),
                  f"{w.name} dropped a gateway while only a register was down: {w.lines}")
        rounds += 1
        await asyncio.sleep(0.1)  # pacing of the rounds, not synchronisation
    log(f"register 1 down: {rounds} rounds of cross-gateway pushes over {window:.0f}s "
        f"(3 lease periods), no worker unlinked")

    a3 = await connect(ga, "tcp+raw", "a3")
    b3 = await connect(gb, "ws", "b3")
    for x in (a3, b3):
        await fetch_id(x)
        await expect_reply(x, "bind u", "ok")
        clients.append(x)
    check_eq(await query_int(b3, "count", "count"), 6, "count with new clients")
    await expect_list(a3, "uid-clients u", "uid-clients", sorted([a1.id, b1.id, a3.id, b3.id]))
    await push_and_check(a2, "to-uid u after-kill", "after-kill", [a1, b1, a3, b3], clients,
                         "uid push to new and old clients with register 1 down")

    w3 = await c.start_worker(regs, "commands", name="worker3-late")
    workers.append(w3)
    await c.wait_linked([w3], [ga, gb])
    log("register 1 down: a worker started now (dead register listed first) linked both gateways")
    # w3 takes part: new clients may be routed to it; all of them must work
    late_a = [await connect(ga, k, f"late_a_{k}") for k in ("ws", "tcp+line")]
    late_b = [await connect(gb, k, f"late_b_{k}") for k in ("ws", "tcp+line")]
    late = late_a + late_b
    for x in late:
        await fetch_id(x)
        await expect_reply(x, "echo late", "late")
    clients += late
    check_eq(await query_int(late[0], "count", "count"), len(clients), "count with late clients")

    # Register 1 comes back on its address: the gateways register with it again on their own.
    r1b = await c.start_register(name="register1-restarted", listen=r1.addr)
    check_eq(r1b.addr, r1.addr, "restarted register 1 address")

    async def listed_at(reg):
        status, out, err = await c.run("gwxctl", [c.binary("gwxctl"), "--register", reg.addr,
                                                  "gateways"])
        check(status == 0, f"gwxctl gateways at {reg.name}: status {status}, stderr {err!r}")
        return sorted(line.split()[1] for line in out.splitlines() if line.strip())

    t0 = time.monotonic()
    await poll_until(lambda: listed_at(r1b), lambda xs: xs == sorted([ga.internal, gb.internal]),
                     START_TIMEOUT, "both gateways re-registered at the restarted register 1",
                     interval=0.25)
    log(f"register 1 restarted: both gateways registered with it again within "
        f"{time.monotonic() - t0:.1f}s")
    await push_and_check(b2, "to-uid u after-restart", "after-restart", [a1, b1, a3, b3],
                         clients, "uid push after register 1 restarted")

    # --- 2. kill a gateway ------------------------------------------------------------------
    on_a = [a1, a2, a3] + late_a
    on_b = [b1, b2, b3] + late_b
    t0 = time.monotonic()
    await ga.kill()
    for x in on_a:
        await x.expect_closed()
    await asyncio.gather(*(w.wait_line(w.unlinked_pattern(ga.internal), START_TIMEOUT)
                           for w in workers))
    log(f"gateway A killed: all {len(workers)} workers printed 'unlinked {ga.internal}' "
        f"within {time.monotonic() - t0:.1f}s")

    # The register drops gateway A once its lease lapses; gateway B stays listed.
    t0 = time.monotonic()
    for reg in (r1b, r2):
        await poll_until(lambda: listed_at(reg), lambda xs: xs == [gb.internal], START_TIMEOUT,
                         f"{reg.name} dropping gateway A", interval=0.25)
    log(f"both registers dropped gateway A within {time.monotonic() - t0:.1f}s of the kill "
        f"(lease {LEASE_MS} ms); gateway B still listed")

    await poll_until(lambda: query_int(b1, "count", "count"), lambda n: n == len(on_b),
                     START_TIMEOUT, "count from gateway B after gateway A died")
    for x in on_b:
        check_eq(await query_int(x, "count", "count"), len(on_b), f"{x.name}: count")
    for x in on_a:
        await expect_reply(b2, f"online {x.id}", "online 0")
    await expect_list(b3, "uid-clients u", "uid-clients", sorted([b1.id, b3.id]))
    await expect_reply(b1, "group-count room", "group-count 1")
    await push_and_check(b2, "to-uid u only-b", "only-b", [b1, b3], on_b,
                         "uid push after gateway A died")
    await push_and_check(b1, "to-all all-b", "all-b", on_b, on_b, "all push after gateway A died")
    fresh = await connect(gb, "tcp+frame", "b_fresh")
    await fetch_id(fresh)
    await expect_reply(fresh, "bind u", "ok")
    on_b.append(fresh)
    await push_and_check(b1, "to-uid u with-fresh", "with-fresh", [b1, b3, fresh], on_b,
                         "uid push incl. a client connected after gateway A died")
    check_eq(await query_int(fresh, "count", "count"), len(on_b), "count with the fresh client")
    log(f"gateway B alone: count {len(on_b)} (only live clients), {len(on_a)} ids of A read "
        f"online 0, pushes and new clients work")
    check(gb.running(), "gateway B still running")


if __name__ == "__main__":
    run_test(main)
