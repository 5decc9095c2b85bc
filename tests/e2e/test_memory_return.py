#!/usr/bin/python3
"""The gateway gives back the memory a burst freed (--memory-return-mib).

glibc keeps freed memory for reuse: after 100 clients that stopped reading had their send
buffers filled (up to `send_buffer` each) and then left, a gateway used to stay at its peak
resident size (~230 MB over a 21 MB start) for good.

1. A burst: 100 clients ask for 80 echoes of 60 KB each and never read, under
   `slow_client=drop` (their send buffers stay full). The gateway grows by more than 100 MB.
2. They leave: within a few checks (every 5 s) the gateway is back within 48 MiB of where it
   started, and its log says how much it gave back.
3. The same burst against a gateway started with `--memory-return-mib 0` stays high: what the
   first part saw is the gateway giving memory back, not the allocator on its own.
A bystander is served before, during and after.
"""

import asyncio
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    SANITIZER, check, check_memory, connect, expect_reply, log, poll_until, run_test)
from test_gateway_bounds import rss_kib  # noqa: E402
from test_ws_malformed import OP_TEXT, RawWs, frame  # noqa: E402

CLIENTS = 100
ECHOES = 80
SIZE = 60_000
GROWN_KIB = 100 * 1024  # the burst must grow the gateway at least this much to mean anything
BACK_KIB = 48 * 1024    # and, once it ended, the gateway is back within this of its start


async def burst(gw, bystander, tag):
    """100 clients fill their send buffers and leave; returns (start, peak) RSS in KiB."""
    host, port = gw.host_port("ws")
    start = rss_kib(gw.pid)
    request = frame(OP_TEXT, b"echo " + b"v" * SIZE) * ECHOES
    clients = []
    for i in range(CLIENTS):
        s = RawWs(f"{tag}-reader-not{i}")
        await s.open(host, port)
        s.writer.write(request)
        clients.append(s)
    for s in clients:
        await s.writer.drain()
    # ~480 MB of requests go through the worker first: under a parallel build or test run that
    # took more than 30 s once.
    peak = await poll_until(lambda: asyncio.sleep(0, rss_kib(gw.pid)),
                            lambda kib: kib - start > GROWN_KIB, 90,
                            f"{tag}: the gateway holding the non-readers' echoes")
    await expect_reply(bystander, f"echo {tag} during", f"{tag} during")
    for s in clients:
        s.abort()
    return start, peak



RETURNED = re.compile(r"returned \d+ MiB of freed heap memory to the system.*")


def returns_logged(c, proc):
    """The lines in which `proc` said it gave memory back, so far."""
    return RETURNED.findall(c.stderr_of(proc))


async def expect_given_back(c, proc, start, peak, bound_kib, logged=True):
    """`proc` (its RSS `start` before a burst, `peak` during it, in KiB) is back within
    `bound_kib` of `start` within a few checks, and (`logged`) its log says what it gave back.
    Returns its RSS once back."""
    if SANITIZER:
        log(f"resident sizes say nothing under {SANITIZER}: {start} -> {peak} KiB, not checked")
        return
    back = await poll_until(lambda: asyncio.sleep(0, rss_kib(proc.pid)),
                            lambda kib: kib - start < bound_kib, 20,
                            f"{proc.name} giving back what the burst freed")
    check_memory(back - start, bound_kib, f"{proc.name} after the burst")
    log(f"{proc.name}: {start} KiB at the start, {peak} at the peak, {back} after")
    if not logged:
        return back
    # Read once the return has finished (its line follows it; the fall is seen during it).
    # Two checks' time: the fall may be seen before the check that returns what is left.
    said = await poll_until(lambda: asyncio.sleep(0, returns_logged(c, proc)),
                            bool, 12, f"{proc.name}'s log saying what it gave back")
    log(f"{proc.name} logged: {said[0]}")
    return back


async def expect_kept(proc, start, peak, above_kib):
    """`proc`, started with --memory-return-mib 0, is still more than `above_kib` above its
    `start` RSS after two checks' time: what a returning process gave back was its doing."""
    if SANITIZER:
        return
    await asyncio.sleep(12)  # more than two checks of a process that would give back
    kept = rss_kib(proc.pid)
    check(kept - start > above_kib,
          f"{proc.name}: with --memory-return-mib 0 the freed memory stays with the "
          f"allocator: {start} KiB at the start, {peak} at the peak, {kept} 12 s after")
    log(f"{proc.name}: {start} KiB at the start, {peak} at the peak, {kept} 12 s after")


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    listener = ("ws://127.0.0.1:0/?slow_client=drop",)
    gw = await c.start_gateway([reg.addr], name="gateway-returns", listeners=listener, threads=1)
    keeps = await c.start_gateway([reg.addr], name="gateway-keeps", listeners=listener, threads=1,
                                  extra=("--memory-return-mib", "0"))
    w = await c.start_worker([reg.addr], "commands")
    await c.wait_linked([w], [gw, keeps])

    bystander = await connect(gw, "ws", "bystander")
    await expect_reply(bystander, "echo before", "before")
    start, peak = await burst(gw, bystander, "returns")
    await expect_given_back(c, gw, start, peak, BACK_KIB)
    await expect_reply(bystander, "echo after", "after")
    await bystander.close()

    other = await connect(keeps, "ws", "bystander2")
    await expect_reply(other, "echo before", "before")
    start, peak = await burst(keeps, other, "keeps")
    await expect_kept(keeps, start, peak, GROWN_KIB)
    await expect_reply(other, "echo after", "after")
    await other.close()


if __name__ == "__main__":
    run_test(main)
