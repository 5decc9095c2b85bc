#!/usr/bin/python3
"""SIGTERM to a gateway: its clients are told, the worker's last acknowledgements are waited for
(at most --shutdown-timeout-ms), and the gateway exits with status 0, whether the worker answers
or not.

Cluster: 1 register, 2 gateways (--shutdown-timeout-ms 1500, --goodbye bye, ws and tcp+line
listeners), 1 `echo` worker.
- gw-live, its worker answering: a WebSocket and a tcp+line client each get an echo; SIGTERM:
  the WebSocket client gets close 1001, the tcp+line client the goodbye line then EOF, and the
  gateway exits 0 well before its timeout, logging "shutdown complete".
- gw-stalled, its worker stopped (SIGSTOP) with both clients' last messages unacknowledged:
  SIGTERM gives the clients the same goodbye; the gateway waits out its timeout (the
  acknowledgements cannot come), logs the events left unacknowledged, and exits 0 — not before
  the timeout, not long after it, and not by a crash (the last count of its loops, asked for
  once the deadline has passed, is answered after the gateway stopped waiting for it).
"""

import asyncio
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, connect, log, run_test  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
TIMEOUT_S = 1.5
EXTRA = ["--shutdown-timeout-ms", str(int(TIMEOUT_S * 1000)), "--goodbye", "bye"]
SLACK_S = 3.0  # past the timeout, for a busy machine


async def clients_with_an_echo(gw, tag):
    ws = await connect(gw, "ws", f"{tag}_ws")
    line = await connect(gw, "tcp+line", f"{tag}_line")
    for c in (ws, line):
        await c.send(f"{c.name}:hello")
        check_eq(await c.recv(), f"{c.name}:hello", f"{c.name}: echo before the shutdown")
    return ws, line


async def stop_and_check_goodbyes(gw, ws, line):
    """SIGTERM to `gw`; returns the seconds it took to exit. Checks status and goodbyes."""
    t0 = time.monotonic()
    status = await gw.stop(timeout=TIMEOUT_S + SLACK_S + 5)
    took = time.monotonic() - t0
    check_eq(status, 0, f"{gw.name}: exit status after SIGTERM")
    check_eq(await ws.expect_closed(), 1001, f"{ws.name}: close code")
    check_eq(await line.recv(), "bye", f"{line.name}: the goodbye line")
    await line.expect_closed()
    return took


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    regs = [reg.addr]
    live, stalled = [await c.start_gateway(regs, name=n, listeners=LISTENERS, extra=EXTRA)
                     for n in ("gw-live", "gw-stalled")]
    w = await c.start_worker(regs, "echo", name="worker")
    await c.wait_linked([w], [live, stalled])

    ws, line = await clients_with_an_echo(live, "live")
    took = await stop_and_check_goodbyes(live, ws, line)
    check(took < TIMEOUT_S, f"gw-live took {took:.2f}s to exit with its worker answering "
                            f"(its timeout, {TIMEOUT_S}s, is for workers that do not)")
    check("shutdown complete" in c.stderr_of(live), "gw-live logs 'shutdown complete'")
    log(f"gw-live: exit 0 in {took:.2f}s, clients told")

    ws, line = await clients_with_an_echo(stalled, "stalled")
    await w.pause()
    for cl in (ws, line):
        await cl.send(f"{cl.name}:unanswered")
    await asyncio.sleep(0.3)  # both reach the gateway and go to the stopped worker
    took = await stop_and_check_goodbyes(stalled, ws, line)
    check(TIMEOUT_S - 0.1 <= took < TIMEOUT_S + SLACK_S,
          f"gw-stalled took {took:.2f}s to exit with its worker stopped (timeout {TIMEOUT_S}s)")
    m = re.search(r"shutdown after (\d+) ms: (\d+) client socket\(s\) still open, (\d+) "
                  r"event\(s\) not acknowledged", c.stderr_of(stalled))
    check(m is not None, "gw-stalled logs what its stopped worker left unacknowledged")
    check(int(m.group(3)) >= 2, f"gw-stalled: {m.group(3)} event(s) left unacknowledged, "
                                "expected at least the two unanswered messages")
    log(f"gw-stalled: exit 0 in {took:.2f}s; logged {m.group(0)!r}")
    w.send_signal(signal.SIGCONT)


if __name__ == "__main__":
    run_test(main)
