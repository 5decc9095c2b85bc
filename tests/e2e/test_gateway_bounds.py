#!/usr/bin/python3
"""Hostile peers cannot grow the gateway's memory: each attack is run against a real gateway and
its resident memory (VmRSS) is read before and after.

Cluster: 1 register, 1 gateway (one ws listener with a 64 KiB send buffer, `slow_client=drop`),
1 worker with the `commands` app. A well-behaved client must keep getting answers throughout,
and the worker's link must never drop.

1. The internal port before authentication: connections that declare a 64 MiB frame and stream
   junk, a link of the old protocol version, and 100 connections that never say anything. Each
   may make the gateway hold a few KiB at most; over 64 still authenticating are closed at once.
2. A ping flood whose pongs are never read: pongs count against the send buffer like anything
   else, so the flood cannot queue more than the cap.
3. Tiny broadcasts to a client that never reads: the cap counts memory (each queued buffer costs
   its overhead too), not just wire bytes.
4. A session grown past what fits beside a message in one link frame: refused, logged once.
5. A query whose answer is over the link's frame limit: answered with an error, the link kept.
"""

import asyncio
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, WsClient, check, check_memory, log, read_until_closed, run_test)
from test_ws_malformed import OP_PING, RawWs, frame  # noqa: E402

SEND_BUFFER = 64 * 1024
PREAMBLE = b"GWXLNK\x00\x02"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def echo_ok(client, text):
    await client.send(f"echo {text}")
    got = await client.recv()
    check(got == text, f"bystander: expected {text!r}, got {got!r}")


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway(
        [reg.addr], listeners=(f"ws://127.0.0.1:0/?send_buffer={SEND_BUFFER}&slow_client=drop",),
        threads=1)
    w = await c.start_worker([reg.addr], "commands")
    await c.wait_linked([w], [gw])
    url = gw.url("ws")
    bystander = await WsClient.connect(url, "bystander")
    await echo_ok(bystander, "hello")
    host, port = gw.internal.rsplit(":", 1)
    port = int(port)

    # -- 1. the internal port before authentication --
    before = rss_kib(gw.pid)
    junk = os.urandom(64 * 1024)
    writers = []
    for i in range(40):
        r, wr = await asyncio.open_connection(host, port)
        wr.write(PREAMBLE + struct.pack(">II", 64 << 20, 64 << 20))
        writers.append((r, wr))
    for _ in range(16):
        for r, wr in writers:
            if not wr.is_closing():
                try:
                    wr.write(junk)
                except ConnectionError:
                    pass
        await asyncio.sleep(0.01)
    closed = 0
    for r, wr in writers:
        try:
            data = await asyncio.wait_for(r.read(1 << 20), REPLY_TIMEOUT)
            while data:
                data = await asyncio.wait_for(r.read(1 << 20), REPLY_TIMEOUT)
            closed += 1
        except (ConnectionError, asyncio.TimeoutError):
            closed += 1
        wr.close()
    check(closed == 40, f"{closed}/40 oversized pre-auth links closed")
    # A link of the previous protocol version: refused, not parsed.
    r, wr = await asyncio.open_connection(host, port)
    wr.write(struct.pack(">I", 6) + b"\x42\x04\x0a\x02\x01\x02")
    data, ended = await read_until_closed(r)
    wr.close()
    check(ended != "open", f"a link of the previous protocol version is closed (it stayed open "
                           f"{REPLY_TIMEOUT:.0f} s)")
    check(data.startswith(PREAMBLE), "the gateway announces its protocol version first")
    # Silent connections: at most 64 may be authenticating at once.
    silent = [await asyncio.open_connection(host, port) for _ in range(100)]
    await asyncio.sleep(0.5)
    cut = 0
    for r, wr in silent:
        try:
            data = await asyncio.wait_for(r.read(4096), 0.2)
            if data == b"":
                cut += 1
            else:
                # The preamble and the challenge, then nothing until the hello timeout.
                more = await asyncio.wait_for(r.read(4096), 0.05)
                cut += 1 if more == b"" else 0
        except asyncio.TimeoutError:
            pass
        except ConnectionError:
            cut += 1
    for r, wr in silent:
        wr.close()
    log(f"pre-auth: 40 oversized frames refused, {cut} of 100 silent links cut at once")
    check(cut >= 100 - 64, f"only {cut} of 100 silent pre-auth links were refused (cap 64)")
    grown = rss_kib(gw.pid) - before
    log(f"pre-auth floods: gateway RSS {before} KiB -> +{grown} KiB")
    check_memory(grown, 16 * 1024, "gateway RSS under pre-auth floods")
    await echo_ok(bystander, "after pre-auth floods")

    # -- 2. ping flood, pongs never read --
    before = rss_kib(gw.pid)
    flooder = RawWs("ping-flooder")
    host_ws, port_ws = gw.host_port("ws")
    await flooder.open(host_ws, port_ws)
    ping = frame(OP_PING, b"p" * 125)
    sent = 0
    try:
        for _ in range(200):
            flooder.writer.write(ping * 500)
            sent += 500
            await asyncio.wait_for(flooder.writer.drain(), 2.0)
    except (asyncio.TimeoutError, ConnectionError):
        pass  # the gateway stopped reading us (TCP backpressure) or cut us: both fine
    await asyncio.sleep(0.3)
    grown = rss_kib(gw.pid) - before
    log(f"ping flood: {sent} pings ({sent * len(ping) >> 20} MiB) sent, pongs unread: "
        f"gateway RSS +{grown} KiB")
    check_memory(grown, 16 * 1024, "gateway RSS under a ping flood")
    flooder.writer.close()
    await echo_ok(bystander, "after ping flood")

    # -- 3. tiny broadcasts to a client that never reads --
    sleeper = RawWs("non-reader")
    await sleeper.open(host_ws, port_ws)  # never reads from here on
    before = rss_kib(gw.pid)
    sender = await WsClient.connect(url, "sender")
    n = 20000
    batch = 50

    async def bystander_reads():
        for _ in range(n):
            await bystander.recv(REPLY_TIMEOUT)

    reader = asyncio.create_task(bystander_reads())
    # Paced so the readers' own (capped) queues never overflow: only the non-reader's fills.
    for _ in range(n // batch):
        for _ in range(batch):
            await sender.send("to-all x")
        for _ in range(2 * batch):  # its own copy of each broadcast and each "ok"
            await sender.recv(REPLY_TIMEOUT)
    await asyncio.wait_for(reader, REPLY_TIMEOUT * 3)
    grown = rss_kib(gw.pid) - before
    log(f"{n} tiny broadcasts, one client not reading (cap {SEND_BUFFER >> 10} KiB): "
        f"gateway RSS +{grown} KiB")
    check_memory(grown, 8 * 1024, "gateway RSS with one non-reading client")
    await echo_ok(bystander, "after broadcasts")
    sleeper.writer.close()

    # -- 4. a session grown past what fits beside a message in one link frame --
    # (A 72 MB session made every event of its client break the worker's link.)
    hoarder = await WsClient.connect(url, "hoarder")
    value = "v" * (60 << 10)  # each answer below stays under the 64 KiB send buffer
    for i in range(10):
        await hoarder.send(f"set k{i} {value}")
        check(await hoarder.recv() == "ok", f"hoarder: set k{i} answered")
    # k0..k7 fit in 512 KiB (8 x 61,442 bytes); k8 and k9 are refused.
    for key, want in (("k7", "value " + value), ("k8", "value"), ("k9", "value")):
        await hoarder.send(f"get {key}")
        got = await hoarder.recv()
        check(got == want, f"hoarder: get {key}: {len(got)} bytes, expected {len(want)}")
    await echo_ok(hoarder, "after the refused writes")
    await echo_ok(bystander, "after the session hoard")
    refusals = re.findall(r"session write for client \S+ refused: uid and session over 524288 "
                          r"bytes", c.stderr_of(gw))
    check(len(refusals) == 1, f"one log line for the two refusals: {refusals}")
    log("session writes past 512 KiB (uid and session) refused, logged once; the link stayed up")
    await hoarder.close()

    # -- 5. a query whose answer is larger than a link frame --
    # (140 uids of 500 KiB: the answer to "all uids" is 72 MB; sent as one frame, it was over
    # the worker's 64 MiB limit and broke the link, and the asking event's redelivery asked again.)
    binders = []
    for i in range(140):
        b = await WsClient.connect(url, f"binder{i}")
        await b.send(f"bind {i:03d}" + "u" * (500 << 10))
        binders.append(b)
    for b in binders:
        check(await b.recv() == "ok", f"{b.name}: bind answered")
    # The gateway answers with an error instead; the API reports that gateway as missing from
    # the answer (the app then counts none), and the link stays up.
    got = await bystander.cmd("uid-count", REPLY_TIMEOUT * 3)
    check(got == "uid-count 0", f"bystander: 'uid-count' over a link frame answered {got[:200]!r}")
    refused = re.findall(r"answer too large: (\d+) bytes, over the link's frame limit of "
                         r"67108864 bytes", c.stderr_of(gw))
    check(len(refused) == 1 and int(refused[0]) > 140 * (500 << 10),
          f"the gateway logs the refused answer once, with its size: {refused}")
    await echo_ok(bystander, "after the oversized answer")
    for b in binders[40:]:
        await b.close()
    # Once it fits again, the same query is answered in full.
    deadline = asyncio.get_running_loop().time() + REPLY_TIMEOUT
    while (got := await bystander.cmd("uid-count")) != "uid-count 40":
        check(asyncio.get_running_loop().time() < deadline, f"uid-count stays at {got!r}")
        await asyncio.sleep(0.1)
    for b in binders[:40]:
        await b.close()
    log(f"an answer of {int(refused[0]) >> 20} MiB, over the link's frame limit, was refused with "
        "a reason; the link stayed up and answers that fit go on")
    check(not w.has_line(r"^unlinked"), "the worker's link dropped during the attacks")


if __name__ == "__main__":
    run_test(main)
