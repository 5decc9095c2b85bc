#!/usr/bin/python3
"""A worker that stops reading cannot grow the gateway: events in flight are bounded per client
(and per link), and a client whose bound is reached is no longer read (TCP backpressure).

Cluster: 1 register, 1 gateway (--threads 2, --inflight-max-events 32, --inflight-max-bytes
65536, --link-keepalive-interval-ms 500 --link-keepalive-timeout-ms 4000), 2 workers with the
`echo` app. Load: 200 clients (WebSocket and tcp+line) sending numbered messages of ~PAD bytes
as fast as they can, up to WINDOW unanswered each.

Under load, worker A gets SIGSTOP: the gateway's link to it keeps accepting bytes until A's
socket buffers are full, then the link is dropped by the keepalive. Meanwhile A's clients keep
sending. The gateway's RSS (VmRSS from /proc) is sampled throughout; its growth over the figure
measured under load just before the SIGSTOP must stay under a bound derived from the limits:

    clients x (2 x inflight-max-bytes   -- the router keeps each event, the link's queue a copy
               + 64 KiB                 -- one read left unparsed when a client is paused
               + HELD_ALLOWANCE)        -- the event that found the bound, held
    + SLACK                             -- allocator and loop noise

Without the bound each of A's clients would be read up to its whole window (WINDOW x PAD bytes,
twice), far above that. The clients of B keep being served during the stall; A's clients are
served by B once A is dropped; then A gets SIGCONT, the load settles, and every client's echoes
are 0…n-1 in order, nothing lost, nobody disconnected (duplicates allowed: at-least-once).

`--unbounded` starts the gateway with limits too large to matter (the bound checked stays the
one derived above): it shows the test failing without the in-flight bounds.
"""

import asyncio
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import TestFailure, check, check_eq, log, run_test  # noqa: E402
from upgrade_load import Ctl, EchoLoad  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
INTERVAL_MS = 500
TIMEOUT_MS = 4000
CLIENTS = 200
WINDOW = 1000
PAD = 16000
INFLIGHT_EVENTS = 32
INFLIGHT_BYTES = 65536
READ_BUFFER = 64 * 1024
HELD_ALLOWANCE = PAD + 4096  # the event that found the bound
SLACK = 24 << 20
MARGIN_S = 20.0
CALM_S = 1.0


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise TestFailure(f"no VmRSS in /proc/{pid}/status")


def mib(n):
    return f"{n / (1 << 20):.1f} MiB"


async def main(h):
    limits = (10**9, 10**12) if h.args.unbounded else (INFLIGHT_EVENTS, INFLIGHT_BYTES)
    c = h.cluster
    reg = await c.start_register()
    regs = [reg.addr]
    gw = await c.start_gateway(
        regs, name="gw", listeners=LISTENERS, threads=2,
        extra=["--link-keepalive-interval-ms", str(INTERVAL_MS),
               "--link-keepalive-timeout-ms", str(TIMEOUT_MS),
               "--inflight-max-events", str(limits[0]),
               "--inflight-max-bytes", str(limits[1])])
    ctl = Ctl(c, regs)
    wa = await c.start_worker(regs, "echo", name="worker-a")
    wb = await c.start_worker(regs, "echo", name="worker-b")
    await c.wait_linked([wa, wb], [gw])

    load = EchoLoad([gw], n_clients=CLIENTS, window=WINDOW, pad=PAD)
    await load.connect()
    load.start()
    try:
        await load.wait_progress(4 * CLIENTS, "load before SIGSTOP")
        baseline = rss_bytes(gw.pid)
        allowance = CLIENTS * (2 * INFLIGHT_BYTES + READ_BUFFER + HELD_ALLOWANCE) + SLACK
        sent_at_stop = {lc.name: lc.sent for lc in load.clients}
        echoed_at_stop = {lc.name: lc.next for lc in load.clients}
        wa.send_signal(signal.SIGSTOP)
        t0 = time.monotonic()
        log(f"SIGSTOP to {wa.name} (pid {wa.pid}); gateway RSS under load {mib(baseline)}")

        peak = baseline
        resumed_at = {}
        # Echo progress between CALM_S and half the keepalive timeout (A not dropped yet): B's
        # clients go on, A's cannot (printed only: the loaded harness may lag behind its
        # sockets, so a client of A can still be reading echoes A sent before the stop).
        progress = {}
        deadline = t0 + TIMEOUT_MS / 1000 + MARGIN_S
        while len(resumed_at) < len(load.clients):
            peak = max(peak, rss_bytes(gw.pid))
            now = time.monotonic()
            for lc in load.clients:
                if lc.name not in resumed_at and lc.next > sent_at_stop[lc.name]:
                    resumed_at[lc.name] = now
            for mark in (CALM_S, TIMEOUT_MS / 2000):
                if now - t0 >= mark and mark not in progress:
                    progress[mark] = {lc.name: lc.next for lc in load.clients}
            load.check_connected("during the stall")
            if now > deadline:
                stuck = [(lc.name, sent_at_stop[lc.name], lc.sent, lc.next)
                         for lc in load.clients if lc.name not in resumed_at]
                raise TestFailure(f"{len(stuck)} client(s) never got an echo of a message sent "
                                  f"after the SIGSTOP: (client, sent at SIGSTOP, sent, echoed) "
                                  f"{stuck[:8]}; gateway stats {await ctl.stats([gw])}")
            await asyncio.sleep(0.05)
        resumed = max(resumed_at.values()) - t0
        check(len(progress) == 2, "the clients resumed before A could be dropped (test error)")
        early, late = progress[CALM_S], progress[TIMEOUT_MS / 2000]
        stalled = [n for n in early if late[n] == early[n]]
        served = len(early) - len(stalled)
        backlog = sum(sent_at_stop[n] - echoed_at_stop[n] for n in early)
        growth = peak - baseline
        log(f"FIGURES inflight bound: clients={CLIENTS} stalled_clients={len(stalled)} "
            f"served_during_stall={served} window={WINDOW} pad={PAD} "
            f"inflight_max_events={limits[0]} inflight_max_bytes={limits[1]} rss_before={mib(baseline)} "
            f"rss_peak={mib(peak)} growth={mib(growth)} bound={mib(allowance)} "
            f"(= {CLIENTS} x (2 x {INFLIGHT_BYTES} + {READ_BUFFER} + {HELD_ALLOWANCE}) + "
            f"{mib(SLACK)}) resumed_after={resumed:.2f}s")
        check(served > 0, f"no client of {wb.name} was served while {wa.name} was stopped")
        check(growth <= allowance,
              f"gateway RSS grew {mib(growth)} while {wa.name} was stopped, more than the bound "
              f"{mib(allowance)} derived from the in-flight limits")
        log(f"every client resumed {resumed:.2f}s after the SIGSTOP (unanswered at SIGSTOP: "
            f"{backlog} messages)")

        wa.send_signal(signal.SIGCONT)
        await load.wait_progress(4 * CLIENTS, "after SIGCONT")
        await load.settle(timeout=60)
        final = await ctl.stats_sum([gw])
        load.report("inflight bound", {"redelivered(gateway)": final["redelivered"],
                                       "dropped(gateway)": final["dropped"]})
        load.check_no_loss("stopped worker under flood", allow_duplicates=True)
        check(final["redelivered"] > 0, f"no event redelivered: the SIGSTOP of {wa.name} hit "
                                        f"nothing (test error); stats {final}")
        check_eq(final["dropped"], 0, "events dropped by the gateway")
        check_eq((final["queued"], final["in_flight"]), (0, 0),
                 "events queued / in flight after the load settled")
    finally:
        wa.send_signal(signal.SIGCONT)
        await load.close()
        await wa.kill()


if __name__ == "__main__":
    run_test(main, extra_args=[(("--unbounded",),
                                {"action": "store_true",
                                 "help": "gateway without effective in-flight bounds"})])
