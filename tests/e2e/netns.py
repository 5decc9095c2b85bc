"""Hosts on a private network for the e2e tests: each gwx process in its own network namespace.

A `Fabric` is a small data centre built from Linux network namespaces (`ip netns`, iproute2):
one "switch" namespace holds a bridge per network, and every host is a namespace of its own with
one veth pair per network it is on (the host end named after the network, the switch end a port
of that network's bridge). Addresses come from the benchmarking range 198.18.0.0/15 and nothing
else:

| network | subnet          | who is on it                                          |
|---------|-----------------|-------------------------------------------------------|
| `data`  | 198.18.0.0/24   | gateways' internal listeners, workers, the test host  |
| `pub`   | 198.18.1.0/24   | gateways' client listeners, the test host (clients)   |
| `ctl`   | 198.18.2.0/24   | registers, gateways, workers, the test host (gwxctl)  |

so a gateway advertises a real non-loopback address, workers link across hosts, and a fault is a
real network fault: `cut(host, net)` sets the switch end of that host's veth down with
`ip link set DEV down` — the host's packets vanish, nobody gets a reset — and `heal` sets it up
again. Cutting a gateway's `data` port partitions it from the workers but not from its clients
(`pub`) nor the registers (`ctl`); cutting a register's `ctl` port partitions the register away.

Nothing is created in the caller's own namespace: the bridges live in the switch namespace, so
parallel runs (each names its namespaces `gwxe2e-<pid>-…`) never collide, and removing the
namespaces removes every bridge and veth with them. The test process itself moves into the
`ops` host (on every network) before its event loop starts: its clients and the `gwxctl` it runs
reach the cluster like an operator's machine would. Namespaces left behind by a run that was
killed with SIGKILL are removed by the next run (their pid is gone).

`run_netns_test(main)` is `gwx_cluster.run_test` with the fabric: it skips (exit 77, a clear
line on stdout) only where namespaces cannot be created — not root, no CAP_NET_ADMIN, no `ip` —
and removes the namespaces however the test ends.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys

from gwx_cluster import kill_all_processes, log, run_test

# ctest's SKIP_RETURN_CODE for these tests (tests/e2e/CMakeLists.txt).
SKIP_CODE = 77
PREFIX = "gwxe2e"
NETWORKS = {"data": 0, "pub": 1, "ctl": 2}  # third octet of 198.18.<n>.0/24
_CLONE_NEWNET = 0x40000000


class NetnsError(RuntimeError):
    """An `ip` command failed: the message has the command and its stderr."""


def ip(*args, check=True):
    """Runs `ip ARGS…`; returns stdout. Raises NetnsError when it fails and `check` is set."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def unavailable_reason():
    """Why network namespaces cannot be made here, or None when they can."""
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "not running as root (creating network namespaces needs CAP_NET_ADMIN)"
    probe = f"{PREFIX}-{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.SubprocessError) as e:
        return f"cannot create a network namespace: {e}"
    try:
        ip("-n", probe, "link", "add", "probe0", "type", "bridge")
        ip("-n", probe, "link", "add", "probe1", "type", "veth", "peer", "name", "probe2")
    except NetnsError as e:
        return f"cannot create a bridge and a veth pair in a network namespace: {e}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale():
    """Deletes the namespaces of earlier runs whose process is gone (killed before cleaning up)."""
    rx = re.compile(rf"^({PREFIX}-(\d+)-\S+)")
    for line in ip("netns", "list", check=False).splitlines():
        m = rx.match(line.strip())
        if m and int(m.group(2)) != os.getpid() and not _alive(int(m.group(2))):
            ip("netns", "del", m.group(1), check=False)


class Host:
    """One namespace: its name, its address on each network and its ports on the switch."""

    def __init__(self, name, ns, index):
        self.name = name
        self.ns = ns
        self.index = index
        self.addr: dict[str, str] = {}
        self.ports: dict[str, str] = {}

    @property
    def launcher(self):
        """Words that run a command on this host (`Cluster.start_*(launcher=…)`)."""
        return ["ip", "netns", "exec", self.ns]

    def __repr__(self):
        return f"<host {self.name} {self.addr}>"


class Fabric:
    """The switch and the hosts of one test run; see the module docstring."""

    def __init__(self):
        self.run_id = f"{PREFIX}-{os.getpid()}"
        self.switch = f"{self.run_id}-sw"
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self._ports = 0
        self._libc = ctypes.CDLL(None, use_errno=True)

    def _add_ns(self, ns):
        ip("netns", "add", ns)
        self._namespaces.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")

    def create(self):
        self._add_ns(self.switch)
        for net in NETWORKS:
            ip("-n", self.switch, "link", "add", f"br-{net}", "type", "bridge")
            ip("-n", self.switch, "link", "set", f"br-{net}", "up")

    def add_host(self, name, networks):
        """A new host on `networks`; its address on each is 198.18.<net>.<10 + host number>."""
        index = len(self.hosts) + 1
        check_name = re.fullmatch(r"[a-z][a-z0-9]{0,9}", name)
        if not check_name or name in self.hosts:
            raise ValueError(f"bad or duplicate host name {name!r}")
        host = Host(name, f"{self.run_id}-{name}", index)
        self._add_ns(host.ns)
        for net in networks:
            self._ports += 1
            port = f"p{self._ports}{net[0]}"
            # Both ends are born in their namespaces: nothing ever appears in the caller's.
            ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", net,
               "netns", host.ns)
            ip("-n", self.switch, "link", "set", port, "master", f"br-{net}")
            ip("-n", self.switch, "link", "set", port, "up")
            addr = f"198.18.{NETWORKS[net]}.{10 + index}"
            ip("-n", host.ns, "addr", "add", f"{addr}/24", "dev", net)
            ip("-n", host.ns, "link", "set", net, "up")
            host.addr[net] = addr
            host.ports[net] = port
        self.hosts[name] = host
        return host

    def cut(self, host, *networks):
        """Pulls the host's cable on each network: its switch port goes down, packets vanish."""
        for net in networks:
            ip("-n", self.switch, "link", "set", host.ports[net], "down")
        log(f"[net] cut {host.name} from {', '.join(networks)} "
            f"(ip link set {', '.join(host.ports[n] for n in networks)} down)")

    def heal(self, host, *networks):
        for net in networks:
            ip("-n", self.switch, "link", "set", host.ports[net], "up")
        log(f"[net] healed {host.name} on {', '.join(networks)}")

    def enter(self, host):
        """Moves this process (its calling thread, and threads it starts later) onto `host`."""
        fd = os.open(f"/run/netns/{host.ns}", os.O_RDONLY)
        try:
            if self._libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetnsError(f"setns({host.ns}): {os.strerror(err)}")
        finally:
            os.close(fd)

    def destroy(self):
        """Deletes every namespace of the run (their bridges and veths go with them)."""
        for ns in reversed(self._namespaces):
            ip("netns", "del", ns, check=False)
        self._namespaces.clear()


def run_netns_test(main, hosts, extra_args=()):
    """Runs `async main(harness, fabric)` on a fabric with `hosts` ({name: networks}) plus the
    `ops` host the test runs on; skips where namespaces cannot be made; always cleans up."""
    reason = unavailable_reason()
    if reason is not None:
        print(f"SKIPPED: network-namespace test: {reason}", flush=True)
        sys.exit(SKIP_CODE)
    sweep_stale()
    fabric = Fabric()
    try:
        try:
            fabric.create()
            ops = fabric.add_host("ops", tuple(NETWORKS))
            for name, networks in hosts.items():
                fabric.add_host(name, networks)
            fabric.enter(ops)
        except NetnsError as e:
            print(f"FAILED: setting up the network namespaces: {e}", flush=True)
            sys.exit(1)
        log(f"[net] fabric {fabric.run_id}: " +
            ", ".join(f"{h.name}={'/'.join(h.addr.values())}" for h in fabric.hosts.values()))

        async def with_fabric(h):
            await main(h, fabric)

        run_test(with_fabric, extra_args)
    finally:
        kill_all_processes()
        fabric.destroy()
