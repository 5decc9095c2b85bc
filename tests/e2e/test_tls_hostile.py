#!/usr/bin/python3
"""Hostile input on the TLS handshakes of a real gateway (wss:// and tls+line://).

Cluster: 1 register, 1 gateway with a wss:// and a tls+line:// listener (short handshake
timeout) and /metrics, 1 worker with the `commands` app. A bystander wss client keeps chatting
through everything below.

Checks: each kind of garbage sent instead of a ClientHello (an HTTP request, text, a record
header announcing 64 KB, zeros, an SSLv2-format hello offering TLS 1.0, garbage followed by a real
ClientHello) closes only that connection, unanswered but for an alert, and is counted once under
its own reason in gwx_gateway_tls_handshake_failures_total (not_tls; version for the SSLv2 hello);
a client that sends half a real ClientHello and stalls, one that drips a ClientHello a byte at a
time (bytes keep coming, the handshake never finishes) and one that sends nothing are all closed
by the handshake timeout and counted under `timeout`; a burst of garbage connections at once is
counted in full and leaves no connection open; the bystander's messages are answered during the
stalls and after everything.
"""

import asyncio
import os
import re
import ssl
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, check, check_eq, connect, expect_reply, log, poll_until,
    read_until_closed, run_test)
from tls_pki import Pki, client_context  # noqa: E402

HANDSHAKE_TIMEOUT_MS = 1500
BURST = 40


def scrape(metrics_addr):
    with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text, name, **labels):
    """The value of `name` whose labels include `labels`; 0 when there is no such series."""
    rx = re.compile(rf'^{name}\{{(?P<labels>[^}}]*)\}} (?P<v>\S+)$', re.M)
    total = 0
    for m in rx.finditer(text):
        if all(f'{k}="{v}"' in m.group("labels") for k, v in labels.items()):
            total += int(float(m.group("v")))
    return total


def client_hello(server_hostname="localhost"):
    """The first flight of a real TLS client (Python's ssl, TLS 1.3 with SNI and ALPN)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    check(len(hello) > 100 and hello[0] == 0x16, f"not a ClientHello: {hello[:16]!r}")
    return hello


async def main(h):
    pki = Pki(os.path.join(h.tmp, "pki"))
    ca = pki.make_ca("root")
    cert, key = pki.make_leaf("root", "server", "/O=gwx e2e/CN=server",
                              ["DNS:localhost", "IP:127.0.0.1"])
    c = h.cluster
    reg = await c.start_register()
    opts = f"handshake_timeout_ms={HANDSHAKE_TIMEOUT_MS}"
    gw = await c.start_gateway(
        [reg.addr], name="gw",
        listeners=[f"wss://127.0.0.1:0/?{opts}", f"tls+line://127.0.0.1:0?{opts}"],
        extra=["--tls-cert", cert, "--tls-key", key, "--metrics", "127.0.0.1:0"])
    m, _ = await gw.wait_line(r"^listening metrics://(\S+)\s*$")
    metrics_addr = m.group(1)
    worker = await c.start_worker([reg.addr], "commands", name="w")
    await c.wait_linked([worker], [gw])
    wss_url, line_url = gw.url("wss"), gw.url("tls+line")
    host, port = gw.host_port("wss")
    line_host, line_port = gw.host_port("tls+line")

    bystander = await connect(gw, "wss", "bystander", ssl=client_context(ca))
    await expect_reply(bystander, "echo before", "before")
    hello = client_hello()

    async def failures_now(listener, reason):
        text = await asyncio.to_thread(scrape, metrics_addr)
        return metric(text, "gwx_gateway_tls_handshake_failures_total", listener=listener,
                      reason=reason)

    async def all_failures(listener):
        text = await asyncio.to_thread(scrape, metrics_addr)
        rx = re.compile(r'^gwx_gateway_tls_handshake_failures_total\{(?P<l>[^}]*)\} (?P<v>\S+)$',
                        re.M)
        out = {}
        for m in rx.finditer(text):
            if f'listener="{listener}"' in m.group("l"):
                reason = re.search(r'reason="([^"]*)"', m.group("l")).group(1)
                out[reason] = int(float(m.group("v")))
        check(out, f"no gwx_gateway_tls_handshake_failures_total for {listener}")
        return out

    # Garbage instead of a ClientHello, one connection at a time: each counted under its reason.
    cases = [
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "not_tls"),
        ("text", b"garbage before the hello " * 24, "not_tls"),
        ("a record header announcing 64 KB", b"\x16\x03\x01\xff\xff" + b"\x01" * 64, "not_tls"),
        ("zeros", b"\x00" * 32, "not_tls"),
        # A legacy SSLv2-format hello is parsed, and refused for the TLS 1.0 it offers.
        ("an SSLv2-format hello offering TLS 1.0",
         b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10" + bytes(37), "version"),
        ("garbage, then a real ClientHello", b"\x01\x02\x03\x04\x05\x06\x07" + hello, "not_tls"),
    ]
    reasons_seen = {}
    for what, blob, expected in cases:
        before = await all_failures(wss_url)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(blob)
        await writer.drain()
        data, how = await read_until_closed(reader)
        writer.close()
        check(how in ("eof", "reset"), f"{what}: the connection is still open")
        check(len(data) < 64 and not data.startswith(b"HTTP/"), f"{what}: answered {data!r}")
        after = await poll_until(lambda: all_failures(wss_url),
                                 lambda v: sum(v.values()) > sum(before.values()), REPLY_TIMEOUT,
                                 f"{what} counted")
        delta = {r: after[r] - before.get(r, 0) for r in after if after[r] != before.get(r, 0)}
        reasons_seen[what] = delta
        check_eq(delta, {expected: 1}, f"{what}: failed handshakes counted, by reason")
        await expect_reply(bystander, f"echo after {expected}", f"after {expected}")
    log(f"garbage instead of a ClientHello: each closed alone and counted: {reasons_seen}")

    # Handshakes that never finish: half a ClientHello, a ClientHello dripped a byte at a time,
    # nothing at all (on tls+line). The bystander chats all along.
    timeouts_before = (await failures_now(wss_url, "timeout"),
                       await failures_now(line_url, "timeout"))
    half_r, half_w = await asyncio.open_connection(host, port)
    half_w.write(hello[:len(hello) // 2])
    await half_w.drain()
    drip_r, drip_w = await asyncio.open_connection(host, port)
    silent_r, silent_w = await asyncio.open_connection(line_host, line_port)
    drip_closed = asyncio.Event()
    dripped = 0

    async def drip():
        nonlocal dripped
        try:
            for b in hello:
                if drip_closed.is_set():
                    return
                drip_w.write(bytes([b]))
                await drip_w.drain()
                dripped += 1
                await asyncio.sleep(0.05)
        except ConnectionError:
            return

    async def wait_closed(reader, what):
        data, how = await read_until_closed(reader, HANDSHAKE_TIMEOUT_MS / 1000 + REPLY_TIMEOUT)
        check(how in ("eof", "reset"), f"{what}: not closed by the handshake timeout")
        check(data == b"", f"{what}: got bytes instead of the close: {data!r}")
        if what == "the drip":
            drip_closed.set()

    async def chat():
        n = 0
        while not all(t.done() for t in closers):
            n += 1
            await expect_reply(bystander, f"echo during the stalls {n}", f"during the stalls {n}")
            await asyncio.sleep(0.1)
        return n

    drip_task = asyncio.create_task(drip())
    closers = [asyncio.create_task(wait_closed(half_r, "half a ClientHello")),
               asyncio.create_task(wait_closed(drip_r, "the drip")),
               asyncio.create_task(wait_closed(silent_r, "a silent tls+line client"))]
    chats = await chat()
    for t in closers:
        await t
    await drip_task
    for w in (half_w, drip_w, silent_w):
        w.close()
    check(dripped < len(hello), f"the dripped ClientHello was sent in full ({dripped} bytes) "
                                f"before the timeout closed it")
    counted = await poll_until(
        lambda: asyncio.gather(failures_now(wss_url, "timeout"), failures_now(line_url, "timeout")),
        lambda v: v[0] - timeouts_before[0] >= 2 and v[1] - timeouts_before[1] >= 1,
        REPLY_TIMEOUT, "stalled handshakes counted under timeout")
    check_eq((counted[0] - timeouts_before[0], counted[1] - timeouts_before[1]), (2, 1),
             "handshake timeouts counted (wss, tls+line)")
    check(chats >= 1, "the bystander was not answered during the stalls")
    log(f"stalled handshakes: half hello, drip ({dripped} of {len(hello)} bytes sent), silent: "
        f"closed by the timeout and counted; the bystander was answered {chats} times meanwhile")

    # A burst of garbage connections at once.
    not_tls_before = await failures_now(wss_url, "not_tls")

    async def one_garbage(i):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x00garbage %d\r\n" % i * 8)
        await writer.drain()
        _, how = await read_until_closed(reader)
        writer.close()
        return how

    hows = await asyncio.gather(*(one_garbage(i) for i in range(BURST)))
    check(all(how in ("eof", "reset") for how in hows), f"burst: not all closed: {hows}")
    await poll_until(lambda: failures_now(wss_url, "not_tls"),
                     lambda v: v - not_tls_before >= BURST, REPLY_TIMEOUT,
                     f"the {BURST} garbage connections counted")

    async def open_now():
        text = await asyncio.to_thread(scrape, metrics_addr)
        return (metric(text, "gwx_gateway_connections", listener=wss_url),
                metric(text, "gwx_gateway_connections", listener=line_url))

    open_conns = await poll_until(open_now, lambda v: v == (1, 0), REPLY_TIMEOUT,
                                  "only the bystander left open")
    check_eq(open_conns, (1, 0), "open connections (wss, tls+line) after the hostile clients")
    await expect_reply(bystander, "echo still here", "still here")
    fresh = await connect(gw, "wss", "fresh", ssl=client_context(ca))
    await expect_reply(fresh, "echo a new client gets in", "a new client gets in")
    check(gw.running(), "the gateway exited")
    log(f"a burst of {BURST} garbage connections: all closed and counted; bystander chats")
    await fresh.close()
    await bystander.close()


if __name__ == "__main__":
    run_test(main)
