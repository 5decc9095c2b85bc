#!/usr/bin/python3
"""Pushes from a worker being drained all arrive, exactly once.

Cluster: 1 register, 2 gateways (--threads 2, ws and tcp+line listeners), 2 workers A and B with
the `commands` app. 40 clients (WebSocket and tcp+line, both gateways) all join group `g`.

Round 1 (SIGTERM): every client sends, in one burst, 10 `to-group g <text>` and 2 `to-all <text>`
commands (texts unique per sender and command) while worker A is held with SIGSTOP; 0.5 s
later A gets SIGTERM and SIGCONT, so it starts draining while it still holds its share of them
(the clients bound to it move to B only after A acknowledged their events). Every client must
get an `ok` per command it sent and every pushed text of every sender exactly once (40 x 12
pushes each), then nothing else (a sentinel echo comes next); A must exit 0 and log a complete
drain that handled events (so the burst was really in flight).
Round 2 (gwxctl drain): a new worker C links; B is stopped, `gwxctl drain B` asks the gateways
to drain it, the same burst is sent (still routed to B: it has not said it drains yet), and B
continues 0.5 s later; the same checks, and B exits 0.
The figures: commands sent, pushes expected and delivered, duplicated, lost, disconnects.
"""

import asyncio
import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, ClientClosed, TestFailure, assert_quiet, check, check_eq, connect,
    expect_reply, log, run_test)
from upgrade_load import Ctl, drained_line, wait_exit  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
CLIENTS = 40
GROUP_PUSHES = 10
ALL_PUSHES = 2
# How long the worker to drain is held stopped while the burst reaches it.
BACKLOG_S = 0.5


async def burst(clients, tag):
    """Each client pipelines its push commands; returns the texts every client must receive."""
    texts = []
    lines = {}
    for name, _ in clients:
        cmds = []
        for i in range(GROUP_PUSHES):
            t = f"{tag}.g.{name}.{i}"
            cmds.append(f"to-group g {t}")
            texts.append(t)
        for i in range(ALL_PUSHES):
            t = f"{tag}.a.{name}.{i}"
            cmds.append(f"to-all {t}")
            texts.append(t)
        lines[name] = cmds

    async def send_all(name, cl):
        for cmd in lines[name]:
            await cl.send(cmd)

    await asyncio.gather(*(send_all(name, cl) for name, cl in clients))
    return texts


async def collect(clients, texts, what, timeout=60.0):
    """Reads until each client has its oks and every text; returns per-client Counters."""
    per_client_expected = len(texts) + GROUP_PUSHES + ALL_PUSHES
    expected = collections.Counter(texts)
    got = {}
    closed = {}

    async def one(name, cl):
        seen = collections.Counter()
        n = 0
        deadline = time.monotonic() + timeout
        try:
            while n < per_client_expected:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    msg = await cl.recv(min(left, REPLY_TIMEOUT))
                except ClientClosed as e:
                    closed[name] = str(e)
                    break
                except TestFailure:
                    continue
                seen[msg] += 1
                n += 1
        finally:
            got[name] = seen

    await asyncio.gather(*(one(name, cl) for name, cl in clients))
    delivered = duplicated = lost = 0
    problems = []
    for name, _ in clients:
        seen = got[name]
        oks = seen.pop("ok", 0)
        if oks != GROUP_PUSHES + ALL_PUSHES:
            problems.append(f"{name}: {oks} 'ok' replies for {GROUP_PUSHES + ALL_PUSHES} commands")
        for t, k in seen.items():
            if t not in expected:
                problems.append(f"{name}: unexpected message {t!r}")
                continue
            delivered += 1
            duplicated += k - 1
        missing = [t for t in expected if seen.get(t, 0) == 0]
        lost += len(missing)
        if missing:
            problems.append(f"{name}: {len(missing)} push(es) never arrived, e.g. {missing[:3]}")
    figures = {"clients": len(clients), "commands": len(texts),
               "pushes_expected": len(texts) * len(clients), "pushes_delivered": delivered,
               "duplicated": duplicated, "lost": lost, "disconnects": len(closed),
               "reconnects": 0}
    log(f"FIGURES {what}: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    check(not closed, f"{what}: {len(closed)} client(s) disconnected: {list(closed.values())[:5]}")
    check(not problems, f"{what}: {len(problems)} problem(s): {problems[:10]}")
    check_eq(delivered, len(texts) * len(clients), f"{what}: pushes delivered")
    return figures


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    regs = [reg.addr]
    gws = [await c.start_gateway(regs, name=n, listeners=LISTENERS, threads=2)
           for n in ("gw-a", "gw-b")]
    ctl = Ctl(c, regs)
    wa = await c.start_worker(regs, "commands", name="worker-a")
    wb = await c.start_worker(regs, "commands", name="worker-b")
    await c.wait_linked([wa, wb], gws)

    clients = []
    for i in range(CLIENTS):
        g = gws[i % 2]
        scheme = LISTENERS[(i // 2) % 2].split(":")[0]
        name = f"c{i}"
        clients.append((name, await connect(g, scheme, name)))
    for name, cl in clients:
        await expect_reply(cl, "join g", "ok")
    log(f"{CLIENTS} clients joined group g")
    everyone = [cl for _, cl in clients]

    # ---- round 1: SIGTERM right after the burst ----------------------------------------------
    # A is stopped while the burst arrives, so that it still holds its share of the commands
    # when the drain starts (as a busy worker would); SIGTERM is pending when it continues.
    await wa.pause()
    texts = await burst(clients, "r1")
    await asyncio.sleep(BACKLOG_S)
    wa.send_signal(signal.SIGTERM)
    wa.send_signal(signal.SIGCONT)
    log(f"round 1: {len(texts)} push commands written; SIGTERM to {wa.name}")
    collected = asyncio.create_task(collect(clients, texts, "drain by SIGTERM"))
    status = await wait_exit(wa, 60, "drain")
    check_eq(status, 0, f"{wa.name} exit status after SIGTERM")
    ms, handled = drained_line(c.stderr_of(wa), wa.name)
    log(f"round 1: {wa.name} drained in {ms} ms, {handled} events handled during the drain, "
        f"exited 0")
    if handled == 0:
        # When A continues, its handler threads and the thread taking SIGTERM race: the backlog
        # may be handled just before the drain begins. Every push must still arrive (below);
        # round 2 makes the drain start before the burst is handled.
        log(f"round 1: {wa.name}'s backlog was handled just before its drain began")
    await collected
    await assert_quiet(everyone, "round 1: nothing more after the pushes")

    # ---- round 2: gwxctl drain ---------------------------------------------------------------
    wc = await c.start_worker(regs, "commands", name="worker-c")
    await c.wait_linked([wc], gws)
    # B is stopped; the gateways pass it the operator's drain request, then the burst (B has
    # not told them it drains yet, so they still route its clients' events to it). When B
    # continues it starts draining with the whole burst still to handle.
    await wb.pause()
    try:
        out = await ctl.run("drain", wb.name)
        texts = await burst(clients, "r2")
        await asyncio.sleep(BACKLOG_S)
    finally:
        wb.send_signal(signal.SIGCONT)
    log(f"round 2: gwxctl drain {wb.name}: {out.strip()!r}; then {len(texts)} push commands "
        f"written")
    collected = asyncio.create_task(collect(clients, texts, "drain by gwxctl"))
    status = await wait_exit(wb, 60, "drain")
    check_eq(status, 0, f"{wb.name} exit status after gwxctl drain")
    ms, handled = drained_line(c.stderr_of(wb), wb.name)
    log(f"round 2: {wb.name} drained in {ms} ms, {handled} events handled during the drain, "
        f"exited 0")
    check(handled > 0, f"{wb.name} handled no event during its drain: the burst was over before "
                       f"the drain (test error)")
    await collected
    await assert_quiet(everyone, "round 2: nothing more after the pushes")

    per_gw = await ctl.stats(gws)
    check(all(v["worker_names"] == [wc.name] for v in per_gw.values()),
          f"only {wc.name} should be linked now: {per_gw}")
    check_eq(sum(v["redelivered"] for v in per_gw.values()), 0,
             f"events redelivered (a drained worker acknowledges what it handled) ({per_gw})")
    for _, cl in clients:
        await cl.close()


if __name__ == "__main__":
    run_test(main)
