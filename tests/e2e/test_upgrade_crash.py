#!/usr/bin/python3
"""Workers killed with SIGKILL under load: no disconnect, every message echoed at least once and
in order per client; the redeliveries are counted.

Cluster: 1 register, 2 gateways (--threads 2, link keepalive 200 ms / 1000 ms), 3 workers with
the `echo` app. Load: 200 clients (WebSocket and tcp+line, both gateways), numbered messages, at
most 8 unanswered per client (upgrade_load.EchoLoad).

Every ~2 s the oldest worker gets SIGKILL and a new one is started (6 times). The gateways must
hand each killed worker's unacknowledged events to the others, in order, flagged redelivered.
At the end each client's echoes, duplicates collapsed, are exactly 0…n-1 in order (a duplicate
may only repeat a number already echoed), nothing is lost, nobody was disconnected; the test
prints the duplicates it saw and the gateways' events_redelivered (which must be > 0: under this
load a killed worker always holds unacknowledged events) and checks duplicates <= redelivered.
"""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, log, run_test  # noqa: E402
from upgrade_load import Ctl, EchoLoad  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
KEEPALIVE = ["--link-keepalive-interval-ms", "200", "--link-keepalive-timeout-ms", "1000"]
CLIENTS = 200
WINDOW = 8
KILLS = 6
PERIOD = 2.0


async def main(h):
    c = h.cluster
    started = time.monotonic()
    reg = await c.start_register()
    regs = [reg.addr]
    gws = [await c.start_gateway(regs, name=n, listeners=LISTENERS, threads=2, extra=KEEPALIVE)
           for n in ("gw-a", "gw-b")]
    ctl = Ctl(c, regs)
    workers = [await c.start_worker(regs, "echo") for _ in range(3)]
    await c.wait_linked(workers, gws)

    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW)
    await load.connect()
    load.start()
    await load.wait_progress(2 * CLIENTS, "load before the first kill")

    killed = 0
    for i in range(KILLS):
        victim = workers.pop(0)
        unanswered = load.total("sent") - load.total("next")
        await victim.kill()
        killed += 1
        fresh = await c.start_worker(regs, "echo")
        workers.append(fresh)
        log(f"kill {i + 1}: {victim.name} SIGKILLed ({unanswered} messages unanswered), "
            f"{fresh.name} started")
        # The scenario's pace (a kill every ~2 s), not a synchronisation: meanwhile the load
        # must keep flowing and nobody may be disconnected.
        t_next = time.monotonic() + PERIOD
        await load.wait_progress(CLIENTS, f"after kill {i + 1}")
        while time.monotonic() < t_next:
            load.check_connected(f"after kill {i + 1}")
            await asyncio.sleep(0.05)
        await c.wait_linked([fresh], gws)

    await load.wait_progress(2 * CLIENTS, "after the last kill")
    await load.settle(timeout=30)
    per_gw = await ctl.stats(gws)
    sums = {k: sum(v[k] for v in per_gw.values())
            for k in ("clients", "queued", "in_flight", "redelivered", "dropped")}
    f = load.report("crash", {"workers_killed": killed,
                              "redelivered(gateways)": sums["redelivered"],
                              "dropped(gateways)": sums["dropped"],
                              "seconds": round(time.monotonic() - started, 1)})
    load.check_no_loss("crash (SIGKILL)", allow_duplicates=True)
    check_eq(sums["clients"], CLIENTS, f"clients the gateways hold ({per_gw})")
    check_eq(sums["dropped"], 0, f"events dropped by the gateways ({per_gw})")
    check(sums["redelivered"] > 0,
          f"the gateways redelivered nothing although {killed} workers were killed under load "
          f"({per_gw})")
    check(f["duplicated"] <= sums["redelivered"],
          f"{f['duplicated']} duplicate echoes but only {sums['redelivered']} events redelivered")
    check_eq((sums["queued"], sums["in_flight"]), (0, 0),
             f"events queued / in flight after the load settled ({per_gw})")
    await load.close()


if __name__ == "__main__":
    run_test(main)
