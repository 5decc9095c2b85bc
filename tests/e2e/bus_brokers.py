"""Private Redis and RabbitMQ servers for the push bus tests: each on its own loopback ports,
with its own data folder under the test's temporary directory, started and stopped by the test
(never a system instance). Processes run under the harness's supervision (Cluster.spawn), so
they are killed with everything else however the test ends.

RabbitMQ: a node of its own (RABBITMQ_NODENAME gwx-e2e-<pid>@localhost) with its own AMQP and
distribution ports, Mnesia and log folders, an empty plugins file and its own Erlang cookie
(HOME in the data folder). It runs as the `rabbitmq` user when started as root (it drops
privileges anyway), so its folders are chowned to that user. `rabbitmqctl` talks to it with
`-n NODE` and the same HOME.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket

from gwx_cluster import START_TIMEOUT, TestFailure, check, free_port, log, poll_until


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


async def port_state(port: int) -> bool:
    return port_open(port)


class RedisServer:
    def __init__(self, h, name="redis"):
        self.h = h
        self.name = name
        self.port = free_port()
        self.dir = os.path.join(h.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    async def start(self):
        binary = shutil.which("redis-server")
        check(binary, "redis-server not found (apt-get install redis-server)")
        self.proc = await self.h.cluster.spawn(self.name, [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self.dir, "--daemonize", "no"])
        await self.proc.wait_line(r"Ready to accept connections", START_TIMEOUT)
        log(f"[{self.name}] redis on 127.0.0.1:{self.port}")
        return self

    async def kill(self):
        await self.proc.kill()
        await poll_until(lambda: port_state(self.port), lambda open_: not open_, 10,
                         f"{self.name} port closed")

    def url(self, channel="gwx.push"):
        return f"redis://127.0.0.1:{self.port}/{channel}"


class RabbitServer:
    """One isolated RabbitMQ node; start() waits until it accepts AMQP logins (~6 s)."""

    def __init__(self, h, name="rabbit"):
        self.h = h
        self.name = name
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"gwx-e2e-{os.getpid()}-{name}@localhost"
        self.base = os.path.join(h.tmp, name)
        self.proc = None
        for d in ("mnesia", "log", "home"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        self.plugins = os.path.join(self.base, "enabled_plugins")
        with open(self.plugins, "w") as f:
            f.write("[].\n")
        self.user = None
        if os.getuid() == 0:
            self.user = pwd.getpwnam("rabbitmq")
            for root, dirs, files in os.walk(self.base):
                for p in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.chown(p, self.user.pw_uid, self.user.pw_gid)
            # The temporary directory must be traversable by that user.
            os.chmod(h.tmp, 0o755)

    def env(self):
        return {
            "HOME": os.path.join(self.base, "home"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.base, "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": self.plugins,
            "RABBITMQ_PID_FILE": os.path.join(self.base, "rabbit.pid"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.base, "none"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(self.base, "none-advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": os.path.join(self.base, "none-env.conf"),
        }

    def _argv(self, tool, *args):
        env = [f"{k}={v}" for k, v in self.env().items()]
        cmd = ["/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", *env,
               f"/usr/lib/rabbitmq/bin/{tool}", *args]
        if self.user is not None:
            cmd = ["runuser", "-u", "rabbitmq", "--"] + cmd
        return cmd

    async def start(self):
        check(os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server"),
              "rabbitmq-server not found (apt-get install rabbitmq-server)")
        self.proc = await self.h.cluster.spawn(self.name, self._argv("rabbitmq-server"))
        await poll_until(lambda: port_state(self.port), lambda up: up, 90,
                         f"{self.name}: AMQP port {self.port} open", interval=0.2)
        log(f"[{self.name}] node {self.node} on 127.0.0.1:{self.port}")
        return self

    async def kill(self):
        await self.proc.kill()
        await poll_until(lambda: port_state(self.port), lambda open_: not open_, 20,
                         f"{self.name} port closed")

    async def ctl(self, *args, timeout=60):
        status, out, err = await self.h.cluster.run(
            "rabbitmqctl", self._argv("rabbitmqctl", "-n", self.node, *args), timeout=timeout)
        if status != 0:
            raise TestFailure(f"rabbitmqctl {' '.join(args)}: status {status}: {out} {err}")
        return out

    async def bindings(self, exchange):
        """{routing_key: set(queue names)} of the exchange's bindings to queues."""
        out = await self.ctl("list_bindings", "-q", "--no-table-headers", "source_name",
                             "destination_name", "destination_kind", "routing_key")
        result = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) == 4 and parts[0] == exchange and parts[2] == "queue":
                result.setdefault(parts[3], set()).add(parts[1])
        return result

    def url(self, exchange, mode):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F?exchange={exchange}&mode={mode}"
