#!/usr/bin/python3
"""Every per-listener protection of the gateway, proven on a real gateway with real clients.

Cluster: 1 register, 1 gateway (--metrics, one listener per protection, each with its own URL
options), 1 worker with the `commands` app. A `websockets` bystander on a plain listener must get
an echo after every attack, and the worker's link must never drop. Close causes and drops are read
back from the gateway's /metrics (per listener), so each protection is seen both by the client and
by the operator.

1. max_connections: a WebSocket client over the limit gets an HTTP 503, a TCP client a clean close
   (EOF, no reset); a place freed by a close is taken again.
2. handshake_timeout_ms: a client that never finishes its upgrade (slowloris, a byte at a time) and
   one that sends nothing are cut after the timeout (reason `timeout`).
3. idle_timeout_ms: silent WebSocket and tcp+line clients are closed (WebSocket: close 1001) and
   counted as `idle_timeout`, not `protocol_error`; a client that talks stays.
4. Heartbeat: WebSocket pings every interval, tcp+line `heartbeat_data`; a client that answers (or
   talks) stays; one that stays silent is closed after `heartbeat_missed` intervals (close 1001,
   counted as `heartbeat_timeout`).
5. send_buffer with slow_client=drop and =close: a client that stops reading while two others flood
   it; `drop` drops messages (counted) and keeps it, `close` closes it (counted); gateway RSS stays
   bounded either way. A ping flood that never reads its pongs meets the same policy.
6. The Origin allow-list: allowed, refused (403), missing (403), two Origin headers (400, whichever
   comes first).
7. The upgrade request line must say HTTP/1.1 (HTTP/2.0 -> 505, HTTP/1.0 -> 505).
8. WebSocket message limits: a message just under max_message in one-byte fragments is delivered;
   one byte over is 1009. 20,000 small messages in one write (ws with max_message=1000, tcp+line
   with max_message=100) are all echoed: a read ending inside a message is not taken for one
   message over the limit. Idle clients holding the first bytes of a frame after a 1 MB message
   do not keep its buffer. tcp+raw with max_message=100 loses no byte of a 20 KB write.
9. A `\\n` inside a message pushed to a tcp+line client: refused for that client (it would split
   into two messages), counted as dropped (reason `unframeable`); other clients get it. Text that
   is not UTF-8 pushed to a WebSocket client: refused for it the same way (a browser would fail
   the connection on it); it stays connected, and a tcp+line client gets the bytes.
10. `ask=1`: the worker's refusal comes back as its HTTP status (401); with the worker stopped
    nobody decides and the client gets 503 after the handshake timeout; with no worker linked at
    all, 503 at once.
11. A flood of refused link hellos (wrong proof) on the internal port costs a bounded number of
    log lines: one per peer name per interval, at most 64 names.
12. max_handshakes_per_ip=5: five connections from 127.0.0.1 that send nothing stay open; a sixth
    from 127.0.0.1 gets an HTTP 503 and a clean close; a client from 127.0.0.2 upgrades and gets
    an echo meanwhile; once one of the five finishes its upgrade, or closes, 127.0.0.1 gets in
    again. Refusals are counted (reason `handshakes_per_ip`) and logged once per interval.
"""

import asyncio
import os
import re
import signal
import socket
import struct
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, LineClient, RawClient, TestFailure, WsClient, assert_quiet, check, check_eq,
    check_memory, log, poll_until, read_until_closed, run_test)
from test_ws_malformed import OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawWs, frame  # noqa: E402

import websockets  # noqa: E402
import websockets.exceptions  # noqa: E402

SEND_BUFFER = 64 * 1024
HB_MS = 200
IDLE_MS = 700
HANDSHAKE_MS = 600
ASK_HANDSHAKE_MS = 1500
# Small messages sent in one write (section 8): several times the gateway's 64 KiB read.
BURST = 20000
# Section 12: unfinished handshakes one client address may hold on the hs_ip listener.
HANDSHAKES_PER_IP = 5

# name -> listener URL (port 0); the order is the order of the --listen flags.
LISTENERS = {
    "plain": "ws://127.0.0.1:0/",
    "max_ws": "ws://127.0.0.1:0/?max_connections=2",
    "max_line": "tcp+line://127.0.0.1:0?max_connections=1",
    "handshake": f"ws://127.0.0.1:0/?handshake_timeout_ms={HANDSHAKE_MS}",
    "idle_ws": f"ws://127.0.0.1:0/?idle_timeout_ms={IDLE_MS}",
    "idle_line": f"tcp+line://127.0.0.1:0?idle_timeout_ms={IDLE_MS}",
    "hb_ws": f"ws://127.0.0.1:0/?heartbeat_interval_ms={HB_MS}&heartbeat_missed=3",
    "hb_line": f"tcp+line://127.0.0.1:0?heartbeat_interval_ms={HB_MS}&heartbeat_missed=3"
               "&heartbeat_data=hb",
    "slow_drop": f"ws://127.0.0.1:0/?send_buffer={SEND_BUFFER}&slow_client=drop",
    "slow_close": f"ws://127.0.0.1:0/?send_buffer={SEND_BUFFER}&slow_client=close",
    "origin": "ws://127.0.0.1:0/?origins=https://good.example,https://also.example",
    "frag": "ws://127.0.0.1:0/?max_message=1000",
    "raw": "tcp+raw://127.0.0.1:0?max_message=100",
    "line": "tcp+line://127.0.0.1:0",
    "small_line": "tcp+line://127.0.0.1:0?max_message=100",
    "ask": f"ws://127.0.0.1:0/?ask=1&handshake_timeout_ms={ASK_HANDSHAKE_MS}",
    # A handshake timeout well past the section's length: its silent clients must stay.
    "hs_ip": f"ws://127.0.0.1:0/?max_handshakes_per_ip={HANDSHAKES_PER_IP}"
             "&handshake_timeout_ms=60000",
}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class Metrics:
    """Reads the gateway's /metrics; values by metric name and labels."""

    LINE = re.compile(r'^(\w+)\{([^}]*)\}\s+(\S+)$')

    def __init__(self, addr, listener_urls):
        self.addr = addr
        self.urls = listener_urls  # name -> bound URL as printed

    async def scrape(self):
        def get():
            with urllib.request.urlopen(f"http://{self.addr}/metrics", timeout=5) as r:
                return r.read().decode()
        text = await asyncio.to_thread(get)
        out = {}
        for line in text.splitlines():
            m = self.LINE.match(line)
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2))))
                out[(m.group(1), labels)] = float(m.group(3))
        return out

    async def value(self, metric, listener, **labels):
        """The value of `metric` for listener `listener` (a LISTENERS name) and `labels`."""
        data = await self.scrape()
        total = 0.0
        for (name, ls), v in data.items():
            d = dict(ls)
            if name != metric or not self._is(d.get("listener", ""), listener):
                continue
            if all(d.get(k) == want for k, want in labels.items()):
                total += v
        return total

    def _is(self, label, listener):
        # The label names the listener by its URL; accept the bound or the configured form.
        bound = self.urls[listener]
        return label in (bound, LISTENERS[listener]) or label == bound.split("?", 1)[0]


async def raw_http(host, port, request, timeout=REPLY_TIMEOUT):
    """Sends `request` bytes; returns (status line, everything read until EOF, how it ended)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    await writer.drain()
    data, ended = await read_until_closed(reader, timeout)
    writer.close()
    status = data.split(b"\r\n", 1)[0].decode("latin-1")
    return status, data, ended


def upgrade_request(host, port, path="/", version="HTTP/1.1", extra=""):
    return (f"GET {path} {version}\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n").encode()


async def ws_status(url, **kwargs):
    """Tries a WebSocket connect; returns 101 when it opened (then closes it) or the HTTP status."""
    try:
        ws = await asyncio.wait_for(
            websockets.connect(url, ping_interval=None, open_timeout=REPLY_TIMEOUT, **kwargs),
            REPLY_TIMEOUT + 2)
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code
    await ws.close()
    return 101


async def read_frames_until_close(raw, timeout, on_ping=None):
    """Reads server frames; answers pings with `on_ping`; returns (close code, frames seen)."""
    seen = []
    while True:
        b0, payload = await raw.read_frame(timeout)
        op = b0 & 0x0F
        seen.append(op)
        if op == OP_CLOSE:
            code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            return code, seen, payload[2:].decode("utf-8", "replace")
        if op == OP_PING and on_ping is not None:
            await on_ping(payload)


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], listeners=tuple(LISTENERS.values()), threads=2,
                               extra=["--metrics", "127.0.0.1:0"])
    m, _ = await gw.wait_line(r"^listening metrics://(\S+)\s*$")
    # The bound URLs, in --listen order.
    bound = []
    for line in gw.lines:
        lm = re.match(r"^listening ((?:ws|tcp\+\w+)://\S+)\s*$", line)
        if lm:
            bound.append(lm.group(1))
    check_eq(len(bound), len(LISTENERS), "listening lines")
    urls = dict(zip(LISTENERS, bound))
    metrics = Metrics(m.group(1), urls)
    w = await c.start_worker([reg.addr], "commands", name="worker")
    await c.wait_linked([w], [gw])

    def host_port(name):
        hp = urls[name].split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        host, port = hp.rsplit(":", 1)
        return host, int(port)

    def ws_url(name, query=""):
        host, port = host_port(name)
        return f"ws://{host}:{port}/{query}"

    def closed(name, reason):
        """The listener's gwx_gateway_connections_closed_total{reason} (a coroutine)."""
        return metrics.value("gwx_gateway_connections_closed_total", name, reason=reason)

    async def closes_counted(names, reason, done=lambda v: v >= 1, protocol_errors=0.0):
        """Each listener counted closes with `reason` (until `done`), and `protocol_errors`
        as protocol_error."""
        for name in names:
            await poll_until(lambda: closed(name, reason), done, REPLY_TIMEOUT,
                             f"{name}: close counted as {reason}")
            check_eq(await closed(name, "protocol_error"), protocol_errors,
                     f"{name}: closes counted as protocol_error besides the {reason} ones")

    bystander = await WsClient.connect(ws_url("plain"), "bystander")

    async def bystander_ok(what):
        got = await bystander.cmd(f"echo after {what}")
        check_eq(got, f"after {what}", f"bystander after {what}")

    await bystander_ok("start")

    # ---- 1. max_connections ---------------------------------------------------------------------
    host, port = host_port("max_ws")
    first = await WsClient.connect(ws_url("max_ws"), "max1")
    second = await WsClient.connect(ws_url("max_ws"), "max2")
    check_eq(await first.cmd("echo one"), "one", "max_ws: first client works")
    status, data, ended = await raw_http(host, port, upgrade_request(host, port))
    check(status.startswith("HTTP/1.1 503"),
          f"max_ws: the client over max_connections=2 got {status!r} (ended by {ended}), "
          f"expected an HTTP 503")
    check_eq(ended, "eof", "max_ws: the refused connection ends with a clean close")
    check_eq(await ws_status(ws_url("max_ws")), 503, "max_ws: websockets client over the limit")
    await second.close()
    await poll_until(lambda: ws_status(ws_url("max_ws")), lambda s: s == 101, REPLY_TIMEOUT,
                     "max_ws: a freed place is taken again")
    check_eq(await first.cmd("echo still"), "still", "max_ws: first client unaffected")
    check(await metrics.value("gwx_gateway_connections_refused_total", "max_ws") >= 2,
          "max_ws: refusals counted")
    # tcp+line, max_connections=1: the second client gets a clean close, not a reset.
    lhost, lport = host_port("max_line")
    line1 = await LineClient.connect(lhost, lport, "line-max1")
    check_eq(await line1.cmd("echo l1"), "l1", "max_line: first client works")
    r2, w2 = await asyncio.open_connection(lhost, lport)
    w2.write(b"echo refused\n")
    try:
        got = await asyncio.wait_for(r2.read(4096), REPLY_TIMEOUT)
        check_eq(got, b"", "max_line: the client over the limit reads EOF")
    except ConnectionResetError:
        raise TestFailure("max_line: the client over the limit got a reset, not a clean close")
    w2.close()
    check_eq(await line1.cmd("echo l1 again"), "l1 again", "max_line: first client unaffected")
    await first.close()
    await line1.close()
    log("max_connections: ws over the limit -> HTTP 503 and EOF, tcp+line -> EOF; places reused")
    await bystander_ok("max_connections")

    # ---- 2. handshake timeout (slowloris) ---------------------------------------------------------
    host, port = host_port("handshake")
    before = await metrics.value("gwx_gateway_connections_closed_total", "handshake",
                                 reason="timeout")
    slow_r, slow_w = await asyncio.open_connection(host, port)
    silent_r, silent_w = await asyncio.open_connection(host, port)
    started = time.monotonic()
    request = upgrade_request(host, port)

    async def drip():
        # One byte every 50 ms: the head would take ~10 s; the gateway must not wait for it.
        for i in range(len(request) - 4):
            if slow_w.is_closing():
                return
            try:
                slow_w.write(request[i:i + 1])
                await slow_w.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0.05)

    dripper = asyncio.create_task(drip())

    async def closed_within(reader, what):
        try:
            while await asyncio.wait_for(reader.read(4096), HANDSHAKE_MS / 1000 * 5 + 5):
                pass
        except ConnectionError:
            pass
        except asyncio.TimeoutError:
            raise TestFailure(f"handshake: {what} still open long after the handshake timeout")
        return time.monotonic() - started

    t_slow = await closed_within(slow_r, "the slowloris client")
    t_silent = await closed_within(silent_r, "the silent client")
    dripper.cancel()
    slow_w.close()
    silent_w.close()
    check(t_slow >= HANDSHAKE_MS / 1000 * 0.9 and t_silent >= HANDSHAKE_MS / 1000 * 0.9,
          f"handshake: cut before the timeout ({t_slow:.2f}s, {t_silent:.2f}s)")
    await poll_until(lambda: metrics.value("gwx_gateway_connections_closed_total", "handshake",
                                           reason="timeout"),
                     lambda v: v >= before + 2, REPLY_TIMEOUT, "handshake timeouts counted")
    log(f"handshake_timeout_ms={HANDSHAKE_MS}: slowloris cut after {t_slow:.2f}s, "
        f"silent after {t_silent:.2f}s")
    await bystander_ok("slowloris")

    # ---- 3. idle timeout ------------------------------------------------------------------------
    idle_ws = await WsClient.connect(ws_url("idle_ws"), "idle-ws")
    lhost, lport = host_port("idle_line")
    idle_line = await LineClient.connect(lhost, lport, "idle-line")
    talker = await WsClient.connect(ws_url("idle_ws"), "idle-talker")

    async def keep_talking():
        # Talks every IDLE_MS/3 for 4 idle periods: must never be closed.
        for i in range(12):
            check_eq(await talker.cmd(f"echo t{i}"), f"t{i}", "idle: the talking client")
            await asyncio.sleep(IDLE_MS / 3000)

    talking = asyncio.create_task(keep_talking())
    code = await idle_ws.expect_closed(IDLE_MS / 1000 * 5 + REPLY_TIMEOUT)
    check_eq(code, 1001, "idle: close code to a silent WebSocket client")
    await idle_line.expect_closed(IDLE_MS / 1000 * 5 + REPLY_TIMEOUT)
    await talking
    await talker.close()
    await closes_counted(("idle_ws", "idle_line"), "idle_timeout")
    log(f"idle_timeout_ms={IDLE_MS}: silent ws (1001) and tcp+line closed, counted as "
        "idle_timeout; a talking client stayed")

    # ---- 4. heartbeat ---------------------------------------------------------------------------
    host, port = host_port("hb_ws")
    answering = RawWs("hb-answers")
    await answering.open(host, port)
    mute = RawWs("hb-mute")
    await mute.open(host, port)

    async def pong(payload):
        await answering.send(frame(OP_PONG, payload))

    pings = 0

    async def answer_pings():
        nonlocal pings
        while pings < 10:
            b0, payload = await answering.read_frame(REPLY_TIMEOUT)
            op = b0 & 0x0F
            check(op == OP_PING, f"hb_ws: answering client got opcode {op} instead of a ping")
            pings += 1
            await pong(payload)

    answering_task = asyncio.create_task(answer_pings())
    code, seen, reason = await read_frames_until_close(mute, REPLY_TIMEOUT)
    check_eq(code, 1001, "hb_ws: close code to a client that never answers pings")
    check(seen.count(OP_PING) >= 2, f"hb_ws: the mute client was pinged before the kick ({seen})")
    await answering_task
    # Still open and served after 10 intervals.
    await answering.send(frame(OP_TEXT, b"echo still here"))
    b0, payload = await answering.read_frame(REPLY_TIMEOUT)
    check_eq((b0 & 0x0F, payload), (OP_TEXT, b"still here"), "hb_ws: answering client served")
    answering.writer.close()
    # tcp+line: the gateway sends `hb` every interval; a client that talks stays.
    lhost, lport = host_port("hb_line")
    line_talk = await LineClient.connect(lhost, lport, "hb-line-talks")
    line_mute = await LineClient.connect(lhost, lport, "hb-line-mute")
    beats = 0
    while beats < 8:
        got = await line_talk.recv()
        if got == "hb":
            beats += 1
            await line_talk.send("echo pong")
        else:
            check_eq(got, "pong", "hb_line: talking client")
    mute_beats = 0
    try:
        while True:
            got = await line_mute.recv()
            check_eq(got, "hb", "hb_line: the mute client only gets heartbeats")
            mute_beats += 1
    except TestFailure as e:
        check("closed" in str(e), f"hb_line: mute client: {e}")
    check(2 <= mute_beats <= 4, f"hb_line: the mute client got {mute_beats} heartbeats before "
                                f"the kick (heartbeat_missed=3)")
    await line_talk.close()
    await closes_counted(("hb_ws", "hb_line"), "heartbeat_timeout")
    log(f"heartbeat: ws client answering {pings} pings stayed, mute one kicked (1001, "
        f"'{reason}'); tcp+line talker got {beats} beats, mute one kicked after {mute_beats}")
    await bystander_ok("heartbeats")

    # ---- 5. slow clients: drop and close --------------------------------------------------------
    payload = "x" * 8192

    async def small_window_client(name, tag):
        """A WebSocket client with a small receive buffer, upgraded, that reads only on demand."""
        host, port = host_port(name)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        client = RawWs(f"{name}-{tag}")
        client.reader, client.writer = await asyncio.open_connection(sock=sock)
        client.writer.write(upgrade_request(host, port))
        await client.reader.readuntil(b"\r\n\r\n")
        return client

    async def slow_case(name):
        # The slow client: a small receive buffer, joins the group, then never reads again.
        slow = await small_window_client(name, "slow")
        await slow.send(frame(OP_TEXT, f"join {name}".encode()))
        b0, got = await slow.read_frame(REPLY_TIMEOUT)
        check_eq(got, b"ok", f"{name}: slow client joined")
        floods = [await WsClient.connect(ws_url(name), f"{name}-flood{i}") for i in range(2)]
        before = rss_kib(gw.pid)
        n_each, batch = 600, 25

        async def flood(client):
            for _ in range(n_each // batch):
                for _ in range(batch):
                    await client.send(f"to-group {name} {payload}")
                for _ in range(batch):
                    check_eq(await client.recv(), "ok", f"{name}: flooder reply")

        await asyncio.gather(*(flood(f) for f in floods))
        grown = rss_kib(gw.pid) - before
        sent_mib = 2 * n_each * len(payload) / (1 << 20)
        return slow, floods, grown, sent_mib

    slow, floods, grown, sent_mib = await slow_case("slow_drop")

    async def slow_drops():
        return int(await metrics.value("gwx_gateway_messages_dropped_total", "slow_drop",
                                       reason="slow_client"))

    check(await slow_drops() > 0,
          "slow_drop: no message was dropped for the client that stopped reading")
    check_memory(grown, 12 * 1024, "slow_drop: gateway RSS")
    # It was kept: reading again, it gets every message that was not dropped, in order and
    # whole, then an answer to a new command. (Asked only once it has read them: a reply sent
    # while its buffer is still full would be dropped by the very policy under test.) The last
    # group sends may still be running on the slow client's loop when the flooders have their
    # "ok" (the reply goes out on the flooder's loop), so the drop count is read again whenever
    # the client has nothing more to read, not once before.
    sent = 2 * 600
    got_msgs = 0
    dropped = await slow_drops()
    quiet_since = time.monotonic()
    while got_msgs + dropped < sent:
        try:
            b0, got = await slow.read_frame(1.0)
        except asyncio.TimeoutError:
            dropped = await slow_drops()
            check(got_msgs + dropped >= sent or time.monotonic() - quiet_since < REPLY_TIMEOUT,
                  f"slow_drop: nothing more to read after {got_msgs} messages, "
                  f"{dropped} dropped, of {sent} sent")
            continue
        quiet_since = time.monotonic()
        check(b0 & 0x0F == OP_TEXT and got == payload.encode(),
              f"slow_drop: message {got_msgs} kept: opcode {b0 & 0x0F}, {len(got)} bytes")
        got_msgs += 1
    await slow.send(frame(OP_TEXT, b"echo alive"))
    b0, got = await slow.read_frame(REPLY_TIMEOUT)
    check_eq(got, b"alive", "slow_drop: the kept client answered after reading its backlog")
    dropped = await slow_drops()
    check_eq(got_msgs + dropped, sent, "slow_drop: messages read plus messages dropped")
    slow.writer.close()
    for f in floods:
        await f.close()
    log(f"slow_client=drop: {sent_mib:.1f} MiB flooded at a non-reader, {int(dropped)} dropped, "
        f"{got_msgs} delivered once it read again, RSS +{grown} KiB")

    slow, floods, grown, sent_mib = await slow_case("slow_close")
    await poll_until(lambda: metrics.value("gwx_gateway_connections_closed_total", "slow_close",
                                           reason="slow_client"),
                     lambda v: v >= 1, REPLY_TIMEOUT, "slow_close: the slow client was closed")
    check_memory(grown, 12 * 1024, "slow_close: gateway RSS")
    # The client finds its connection gone once it reads (no close frame: it was cut).
    try:
        while await asyncio.wait_for(slow.reader.read(65536), REPLY_TIMEOUT):
            pass
    except ConnectionError:
        pass
    slow.writer.close()
    for f in floods:
        check_eq(await f.cmd("echo flooder fine"), "flooder fine", "slow_close: flooder served")
        await f.close()
    log(f"slow_client=close: {sent_mib:.1f} MiB flooded, the non-reader closed, RSS +{grown} KiB")

    # A ping flood whose pongs are never read: a pong that does not fit is a message that does
    # not fit. slow_client=close closes the pinger; =drop counts the pongs it drops. (Before,
    # such pongs were dropped unseen and the client kept a full buffer for as long as it pinged.)
    async def ping_flood(name):
        pinger = await small_window_client(name, "pinger")
        pings = frame(OP_PING, b"p" * 125) * 100
        sent = 0
        try:
            while sent < 40_000:  # 5 MiB of pongs: far over the 64 KiB cap and socket buffers
                pinger.writer.write(pings)
                await asyncio.wait_for(pinger.writer.drain(), REPLY_TIMEOUT)
                sent += 100
        except ConnectionError:
            pass  # closed by the gateway under slow_client=close
        return pinger, sent

    closed_before = await metrics.value("gwx_gateway_connections_closed_total", "slow_close",
                                        reason="slow_client")
    pinger, sent = await ping_flood("slow_close")
    await poll_until(lambda: metrics.value("gwx_gateway_connections_closed_total", "slow_close",
                                           reason="slow_client"),
                     lambda v: v >= closed_before + 1, REPLY_TIMEOUT,
                     "slow_close: the pinger that never reads its pongs was closed")
    pinger.abort()
    dropped_before = await metrics.value("gwx_gateway_messages_dropped_total", "slow_drop",
                                         reason="slow_client")
    pinger, sent_drop = await ping_flood("slow_drop")
    pongs_dropped = await metrics.value("gwx_gateway_messages_dropped_total", "slow_drop",
                                        reason="slow_client") - dropped_before
    check(pongs_dropped > 0, "slow_drop: the pongs over the cap were not counted as dropped")
    pinger.abort()
    log(f"ping floods: the non-reading pinger closed after <= {sent} pings (slow_client=close); "
        f"{int(pongs_dropped)} of {sent_drop} pongs counted dropped (slow_client=drop)")
    await bystander_ok("slow clients")

    # ---- 6. Origin allow-list ---------------------------------------------------------------
    ourl = ws_url("origin")
    check_eq(await ws_status(ourl, origin="https://good.example"), 101, "origin: allowed")
    check_eq(await ws_status(ourl, origin="https://also.example"), 101, "origin: second allowed")
    check_eq(await ws_status(ourl, origin="https://evil.example"), 403, "origin: refused")
    check_eq(await ws_status(ourl), 403, "origin: missing")
    host, port = host_port("origin")
    for order in (("good", "evil"), ("evil", "good"), ("good", "good")):
        extra = "".join(f"Origin: https://{o}.example\r\n" for o in order)
        status, _, ended = await raw_http(host, port, upgrade_request(host, port, extra=extra))
        check(status.startswith("HTTP/1.1 400"),
              f"origin: two Origin headers {order} answered {status!r}, expected 400")
    # Counted by cause: the two refusals as refused, the malformed requests as protocol errors.
    await closes_counted(("origin",), "refused", done=lambda v: v == 2, protocol_errors=3.0)
    log("origins: allowed 101, other 403, missing 403, two Origin headers 400 "
        "(closes counted: refused 2, protocol_error 3)")

    # ---- 7. HTTP version of the upgrade -----------------------------------------------------------
    host, port = host_port("plain")
    for version in ("HTTP/2.0", "HTTP/1.0", "HTTP/3.0"):
        status, _, _ = await raw_http(host, port, upgrade_request(host, port, version=version))
        check(status.startswith("HTTP/1.1 505"), f"{version} upgrade answered {status!r}")
    log("upgrade request lines other than HTTP/1.1 -> 505")

    # ---- 8. message limits: tiny fragments, tcp+raw ---------------------------------------------
    host, port = host_port("frag")
    raw = RawWs("fragments")
    await raw.open(host, port)
    text = b"echo " + b"f" * 990  # 995 bytes, max_message=1000: 7 wire bytes per 1-byte fragment
    wire = b"".join(frame(OP_TEXT if i == 0 else OP_CONT, text[i:i + 1], fin=i == len(text) - 1)
                    for i in range(len(text)))
    await raw.send(wire)
    b0, got = await raw.read_frame(REPLY_TIMEOUT)
    check_eq((b0 & 0x0F, got), (OP_TEXT, text[5:]),
             f"frag: a {len(text)}-byte message in {len(text)} fragments ({len(wire)} wire bytes)")
    over = b"echo " + b"g" * 996  # 1001 bytes
    await raw.send(b"".join(frame(OP_TEXT if i == 0 else OP_CONT, over[i:i + 1],
                                  fin=i == len(over) - 1) for i in range(len(over))))
    code, _, _ = await read_frames_until_close(raw, REPLY_TIMEOUT)
    check_eq(code, 1009, "frag: one byte over max_message in fragments")
    raw.writer.close()
    # Many small messages in one write: the gateway's reads end inside a message, and what a read
    # holds behind that unfinished one is whole messages, not one message over the limit.
    burst = [f"echo b{i}".encode() for i in range(BURST)]
    raw = RawWs("burst")
    await raw.open(host, port)
    await raw.send(b"".join(frame(OP_TEXT, m) for m in burst))
    for i, m in enumerate(burst):
        b0, got = await raw.read_frame(REPLY_TIMEOUT)
        if (b0 & 0x0F, got) != (OP_TEXT, m[5:]):
            check_eq((b0 & 0x0F, got), (OP_TEXT, m[5:]), f"burst: reply {i} of {BURST}")
    raw.writer.close()
    lhost, lport = host_port("small_line")
    small = await LineClient.connect(lhost, lport, "small_line")
    small.writer.write(b"".join(m + b"\n" for m in burst))
    await small.writer.drain()
    for i, m in enumerate(burst):
        got = await small.recv()
        if got != m[5:].decode():
            check_eq(got, m[5:].decode(), f"small_line: reply {i} of {BURST}")
    await small.close()
    log(f"{BURST} small messages in one write, max_message 1000 (ws) and 100 (tcp+line): "
        "every one echoed, in order")
    # A large message taken with the first bytes of the next one behind it: the idle client
    # keeps those bytes, not the large message's buffer (it kept ~1 MiB each before).
    phost, pport = host_port("plain")
    big = frame(OP_TEXT, b"echo " + b"t" * 1_000_000)
    tails = []
    before = rss_kib(gw.pid)
    for i in range(20):
        tail = RawWs(f"tail{i}")
        await tail.open(phost, pport)
        await tail.send(big[:1000])
        await asyncio.sleep(0.02)  # read apart: the message is gathered in the client's buffer
        await tail.send(big[1000:] + b"\x81\x85")  # two bytes of the next frame's header
        b0, got = await tail.read_frame(REPLY_TIMEOUT)
        check_eq(len(got), 1_000_000, f"tail{i}: the large message echoed")
        tails.append(tail)
    await asyncio.sleep(0.5)
    grown = rss_kib(gw.pid) - before
    check_memory(grown, 20 * 400, "20 idle clients each holding 2 bytes of a next frame")
    for tail in tails:
        tail.writer.close()
    log(f"20 idle clients holding 2 bytes after a 1 MB message: gateway RSS +{grown} KiB")
    rhost, rport = host_port("raw")
    bytes_before = await metrics.value("gwx_gateway_message_bytes_total", "raw", direction="in")
    raw_client = await RawClient.connect(rhost, rport, "raw")
    blob = os.urandom(20000)
    raw_client.writer.write(blob)
    await raw_client.writer.drain()
    await poll_until(lambda: metrics.value("gwx_gateway_message_bytes_total", "raw",
                                           direction="in"),
                     lambda v: v >= bytes_before + len(blob), REPLY_TIMEOUT,
                     "raw: every byte of the write reached the gateway's counters")
    got_in = await metrics.value("gwx_gateway_message_bytes_total", "raw", direction="in")
    check_eq(got_in - bytes_before, float(len(blob)), "raw: bytes in (none lost, none doubled)")
    await raw_client.close()
    log(f"limits: {len(text)} bytes in 1-byte fragments delivered, {len(over)} -> 1009; "
        f"tcp+raw max_message=100 took all {len(blob)} bytes")

    # ---- 9. a newline pushed to a tcp+line client --------------------------------------------------
    lhost, lport = host_port("line")
    liner = await LineClient.connect(lhost, lport, "liner")
    await liner.send("id")
    liner_id = (await liner.recv()).split()[1]
    await liner.send("join nl")
    check_eq(await liner.recv(), "ok", "liner joined")
    wsm = await WsClient.connect(ws_url("plain"), "nl-ws")
    check_eq(await wsm.cmd("join nl"), "ok", "ws joined")
    dropped_before = await metrics.value("gwx_gateway_messages_dropped_total", "line",
                                         reason="unframeable")
    check_eq(await bystander.cmd(f"to-client {liner_id} two\nlines"), "ok", "to-client reply")
    check_eq(await bystander.cmd("to-group nl first\nsecond"), "ok", "to-group reply")
    check_eq(await wsm.recv(), "first\nsecond", "the ws member gets the message whole")
    await assert_quiet([liner], "a message with a newline to a tcp+line client")
    await poll_until(lambda: metrics.value("gwx_gateway_messages_dropped_total", "line",
                                           reason="unframeable"),
                     lambda v: v >= dropped_before + 2, REPLY_TIMEOUT,
                     "newline messages to the line client counted as dropped")
    check_eq(await bystander.cmd(f"to-client {liner_id} one line"), "ok", "to-client reply")
    check_eq(await liner.recv(), "one line", "liner still gets messages without a newline")
    # Bytes that are not UTF-8, sent as text (a tcp+line client's message is text): a WebSocket
    # client cannot take them as a text frame (RFC 6455 8.1: it would fail the connection, 1007),
    # so they are refused for it, counted, and it stays connected; the line client gets them.
    ws_dropped_before = await metrics.value("gwx_gateway_messages_dropped_total", "plain",
                                            reason="unframeable")
    wsm_id = (await wsm.cmd("id")).split()[1]
    liner.writer.write(f"to-client {wsm_id} caf".encode() + b"\xe9\n")
    check_eq(await liner.recv(), "ok", "to-client reply (bytes that are not UTF-8)")
    liner.writer.write(b"to-group nl caf\xe9\n")
    got = sorted([await asyncio.wait_for(liner.reader.readline(), REPLY_TIMEOUT) for _ in range(2)])
    check_eq(got, [b"caf\xe9\n", b"ok\n"], "to-group: the reply, and the line member (the sender "
             "itself) gets the bytes as sent")
    await assert_quiet([wsm], "text that is not UTF-8 to a WebSocket client")
    await poll_until(lambda: metrics.value("gwx_gateway_messages_dropped_total", "plain",
                                           reason="unframeable"),
                     lambda v: v >= ws_dropped_before + 2, REPLY_TIMEOUT,
                     "text that is not UTF-8 to the ws client counted as dropped")
    await liner.close()
    await wsm.close()
    log("a message with '\\n' is refused for tcp+line clients (counted unframeable), "
        "delivered whole to WebSocket clients; text that is not UTF-8 is refused for WebSocket "
        "clients (counted unframeable; they stay connected), delivered to tcp+line clients")

    # ---- 10. ask=1 ------------------------------------------------------------------------------
    check_eq(await ws_status(ws_url("ask", "?refuse=401")), 401, "ask: the worker's 401")
    check_eq(await ws_status(ws_url("ask", "?refuse=451")), 451, "ask: the worker's 451")
    await closes_counted(("ask",), "refused", done=lambda v: v == 2)
    asked = await WsClient.connect(ws_url("ask"), "asked")
    check_eq(await asked.cmd("echo accepted"), "accepted", "ask: accepted client served")
    await asked.close()
    await bystander_ok("ask")

    # ---- 11. log lines of a flood of refused link hellos ----------------------------------------
    # Hellos with a wrong proof, hand-encoded (link v2: preamble, then u32 length, u32 header
    # length, the Frame protobuf): each is refused; refusals are logged once per peer name per
    # interval (at most 64 names), so a flood costs a bounded number of lines.
    ihost, iport = gw.internal.rsplit(":", 1)

    def field(num, data):
        return bytes([num << 3 | 2, len(data)]) + data

    def bad_hello(name):
        hello = b"\x08\x01" + field(2, name.encode()) + field(3, os.urandom(16)) + \
            field(4, os.urandom(32))
        header = field(2, hello)  # Frame.hello
        return b"GWXLNK\x00\x02" + struct.pack(">II", len(header), len(header)) + header

    async def hello_flood(names):
        for name in names:
            r, wr = await asyncio.open_connection(ihost, int(iport))
            wr.write(bad_hello(name))
            try:
                while await asyncio.wait_for(r.read(65536), REPLY_TIMEOUT):
                    pass
            except ConnectionError:
                pass
            wr.close()

    def refusal_lines(start):
        return [ln for ln in c.stderr_of(gw).splitlines()[start:] if "refused" in ln]

    start = len(c.stderr_of(gw).splitlines())
    await hello_flood(["flooder"] * 200)
    same = refusal_lines(start)
    start += len(c.stderr_of(gw).splitlines()[start:])
    await hello_flood([f"flooder-{i}" for i in range(200)])
    many = refusal_lines(start)
    log(f"refused link hellos: 200 from one name -> {len(same)} log line(s), 200 names -> "
        f"{len(many)} line(s)")
    check(1 <= len(same) <= 2, f"200 refused hellos of one name logged {len(same)} lines: "
                               f"{same[:3]}")
    check(1 <= len(many) <= 64, f"200 refused hellos of 200 names logged {len(many)} lines")
    await bystander_ok("link flood")

    # ---- 10 (cont.). ask=1 when nobody decides ------------------------------------------------
    # The worker stopped: the gateway asks, nobody answers, 503 once the handshake time is up.
    await w.pause()
    t0 = time.monotonic()
    status = await ws_status(ws_url("ask"))
    waited = time.monotonic() - t0
    w.send_signal(signal.SIGCONT)
    check_eq(status, 503, "ask: no decision from a stopped worker")
    await poll_until(lambda: metrics.value("gwx_gateway_connections_closed_total", "ask",
                                           reason="timeout"),
                     lambda v: v >= 1, REPLY_TIMEOUT, "ask: the undecided client counted as timeout")
    log(f"ask=1 with the worker stopped: 503 after {waited:.2f}s "
        f"(handshake_timeout_ms={ASK_HANDSHAKE_MS})")
    # No worker linked at all: 503 at once, and plain listeners keep their clients.
    await w.kill()
    await poll_until(lambda: ws_status(ws_url("ask")), lambda s: s == 503, REPLY_TIMEOUT,
                     "ask: 503 with no worker linked")
    await bystander.send("echo queued")
    w2 = await c.start_worker([reg.addr], "commands", name="worker2")
    await c.wait_linked([w2], [gw])
    check_eq(await bystander.recv(), "queued", "bystander's event queued while no worker")
    check_eq(await ws_status(ws_url("ask", "?refuse=401")), 401, "ask: new worker decides")

    # ---- 12. max_handshakes_per_ip --------------------------------------------------------------
    host, port = host_port("hs_ip")

    async def silent_from(source):
        """A TCP connection from `source` (a loopback address) that sends nothing."""
        return await asyncio.open_connection(host, port, local_addr=(source, 0))

    async def still_open(reader, what):
        data, ended = await read_until_closed(reader, 0.3)
        check_eq((data, ended), (b"", "open"), f"hs_ip: {what}")

    def refused_per_ip():
        return metrics.value("gwx_gateway_connections_refused_total", "hs_ip",
                             reason="handshakes_per_ip")

    def limit_lines():
        return [ln for ln in c.stderr_of(gw).splitlines()
                if "max_handshakes_per_ip" in ln and urls["hs_ip"] in ln]

    silent = [await silent_from("127.0.0.1") for _ in range(HANDSHAKES_PER_IP)]
    # Accepted in order: each of the five holds its place before the sixth is looked at.
    status, data, ended = await raw_http(host, port, upgrade_request(host, port))
    check(status.startswith("HTTP/1.1 503"),
          f"hs_ip: connection {HANDSHAKES_PER_IP + 1} from 127.0.0.1 got {status!r} (ended by "
          f"{ended}), expected an HTTP 503")
    check_eq(ended, "eof", "hs_ip: the refused connection ends with a clean close")
    for i, (r, _) in enumerate(silent):
        await still_open(r, f"silent connection {i + 1} from 127.0.0.1 after the refusal")
    check_eq(await metrics.value("gwx_gateway_connections", "hs_ip"), float(HANDSHAKES_PER_IP),
             "hs_ip: open connections while 127.0.0.1 is at its limit")
    # Another address is not held back by 127.0.0.1's silent connections.
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.bind(("127.0.0.2", 0))
    other.setblocking(False)
    await asyncio.get_running_loop().sock_connect(other, (host, port))
    neighbour = await WsClient.connect(ws_url("hs_ip"), "hs-127.0.0.2", sock=other)
    check_eq(await neighbour.cmd("echo from .2"), "from .2", "hs_ip: client from 127.0.0.2")
    # One of the five finishes its upgrade: its place is free at once (given back before the 101
    # is written), so the next client from 127.0.0.1 gets in.
    upgraded_r, upgraded_w = silent.pop(0)
    upgraded_w.write(upgrade_request(host, port))
    head = await asyncio.wait_for(upgraded_r.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
    check(head.startswith(b"HTTP/1.1 101"), f"hs_ip: silent connection's late upgrade: {head!r}")
    joined = await WsClient.connect(ws_url("hs_ip"), "hs-127.0.0.1")
    check_eq(await joined.cmd("echo from .1"), "from .1",
             "hs_ip: 127.0.0.1 after one of its handshakes finished")
    # At the limit again (four silent and a fifth): refused. Then one closes: in again.
    silent.append(await silent_from("127.0.0.1"))
    check_eq(await ws_status(ws_url("hs_ip")), 503, "hs_ip: 127.0.0.1 at its limit again")
    gone_r, gone_w = silent.pop()
    gone_w.close()
    await poll_until(lambda: ws_status(ws_url("hs_ip")), lambda s: s == 101, REPLY_TIMEOUT,
                     "hs_ip: the place of a closed silent connection is taken again")
    for i, (r, _) in enumerate(silent):
        await still_open(r, f"silent connection {i + 2} from 127.0.0.1 at the end")
    refusals = await refused_per_ip()
    check(refusals >= 2, f"hs_ip: refusals counted as handshakes_per_ip: {refusals}")
    check_eq(await metrics.value("gwx_gateway_connections_refused_total", "hs_ip",
                                 reason="max_connections"), 0.0,
             "hs_ip: refusals counted as max_connections")
    lines = limit_lines()
    check(1 <= len(lines) <= 2 and "127.0.0.1" in lines[0]
          and f"max_handshakes_per_ip ({HANDSHAKES_PER_IP})" in lines[0],
          f"hs_ip: {int(refusals)} refusals logged as {lines}")
    for _, wr in silent:
        wr.close()
    upgraded_w.close()
    await joined.close()
    await neighbour.close()
    log(f"max_handshakes_per_ip={HANDSHAKES_PER_IP}: 6th silent connection from 127.0.0.1 -> "
        f"503, 127.0.0.2 served meanwhile; a finished upgrade and a close each free a place; "
        f"{int(refusals)} refusal(s) counted, {len(lines)} log line(s)")
    await bystander_ok("max_handshakes_per_ip")


if __name__ == "__main__":
    run_test(main)
