#!/usr/bin/python3
"""Unfinished client messages are bounded gateway-wide (--unfinished-max-bytes).

Each client may hold one unfinished message of up to max_message (1 MiB by default) for as long
as it stays connected, so many clients each sending most of a large message and then nothing
used to hold ~1 MiB each without limit. With --unfinished-max-bytes 4 MiB and one loop:

1. 8 clients each send 900 KB of a 1 MB WebSocket frame and stop, one after the other: past the
   budget the oldest unfinished messages go first, so the first senders are closed (a 1013 close
   frame with the reason, or a reset when they were still sending), counted as `overload` on
   /metrics, the last ones are held, and what stays held fits the budget.
2. While they hold the budget, a new client's whole 1 MB message is still echoed: the oldest
   held sender is let go for it (memory pinned by messages never finished cannot keep the
   others' messages out).
3. A bystander is served throughout; once the partial senders leave, a whole 1 MB message is
   echoed again.
4. A budget whose share per loop cannot hold one message of a listener is refused at start
   (exit 2, saying why).
"""

import asyncio
import os
import re
import struct
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, check, check_eq, connect, expect_reply, log, run_test)
from test_ws_malformed import OP_TEXT, RawWs, frame  # noqa: E402

BUDGET = 4 << 20
MESSAGE = 1_000_000
SENT = 900_000
CLIENTS = 8


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], listeners=("ws://127.0.0.1:0/",), threads=1,
                               extra=("--unfinished-max-bytes", str(BUDGET),
                                      "--metrics", "127.0.0.1:0"))
    m, _ = await gw.wait_line(r"^listening metrics://(\S+)\s*$")

    def overload_closes():
        with urllib.request.urlopen(f"http://{m.group(1)}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(v) for v in re.findall(
            r'^gwx_gateway_connections_closed_total\{[^}]*reason="overload"[^}]*\}\s+(\S+)$',
            text, re.M))
    w = await c.start_worker([reg.addr], "commands")
    await c.wait_linked([w], [gw])
    host, port = gw.host_port("ws")
    bystander = await connect(gw, "ws", "bystander")
    await expect_reply(bystander, "echo before", "before")

    whole = frame(OP_TEXT, b"echo " + b"u" * (MESSAGE - 5))
    partial = whole[:SENT]
    senders = []
    for i in range(CLIENTS):
        s = RawWs(f"partial{i}")
        await s.open(host, port)
        try:
            await s.send(partial)
        except ConnectionError:
            pass  # closed while still sending: its close frame may be lost to the reset
        senders.append(s)
        await asyncio.sleep(0.1)  # taken in before the next one starts
    await expect_reply(bystander, "echo during", "during")

    async def outcome(s):
        try:
            b0, payload = await s.read_frame(3.0)  # a loaded machine may be slow to close
        except asyncio.TimeoutError:
            return "held"
        except (asyncio.IncompleteReadError, ConnectionError):
            return "reset"
        check_eq(b0 & 0x0F, 0x8, f"{s.name}: a close frame")
        code = struct.unpack(">H", payload[:2])[0]
        return f"closed {code} {payload[2:].decode()}"

    outcomes = await asyncio.gather(*(outcome(s) for s in senders))
    held = outcomes.count("held")
    closed = [o for o in outcomes if o != "held"]
    check(outcomes == closed + ["held"] * held,
          f"the oldest unfinished messages let go first (closed, then held, in sending order): "
          f"{outcomes}")
    check(closed, f"no partial sender was closed though {CLIENTS} x {SENT} bytes pass the "
                  f"{BUDGET}-byte budget: {outcomes}")
    check(all(o == "reset" or o.startswith("closed 1013 server busy") for o in closed),
          f"closed with 1013 and why: {closed}")
    check_eq(await asyncio.to_thread(overload_closes), len(closed),
             "closes counted as overload on /metrics")
    check(1 <= held and held * SENT <= BUDGET, f"{held} held, the budget allows 1 to "
                                               f"{BUDGET // SENT}: {outcomes}")
    log(f"{CLIENTS} clients each holding {SENT} bytes of a message, budget {BUDGET}: {held} held, "
        f"{len(closed)} closed ({closed.count('reset')} of them reset while still sending; "
        f"{closed[0]!r})")

    async def echo_whole(name, when):
        client = RawWs(name)
        await client.open(host, port)
        await client.send(whole)
        _, payload = await client.read_frame(REPLY_TIMEOUT)
        check_eq(len(payload), MESSAGE - 5, f"a whole 1 MB message echoed {when}")
        client.abort()

    await echo_whole("whole-while-held", "while the budget is held")
    oldest_held = senders[len(closed)]
    let_go = await outcome(oldest_held)
    check(let_go == "reset" or let_go.startswith("closed 1013 server busy"),
          f"the oldest held sender let go for it: {let_go}")
    log(f"a whole message while {held} partial ones held the budget: echoed; the oldest of "
        f"them ({oldest_held.name}) {let_go}")

    for s in senders:
        s.abort()
    await asyncio.sleep(0.3)
    await echo_whole("whole", "once the partial ones left")
    await expect_reply(bystander, "echo after", "after")
    await bystander.close()

    status, _, err = await c.run("gateway-small-budget", [
        c.binary("gwx-gateway"), "--secret", "s", "--register", reg.addr, "--threads", "2",
        "--listen", "ws://127.0.0.1:0/", "--unfinished-max-bytes", str(2 << 20)])
    check_eq(status, 2, "a budget too small for one message per loop is refused")
    check("too little for one message" in err, f"and says why: {err.strip()[-300:]}")
    log("a budget of 2 MiB over 2 loops (1 MiB each, under max_message and its framing): exit 2")


if __name__ == "__main__":
    run_test(main)
