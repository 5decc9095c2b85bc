#!/usr/bin/python3
"""The independent cross-check pair (tools/bench/xcheck) is correct (functional only: no figure is
asserted, speed never is).

gwx-xload echo against gwx-xecho and against `gwx-bench reference`: no error, something measured,
the server's CPU reported. gwx-xload fanout against both broadcast listeners: every receiver got
every message in order (lost=0, errors=0). gwx-xload against a python3-websockets server that
fragments every reply and pings (reassembly, pong). gwx-bench echo against gwx-xecho (the project's
generator on the independent server). gwx-xecho against a WebSocket library written by someone
else (python3-websockets): text, binary, a fragmented message, ping, broadcast to several
clients; and the RFC's refusals: an unmasked frame (1002), a length over --max-message (1009),
invalid UTF-8 in text (1007), a handshake without a key (400). Negative checks of gwx-xload: a
server that answers with other clients' messages (echo mode on a broadcast listener) and a port
nobody listens on must give exit status 1 with the error named. Finally xcheck.sh runs one short
round against a real cluster and prints its summary.
"""

import asyncio
import json
import os
import struct
import sys

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, free_port, log, run_test  # noqa: E402

SHORT = ["--duration", "1", "--warmup", "0.3", "--drain-timeout", "5"]
XCHECK_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "bench",
                         "xcheck", "xcheck.sh")


async def raw_ws(host, port):
    """A bare TCP connection upgraded by hand, for frames no library would send."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    check(head.startswith(b"HTTP/1.1 101"), f"raw upgrade answered {head!r}")
    # RFC 6455 1.3's example key and accept value.
    check(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, f"accept key of the RFC's example: {head!r}")
    return reader, writer


async def expect_close_code(reader, code, what):
    """Reads until the server's close frame; checks its status code."""
    data = await asyncio.wait_for(reader.read(1024), 5)
    check(len(data) >= 4 and data[0] == 0x88, f"{what}: expected a close frame, got {data!r}")
    check_eq(struct.unpack("!H", data[2:4])[0], code, f"{what}: close code")


async def main(h):
    c = h.cluster
    xload = c.binary("gwx-xload")
    bench = c.binary("gwx-bench")

    async def run_xload(*args, expect_status=0):
        status, out, err = await c.run("gwx-xload", [xload, *args, "--json"], timeout=60)
        check(status == expect_status,
              f"gwx-xload {' '.join(args)}: exit status {status}, expected {expect_status}; "
              f"stdout {out!r}; stderr {err!r}")
        lines = [ln for ln in out.splitlines() if ln.strip()]
        check_eq(len(lines), 1, f"result lines of gwx-xload {' '.join(args)} ({out!r})")
        return json.loads(lines[0])

    def check_clean(r, what, pid_name):
        check_eq(r["errors"], 0, f"{what}: errors (first: {r['first_error']!r})")
        check_eq(r["lost"], 0, f"{what}: lost")
        check(r["measured"] > 0 and r["rate"] > 0, f"{what}: nothing measured: {r}")
        check(0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"], f"{what}: percentiles {r}")
        unit = "delivery" if r["mode"] == "fanout" else "msg"
        check(r["pids"][pid_name][f"cpu_us_per_{unit}"] >= 0, f"{what}: server CPU: {r}")
        log(f"{what}: {r['rate']:.0f}/s, p99 {r['p99_ms']:.3f} ms")

    # ---- the two servers
    xecho = await c.spawn("gwx-xecho", [c.binary("gwx-xecho"), "--listen", "127.0.0.1:0",
                                        "--broadcast", "127.0.0.1:0", "--max-message", "4096"])
    m, _ = await xecho.wait_line(r"^listening echo (ws://(\S+):(\d+)/)$")
    x_echo, x_host, x_port = m.group(1), m.group(2), int(m.group(3))
    m, _ = await xecho.wait_line(r"^listening broadcast (ws://\S+)$")
    x_bcast = m.group(1)
    ref = await c.spawn("reference", [bench, "reference", "--listen", "ws://127.0.0.1:0/",
                                      "--broadcast", "ws://127.0.0.1:0/"])
    m, _ = await ref.wait_line(r"^listening echo (ws://\S+)$")
    r_echo = m.group(1)
    m, _ = await ref.wait_line(r"^listening broadcast (ws://\S+)$")
    r_bcast = m.group(1)

    # ---- gwx-xload against both
    for name, url, proc in (("xecho", x_echo, xecho), ("reference", r_echo, ref)):
        r = await run_xload("echo", url, "--connections", "20", "--inflight", "4", *SHORT,
                            "--pid", f"{name}={proc.pid}")
        check_clean(r, f"xload echo vs {name}", name)
    for name, url, proc in (("xecho", x_bcast, xecho), ("reference", r_bcast, ref)):
        r = await run_xload("fanout", url, "--receivers", "20", "--inflight", "2", *SHORT,
                            "--pid", f"{name}={proc.pid}")
        check_clean(r, f"xload fanout vs {name}", name)
        # Every receiver got every message sent, in order: deliveries = receivers x sent.
        check(r["sent"] > 0, f"fanout vs {name}: nothing sent: {r}")
    # The plain line, as xcheck.sh reads it.
    status, out, _ = await c.run("gwx-xload", [xload, "echo", x_echo, "--connections", "5",
                                               *SHORT, "--pid", f"xecho={xecho.pid}"])
    check_eq(status, 0, f"plain echo run ({out!r})")
    check(" msgs/s=" in out and " errors=0 " in out and "cpu_us/msg[xecho]=" in out,
          f"result line: {out!r}")

    # ---- gwx-bench's generator against the independent server
    status, out, err = await c.run("gwx-bench", [bench, "echo", x_echo, "--connections", "20",
                                                 "--inflight", "4", *SHORT, "--json"], timeout=60)
    check_eq(status, 0, f"gwx-bench echo vs xecho ({out!r} {err!r})")
    check_eq(json.loads(out.splitlines()[-1])["errors"], 0, "gwx-bench echo vs xecho: errors")

    # ---- gwx-xload against a server written by someone else (python3-websockets, in this
    # process) that answers every message in three fragments and pings: reassembly and pong.
    pongs = []

    async def fragmenting_echo(ws, path=None):
        try:
            async for msg in ws:
                third = max(1, len(msg) // 3)
                await ws.send([msg[:third], msg[third:2 * third], msg[2 * third:]])
                if len(pongs) < 20:
                    pongs.append(await ws.ping())
        except websockets.exceptions.ConnectionClosed:
            pass  # the generator's end

    server = await websockets.serve(fragmenting_echo, "127.0.0.1", 0, ping_interval=None)
    port = server.sockets[0].getsockname()[1]
    r = await run_xload("echo", f"ws://127.0.0.1:{port}/", "--connections", "2", "--inflight", "2",
                        "--duration", "0.5", "--warmup", "0.2")
    check_eq(r["errors"], 0, f"xload vs fragmenting server: errors ({r['first_error']!r})")
    check(r["measured"] > 0, f"xload vs fragmenting server: nothing measured: {r}")
    check_eq(len(pongs), 20, "pings sent by the fragmenting server")
    await asyncio.wait_for(asyncio.gather(*pongs), 5)  # every ping answered by a pong
    server.close()
    await server.wait_closed()

    # ---- negative checks of gwx-xload
    # On a broadcast listener each client also gets the other's messages: not what it sent.
    r = await run_xload("echo", x_bcast, "--connections", "2", *SHORT, expect_status=1)
    check(r["errors"] > 0 and "not the message sent" in r["first_error"],
          f"wrong replies reported: {r}")
    r = await run_xload("echo", f"ws://127.0.0.1:{free_port()}/", "--connections", "2", *SHORT,
                        expect_status=1)
    check(r["errors"] > 0 and "connect" in r["first_error"], f"refused connection reported: {r}")

    # ---- gwx-xecho against a WebSocket library written by someone else
    clients = [await websockets.connect(x_bcast, ping_interval=None) for _ in range(3)]
    await clients[0].send("hello all")
    for i, ws in enumerate(clients):
        check_eq(await asyncio.wait_for(ws.recv(), 5), "hello all", f"broadcast to client {i}")
    for ws in clients:
        await ws.close()
    async with websockets.connect(x_echo, ping_interval=None) as ws:
        await ws.send("héllo")
        check_eq(await asyncio.wait_for(ws.recv(), 5), "héllo", "text echo")
        await ws.send(b"\x00\xff\x10")
        check_eq(await asyncio.wait_for(ws.recv(), 5), b"\x00\xff\x10", "binary echo")
        await ws.send(["frag", "mented ", "message"])  # one message in three frames
        check_eq(await asyncio.wait_for(ws.recv(), 5), "fragmented message", "fragmented")
        pong = await ws.ping(b"xyz")
        await asyncio.wait_for(pong, 5)
    # What the RFC makes a server refuse.
    reader, writer = await raw_ws(x_host, x_port)
    writer.write(b"\x81\x02hi")  # unmasked client frame
    await expect_close_code(reader, 1002, "unmasked frame")
    writer.close()
    reader, writer = await raw_ws(x_host, x_port)
    writer.write(b"\x82\xfe" + struct.pack("!H", 5000) + b"\x00\x00\x00\x00")
    await expect_close_code(reader, 1009, "length over --max-message")
    writer.close()
    reader, writer = await raw_ws(x_host, x_port)
    writer.write(b"\x81\x82\x00\x00\x00\x00\xc0\xaf")  # overlong encoding of '/'
    await expect_close_code(reader, 1007, "invalid UTF-8 in text")
    writer.close()
    reader, writer = await asyncio.open_connection(x_host, x_port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(1024), 5)
    check(answer.startswith(b"HTTP/1.1 400"), f"handshake without a key: {answer!r}")
    writer.close()

    # ---- xcheck.sh: one short round against a real cluster, the summary printed
    status, out, err = await c.run(
        "xcheck.sh", ["bash", XCHECK_SH, "--bin", h.bin_dir, "--rounds", "1", "--duration", "0.5",
                      "--warmup", "0.2", "--receivers", "20", "--connections", "10"],
        timeout=150)
    check_eq(status, 0, f"xcheck.sh (stdout {out!r}, stderr {err!r})")
    for phase in ("echo8", "echo1", "fanout"):
        check(f"\n  {phase}" in out, f"xcheck.sh summary of {phase}: {out!r}")
    check("errors=0" in out and "errors=1" not in out, f"xcheck.sh run lines: {out!r}")


if __name__ == "__main__":
    run_test(main)
