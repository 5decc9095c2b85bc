"""End-to-end harness for gwx: starts the real binaries as processes and drives them with real clients.

Run the tests with /usr/bin/python3 (Debian's python3-websockets lives there). Every test file calls
`run_test(main)`; `main(h)` gets a `Harness` with a `Cluster` whose processes all live in their own
process groups and are killed when the test ends, however it ends (success, failure, timeout,
SIGTERM from ctest). Each process's stdout and stderr go to a per-test temporary directory and are
printed when the test fails.

Synchronisation is by condition with a deadline, never by sleeping: `Proc.wait_line` waits for a
line on a process's stdout, `poll_until` re-evaluates a condition until it holds or the deadline
passes, and client `recv` calls carry their own timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

try:
    import websockets
    import websockets.exceptions
except ImportError:  # pragma: no cover - reported as a failure, never a skip
    sys.stderr.write(
        "gwx e2e: the 'websockets' module is missing; run the tests with /usr/bin/python3 "
        "(Debian: apt-get install python3-websockets)\n")
    sys.exit(1)

# How long one client reply may take. Generous: the machine is small and shared.
REPLY_TIMEOUT = 10.0
# How long a process may take to print its start-up lines or to link.
START_TIMEOUT = 20.0
# How long a non-recipient is given to show that nothing unexpected is pending for it.
SENTINEL_TIMEOUT = 5.0


class TestFailure(AssertionError):
    """A check of the test failed; the message says what was expected and what happened."""


def check(condition, message):
    """Fails the test with `message` unless `condition` holds."""
    if not condition:
        raise TestFailure(message)


def check_eq(actual, expected, what):
    """Fails the test unless `actual == expected`; the message shows both."""
    if actual != expected:
        raise TestFailure(f"{what}: expected {expected!r}, got {actual!r}")


def log(message):
    """Prints a progress line of the test (flushed, so ctest shows it even on a timeout)."""
    print(message, flush=True)


def free_port() -> int:
    """A loopback port nobody listened on a moment ago: for servers with no port-0 mode that
    reports the port they got (brokers, Prometheus), or for a port that must refuse."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Set (e.g. to "asan") when the binaries run under a sanitizer: its allocator keeps freed memory
# in quarantine and adds shadow memory, so resident-memory figures say nothing about gwx.
SANITIZER = os.environ.get("GWX_E2E_SANITIZER", "")


def check_memory(grown_kib, bound_kib, what):
    """Fails unless a memory growth stays under its bound; under a sanitizer only logs it."""
    if SANITIZER:
        log(f"{what}: grew {grown_kib} KiB (bound {bound_kib} KiB not checked under {SANITIZER})")
        return
    check(grown_kib < bound_kib, f"{what}: grew {grown_kib} KiB, bound {bound_kib} KiB")


# What ASan, LeakSanitizer, UBSan and TSan print first in a report.
_SANITIZER_REPORT = re.compile(r"ERROR: (?:Address|Leak)Sanitizer|runtime error:|"
                               r"WARNING: ThreadSanitizer")


def sanitizer_reports():
    """Names of the started processes whose stderr holds a sanitizer report (a process the test
    then killed, or whose exit status it did not look at, still fails the test)."""
    found = []
    for p in _ALL_PROCS:
        try:
            with open(p.stderr_path, "r", encoding="utf-8", errors="replace") as f:
                if _SANITIZER_REPORT.search(f.read()):
                    found.append(p.name)
        except OSError:
            pass
    return found


async def poll_until(probe, done, timeout, what, interval=0.05):
    """Calls `await probe()` until `done(value)` holds; returns the last value. Fails after `timeout`."""
    deadline = time.monotonic() + timeout
    value = None
    while True:
        value = await probe()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise TestFailure(f"{what}: condition not reached within {timeout:.1f}s "
                              f"(last value {value!r})")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------------------------
# Processes

_LIBC = None


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the harness dies without cleaning up (e.g. SIGKILL)."""
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort; the harness also kills at exit
        pass


_ALL_PROCS: list["Proc"] = []


def kill_all_processes():
    """Kills every process group the harness started that may still be alive."""
    for p in _ALL_PROCS:
        p.kill_now()


class Proc:
    """One started binary: its stdout lines (kept, waited on), its stderr (in a file)."""

    def __init__(self, harness: "Harness", name: str, argv: list[str]):
        self.harness = harness
        self.name = name
        self.argv = argv
        self.lines: list[str] = []
        self.eof = False
        self.proc: asyncio.subprocess.Process | None = None
        self.stdout_path = os.path.join(harness.tmp, f"{name}.stdout")
        self.stderr_path = os.path.join(harness.tmp, f"{name}.stderr")
        self._cond = asyncio.Condition()
        self._reader: asyncio.Task | None = None

    async def start(self):
        with open(self.stderr_path, "wb") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                start_new_session=True,  # its own process group, killed as a whole
                preexec_fn=_die_with_parent,
            )
        _ALL_PROCS.append(self)
        self._reader = asyncio.create_task(self._read_stdout())
        log(f"[{self.name}] started pid {self.proc.pid}: {' '.join(self.argv)}")

    async def _read_stdout(self):
        with open(self.stdout_path, "w", encoding="utf-8") as out:
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                out.write(line + "\n")
                out.flush()
                async with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        async with self._cond:
            self.eof = True
            self._cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.returncode is None

    async def wait_line(self, pattern, timeout=START_TIMEOUT, start=0):
        """Waits for a stdout line (index >= start) matching regex `pattern`; returns (match, index)."""
        rx = re.compile(pattern)
        found = None

        def scan():
            nonlocal found
            for i in range(start, len(self.lines)):
                m = rx.search(self.lines[i])
                if m:
                    found = (m, i)
                    return True
            return self.eof

        try:
            async with self._cond:
                await asyncio.wait_for(self._cond.wait_for(scan), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: no stdout line matching /{pattern}/ within "
                              f"{timeout:.1f}s; stdout so far: {self.lines[start:]!r}") from None
        if found is None:
            await self._reap(2.0)
            raise TestFailure(f"{self.name}: exited (status {self.proc.returncode}) before "
                              f"printing a line matching /{pattern}/; stdout: {self.lines!r}")
        return found

    def has_line(self, pattern, start=0):
        rx = re.compile(pattern)
        return any(rx.search(line) for line in self.lines[start:])

    async def _reap(self, timeout):
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def send_signal(self, sig):
        """Sends `sig` to the process (not its group: a graceful stop is the process's own job)."""
        if self.running():
            os.kill(self.proc.pid, sig)

    async def pause(self, timeout=5.0):
        """SIGSTOPs the process and waits until every one of its threads is stopped.

        kill() returns before the stop takes effect: the kernel starts the group stop only when
        one thread dequeues the signal, so on a busy machine the other threads may still answer
        a request sent right after the kill. Tests that need the process silent call this."""
        self.send_signal(signal.SIGSTOP)
        tasks = f"/proc/{self.proc.pid}/task"

        async def all_stopped():
            try:
                for tid in os.listdir(tasks):
                    with open(f"{tasks}/{tid}/stat") as f:
                        # state follows the parenthesised command name, which may hold spaces
                        if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                            return False
            except FileNotFoundError:
                return False
            return True

        await poll_until(all_stopped, lambda done: done, timeout,
                         f"{self.name}: every thread stopped after SIGSTOP", interval=0.005)

    async def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Sends `sig` and waits for the exit; fails if it does not exit in time. Returns the status."""
        self.send_signal(sig)
        try:
            status = await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill_now()
            raise TestFailure(f"{self.name}: did not exit within {timeout:.1f}s of "
                              f"{signal.Signals(sig).name}") from None
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5.0)
        self.kill_now()  # anything it left in its group
        log(f"[{self.name}] exited with status {status} after {signal.Signals(sig).name}")
        return status

    async def kill(self):
        """SIGKILL to the whole process group, then waits for the exit."""
        self.kill_now()
        await asyncio.wait_for(self.proc.wait(), 10.0)
        log(f"[{self.name}] killed (SIGKILL)")

    def kill_now(self):
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def dump(self, out=sys.stdout):
        for label, path in (("stdout", self.stdout_path), ("stderr", self.stderr_path)):
            try:
                with open(path, "r", encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except OSError:
                text = "(none)\n"
            lines = text.splitlines()
            if len(lines) > 400:
                lines = ["… (first %d lines omitted)" % (len(lines) - 400)] + lines[-400:]
            out.write(f"----- {self.name} {label} ({path}) -----\n")
            out.write("\n".join(lines) + ("\n" if lines else ""))
        status = None if self.proc is None else self.proc.returncode
        out.write(f"----- {self.name}: exit status {status} -----\n")


def _strip_scheme(addr):
    return addr.split("://", 1)[1] if "://" in addr else addr


class Register(Proc):
    addr: str


class Gateway(Proc):
    """A gwx-gateway with its bound listener URLs (`urls[scheme]`, list) and internal address."""

    urls: dict[str, list[str]]
    internal: str

    def url(self, scheme, index=0):
        check(scheme in self.urls and len(self.urls[scheme]) > index,
              f"{self.name}: no {scheme} listener among {self.urls}")
        return self.urls[scheme][index]

    def host_port(self, scheme, index=0):
        rest = _strip_scheme(self.url(scheme, index))
        hostport = rest.split("/", 1)[0].split("?", 1)[0]
        host, port = hostport.rsplit(":", 1)
        return host.strip("[]"), int(port)


class Worker(Proc):
    def linked_pattern(self, gateway_internal):
        return rf"^linked\s+(?:\w+://)?{re.escape(_strip_scheme(gateway_internal))}\s*$"

    def unlinked_pattern(self, gateway_internal):
        return rf"^unlinked\s+(?:\w+://)?{re.escape(_strip_scheme(gateway_internal))}\s*$"


class Pki:
    """A throw-away certificate authority in `directory`, made with the `openssl` command.

    `issue(name)` makes a key and a certificate signed by this CA for 127.0.0.1, ::1 and
    localhost, good for TLS servers and clients alike; returns (cert_path, key_path)."""

    def __init__(self, directory, name="gwx-e2e-ca"):
        self.dir = directory
        self.name = name
        os.makedirs(directory, exist_ok=True)
        self.cert = os.path.join(directory, f"{name}.pem")
        self.key = os.path.join(directory, f"{name}.key")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2",
                      "-subj", f"/CN={name}")

    def _openssl(self, *args):
        r = subprocess.run(["openssl", *args], capture_output=True, text=True)
        check(r.returncode == 0, f"openssl {' '.join(args)} failed: {r.stderr.strip()}")

    def issue(self, name):
        base = os.path.join(self.dir, f"{self.name}-{name}")
        ext = base + ".ext"
        with open(ext, "w", encoding="utf-8") as f:
            f.write("subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                      "-keyout", base + ".key", "-out", base + ".csr", "-subj", f"/CN={name}")
        self._openssl("x509", "-req", "-in", base + ".csr", "-CA", self.cert, "-CAkey", self.key,
                      "-CAcreateserial", "-out", base + ".pem", "-days", "2", "-extfile", ext)
        return base + ".pem", base + ".key"


class InternalTls:
    """TLS on every internal hop of a cluster: the register's gRPC (client certificates required)
    and the gateway<->worker links, all from one throw-away CA."""

    def __init__(self, directory):
        self.pki = Pki(directory)
        self.register_cert, self.register_key = self.pki.issue("register")
        self.node_cert, self.node_key = self.pki.issue("node")

    def register_server_args(self):
        return ["--tls-cert", self.register_cert, "--tls-key", self.register_key,
                "--tls-client-ca", self.pki.cert]

    def client_args(self):
        """What a gateway, worker or gwxctl needs: register client TLS and link TLS."""
        return ["--register-tls-ca", self.pki.cert, "--register-tls-cert", self.node_cert,
                "--register-tls-key", self.node_key, "--link-tls-cert", self.node_cert,
                "--link-tls-key", self.node_key, "--link-tls-ca", self.pki.cert]


DEFAULT_LISTENERS = (
    "ws://127.0.0.1:0/",
    "tcp+line://127.0.0.1:0",
    "tcp+frame://127.0.0.1:0",
    "tcp+raw://127.0.0.1:0",
)


class Cluster:
    """Starts registers, gateways and workers; every address comes from port 0."""

    def __init__(self, harness: "Harness", secret="e2e-secret", internal_tls=None):
        self.h = harness
        self.secret = secret
        # InternalTls, or None: plain links and plaintext gRPC.
        self.internal_tls = internal_tls
        self.procs: list[Proc] = []
        self._n = {}

    def tls_args(self):
        """The internal-TLS options of a gateway, worker or gwxctl of this cluster ([] without)."""
        return self.internal_tls.client_args() if self.internal_tls else []

    def _name(self, kind, name):
        if name:
            return name
        self._n[kind] = self._n.get(kind, 0) + 1
        return f"{kind}{self._n[kind]}"

    def binary(self, name):
        path = os.path.join(self.h.bin_dir, name)
        check(os.access(path, os.X_OK), f"binary {path} not found or not executable "
                                        f"(build it first: cmake --build <dir>)")
        return path

    async def _spawn(self, cls, name, argv, launcher=()):
        """`launcher`: words put before argv (e.g. `ip netns exec NS` to run it on another host)."""
        argv = list(launcher) + list(argv)
        used = {q.name for q in self.procs}
        if name in used:
            n = 2
            while f"{name}-{n}" in used:
                n += 1
            name = f"{name}-{n}"
        p = cls(self.h, name, argv)
        self.procs.append(p)
        await p.start()
        return p

    async def spawn(self, name, argv, launcher=()):
        """Starts any other process (HTTP server, browser, gwxctl…) under the same supervision."""
        return await self._spawn(Proc, name, argv, launcher)

    async def run(self, name, argv, timeout=REPLY_TIMEOUT, launcher=()):
        """Runs a short-lived command to completion; returns (exit status, stdout, stderr)."""
        p = await self._spawn(Proc, name, argv, launcher)
        try:
            status = await asyncio.wait_for(p.proc.wait(), timeout)
        except asyncio.TimeoutError:
            p.kill_now()
            raise TestFailure(f"{name}: {' '.join(argv)} did not finish within "
                              f"{timeout:.1f}s") from None
        await asyncio.wait_for(p._reader, 5.0)
        return status, "\n".join(p.lines), self.stderr_of(p)

    def stderr_of(self, proc):
        with open(proc.stderr_path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    async def sighup_and_wait(self, proc, pattern, what):
        """Sends SIGHUP to `proc` (a certificate reload); waits for one more stderr line
        containing `pattern`, checks it is exactly one, and returns it."""
        before = self.stderr_of(proc).count(pattern)
        proc.send_signal(signal.SIGHUP)
        await poll_until(lambda: asyncio.sleep(0, self.stderr_of(proc).count(pattern)),
                         lambda n: n > before, REPLY_TIMEOUT, what)
        lines = [ln for ln in self.stderr_of(proc).splitlines() if pattern in ln]
        check_eq(len(lines), before + 1, f"{what}: lines containing {pattern!r}")
        return lines[-1]

    async def start_register(self, name=None, token=None, listen="127.0.0.1:0", launcher=(),
                             extra=()):
        argv = [self.binary("gwx-register"), "--listen", listen]
        if token:
            argv += ["--token", token]
        if self.internal_tls:
            argv += self.internal_tls.register_server_args()
        argv += list(extra)
        p = await self._spawn(Register, self._name("register", name), argv, launcher)
        m, _ = await p.wait_line(r"^listening grpc://(\S+)\s*$")
        p.addr = m.group(1)
        log(f"[{p.name}] listening on {p.addr}")
        return p

    async def start_gateway(self, registers, name=None, listeners=DEFAULT_LISTENERS,
                            internal="127.0.0.1:0", threads=2, lease_ttl_ms=None, extra=(),
                            launcher=()):
        argv = [self.binary("gwx-gateway"), "--register", ",".join(registers),
                "--secret", self.secret, "--internal", internal, "--threads", str(threads)]
        for url in listeners:
            argv += ["--listen", url]
        if lease_ttl_ms is not None:
            argv += ["--lease-ttl-ms", str(lease_ttl_ms)]
        argv += self.tls_args() + list(self.h.args.gateway_arg) + list(extra)
        p = await self._spawn(Gateway, self._name("gateway", name), argv, launcher)
        m, idx = await p.wait_line(r"^listening internal://(\S+)\s*$")
        p.internal = m.group(1)
        p.urls = {}
        for line in p.lines[:idx]:
            lm = re.match(r"^listening (([\w+]+)://\S+)\s*$", line)
            if lm:
                p.urls.setdefault(lm.group(2), []).append(lm.group(1))
        count = sum(len(v) for v in p.urls.values())
        check(count == len(listeners),
              f"{p.name}: {len(listeners)} listeners asked for, {count} 'listening' lines "
              f"before the internal one: {p.lines[:idx + 1]!r}")
        for scheme, urls in p.urls.items():
            for u in urls:
                check(not re.search(r":0(/|$|\?)", _strip_scheme(u)),
                      f"{p.name}: printed URL {u!r} still has port 0 (must print the bound port)")
        log(f"[{p.name}] internal {p.internal}, listeners {p.urls}")
        return p

    async def start_worker(self, registers, app, name=None, threads=None, extra=(), secret=None,
                           launcher=()):
        """`threads`: None runs the binary's default (handlers on the network thread)."""
        name = self._name("worker", name)
        argv = [self.binary("gwx-worker"), "--register", ",".join(registers),
                "--secret", secret or self.secret, "--app", app, "--name", name]
        if threads is not None:
            argv += ["--threads", str(threads)]
        argv += self.tls_args() + list(extra)
        return await self._spawn(Worker, name, argv, launcher)

    async def wait_linked(self, workers, gateways, timeout=START_TIMEOUT, start=None):
        """Waits until every worker printed `linked <internal>` for every gateway.

        `start`: optional {worker: stdout line index} to only count lines printed after it."""
        async def one(w, g):
            await w.wait_line(w.linked_pattern(g.internal), timeout,
                              start=(start or {}).get(w, 0))
        await asyncio.gather(*(one(w, g) for w in workers for g in gateways))
        log(f"linked: {[w.name for w in workers]} x {[g.name for g in gateways]}")

    def kill_all(self):
        for p in self.procs:
            p.kill_now()

    async def kill_all_and_reap(self):
        """Kills every process group and waits for the exits while the event loop still runs."""
        self.kill_all()
        for p in self.procs:
            if p.proc is not None:
                try:
                    await asyncio.wait_for(p.proc.wait(), 10)
                except asyncio.TimeoutError:
                    pass
            if p._reader is not None:
                try:
                    await asyncio.wait_for(p._reader, 5)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    pass


# --------------------------------------------------------------------------------------------
# Clients


class ClientClosed(TestFailure):
    """The connection was closed while the test expected a message."""


class Client:
    """Common interface of every client kind: send(text), recv(timeout) -> text, expect_closed."""

    kind = "?"
    id: str | None = None

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<{self.kind} client {self.name}>"

    async def cmd(self, text, timeout=REPLY_TIMEOUT):
        """Sends one command and returns the next message received."""
        await self.send(text)
        return await self.recv(timeout)

    async def recv_n(self, n, timeout=REPLY_TIMEOUT):
        return [await self.recv(timeout) for _ in range(n)]


class WsClient(Client):
    kind = "ws"

    @classmethod
    async def connect(cls, url, name, **kwargs):
        self = cls(name)
        try:
            self.ws = await asyncio.wait_for(
                websockets.connect(url, ping_interval=None, max_size=None, close_timeout=2,
                                   open_timeout=REPLY_TIMEOUT, **kwargs),
                REPLY_TIMEOUT + 1)
        except Exception as e:  # noqa: BLE001
            raise TestFailure(f"{name}: WebSocket connect to {url} failed: {e!r}") from None
        return self

    async def send(self, text):
        await self.ws.send(text)

    async def recv(self, timeout=REPLY_TIMEOUT):
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: no message within {timeout:.1f}s") from None
        except websockets.exceptions.ConnectionClosed as e:
            raise ClientClosed(f"{self.name}: connection closed while waiting for a message "
                               f"(code {e.code}, reason {e.reason!r})") from None
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        return msg

    async def expect_closed(self, timeout=REPLY_TIMEOUT):
        """Waits for the server to close; fails if a message arrives first. Returns the close code."""
        try:
            msg = await asyncio.wait_for(self.ws.recv(), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: not closed within {timeout:.1f}s") from None
        except websockets.exceptions.ConnectionClosed as e:
            return e.code
        raise TestFailure(f"{self.name}: expected the close, got message {msg!r}")

    async def close(self):
        await self.ws.close()


class _StreamClient(Client):
    @classmethod
    async def connect(cls, host, port, name, ssl=None, server_hostname=None):
        """`ssl`: an ssl.SSLContext for the tls+… listeners (TLS handshake before the first byte)."""
        self = cls(name)
        try:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=ssl, server_hostname=server_hostname),
                REPLY_TIMEOUT)
        except Exception as e:  # noqa: BLE001
            raise TestFailure(f"{name}: TCP connect to {host}:{port} failed: {e!r}") from None
        return self

    async def send(self, text):
        self.writer.write(self.encode(text.encode("utf-8")))
        await self.writer.drain()

    async def recv(self, timeout=REPLY_TIMEOUT):
        try:
            data = await asyncio.wait_for(self.read_message(), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: no message within {timeout:.1f}s") from None
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            raise ClientClosed(f"{self.name}: connection closed while waiting for a message "
                               f"({e!r})") from None
        if data is None:
            raise ClientClosed(f"{self.name}: connection closed (EOF) while waiting for a message")
        return data.decode("utf-8", "replace")

    async def expect_closed(self, timeout=REPLY_TIMEOUT):
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except asyncio.TimeoutError:
            raise TestFailure(f"{self.name}: not closed within {timeout:.1f}s") from None
        except ConnectionError:
            return None
        if data:
            raise TestFailure(f"{self.name}: expected the close (EOF), got bytes {data!r}")
        return None

    async def close(self):
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 5)
        except Exception:  # noqa: BLE001 - the peer may have reset already
            pass


class LineClient(_StreamClient):
    kind = "tcp+line"

    def encode(self, payload):
        return payload + b"\n"

    async def read_message(self):
        line = await self.reader.readline()
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise asyncio.IncompleteReadError(line, None)
        return line[:-1].rstrip(b"\r")


class FrameClient(_StreamClient):
    kind = "tcp+frame"

    def encode(self, payload):
        return struct.pack(">I", len(payload)) + payload

    async def read_message(self):
        try:
            head = await self.reader.readexactly(4)
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                return None
            raise
        (n,) = struct.unpack(">I", head)
        return await self.reader.readexactly(n)


class RawClient(_StreamClient):
    """tcp+raw: each read is a message. Use it where exactly one message is in flight to it."""

    kind = "tcp+raw"

    def encode(self, payload):
        return payload

    async def read_message(self):
        data = await self.reader.read(65536)
        return data or None


async def connect(gateway: Gateway, scheme: str, name: str, index=0, ssl=None) -> Client:
    """Connects a client of the listener's kind to `gateway`'s `scheme` listener; the TLS ones
    (wss, tls+…) need `ssl`, an ssl.SSLContext (the name checked is "localhost")."""
    if scheme in ("ws", "wss"):
        return await WsClient.connect(gateway.url(scheme, index), name,
                                      **({"ssl": ssl, "server_hostname": "localhost"} if ssl else {}))
    host, port = gateway.host_port(scheme, index)
    cls = {"tcp+line": LineClient, "tcp+frame": FrameClient, "tcp+raw": RawClient,
           "tls+line": LineClient, "tls+frame": FrameClient, "tls+raw": RawClient}[scheme]
    if scheme.startswith("tls+"):
        return await cls.connect(host, port, name, ssl=ssl, server_hostname="localhost")
    return await cls.connect(host, port, name)


# --------------------------------------------------------------------------------------------
# commands-app helpers

ID_RX = re.compile(r"^id ([0-9a-f]+)$")


async def fetch_id(client: Client):
    reply = await client.cmd("id")
    m = ID_RX.match(reply)
    check(m, f"{client.name}: 'id' -> expected 'id <lowercase hex>', got {reply!r}")
    client.id = m.group(1)
    return client.id


async def read_until_closed(reader, timeout=REPLY_TIMEOUT):
    """Reads a raw connection until the peer closes it. Returns (everything read, how it ended):
    "eof" (closed cleanly), "reset" (a connection error) or "open" (nothing came for `timeout` s)."""
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                return data, "eof"
            data += chunk
    except ConnectionError:
        return data, "reset"
    except asyncio.TimeoutError:
        return data, "open"


async def expect_reply(client: Client, command, expected, timeout=REPLY_TIMEOUT):
    reply = await client.cmd(command, timeout)
    check_eq(reply, expected, f"{client.name}: {command!r}")
    return reply


async def expect_list(client: Client, command, head, expected_items):
    """Checks a reply of the form `<head> <item…>` whose items must equal `expected_items` in order."""
    reply = await client.cmd(command)
    parts = reply.split()
    check(parts[:1] == [head], f"{client.name}: {command!r} -> expected '{head} …', got {reply!r}")
    check_eq(parts[1:], list(expected_items), f"{client.name}: {command!r} items")
    return parts[1:]


async def query_int(client: Client, command, head):
    reply = await client.cmd(command)
    m = re.match(rf"^{re.escape(head)} (\d+)$", reply)
    check(m, f"{client.name}: {command!r} -> expected '{head} <n>', got {reply!r}")
    return int(m.group(1))


_sentinel_seq = 0


async def assert_quiet(clients, what):
    """Each client gets nothing unexpected: `echo <sentinel>` must come back as its next message."""
    global _sentinel_seq
    _sentinel_seq += 1
    token = f"sentinel-{_sentinel_seq}"

    async def one(c):
        reply = await c.cmd(f"echo {token}", SENTINEL_TIMEOUT + REPLY_TIMEOUT)
        check(reply == token,
              f"{what}: {c.name} ({c.kind}) should have received nothing, but its next message "
              f"was {reply!r} instead of the sentinel {token!r}")

    await asyncio.gather(*(one(c) for c in clients))


async def push_and_check(sender: Client, command, text, recipients, everyone, what, quiet=False):
    """Sends a push command; checks `ok` to the sender, `text` to each recipient, nothing to others.

    The sender may itself be a recipient, in which case it gets `ok` and `text` in either order."""
    recipients = list(recipients)
    # tcp+raw has no message boundaries: "ok" and the push could arrive in one read.
    check(not (sender.kind == "tcp+raw" and sender in recipients),
          f"{what}: test error: a tcp+raw sender cannot also be a recipient")
    await sender.send(command)
    if sender in recipients:
        got = sorted(await sender.recv_n(2))
        check_eq(got, sorted(["ok", text]), f"{what}: {sender.name} (sender and recipient)")
    else:
        check_eq(await sender.recv(), "ok", f"{what}: {sender.name} reply to {command!r}")

    async def receive(c):
        got = await c.recv()
        check_eq(got, text, f"{what}: push to {c.name} ({c.kind})")

    await asyncio.gather(*(receive(c) for c in recipients if c is not sender))
    others = [c for c in everyone if c not in recipients]
    await assert_quiet(others, what)
    if not quiet:
        log(f"{what}: {len(recipients)} recipients got it "
            f"({', '.join(c.name for c in recipients)}), {len(others)} non-recipients didn't")
    return len(recipients), len(others)


# --------------------------------------------------------------------------------------------
# Running a test


class Harness:
    def __init__(self, bin_dir, tmp, args):
        self.bin_dir = bin_dir
        self.tmp = tmp
        self.args = args
        internal_tls = None
        if args.internal_tls:
            internal_tls = InternalTls(os.path.join(tmp, "pki"))
            log("internal TLS: register gRPC (client certificates required) and links, "
                f"CA {internal_tls.pki.cert}")
        self.cluster = Cluster(self, internal_tls=internal_tls)


def _parse_args(extra_args):
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("GWX_BIN"),
                    help="directory with gwx-register, gwx-gateway, gwx-worker, gwxctl "
                         "(default: $GWX_BIN)")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("GWX_E2E_TIMEOUT", 150)),
                    help="overall deadline of the test in seconds")
    ap.add_argument("--gateway-arg", action="append", default=[], metavar="ARG",
                    help="an option added to every gateway the test starts (repeatable), e.g. "
                         "--gateway-arg=--io-uring --gateway-arg=off")
    ap.add_argument("--internal-tls", action="store_true",
                    help="run the cluster with TLS on every internal hop (register gRPC with "
                         "client certificates, gateway<->worker links), from a throw-away CA")
    for a in extra_args:
        ap.add_argument(*a[0], **a[1])
    args = ap.parse_args()
    if not args.bin:
        ap.error("--bin DIR (or GWX_BIN) is required")
    return args


def _on_sigterm(signum, frame):
    raise SystemExit(f"terminated by signal {signum}")


def run_test(main, extra_args=()):
    """Runs `async main(harness)` with a deadline; kills everything at the end; exits 0 or 1."""
    args = _parse_args(extra_args)
    bin_dir = os.path.abspath(args.bin)
    tmp = tempfile.mkdtemp(prefix="gwx-e2e-")
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)
    h = Harness(bin_dir, tmp, args)
    ok = False
    started = time.monotonic()
    try:
        async def body():
            try:
                await asyncio.wait_for(main(h), args.timeout)
            except asyncio.TimeoutError as e:
                if time.monotonic() - started < args.timeout:
                    # A wait inside the test timed out, not the test: keep where it was.
                    raise TestFailure(f"a step timed out after "
                                      f"{time.monotonic() - started:.1f}s") from e
                raise TestFailure(f"test did not finish within its {args.timeout:.0f}s "
                                  f"deadline") from None
            finally:
                await h.cluster.kill_all_and_reap()

        asyncio.run(body())
        reported = sanitizer_reports() if SANITIZER else []
        if reported:
            raise TestFailure(f"sanitizer report in the stderr of {', '.join(reported)}")
        ok = True
    except TestFailure as e:
        print(f"\nFAILED: {e}", flush=True)
        traceback.print_exc(file=sys.stdout)
    except BaseException as e:  # noqa: BLE001 - anything else is a failure too
        print(f"\nFAILED with {type(e).__name__}: {e}", flush=True)
        traceback.print_exc(file=sys.stdout)
    finally:
        kill_all_processes()
    elapsed = time.monotonic() - started
    if ok:
        print(f"PASSED in {elapsed:.1f}s", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(0)
    print(f"\n===== process output (kept in {tmp}) =====", flush=True)
    for p in h.cluster.procs:
        p.dump()
    sys.stdout.flush()
    sys.exit(1)
