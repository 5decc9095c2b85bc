#!/usr/bin/python3
"""A flood of clients past the gateway's open-file limit: refused, while workers still link.

Cluster: 1 register, 1 gateway started with an open-file limit of 1,000 (prlimit), 1 worker with
the `commands` app. The gateway keeps 512 descriptors from clients (links, refusals, metrics),
half of them under a limit of 1,024: at most 500 clients at once here, which it says on start.

1. A client connected before the flood is served throughout.
2. 1,100 silent TCP clients: the gateway holds at most 500 of all its clients; the rest get a
   clean close (EOF), one warning line says why, and /metrics counts each of them as refused
   for `open_files` (none for `max_connections`, which the listener never reached). Before the bound, accept failed with EMFILE
   for everyone once the descriptors ran out, and a worker could not link.
3. During the flood a second worker links to the gateway and is served a client's event.
4. Once the flood leaves, new clients are accepted again.
"""

import asyncio
import os
import re
import resource
import signal
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, check, connect, expect_reply, log, poll_until, run_test)

NOFILE = 1000
MAX_CLIENTS = NOFILE // 2  # under 1,024 descriptors, half is kept from clients
FLOOD = 1100


def refusals(metrics_addr):
    """gwx_gateway_connections_refused_total by reason, from the gateway's /metrics."""
    with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r'^gwx_gateway_connections_refused_total\{([^}]*)\}\s+(\S+)$', line)
        if m:
            reason = re.search(r'reason="([^"]*)"', m.group(1)).group(1)
            out[reason] = out.get(reason, 0) + float(m.group(2))
    return out


def eof_or_open(sock):
    """True once the peer closed `sock` (EOF or reset), False while it is open and silent."""
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


async def main(h):
    # The harness itself holds the flood's sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], listeners=("tcp+line://127.0.0.1:0",),
                               extra=("--metrics", "127.0.0.1:0"),
                               launcher=("prlimit", f"--nofile={NOFILE}:{NOFILE}", "--"))
    metrics_addr = (await gw.wait_line(r"^listening metrics://(\S+)\s*$"))[0].group(1)
    w1 = await c.start_worker([reg.addr], "commands", name="worker1")
    await c.wait_linked([w1], [gw])
    await poll_until(lambda: asyncio.sleep(0, c.stderr_of(gw)),
                     lambda text: f"at most {MAX_CLIENTS} clients at once" in text,
                     REPLY_TIMEOUT, "the gateway says how many clients its descriptors allow")

    early = await connect(gw, "tcp+line", "early")
    await expect_reply(early, "echo before", "before")

    host, port = gw.host_port("tcp+line")
    flood = []
    for _ in range(FLOOD):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((host, port))
        s.setblocking(False)
        flood.append(s)

    async def refused():
        return sum(1 for s in flood if eof_or_open(s))

    # `early` holds one place: the flood may keep the others.
    n = await poll_until(refused, lambda k: k >= FLOOD - (MAX_CLIENTS - 1), REPLY_TIMEOUT,
                         "the clients past the bound were closed")
    await asyncio.sleep(0.5)
    n = await refused()
    check(FLOOD - n <= MAX_CLIENTS - 1,
          f"{FLOOD - n} flood clients held, the bound leaves room for {MAX_CLIENTS - 1}")
    check("all the open-file limit allows" in c.stderr_of(gw),
          "the gateway logged why it refused clients")
    await expect_reply(early, "echo during", "during")
    counted = await asyncio.to_thread(refusals, metrics_addr)
    check(counted.get("open_files", 0) >= n and counted.get("max_connections", 0) == 0,
          f"{n} clients refused at the open-file bound, /metrics counts by reason {counted}")
    log(f"{FLOOD} clients flooded a gateway with {NOFILE} descriptors: {FLOOD - n} held, {n} "
        f"closed cleanly; the early client served")

    # Workers still link: stop the first, start a second; the early client is served by it.
    w1.send_signal(signal.SIGTERM)
    await asyncio.wait_for(w1.proc.wait(), REPLY_TIMEOUT)
    t0 = time.monotonic()
    w2 = await c.start_worker([reg.addr], "commands", name="worker2")
    await c.wait_linked([w2], [gw])
    await expect_reply(early, "echo linked", "linked")
    log(f"a new worker linked during the flood in {time.monotonic() - t0:.1f} s and served "
        f"the early client")

    for s in flood:
        s.close()

    async def served_client():
        # Accepted once the gateway has seen the flood's closes; refused (closed) until then.
        try:
            client = await connect(gw, "tcp+line", "late")
            return client if await client.cmd("echo after", 2.0) == "after" else None
        except Exception:  # noqa: BLE001 - closed while the places free up: try again
            return None

    late = await poll_until(served_client, lambda cl: cl is not None, REPLY_TIMEOUT,
                            "a client is served after the flood")
    await early.close()
    await late.close()
    log("after the flood: new clients accepted and served")


if __name__ == "__main__":
    run_test(main)
