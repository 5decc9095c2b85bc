#!/usr/bin/python3
"""Bytes that are not UTF-8, chosen by a client, never break the gateway <-> worker link.

Cluster: 1 register, 1 gateway with a ws listener, 1 `commands` worker. A raw-socket client
upgrades with 0xff/0xfe bytes in the path, the query and a header value (all of which travel to
the worker in the CONNECT event), then, over binary WebSocket messages, has the worker bind it
to a uid, join it to a group and set a session key and value, all holding such bytes, and reads
them back through the Gateway API's queries (their answers carry them too). Each command must be
answered exactly once and in order; a bystander WebSocket client gets an echo after every step;
the worker prints `linked` once and never `unlinked`. A link broken by an unparsable frame would
show as an `unlinked` line, and the redelivered event as a duplicate answer.
"""

import asyncio
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, TestFailure, WsClient, check, check_eq, log, run_test)
from test_ws_malformed import OP_BINARY, OP_CLOSE, RawWs, frame  # noqa: E402

UID = b"\xffuid\xfe"
GROUP = b"room\xff"
KEY = b"k\xfe"
VALUE = b"v\xff\xc3("


class RawBytesWs(RawWs):
    """RawWs whose upgrade request is any bytes (path, query and a header value included)."""

    async def open_with(self, host, port, path, query, header_value):
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                          REPLY_TIMEOUT)
        key = base64.b64encode(os.urandom(16))
        request = (b"GET " + path + b"?" + query + b" HTTP/1.1\r\nHost: " +
                   f"{host}:{port}".encode() + b"\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                   b"\r\nSec-WebSocket-Version: 13\r\nX-Client-Bytes: " + header_value +
                   b"\r\n\r\n")
        self.writer.write(request)
        await self.writer.drain()
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            raise TestFailure(f"{self.name}: no complete handshake response: {e!r}") from None
        status = head.split(b"\r\n", 1)[0]
        check(status.startswith(b"HTTP/1.1 101"), f"{self.name}: handshake answered {status!r}")

    async def command(self, payload, answers=1):
        """Sends one binary message; returns the payload of the next data frame (a sorted list
        of the next `answers` ones when more than one)."""
        await self.send(frame(OP_BINARY, payload))
        got = []
        while len(got) < answers:
            try:
                b0, data = await self.read_frame(REPLY_TIMEOUT)
            except asyncio.TimeoutError:
                raise TestFailure(f"{self.name}: no answer to {payload!r} within "
                                  f"{REPLY_TIMEOUT:.1f}s (got {got})") from None
            except (asyncio.IncompleteReadError, ConnectionError) as e:
                raise TestFailure(f"{self.name}: connection lost waiting for the answer to "
                                  f"{payload!r}: {e!r}") from None
            check((b0 & 0x0F) != OP_CLOSE,
                  f"{self.name}: closed instead of answering {payload!r}")
            got.append(data)
        return got[0] if answers == 1 else sorted(got)


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], name="gw", listeners=["ws://127.0.0.1:0/"])
    worker = await c.start_worker([reg.addr], "commands", name="commands-worker")
    await c.wait_linked([worker], [gw])
    host, port = gw.host_port("ws")

    bystander = await WsClient.connect(gw.url("ws"), "bystander")
    echoes = 0

    async def bystander_echo(step):
        nonlocal echoes
        check_eq(await bystander.cmd(f"echo alive {step}"), f"alive {step}",
                 f"bystander echo after {step}")
        echoes += 1

    await bystander_echo("start")

    raw = RawBytesWs("raw")
    await raw.open_with(host, port, b"/chat\xff\xfe", b"room=\xff&n=\xc3(", b"\xfe\xff bytes")
    await bystander_echo("upgrade")
    check_eq(await raw.command(b"echo first"), b"first", "raw client's first message answered")

    reply = await raw.command(b"id")
    check(reply.startswith(b"id "), f"'id' answered {reply!r}")
    client_id = reply[3:]

    # Each (command, answer): the commands with client-chosen bytes, then queries whose
    # requests and answers carry them, then plain messages whose events carry them in the
    # client's uid and session.
    steps = [
        (b"bind " + UID, b"ok"),
        (b"join " + GROUP, b"ok"),
        (b"set " + KEY + b" " + VALUE, b"ok"),
        (b"get " + KEY, b"value " + VALUE),
        (b"uid-of " + client_id, b"uid-of " + UID),
        (b"uid-clients " + UID, b"uid-clients " + client_id),
        (b"uid-online " + UID, b"uid-online 1"),
        (b"group-count " + GROUP, b"group-count 1"),
        (b"group-counts " + GROUP + b" " + GROUP + b" none",
         b"group-counts none=0 " + GROUP + b"=1"),
        (b"uids-online " + UID + b" nobody", b"uids-online nobody=0 " + UID + b"=1"),
        (b"groups " + client_id, b"groups " + GROUP),
        (b"session " + client_id, b"session " + KEY + b"=" + VALUE),
        # a push to the sender and the command's own answer: two messages
        (b"to-uid " + UID + b" to the uid", [b"ok", b"to the uid"]),
        (b"to-group " + GROUP + b" to the group", [b"ok", b"to the group"]),
        (b"echo after", b"after"),
    ]
    for command, want in steps:
        got = await raw.command(command, len(want) if isinstance(want, list) else 1)
        check_eq(got, want, f"answer to {command!r}")
        await bystander_echo(command.split(b" ", 1)[0].decode())

    # Every command was answered once: the next answer is the one to the last message sent
    # (a redelivered event would have answered again in between).
    check_eq(await raw.command(b"echo end"), b"end", "answer after the last command")
    raw.abort()
    await bystander_echo("raw-gone")

    linked = [ln for ln in worker.lines if ln.startswith("linked")]
    unlinked = [ln for ln in worker.lines if ln.startswith("unlinked")]
    check_eq(len(linked), 1, f"worker 'linked' lines ({linked})")
    check_eq(unlinked, [], "worker 'unlinked' lines")
    log(f"non-UTF-8 path, query, header value, uid, group, session key and value: "
        f"{len(steps) + 3} commands answered once each, the link stayed up (1 linked, "
        f"0 unlinked), the bystander got {echoes} echoes")
    await bystander.close()


if __name__ == "__main__":
    run_test(main)
