#!/usr/bin/python3
"""Malformed WebSocket input against a real gateway gets the RFC 6455 close code.

Cluster: 1 register, 1 gateway with a `ws://…?max_message=64` listener, 1 `echo` worker. Each bad
client does the opening handshake by hand over a raw socket, sends frames built here (masked unless
the case is about masking), reads the frames the server sends until its close frame, and checks the
close code and that the server then closes the TCP connection. A well-behaved `websockets` client
stays connected on the same listener throughout and must get an echo round trip after every bad
client.
"""

import asyncio
import base64
import hashlib
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, TestFailure, WsClient, check, check_eq, log, run_test)

MAX_MESSAGE = 64
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=b"\x37\xfa\x21\x3d"):
    """Builds one client frame; `rsv` is the 3-bit RSV field."""
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    body = bytes(c ^ mask_key[i % 4] for i, c in enumerate(payload))
    return head + mask_key + body


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


class RawWs:
    """A hand-driven WebSocket client over a plain TCP connection."""

    def __init__(self, name):
        self.name = name

    async def open(self, host, port, path="/"):
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                          REPLY_TIMEOUT)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   f"Sec-WebSocket-Version: 13\r\n\r\n")
        self.writer.write(request.encode())
        await self.writer.drain()
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            raise TestFailure(f"{self.name}: no complete handshake response: {e!r}") from None
        lines = head.decode("latin-1").split("\r\n")
        check(lines[0].startswith("HTTP/1.1 101"), f"{self.name}: handshake answered {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        check_eq(headers.get("sec-websocket-accept"), want, f"{self.name}: Sec-WebSocket-Accept")
        check_eq(headers.get("upgrade", "").lower(), "websocket", f"{self.name}: Upgrade header")

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self, timeout):
        async def read():
            b0, b1 = await self.reader.readexactly(2)
            check(not (b1 & 0x80), f"{self.name}: server frame is masked (RFC 6455 5.1 forbids)")
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack(">H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack(">Q", await self.reader.readexactly(8))
            return b0, await self.reader.readexactly(n)
        return await asyncio.wait_for(read(), timeout)

    async def expect_close(self, timeout=REPLY_TIMEOUT):
        """Reads server frames until a close frame; returns (code, reason). Then expects EOF."""
        seen = []
        while True:
            try:
                b0, payload = await self.read_frame(timeout)
            except asyncio.TimeoutError:
                raise TestFailure(f"{self.name}: no close frame within {timeout:.1f}s "
                                  f"(frames before: {seen})") from None
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                raise TestFailure(f"{self.name}: connection dropped without a close frame "
                                  f"({e!r}; frames before: {seen})") from None
            opcode = b0 & 0x0F
            if opcode == OP_CLOSE:
                check(b0 & 0x80, f"{self.name}: close frame without FIN")
                check(len(payload) != 1, f"{self.name}: close frame with a 1-byte payload")
                code = struct.unpack(">H", payload[:2])[0] if payload else None
                reason = payload[2:]
                break
            seen.append((opcode, payload[:40]))
        # after its close frame the server closes the TCP connection
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: TCP not closed within {timeout:.1f}s after the "
                              f"close frame") from None
        except ConnectionError:
            rest = b""
        return code, reason, seen, rest

    def abort(self):
        self.writer.close()


def cases():
    """(name, frames to send, expected close code)."""
    long = b"x" * (MAX_MESSAGE + 1)
    half = b"y" * 40
    return [
        ("unmasked text frame", [frame(OP_TEXT, b"hello", mask=False)], 1002),
        ("RSV1 set", [frame(OP_TEXT, b"hello", rsv=4)], 1002),
        ("RSV2 set", [frame(OP_TEXT, b"hello", rsv=2)], 1002),
        ("RSV3 set on a ping", [frame(OP_PING, b"p", rsv=1)], 1002),
        ("reserved data opcode 0x3", [frame(0x3, b"hello")], 1002),
        ("reserved control opcode 0xB", [frame(0xB, b"hello")], 1002),
        ("fragmented ping (FIN=0)", [frame(OP_PING, b"ping", fin=False)], 1002),
        ("fragmented close (FIN=0)", [frame(OP_CLOSE, close_payload(1000), fin=False)], 1002),
        ("ping with 126-byte payload", [frame(OP_PING, b"p" * 126)], 1002),
        ("pong with 200-byte payload", [frame(OP_PONG, b"q" * 200)], 1002),
        ("continuation without a start", [frame(OP_CONT, b"orphan")], 1002),
        ("new text frame inside a fragmented message",
         [frame(OP_TEXT, b"part1", fin=False), frame(OP_TEXT, b"part2")], 1002),
        ("invalid UTF-8 text (0xff)", [frame(OP_TEXT, b"abc\xffdef")], 1007),
        ("invalid UTF-8 text (surrogate U+D800)", [frame(OP_TEXT, b"\xed\xa0\x80")], 1007),
        ("invalid UTF-8 text (overlong '/')", [frame(OP_TEXT, b"\xc0\xaf")], 1007),
        ("invalid UTF-8 across fragments",
         [frame(OP_TEXT, b"ok\xce", fin=False), frame(OP_CONT, b"\xffend")], 1007),
        ("invalid UTF-8 in close reason", [frame(OP_CLOSE, close_payload(1000, b"\xff\xfe"))],
         1007),
        ("close with a 1-byte payload", [frame(OP_CLOSE, b"\x03")], 1002),
        ("close code 999", [frame(OP_CLOSE, close_payload(999))], 1002),
        ("close code 1004", [frame(OP_CLOSE, close_payload(1004))], 1002),
        ("close code 1005", [frame(OP_CLOSE, close_payload(1005))], 1002),
        ("close code 1006", [frame(OP_CLOSE, close_payload(1006))], 1002),
        ("close code 1015", [frame(OP_CLOSE, close_payload(1015))], 1002),
        ("close code 1016", [frame(OP_CLOSE, close_payload(1016))], 1002),
        ("close code 2999", [frame(OP_CLOSE, close_payload(2999))], 1002),
        ("close code 5000", [frame(OP_CLOSE, close_payload(5000))], 1002),
        (f"text of {MAX_MESSAGE + 1} bytes (max_message={MAX_MESSAGE})", [frame(OP_TEXT, long)],
         1009),
        (f"binary of {MAX_MESSAGE + 1} bytes", [frame(OP_BINARY, long)], 1009),
        (f"fragmented message of 2x{len(half)} bytes",
         [frame(OP_TEXT, half, fin=False), frame(OP_CONT, half)], 1009),
        # well-formed closes: the server answers the close handshake
        ("clean close 1000", [frame(OP_CLOSE, close_payload(1000, b"bye"))], 1000),
        ("empty close", [frame(OP_CLOSE, b"")], (None, 1000)),
    ]


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], name="gw",
                               listeners=[f"ws://127.0.0.1:0/?max_message={MAX_MESSAGE}"])
    worker = await c.start_worker([reg.addr], "echo", name="echo-worker")
    await c.wait_linked([worker], [gw])
    host, port = gw.host_port("ws")

    good = await WsClient.connect(gw.url("ws"), "good")
    good_round_trips = 0

    async def good_round_trip(tag):
        nonlocal good_round_trips
        text = f"still-alive-{tag}"
        await good.send(text)
        check_eq(await good.recv(), text, f"good client echo after {tag}")
        good_round_trips += 1

    await good_round_trip("start")
    # the limit itself is inclusive: exactly max_message passes, text and binary
    exact = "e" * MAX_MESSAGE
    await good.send(exact)
    check_eq(await good.recv(), exact, f"echo of exactly {MAX_MESSAGE} bytes")
    await good.send(exact.encode())
    got = await good.ws.recv()
    check_eq(got, exact.encode(), f"binary echo of exactly {MAX_MESSAGE} bytes")
    # a fragmented message (the library sends one frame per part) arrives whole
    await good.ws.send(iter(["frag-", "mented-", "ok"]))
    check_eq(await good.recv(), "frag-mented-ok", "echo of a fragmented message")

    # by hand: ping gets its pong, a ping between fragments is answered and the message arrives
    hand = RawWs("by-hand")
    await hand.open(host, port)
    await hand.send(frame(OP_PING, b"are-you-there"))
    b0, payload = await hand.read_frame(REPLY_TIMEOUT)
    check_eq((b0, payload), (0x80 | OP_PONG, b"are-you-there"), "pong to a ping")
    await hand.send(frame(OP_TEXT, b"one-", fin=False) + frame(OP_PING, b"mid")
                    + frame(OP_CONT, b"two-", fin=False) + frame(OP_CONT, b"three"))
    got = [await hand.read_frame(REPLY_TIMEOUT) for _ in range(2)]
    check_eq(sorted(got), sorted([(0x80 | OP_PONG, b"mid"), (0x80 | OP_TEXT, b"one-two-three")]),
             "pong to a ping between fragments, and the reassembled message echoed")
    await hand.send(frame(OP_CLOSE, close_payload(1000)))
    code, _, _, _ = await hand.expect_close()
    check_eq(code, 1000, "close handshake answered")
    hand.abort()
    log("by hand: ping -> pong, ping between fragments answered, fragments reassembled, "
        "close 1000 answered")

    results = []
    for i, (name, frames, want) in enumerate(cases()):
        bad = RawWs(f"bad[{name}]")
        await bad.open(host, port)
        await bad.send(b"".join(frames))
        code, reason, seen, rest = await bad.expect_close()
        bad.abort()
        check(code in want if isinstance(want, tuple) else code == want,
              f"{name}: expected close code {want}, got {code} (reason {reason!r}; frames "
              f"before the close: {seen})")
        # A close for a violation says why, in words a developer can act on.
        check(code not in (1002, 1007, 1009) or len(reason) > 0,
              f"{name}: the close frame carries no reason")
        results.append((name, code))
        log(f"{name}: close {code} as expected ({reason!r})")
        await good_round_trip(i)

    # a handshake that is not a WebSocket upgrade is refused with an HTTP error, not 101
    rd, wr = await asyncio.open_connection(host, port)
    wr.write(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    await wr.drain()
    status = await asyncio.wait_for(rd.readline(), REPLY_TIMEOUT)
    check(status.startswith(b"HTTP/1.1 4"), f"plain GET answered {status!r}, expected a 4xx")
    wr.close()
    await good_round_trip("plain-get")
    log(f"plain GET without Upgrade: answered {status.decode().strip()!r}")

    log(f"malformed input: {len(results)} raw clients each got the prescribed close code "
        f"({sum(1 for _, c in results if c == 1002)}x1002, "
        f"{sum(1 for _, c in results if c == 1007)}x1007, "
        f"{sum(1 for _, c in results if c == 1009)}x1009, "
        f"{sum(1 for _, c in results if c in (None, 1000))}x1000/empty); the good client made "
        f"{good_round_trips} echo round trips alongside")
    await good.close()


if __name__ == "__main__":
    run_test(main)
