#!/usr/bin/python3
"""The worker gives back the memory a stalled gateway made it hold (--memory-return-mib).

A worker's pushes to a gateway that stops reading wait in the worker (up to 64 MiB per link);
once that gateway reads again they leave, but glibc keeps the freed memory for reuse and the
worker's resident size used to stay at its peak (+61 MB for good after the burst below).

1. Gateways A and B, one worker. A client `target` on B; B is stopped (SIGSTOP). Twenty clients
   on A ask for 1,000 pushes of 60 KB to `target` (the `commands` app's `to-client`), each
   answered `ok`: the worker holds ~57 MiB for B and grows by more than 40 MiB.
2. B goes on (SIGCONT): `target` receives every push, byte for byte, and within a few checks
   (every 5 s) the worker is back within 12 MiB of where it started.
3. The same with a worker started with `--memory-return-mib 0`: it stays more than 12 MiB above
   its start 12 s later (seen: 30 to 61 MB), so what the first part saw is the worker giving
   memory back, not the allocator on its own.

Both workers run with the allocator of HELD_HEAP below. The worker's network thread allocates
from a heap of its own, whose top malloc_trim() does not reach: the returning worker has that
top given back as it is freed (bound_allocator_tops(), which overrides both settings) and what
is freed inside a heap by its checks, so which of the two happened is not asserted here (the
checks have unit tests; e2e_gateway_memory_return asserts their log line).
"""

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    SANITIZER, check, check_eq, connect, expect_reply, log, poll_until, run_test)
from test_gateway_bounds import rss_kib  # noqa: E402
from test_memory_return import expect_given_back, expect_kept  # noqa: E402

SENDERS = 20
ROUNDS = 50
SIZE = 60_000
# Both workers run with glibc set as a long-running process's allocator ends up: it keeps what
# it frees at the top of a heap (a trim threshold it never reaches) and keeps buffers of up to
# 32 MiB in its heaps (where glibc raises its own threshold as such buffers come and go).
HELD_HEAP = ("env", "GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967296:"
             "glibc.malloc.mmap_threshold=33554432")
GROWN_KIB = 40 * 1024  # the stall must grow the worker at least this much to mean anything
BACK_KIB = 12 * 1024   # and, once it ended, the worker is back within this of its start


async def stall(c, a, b, w, tag):
    """Fills the worker's writes to a stopped B, lets B go; returns (start, peak) RSS in KiB."""
    target = await connect(b, "ws", f"{tag}-target")
    await target.send("id")
    target_id = (await target.recv()).split()[1]
    senders = [await connect(a, "ws", f"{tag}-sender{i}") for i in range(SENDERS)]
    for s in senders:
        await expect_reply(s, "echo hello", "hello")  # each sender's worker is settled
    start = rss_kib(w.pid)
    await b.pause()
    body = f"{tag}:" + "v" * (SIZE - len(tag) - 1)
    for _ in range(ROUNDS):
        for s in senders:
            await s.send(f"to-client {target_id} {body}")
    for s in senders:
        for _ in range(ROUNDS):
            check_eq(await s.recv(), "ok", f"{s.name}: to-client answered")
    peak = await poll_until(lambda: asyncio.sleep(0, rss_kib(w.pid)),
                            lambda kib: kib - start > GROWN_KIB or SANITIZER, 30,
                            f"{tag}: the worker holding the pushes for the stopped gateway")
    b.send_signal(signal.SIGCONT)
    for i in range(SENDERS * ROUNDS):
        got = await target.recv()
        check(got == body, f"{tag}: push {i} to the target arrived whole "
                           f"({len(got)} bytes, {got[:20]!r}...)")
    log(f"{tag}: the target got all {SENDERS * ROUNDS} pushes of {SIZE} bytes")
    await expect_reply(target, "echo after", "after")
    for s in senders + [target]:
        await s.close()
    return start, peak


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    a = await c.start_gateway([reg.addr], name="gw-a", threads=1)
    # B's target reads ~57 MiB at once when B goes on: no send-buffer cap in the way.
    b = await c.start_gateway([reg.addr], name="gw-b", threads=1,
                              listeners=("ws://127.0.0.1:0/?send_buffer=134217728",))
    # The stall must not end the link (that would free the writes another way).
    keep_link = ("--keepalive-timeout-ms", "30000")
    w = await c.start_worker([reg.addr], "commands", name="worker-returns",
                             extra=keep_link + ("--memory-return-mib", "4"), launcher=HELD_HEAP)
    await c.wait_linked([w], [a, b])
    start, peak = await stall(c, a, b, w, "returns")
    back = await expect_given_back(c, w, start, peak, BACK_KIB, logged=False)
    await w.stop()

    keeps = await c.start_worker([reg.addr], "commands", name="worker-keeps",
                                 extra=keep_link + ("--memory-return-mib", "0"), launcher=HELD_HEAP)
    await c.wait_linked([keeps], [a, b])
    start_kept, peak = await stall(c, a, b, keeps, "keeps")
    # It must stay clearly above where the returning one came back to.
    above = BACK_KIB if SANITIZER else min(BACK_KIB, back - start + 4 * 1024)
    await expect_kept(keeps, start_kept, peak, above)

if __name__ == "__main__":
    run_test(main)
