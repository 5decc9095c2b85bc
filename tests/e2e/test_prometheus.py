#!/usr/bin/python3
"""Metrics: a real Prometheus server scrapes the binaries of a running cluster.

Cluster: 1 register (--token, --metrics 127.0.0.1:0), 2 gateways with the token
(--lease-ttl-ms 3000), 1 gateway with a wrong token, 1 worker (`echo`). Gateways and workers get
--metrics 127.0.0.1:0 too when their --help offers it; every process that prints
`listening metrics://HOST:PORT` is scraped, and the register must be among them.

1. Each endpoint answers GET /metrics with the text format 0.0.4, and `promtool check metrics`
   finds no problem in it (a deliberately bad exposition shows that promtool does fail). With 40
   idle connections open to it (they never send a byte), a scrape is still answered, well before
   the endpoint's 10 s per-connection deadline would free anything.
2. A Prometheus server on 127.0.0.1 (its own port, storage in the test's temp dir) scrapes every
   endpoint each second; the test waits until /api/v1/targets reports them all up.
3. Through /api/v1/query: gwx_register_leases is 2 (the wrong-token gateway is not counted),
   gwx_register_leases_created_total 2, gwx_register_watchers 1 (the worker),
   gwx_register_rpc_rejected_total{reason="auth_invalid"} at least 1 and {reason="auth_missing"}
   0, process metrics and gwx_build_info present.
   When the gateways serve metrics: 3 WebSocket and 2 tcp+line clients of gateway 1 each echo 5
   messages, then one of each kind closes; gateway 1's connections accepted/open/closed by the
   client, messages and bytes in and out per listener match exactly, gateway 2 saw nothing, and
   (when the worker serves metrics) the worker counted the same connects, messages and closes.
4. SIGKILL gateway 2: gwx_register_lease_expiries_total becomes 1 and leases 1. SIGTERM gateway 1
   (it withdraws): gwx_register_leases_withdrawn_total becomes 1 and leases 0.
Prometheus and the register are stopped with SIGTERM at the end and must exit 0.
"""

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    START_TIMEOUT, Register, TestFailure, check, check_eq, connect, free_port, log, poll_until,
    run_test)

TOKEN = "prometheus-e2e-token"
LEASE_MS = 3000
# Clients of gateway 1 in the gateway part: (listener, count), and messages each one echoes.
CLIENTS = (("ws", 3), ("tcp+line", 2))
MESSAGES_EACH = 5
# Bytes the gateway writes around an echoed payload: a WebSocket frame header (payloads under
# 126 bytes, server frames unmasked), the line feed of tcp+line.
FRAMING = {"ws": 2, "tcp+line": 1}
METRICS_LINE = r"^listening metrics://(\S+)\s*$"
# Generous: Prometheus needs a few scrapes, the machine is small and shared.
PROM_TIMEOUT = 45.0


def http_get(url, timeout=5.0):
    """GET url; returns (status, headers, body text). HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        return None, {}, repr(e)


async def get(url):
    return await asyncio.to_thread(http_get, url)


def promtool_check(text):
    """Runs `promtool check metrics` on text; returns (exit status, combined output)."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace").strip()


def scrape_behind_idle_sockets(addr, count=40):
    """GET /metrics while `count` connections that never send a byte are open to the endpoint."""
    host, port = addr.rsplit(":", 1)
    idle = []
    try:
        for _ in range(count):
            idle.append(socket.create_connection((host.strip("[]"), int(port)), timeout=5))
        return http_get(f"http://{addr}/metrics", timeout=5.0)
    finally:
        for s in idle:
            s.close()


def supports_metrics(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, timeout=30)
    return b"--metrics" in r.stdout + r.stderr


async def start_register(c):
    argv = [c.binary("gwx-register"), "--listen", "127.0.0.1:0", "--token", TOKEN,
            "--metrics", "127.0.0.1:0"]
    p = await c._spawn(Register, "register1", argv)
    m, _ = await p.wait_line(r"^listening grpc://(\S+)\s*$")
    p.addr = m.group(1)
    log(f"[{p.name}] listening on {p.addr}")
    return p


async def metrics_address(proc):
    m, _ = await proc.wait_line(METRICS_LINE, START_TIMEOUT)
    addr = m.group(1)
    check(not addr.endswith(":0"), f"{proc.name}: printed metrics address {addr!r} with port 0")
    return addr


async def check_endpoint(name, addr):
    status, headers, body = await get(f"http://{addr}/metrics")
    check_eq(status, 200, f"{name}: GET /metrics status")
    ctype = headers.get("Content-Type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          f"{name}: Content-Type {ctype!r} is not the text format 0.0.4")
    rc, out = await asyncio.to_thread(promtool_check, body)
    log(f"[{name}] promtool check metrics on {len(body)} bytes: exit {rc}"
        f"{', ' + out if out else ', no problems'}")
    check(rc == 0 and not out, f"{name}: promtool check metrics failed (exit {rc}):\n{out}")
    status, _, _ = await get(f"http://{addr}/nothing")
    check_eq(status, 404, f"{name}: GET /nothing status")
    status, _, idle_body = await asyncio.to_thread(scrape_behind_idle_sockets, addr)
    check_eq(status, 200, f"{name}: GET /metrics behind 40 idle connections ({idle_body[:200]!r})")
    return body


class Prometheus:
    def __init__(self, h, targets):
        self.h = h
        self.targets = targets  # [(role, name, addr)]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def write_config(self):
        lines = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s",
                 "  evaluation_interval: 1s", "scrape_configs:", "  - job_name: gwx",
                 "    static_configs:"]
        for role, name, addr in self.targets:
            lines += [f"      - targets: ['{addr}']",
                      f"        labels: {{role: '{role}', proc: '{name}'}}"]
        path = os.path.join(self.h.tmp, "prometheus.yml")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path

    async def start(self):
        config = self.write_config()
        check_config = await asyncio.to_thread(
            subprocess.run, ["promtool", "check", "config", config], capture_output=True,
            timeout=30)
        check_eq(check_config.returncode, 0,
                 f"promtool check config: {check_config.stdout + check_config.stderr!r}")
        data = os.path.join(self.h.tmp, "prometheus-data")
        self.proc = await self.h.cluster.spawn("prometheus", [
            shutil.which("prometheus"), f"--config.file={config}",
            f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info"])

        async def ready():
            if not self.proc.running():
                raise TestFailure(f"prometheus exited with status {self.proc.proc.returncode}")
            status, _, _ = await get(f"{self.base}/-/ready")
            return status

        await poll_until(ready, lambda s: s == 200, PROM_TIMEOUT, "prometheus /-/ready",
                         interval=0.2)
        log(f"[prometheus] ready on {self.base}")

    async def api(self, path, **params):
        url = f"{self.base}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        status, _, body = await get(url)
        check_eq(status, 200, f"prometheus {url}: status (body {body[:300]!r})")
        reply = json.loads(body)
        check_eq(reply.get("status"), "success", f"prometheus {url}: status field")
        return reply["data"]

    async def wait_targets_up(self):
        async def probe():
            data = await self.api("targets", state="active")
            return {t["scrapeUrl"]: (t["health"], t.get("lastError", ""))
                    for t in data["activeTargets"]}

        want = {f"http://{addr}/metrics" for _, _, addr in self.targets}
        seen = await poll_until(
            probe, lambda t: set(t) == want and all(h == "up" for h, _ in t.values()),
            PROM_TIMEOUT, "every target up in /api/v1/targets", interval=0.5)
        log(f"[prometheus] targets up: {sorted(seen)}")

    async def query(self, expr):
        """Instant query; returns {frozenset(labels without __name__): float value}."""
        data = await self.api("query", query=expr)
        check_eq(data["resultType"], "vector", f"query {expr!r}: result type")
        out = {}
        for item in data["result"]:
            labels = frozenset((k, v) for k, v in item["metric"].items() if k != "__name__")
            out[labels] = float(item["value"][1])
        return out

    async def wait_values(self, expectations):
        """wait_value for each (expr, expected) of a list."""
        for expr, expected in expectations:
            await self.wait_value(expr, expected)

    async def scalar(self, expr):
        """The value of a query that must give exactly one series (None while it gives none)."""
        result = await self.query(expr)
        check(len(result) <= 1, f"query {expr!r}: expected one series, got {result!r}")
        return next(iter(result.values())) if result else None

    async def wait_value(self, expr, expected):
        """Polls until the query gives exactly `expected` (Prometheus sees changes a scrape late)."""
        value = await poll_until(lambda: self.scalar(expr), lambda v: v == expected,
                                 PROM_TIMEOUT, f"query {expr!r} == {expected}", interval=0.5)
        log(f"[prometheus] {expr} = {value:g}")
        return value


async def check_client_traffic(prom, g1, g2, worker_metrics):
    """Clients of g1 echo messages; the gateway's (and worker's) counters must say exactly that."""
    clients = []
    for scheme, count in CLIENTS:
        for i in range(count):
            clients.append((scheme, await connect(g1, scheme, f"{scheme}-{i}")))
    sent = {scheme: [] for scheme, _ in CLIENTS}
    for n in range(MESSAGES_EACH):
        for scheme, client in clients:
            text = f"hello {client.name} #{n}"
            check_eq(await client.cmd(text), text, f"{client.name}: echo")
            sent[scheme].append(text)
    closing = [next(cl for sc, cl in clients if sc == scheme) for scheme, _ in CLIENTS]
    for client in closing:
        await client.close()
    log(f"gateway1: {len(clients)} clients echoed {MESSAGES_EACH} messages each, "
        f"{len(closing)} closed")

    def url(scheme):
        return g1.url(scheme)

    def on(metric, scheme, **labels):
        extra = "".join(f',{k}="{v}"' for k, v in labels.items())
        return f'{metric}{{proc="gateway1",listener="{url(scheme)}"{extra}}}'

    expectations = []
    for scheme, count in CLIENTS:
        payload = sum(len(t.encode()) for t in sent[scheme])
        expectations += [
            (on("gwx_gateway_connections_accepted_total", scheme), count),
            (on("gwx_gateway_connections", scheme), count - 1),
            (on("gwx_gateway_connections_closed_total", scheme, reason="client"), 1),
            (on("gwx_gateway_messages_total", scheme, direction="in"), count * MESSAGES_EACH),
            (on("gwx_gateway_messages_total", scheme, direction="out"), count * MESSAGES_EACH),
            (on("gwx_gateway_message_bytes_total", scheme, direction="in"), payload),
            (on("gwx_gateway_message_bytes_total", scheme, direction="out"),
             payload + FRAMING[scheme] * len(sent[scheme])),
        ]
    total = sum(count for _, count in CLIENTS)
    expectations += [
        ('sum(gwx_gateway_connections_accepted_total{proc="gateway2"})', 0),
        ('sum(gwx_gateway_messages_total{proc="gateway2"})', 0),
    ]
    if worker_metrics:
        expectations += [
            ('gwx_worker_events_total{kind="connect"}', total),
            ('gwx_worker_events_total{kind="message"}', total * MESSAGES_EACH),
            ('gwx_worker_events_total{kind="close"}', len(closing)),
        ]
    await prom.wait_values(expectations)
    for scheme, client in clients:
        if client not in closing:
            await client.close()


async def main(h):
    c = h.cluster
    check(shutil.which("prometheus") and shutil.which("promtool"),
          "prometheus and promtool must be installed (Debian: apt-get install prometheus)")

    # promtool must be able to fail, or its silence proves nothing.
    rc, out = await asyncio.to_thread(promtool_check, "# TYPE requests counter\nrequests 1\n")
    check(rc != 0 and out, f"promtool accepted a counter without _total and HELP (exit {rc})")
    log(f"promtool rejects a bad exposition as expected: {out.splitlines()[0]}")

    gateway_metrics = await asyncio.to_thread(supports_metrics, c.binary("gwx-gateway"))
    worker_metrics = await asyncio.to_thread(supports_metrics, c.binary("gwx-worker"))
    log(f"--metrics offered by: gwx-register yes, gwx-gateway {'yes' if gateway_metrics else 'no'}"
        f", gwx-worker {'yes' if worker_metrics else 'no'}")

    reg = await start_register(c)
    reg_metrics = await metrics_address(reg)
    regs = [reg.addr]
    gw_extra = ["--token", TOKEN] + (["--metrics", "127.0.0.1:0"] if gateway_metrics else [])
    g1 = await c.start_gateway(regs, name="gateway1", lease_ttl_ms=LEASE_MS, extra=gw_extra)
    g2 = await c.start_gateway(regs, name="gateway2", lease_ttl_ms=LEASE_MS, extra=gw_extra)
    await c.start_gateway(regs, name="gateway-wrong-token", lease_ttl_ms=LEASE_MS,
                                extra=["--token", "not-the-token"])
    wk_extra = ["--token", TOKEN] + (["--metrics", "127.0.0.1:0"] if worker_metrics else [])
    w1 = await c.start_worker(regs, "echo", name="worker1", extra=wk_extra)
    await c.wait_linked([w1], [g1, g2])

    # Every process that announced a metrics endpoint is scraped; the register must be one.
    targets = [("register", reg.name, reg_metrics)]
    for proc, role, offered in ((g1, "gateway", gateway_metrics), (g2, "gateway", gateway_metrics),
                                (w1, "worker", worker_metrics)):
        if offered:
            targets.append((role, proc.name, await metrics_address(proc)))
        check(offered or not proc.has_line(METRICS_LINE),
              f"{proc.name} printed a metrics line without being asked to")
    log(f"metrics endpoints: {targets}")

    # --- 1. the endpoints themselves ---------------------------------------------------------
    for role, name, addr in targets:
        body = await check_endpoint(name, addr)
        if role == "register":
            for family in ("gwx_register_leases", "gwx_register_watchers",
                           "gwx_register_heartbeats_total", "gwx_register_rpc_rejected_total",
                           "gwx_register_lease_expiries_total", "process_cpu_seconds_total",
                           "process_resident_memory_bytes", "process_open_fds",
                           "process_start_time_seconds", "gwx_build_info"):
                check(re.search(rf"^# TYPE {family} ", body, re.M),
                      f"{name}: no {family} in /metrics")

    # --- 2. a real Prometheus scrapes them all -------------------------------------------------
    prom = Prometheus(h, targets)
    await prom.start()
    await prom.wait_targets_up()
    up = await prom.query("up")
    check_eq(len(up), len(targets), "number of `up` series")
    check(all(v == 1 for v in up.values()), f"up: {up!r}")

    # --- 3. values match the cluster -----------------------------------------------------------
    await prom.wait_value("gwx_register_leases", 2)
    await prom.wait_value("gwx_register_leases_created_total", 2)
    await prom.wait_value("gwx_register_watchers", 1)
    await prom.wait_value('gwx_register_rpc_rejected_total{reason="auth_missing"}', 0)
    rejected = await poll_until(
        lambda: prom.scalar('gwx_register_rpc_rejected_total{reason="auth_invalid"}'),
        lambda v: v is not None and v >= 1, PROM_TIMEOUT,
        "rejections of the wrong-token gateway counted")
    log(f"[prometheus] rejected auth_invalid = {rejected:g}")
    heartbeats = await prom.scalar("gwx_register_heartbeats_total")
    check(heartbeats is not None and heartbeats >= 2, f"heartbeats_total {heartbeats!r} < 2")
    await prom.wait_value('gwx_build_info{role="register"}', 1)
    rss = await prom.scalar('process_resident_memory_bytes{role="register"}')
    check(rss is not None and rss > 1e6, f"register RSS {rss!r}")
    fds = await prom.scalar('process_open_fds{role="register"}')
    check(fds is not None and fds >= 3, f"register open fds {fds!r}")
    started = await prom.scalar('process_start_time_seconds{role="register"}')
    check(started is not None and started > 1e9, f"register start time {started!r}")

    if gateway_metrics:
        await check_client_traffic(prom, g1, g2, worker_metrics)

    # --- 4. counters follow what the test does -------------------------------------------------
    await g2.kill()
    await prom.wait_value("gwx_register_lease_expiries_total", 1)
    await prom.wait_value("gwx_register_leases", 1)
    await g1.stop(timeout=20.0)  # a clean stop withdraws the lease
    await prom.wait_value("gwx_register_leases_withdrawn_total", 1)
    await prom.wait_value("gwx_register_leases", 0)
    await prom.wait_value("gwx_register_lease_expiries_total", 1)

    check_eq(await prom.proc.stop(), 0, "prometheus exit status after SIGTERM")
    check_eq(await reg.stop(), 0, "register exit status after SIGTERM")


if __name__ == "__main__":
    run_test(main)
