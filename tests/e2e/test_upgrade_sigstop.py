#!/usr/bin/python3
"""A worker silenced with SIGSTOP (its links stay open, it just stops answering) is found by the
gateways' link keepalive and its unacknowledged events go to the other worker, in time.

Cluster: 1 register, 2 gateways (--threads 2, --link-keepalive-interval-ms 200
--link-keepalive-timeout-ms 1000), 2 workers with the `echo` app. Load: 100 clients (WebSocket
and tcp+line, both gateways), numbered messages, at most 8 unanswered each.

Under load, worker A gets SIGSTOP at t0. For every client the test notes how many messages it
had sent at t0; its echoes have "resumed" once a message it sent after t0 is answered (for the
clients bound to A that takes the gateways dropping A and redelivering to B). For all clients that
must happen within the keepalive timeout + one interval + a margin for a busy machine
(MARGIN_S), both gateways must log A's unlink, and the gateways must count redelivered events.
Then A gets SIGCONT: whatever it still sends on its dropped links must not reach clients out of
order; the load goes on, settles, and every client's distinct echoes are 0…n-1 in order with
nothing lost and nobody disconnected (duplicates allowed: this is at-least-once). A is killed.

The other direction: with a second load (60 clients) on workers B and C (both with worker-side
--keepalive-interval-ms 200 --keepalive-timeout-ms 1000), gateway B gets SIGSTOP: each worker
must print `unlinked <gateway B>` within the same bound. After SIGCONT the workers link to it
again, its clients (never disconnected) get every message answered in order, nothing lost.
"""

import asyncio
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import TestFailure, check, check_eq, log, poll_until, run_test  # noqa: E402
from upgrade_load import Ctl, EchoLoad, wait_until  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
INTERVAL_MS = 200
TIMEOUT_MS = 1000
KEEPALIVE = ["--link-keepalive-interval-ms", str(INTERVAL_MS),
             "--link-keepalive-timeout-ms", str(TIMEOUT_MS)]
WORKER_KEEPALIVE = ["--keepalive-interval-ms", str(INTERVAL_MS),
                    "--keepalive-timeout-ms", str(TIMEOUT_MS)]
MARGIN_S = 2.0
CLIENTS = 100
CLIENTS_2 = 60
WINDOW = 8


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    regs = [reg.addr]
    gws = [await c.start_gateway(regs, name=n, listeners=LISTENERS, threads=2, extra=KEEPALIVE)
           for n in ("gw-a", "gw-b")]
    ctl = Ctl(c, regs)
    wa = await c.start_worker(regs, "echo", name="worker-a", extra=WORKER_KEEPALIVE)
    wb = await c.start_worker(regs, "echo", name="worker-b", extra=WORKER_KEEPALIVE)
    await c.wait_linked([wa, wb], gws)

    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW)
    await load.connect()
    load.start()
    await load.wait_progress(4 * CLIENTS, "load before SIGSTOP")
    before = await ctl.stats_sum(gws)

    sent_at_stop = {lc.name: lc.sent for lc in load.clients}
    wa.send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    log(f"SIGSTOP to {wa.name} (pid {wa.pid}) with "
        f"{load.total('sent') - load.total('next')} messages unanswered")
    bound = TIMEOUT_MS / 1000 + INTERVAL_MS / 1000 + MARGIN_S
    try:
        # A client's echoes have resumed once a message it sent after the SIGSTOP is answered
        # (so everything before it too). For a client bound to A that needs the gateway to drop
        # A and hand its events to B; the other clients resume at once.
        resumed_at = {}

        def all_resumed():
            now = time.monotonic()
            for lc in load.clients:
                if lc.name not in resumed_at and lc.next > sent_at_stop[lc.name]:
                    resumed_at[lc.name] = now
            return len(resumed_at) == len(load.clients) or bool(load.disconnected())

        try:
            await wait_until(all_resumed, bound + 20, "every client's echoes resuming")
        except TestFailure as e:
            stuck = [(lc.name, lc.kind, sent_at_stop[lc.name], lc.sent, lc.next)
                     for lc in load.clients if lc.name not in resumed_at]
            raise TestFailure(f"{e}; {len(stuck)} client(s) never got an echo of a message sent "
                              f"after the SIGSTOP: (client, kind, sent at SIGSTOP, sent, echoed) "
                              f"{stuck[:10]}; gateway stats {await ctl.stats(gws)}") from None
        load.check_connected("after SIGSTOP")
        resumed = max(resumed_at.values()) - t0
        stalled = [t - t0 for t in resumed_at.values() if t - t0 > TIMEOUT_MS / 2000]
        log(f"echoes resumed for every client {resumed:.2f}s after SIGSTOP (bound {bound:.1f}s = "
            f"keepalive timeout {TIMEOUT_MS} ms + interval {INTERVAL_MS} ms + margin "
            f"{MARGIN_S}s); {len(stalled)} clients (those bound to {wa.name}) stalled more than "
            f"{TIMEOUT_MS / 2000:.1f}s, the others went on")
        check(resumed <= bound, f"echoes resumed {resumed:.2f}s after SIGSTOP, more than the "
                                f"keepalive window plus margin ({bound:.1f}s)")
        check(stalled, f"no client waited for {wa.name}: the SIGSTOP hit nothing (test error)")

        unlinked_rx = re.compile(rf"worker '{re.escape(wa.name)}' unlinked")
        for g in gws:
            async def stderr(g=g):
                return c.stderr_of(g)
            await poll_until(stderr, lambda text: unlinked_rx.search(text) is not None, 5.0,
                             f"{g.name} logging the unlink of the stopped worker")
        after = await ctl.stats_sum(gws)
        redelivered = after["redelivered"] - before["redelivered"]
        check(redelivered > 0, f"no event redelivered after the stopped worker was dropped "
                               f"(stats before {before}, after {after})")
        log(f"both gateways dropped {wa.name}; {redelivered} events redelivered to {wb.name}")

        # Wake it: its dropped links must not resurrect stale echoes; it may relink.
        wa.send_signal(signal.SIGCONT)
        await load.wait_progress(4 * CLIENTS, "after SIGCONT")
        await load.settle(timeout=30)
        final = await ctl.stats_sum(gws)
        load.report("sigstop", {"stall_seconds": round(resumed, 2),
                                "bound_seconds": round(bound, 1),
                                "redelivered(gateways)": final["redelivered"],
                                "dropped(gateways)": final["dropped"]})
        load.check_no_loss("SIGSTOP", allow_duplicates=True)
        check_eq(final["dropped"], 0, "events dropped by the gateways")
        check_eq((final["queued"], final["in_flight"]), (0, 0),
                 "events queued / in flight after the load settled")
        await load.close()

        # ---- a silent gateway, seen from the workers ---------------------------------------
        await wa.kill()
        wc = await c.start_worker(regs, "echo", name="worker-c", extra=WORKER_KEEPALIVE)
        await c.wait_linked([wc], gws)
        live = [wb, wc]
        load2 = EchoLoad(gws, n_clients=CLIENTS_2, window=WINDOW, prefix="d")
        await load2.connect()
        load2.start()
        await load2.wait_progress(4 * CLIENTS_2, "second load before the gateway's SIGSTOP")
        gb = gws[1]
        marks = {w: len(w.lines) for w in live}
        detected = {}

        async def unlinked(w):
            await w.wait_line(w.unlinked_pattern(gb.internal), bound + 20, start=marks[w])
            detected[w.name] = time.monotonic() - t1

        gb.send_signal(signal.SIGSTOP)
        t1 = time.monotonic()
        log(f"SIGSTOP to {gb.name} (pid {gb.pid})")
        try:
            await asyncio.gather(*(unlinked(w) for w in live))
        finally:
            gb.send_signal(signal.SIGCONT)
        log(f"workers dropped the stopped gateway after "
            f"{ {k: round(v, 2) for k, v in detected.items()} } s (bound {bound:.1f}s); "
            f"SIGCONT to {gb.name}")
        check(max(detected.values()) <= bound,
              f"a worker took {max(detected.values()):.2f}s to drop the stopped gateway, more "
              f"than its keepalive window plus margin ({bound:.1f}s)")
        marks = {w: len(w.lines) for w in live}
        await c.wait_linked(live, [gb], timeout=30, start=marks)
        await load2.wait_progress(4 * CLIENTS_2, "second load after the gateway continued")
        await load2.settle(timeout=30)
        final = await ctl.stats_sum(gws)
        load2.report("gateway sigstop", {"worker_detect_seconds": round(max(detected.values()), 2),
                                         "bound_seconds": round(bound, 1),
                                         "redelivered(gateways)": final["redelivered"],
                                         "dropped(gateways)": final["dropped"]})
        load2.check_no_loss("gateway SIGSTOP", allow_duplicates=True)
        check_eq((final["queued"], final["in_flight"]), (0, 0),
                 "events queued / in flight after the second load settled")
        await load2.close()
    finally:
        wa.send_signal(signal.SIGCONT)
        await wa.kill()


if __name__ == "__main__":
    run_test(main)
