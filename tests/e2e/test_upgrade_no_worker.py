#!/usr/bin/python3
"""No worker for 5 seconds: clients stay connected and their events queue at the gateway, then a
worker that links receives the queue in order; with small queue bounds the configured policy is
applied, counted and logged once per interval.

Cluster: 1 register and six gateways (--threads 2, ws and tcp+line listeners), no worker at
first:
- gw-a, gw-b: default bounds. 40 clients (ws and tcp+line) each send 10 numbered messages spread
  over 5 s. Nobody is closed; `gwxctl stats` shows all 440 events queued (CONNECT + 10 each).
  Then an `echo` worker starts: every message is answered exactly once and in order, nothing
  was dropped.
- gw-drop: --queue-max-events 5 --queue-policy drop-oldest. 10 clients each send 20 messages:
  events_dropped becomes 160 (the CONNECT event is the oldest of each client's 21), and when the
  worker links each client gets exactly its last 5 (15…19, in order): the oldest are the ones
  missing. One client keeps sending a message every
  0.5 s until the gateway logs the drops; the queue warnings in its log stay rate-limited (at most
  one per loop and kind of warning per 10 s interval), far fewer than the events they are about.
- gw-age: --queue-max-age-ms 3000. A client's 5 messages sent at the start (and its CONNECT)
  are dropped once too old (events_dropped 6); 5 sent just before the worker starts are echoed.
- gw-bytes: --queue-max-bytes 2000. 40 messages of ~110 bytes: only the newest k fit; the other
  41 - k events are counted dropped, and the worker echoes exactly the last k, in order.
- gw-close: --queue-max-events 5 --queue-policy close. A WebSocket client and a tcp+line client
  send 5 messages (6 events with the CONNECT): each is closed (the WebSocket one with a close
  frame and a reason, not an abrupt 1006); a client that sent 4 (5 events, at the bound) stays
  connected and gets its 4 echoes later.
"""

import asyncio
import os
import re
import sys
import time

import websockets.exceptions

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, TestFailure, check, check_eq, connect, log, poll_until, run_test)
from upgrade_load import Ctl  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
THREADS = 2
WAIT_S = 5.0
LOG_INTERVAL_S = 10.0  # the gateway's queue-warning interval
AGE_MS = 3000
MAX_BYTES = 2000
QUEUE_WARN_RX = re.compile(r"loop \d+: .*\(\d+ such event\(s\) so far; (\d+) dropped by the "
                           r"queue policy\)")


async def numbered(client, name, n_from, n_to):
    for n in range(n_from, n_to):
        await client.send(f"{name}:{n}")


async def expect_echoes(client, name, numbers, what):
    got = []
    for _ in numbers:
        got.append(await client.recv(REPLY_TIMEOUT))
    check_eq(got, [f"{name}:{n}" for n in numbers], f"{what}: echoes of {name}")


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    regs = [reg.addr]
    ga = await c.start_gateway(regs, name="gw-a", listeners=LISTENERS, threads=THREADS)
    gb = await c.start_gateway(regs, name="gw-b", listeners=LISTENERS, threads=THREADS)
    gdrop = await c.start_gateway(regs, name="gw-drop", listeners=LISTENERS, threads=THREADS,
                                  extra=["--queue-max-events", "5",
                                         "--queue-policy", "drop-oldest"])
    gclose = await c.start_gateway(regs, name="gw-close", listeners=LISTENERS, threads=THREADS,
                                   extra=["--queue-max-events", "5", "--queue-policy", "close"])
    gage = await c.start_gateway(regs, name="gw-age", listeners=LISTENERS, threads=THREADS,
                                 extra=["--queue-max-age-ms", str(AGE_MS)])
    gbytes = await c.start_gateway(regs, name="gw-bytes", listeners=LISTENERS, threads=THREADS,
                                   extra=["--queue-max-bytes", str(MAX_BYTES)])
    gws = [ga, gb, gdrop, gclose, gage, gbytes]
    ctl = Ctl(c, regs)

    # ---- clients, no worker anywhere ---------------------------------------------------------
    plain = []
    for i in range(40):
        g = (ga, gb)[i % 2]
        scheme = LISTENERS[(i // 2) % 2].split(":")[0]
        plain.append((f"p{i}", await connect(g, scheme, f"p{i}")))
    drop = []
    for i in range(10):
        scheme = LISTENERS[i % 2].split(":")[0]
        drop.append((f"d{i}", await connect(gdrop, scheme, f"d{i}")))
    close_ws = await connect(gclose, "ws", "x-ws")
    close_line = await connect(gclose, "tcp+line", "x-line")
    close_ok = await connect(gclose, "ws", "x-ok")
    age_cl = await connect(gage, "tcp+line", "y-age")
    bytes_cl = await connect(gbytes, "ws", "z-bytes")
    log("no worker: 40 clients on gw-a/gw-b, 10 on gw-drop, 3 on gw-close, 1 on gw-age, 1 on "
        "gw-bytes connected")
    t0 = time.monotonic()

    # gw-drop: 20 each at once. gw-close: the bound counts events, the client's CONNECT among
    # them, so 5 messages (6 events) are one too many and 4 (5 events) are not.
    await asyncio.gather(*(numbered(cl, name, 0, 20) for name, cl in drop))
    await numbered(close_ws, "x-ws", 0, 5)
    await numbered(close_line, "x-line", 0, 5)
    await numbered(close_ok, "x-ok", 0, 4)
    # gw-age: 5 messages that will be too old when a worker comes; gw-bytes: 40 messages of
    # ~110 bytes, far more than its byte bound holds.
    await numbered(age_cl, "y-age", 0, 5)
    for n in range(40):
        await bytes_cl.send(f"z-bytes:{n}:" + "x" * 100)

    # ---- close policy ------------------------------------------------------------------------
    try:
        await asyncio.wait_for(close_ws.ws.recv(), REPLY_TIMEOUT)
        raise TestFailure("x-ws: got a message although no worker is linked (expected the close)")
    except asyncio.TimeoutError:
        raise TestFailure(f"x-ws: not closed within {REPLY_TIMEOUT}s after its 6th event with "
                          f"--queue-max-events 5 --queue-policy close") from None
    except websockets.exceptions.ConnectionClosed as e:
        ws_code, ws_reason = e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None
    await close_line.expect_closed()
    log(f"close policy: x-ws closed (close frame: code {ws_code}, reason {ws_reason!r}), "
        f"x-line closed (EOF)")

    # ---- 5 s without a worker: gw-a / gw-b clients send 10 each, spread over the wait --------
    async def trickle(name, cl):
        for n in range(10):
            await cl.send(f"{name}:{n}")
            await asyncio.sleep(WAIT_S / 10)

    await asyncio.gather(*(trickle(name, cl) for name, cl in plain))

    per_gw = await ctl.stats(gws)
    q = {g.name: per_gw[g.internal] for g in gws}
    log("stats with no worker: " + ", ".join(
        f"{n}: clients={v['clients']} queued={v['queued']} dropped={v['dropped']}"
        for n, v in q.items()))
    # Events are the CONNECT of each client and its messages: 40 x (1 + 10).
    check_eq(q["gw-a"]["queued"] + q["gw-b"]["queued"], 440,
             f"events queued on gw-a + gw-b (40 clients x (CONNECT + 10 messages)) ({q})")
    check_eq(q["gw-a"]["clients"] + q["gw-b"]["clients"], 40, "clients on gw-a + gw-b")
    check_eq(q["gw-drop"]["dropped"], 160, f"events dropped on gw-drop (10 clients x (CONNECT + "
                                           f"20 messages - 5 kept)) ({q['gw-drop']})")
    check_eq(q["gw-drop"]["queued"], 50, f"events queued on gw-drop ({q['gw-drop']})")
    check_eq(q["gw-close"]["clients"], 1, f"clients left on gw-close ({q['gw-close']})")

    # The drops get logged, once per interval: a client keeps trickling events in (as real
    # clients do while no worker is there) until a queue warning reports dropped events.
    ticker_name, ticker = drop[0]
    tick = {"n": 20}

    async def warn_lines():
        return [ln for ln in c.stderr_of(gdrop).splitlines() if QUEUE_WARN_RX.search(ln)]

    async def tick_and_read():
        await ticker.send(f"{ticker_name}:{tick['n']}")
        tick["n"] += 1
        return await warn_lines()

    lines = await poll_until(
        tick_and_read, lambda ls: any(int(QUEUE_WARN_RX.search(x).group(1)) > 0 for x in ls),
        LOG_INTERVAL_S + 5, "gw-drop logging its dropped events", interval=0.5)
    elapsed = time.monotonic() - t0
    dropped_now = (await ctl.stats([*gws]))[gdrop.internal]["dropped"]
    # Each event loop rate-limits each kind of queue warning ("no worker", "dropped") on its own:
    # at most one line per loop, per kind, per interval.
    kinds = 2
    limit = THREADS * kinds * (int(elapsed / LOG_INTERVAL_S) + 1)
    log(f"gw-drop: {len(lines)} queue warning line(s) in {elapsed:.1f}s for {dropped_now} "
        f"dropped events (limit {limit}): {lines}")
    check(len(lines) <= limit, f"gw-drop logged {len(lines)} queue warnings in {elapsed:.1f}s "
                               f"(at most {limit} expected: once per interval, not per event)")

    # gw-age: the 5 old messages and the CONNECT went past the age bound long ago (the sweep
    # runs every 250 ms). gw-bytes: the byte bound kept only the newest messages.
    async def stats_of(g):
        return (await ctl.stats(gws))[g.internal]

    await poll_until(lambda: stats_of(gage), lambda st: st["dropped"] == 6, AGE_MS / 1000 + 5,
                     "gw-age dropping the CONNECT and 5 messages older than the age bound")
    st_bytes = await stats_of(gbytes)
    kept_bytes = st_bytes["queued"]
    check(0 < kept_bytes < 40 and st_bytes["dropped"] == 41 - kept_bytes,
          f"gw-bytes (--queue-max-bytes {MAX_BYTES}, 40 messages of ~110 bytes + CONNECT): "
          f"expected some but not all queued and the rest dropped, got {st_bytes}")
    log(f"gw-age dropped its 6 old events; gw-bytes kept {kept_bytes} events and dropped "
        f"{st_bytes['dropped']}")
    await numbered(age_cl, "y-age", 5, 10)  # fresh ones, well inside the age bound

    no_worker_s = time.monotonic() - t0
    # ---- a worker links: everything queued is delivered in order -----------------------------
    w = await c.start_worker(regs, "echo", name="late-worker")
    t_start = time.monotonic()
    await c.wait_linked([w], gws)
    await asyncio.gather(*(expect_echoes(cl, name, range(10), "queued while no worker")
                           for name, cl in plain))
    for name, cl in drop:
        last = tick["n"] if cl is ticker else 20
        await expect_echoes(cl, name, range(last - 5, last), "gw-drop (only the newest 5 kept)")
    await expect_echoes(close_ok, "x-ok", range(4), "gw-close, client at the bound")
    await expect_echoes(age_cl, "y-age", range(5, 10), "gw-age (the old ones dropped)")
    got = [(await bytes_cl.recv()).split(":")[1] for _ in range(kept_bytes)]
    check_eq(got, [str(n) for n in range(40 - kept_bytes, 40)],
             "gw-bytes: the newest messages, in order")
    answered_s = time.monotonic() - t_start
    log(f"worker linked: 400 queued messages answered in order on gw-a/gw-b, gw-drop clients "
        f"got their newest 5, x-ok its 4, {answered_s:.1f}s after the worker started")

    # Still connected, and new messages go straight through.
    alive = plain + drop + [("x-ok", close_ok), ("y-age", age_cl), ("z-bytes", bytes_cl)]
    for name, cl in alive:
        await cl.send(f"{name}:live")
    for name, cl in alive:
        check_eq(await cl.recv(), f"{name}:live", f"{name}: echo after the worker linked")

    per_gw = await ctl.stats(gws)
    q = {g.name: per_gw[g.internal] for g in gws}
    total_dropped = sum(v["dropped"] for v in q.values())
    log(f"FIGURES no-worker: clients=55 no_worker_seconds={no_worker_s:.1f} "
        f"sent_default_bounds=400 echoed_default_bounds=400 lost=0 duplicated=0 "
        f"dropped(gw-drop)={q['gw-drop']['dropped']} dropped(gw-age)={q['gw-age']['dropped']} "
        f"dropped(gw-bytes)={q['gw-bytes']['dropped']} dropped(total)={total_dropped} "
        f"closed_by_policy=2 close_frame=({ws_code}, {ws_reason!r}) disconnects_unexpected=0 "
        f"reconnects=0 queue_warning_lines(gw-drop)={len(lines)}")
    check_eq(q["gw-a"]["dropped"] + q["gw-b"]["dropped"], 0, "events dropped on gw-a + gw-b")
    check(all(v["queued"] == 0 for v in q.values()), f"events still queued: {q}")
    # The close policy closes "with a reason": a WebSocket client must get a close frame
    # carrying it (code 1006 means the TCP connection was cut without one).
    check(ws_code is not None and ws_code != 1006 and ws_reason,
          f"x-ws closed by --queue-policy close without a reason: close frame code {ws_code}, "
          f"reason {ws_reason!r} (expected a close frame with a reason)")


if __name__ == "__main__":
    run_test(main)
