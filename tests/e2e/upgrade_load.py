"""Shared pieces of the worker-upgrade e2e tests (test_upgrade_*.py): a counted echo load and
`gwxctl stats` parsing.

`EchoLoad` connects many clients (WebSocket via python3-websockets and tcp+line, spread over the
gateways) to the `echo` app. Each client sends numbered messages "<client>:<n>" (optionally
followed by "|" and `pad` filler bytes) with a bounded number of unanswered ones (its window) and checks every echo as it arrives:
- the next expected number: counted as echoed, the expected number moves on;
- a number already seen: a duplicate (allowed only where the test says so);
- a number beyond the expected one (a gap: something lost or reordered), a message of another
  client or anything unparsable: an order error, kept with the figures.
A connection closed by the server is a disconnect. `settle()` stops the senders and waits until
every number sent was echoed; since a client's events stay in order, the echo of its last number
comes after every duplicate of the earlier ones, so nothing can arrive later unseen.

The figures a test prints come from `figures()`: sent, echoed (every echo, duplicates included),
distinct, duplicated, lost, out_of_order, disconnects, reconnects (clients never reconnect: a
disconnect is a failure, so this stays 0 and is printed for the reader).
"""

from __future__ import annotations

import asyncio
import re
import time

import websockets.exceptions

from gwx_cluster import REPLY_TIMEOUT, TestFailure, check, connect, log

# How many order errors / disconnect reasons a failure message quotes.
_QUOTE = 8


class LoadClient:
    def __init__(self, name, client, window):
        self.name = name
        self.client = client
        self.kind = client.kind
        self.window = window
        self.sent = 0          # numbers 0 … sent-1 were sent
        self.next = 0          # next distinct number expected back
        self.echoed = 0        # every echo, duplicates included
        self.dups = 0
        self.errors: list[str] = []
        self.closed: str | None = None
        self.last_echo = 0.0   # time.monotonic() of the last echo of a new number
        self.room = asyncio.Event()
        self.room.set()
        self.prefix = name + ":"

    def on_message(self, msg):
        if not msg.startswith(self.prefix):
            self.errors.append(f"{self.name} got a message not its own: {msg!r}")
            return
        try:
            n = int(msg[len(self.prefix):].split("|", 1)[0])
        except ValueError:
            self.errors.append(f"{self.name} got an unparsable echo {msg!r}")
            return
        self.echoed += 1
        if n == self.next:
            self.next += 1
            self.last_echo = time.monotonic()
            self.room.set()
        elif n < self.next:
            self.dups += 1
        else:
            self.errors.append(f"{self.name}: expected echo {self.next}, got {n} "
                               f"(sent {self.sent})")
            # Resynchronise so one gap is reported once, not for every later message.
            self.next = n + 1
            self.room.set()


class EchoLoad:
    """Counted echo traffic from `n_clients` clients spread over `gateways` and `schemes`."""

    def __init__(self, gateways, n_clients=200, window=8, schemes=("ws", "tcp+line"),
                 pause=0.0, prefix="c", pad=0, command=""):
        self.gateways = list(gateways)
        self.n_clients = n_clients
        self.window = window
        self.schemes = schemes
        self.pause = pause  # seconds a client waits after each send (0: only the window limits)
        self.prefix = prefix
        self.filler = "|" + "x" * pad if pad > 0 else ""
        # Put before each message: "echo " makes the `commands` app answer like `echo`.
        self.command = command
        self.clients: list[LoadClient] = []
        self.sending = False
        self._tasks: list[asyncio.Task] = []

    async def connect(self):
        sem = asyncio.Semaphore(20)  # don't flood the accept queues of a small machine

        async def one(i):
            g = self.gateways[i % len(self.gateways)]
            scheme = self.schemes[(i // len(self.gateways)) % len(self.schemes)]
            name = f"{self.prefix}{i}"
            async with sem:
                cl = await connect(g, scheme, name)
            return LoadClient(name, cl, self.window)

        self.clients = list(await asyncio.gather(*(one(i) for i in range(self.n_clients))))
        kinds = {}
        for lc in self.clients:
            kinds[lc.kind] = kinds.get(lc.kind, 0) + 1
        log(f"load: {len(self.clients)} clients connected ({kinds}) over "
            f"{[g.name for g in self.gateways]}, window {self.window}")

    def start(self):
        self.sending = True
        for lc in self.clients:
            self._tasks.append(asyncio.create_task(self._send_loop(lc)))
            self._tasks.append(asyncio.create_task(self._recv_loop(lc)))

    async def _send_loop(self, lc: LoadClient):
        try:
            while self.sending and lc.closed is None:
                if lc.sent - lc.next >= lc.window:
                    lc.room.clear()
                    await lc.room.wait()
                    continue
                n = lc.sent
                lc.sent += 1
                await lc.client.send(f"{self.command}{lc.name}:{n}{self.filler}")
                if self.pause > 0:
                    await asyncio.sleep(self.pause)
                else:
                    await asyncio.sleep(0)
        except (ConnectionError, websockets.exceptions.ConnectionClosed) as e:
            if lc.closed is None:
                lc.closed = f"send failed: {e!r}"
        except TestFailure as e:
            if lc.closed is None:
                lc.closed = str(e)

    async def _recv_loop(self, lc: LoadClient):
        try:
            while True:
                msg = await lc.client.recv(timeout=3600)
                lc.on_message(msg)
        except TestFailure as e:  # ClientClosed included
            lc.closed = str(e)
            lc.room.set()

    # ---- observing ----------------------------------------------------------------------

    def total(self, attr):
        return sum(getattr(lc, attr) for lc in self.clients)

    def disconnected(self):
        return [lc for lc in self.clients if lc.closed is not None]

    def check_connected(self, what):
        gone = self.disconnected()
        check(not gone, f"{what}: {len(gone)} client(s) disconnected, e.g. "
                        f"{[lc.closed for lc in gone[:_QUOTE]]}")

    async def wait_progress(self, count, what, timeout=30.0):
        """Waits until `count` more distinct echoes arrived (traffic is really flowing)."""
        target = self.total("next") + count
        deadline = time.monotonic() + timeout
        while self.total("next") < target:
            self.check_connected(what)
            if time.monotonic() >= deadline:
                raise TestFailure(f"{what}: fewer than {count} new echoes within {timeout:.0f}s "
                                  f"(distinct echoed {self.total('next')}, sent "
                                  f"{self.total('sent')})")
            await asyncio.sleep(0.05)

    async def settle(self, timeout=30.0):
        """Stops sending; waits until every sent number was echoed (or the deadline)."""
        self.sending = False
        for lc in self.clients:
            lc.room.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(lc.next >= lc.sent or lc.closed is not None for lc in self.clients):
                break
            await asyncio.sleep(0.05)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def figures(self):
        return {
            "clients": len(self.clients),
            "sent": self.total("sent"),
            "echoed": self.total("echoed"),
            "distinct": self.total("next"),
            "duplicated": self.total("dups"),
            "lost": sum(max(0, lc.sent - lc.next) for lc in self.clients),
            "out_of_order": sum(len(lc.errors) for lc in self.clients),
            "disconnects": len(self.disconnected()),
            "reconnects": 0,
        }

    def report(self, what, extra=None):
        f = self.figures()
        if extra:
            f.update(extra)
        log(f"FIGURES {what}: " + " ".join(f"{k}={v}" for k, v in f.items()))
        return f

    def check_no_loss(self, what, allow_duplicates):
        """Fails on any disconnect, loss, order error, and (unless allowed) duplicate."""
        f = self.figures()
        self.check_connected(what)
        errors = [e for lc in self.clients for e in lc.errors]
        check(not errors, f"{what}: {len(errors)} order error(s) (gap, reordering or a foreign "
                          f"message), e.g. {errors[:_QUOTE]}")
        lost = [(lc.name, lc.sent, lc.next) for lc in self.clients if lc.next < lc.sent]
        check(not lost, f"{what}: {f['lost']} message(s) never echoed; (client, sent, echoed) "
                        f"e.g. {lost[:_QUOTE]}")
        check(f["sent"] > 0, f"{what}: nothing was sent")
        if not allow_duplicates:
            dups = [(lc.name, lc.dups) for lc in self.clients if lc.dups]
            check(not dups, f"{what}: {f['duplicated']} message(s) echoed more than once; "
                            f"(client, duplicates) e.g. {dups[:_QUOTE]}")

    async def close(self):
        await asyncio.gather(*(lc.client.close() for lc in self.clients), return_exceptions=True)


# ---- gwxctl stats -----------------------------------------------------------------------

_STATS_RX = re.compile(r"^(\S+) id=\S+ clients=(\d+) .*?workers=(\d+)(?:\(([^)]*)\))? .*"
                       r"events_queued=(\d+) events_in_flight=(\d+) events_redelivered=(\d+) "
                       r"events_dropped=(\d+)(?: draining=(\S+))?\s*$")


def parse_stats(out):
    """`gwxctl stats` output -> {internal address: dict of the per-gateway figures}."""
    per_gw = {}
    for ln in out.splitlines():
        m = _STATS_RX.match(ln)
        if not m:
            continue
        per_gw[m.group(1)] = {
            "clients": int(m.group(2)),
            "workers": int(m.group(3)),
            "worker_names": [w for w in (m.group(4) or "").split(",") if w],
            "queued": int(m.group(5)),
            "in_flight": int(m.group(6)),
            "redelivered": int(m.group(7)),
            "dropped": int(m.group(8)),
            "draining": [w for w in (m.group(9) or "").split(",") if w],
        }
    return per_gw


class Ctl:
    """Runs gwxctl verbs against the cluster's registers."""

    def __init__(self, cluster, registers, timeout_ms=5000):
        self.c = cluster
        self.base = [cluster.binary("gwxctl"), "--register", ",".join(registers),
                     "--secret", cluster.secret, "--timeout-ms", str(timeout_ms)]

    async def run(self, *words, expect_status=0, timeout=30):
        status, out, err = await self.c.run("gwxctl", self.base + list(words), timeout=timeout)
        if expect_status is not None:
            check(status == expect_status,
                  f"gwxctl {' '.join(words)}: exit status {status}, expected {expect_status}; "
                  f"stdout {out!r}; stderr {err!r}")
        return out

    async def stats(self, gateways=None):
        out = await self.run("stats")
        per_gw = parse_stats(out)
        if gateways is not None:
            check(sorted(per_gw) == sorted(g.internal for g in gateways),
                  f"gwxctl stats: expected a line per gateway "
                  f"{sorted(g.internal for g in gateways)}, got {out!r}")
        return per_gw

    async def stats_sum(self, gateways=None):
        per_gw = await self.stats(gateways)
        return {k: sum(v[k] for v in per_gw.values())
                for k in ("clients", "queued", "in_flight", "redelivered", "dropped")}


DRAINED_RX = re.compile(r"drained in (\d+) ms: (\d+) event\(s\) handled during the drain(.*)$",
                        re.M)


def drained_line(stderr_text, who):
    """The worker's end-of-drain log line -> (ms, events handled during the drain); fails when
    it is missing or says the drain was incomplete."""
    m = DRAINED_RX.search(stderr_text)
    check(m is not None, f"{who}: no 'drained in … ms' line in its log")
    check(not m.group(3).strip(), f"{who}: drain incomplete: {m.group(0)!r}")
    return int(m.group(1)), int(m.group(2))


async def wait_exit(proc, timeout, what):
    """Waits for a process that was already told to stop; returns its exit status. (Not
    Proc.stop: signalling a process that may just have exited can race its reaping.)"""
    try:
        status = await asyncio.wait_for(proc.proc.wait(), timeout)
    except asyncio.TimeoutError:
        raise TestFailure(f"{what}: {proc.name} (pid {proc.pid}) did not exit within "
                          f"{timeout:.0f}s") from None
    if proc._reader is not None:
        await asyncio.wait_for(proc._reader, 5.0)
    log(f"[{proc.name}] exited with status {status}")
    return status


async def wait_until(cond, timeout, what, interval=0.05):
    """Waits until `cond()` (a plain function) holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise TestFailure(f"{what}: not reached within {timeout:.1f}s")
        await asyncio.sleep(interval)


__all__ = ["EchoLoad", "LoadClient", "Ctl", "drained_line", "parse_stats", "wait_exit",
           "wait_until", "REPLY_TIMEOUT"]
