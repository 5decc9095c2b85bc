#!/usr/bin/python3
"""SIGHUP reloads the register's gRPC certificates (--tls-cert, --tls-key, --tls-client-ca).

One throw-away CA made with `openssl` (gwx_cluster.Pki) signs two register certificates, A and
B (different subject and serial), and the certificate gateways and workers present. The register
reads its files from paths the test rewrites, then gets SIGHUP.

Checks:
- the register starts with A: a new TLS connection (python ssl, with a client certificate, since
  the register requires one) sees A's subject and serial, and a TLS 1.1 ClientHello is refused;
- files replaced by B, SIGHUP: one info line; new connections see B's subject and serial; the
  gateway and the worker keep the very TCP connections they had to the register (their lease and
  Watch streams were not dropped: no re-registration, no reconnect), the worker's Watch stream
  still delivers (a gateway started afterwards, which registers over a new connection and must
  accept B, is linked by the worker), and the client of the first gateway keeps chatting;
- a key that does not match (A's), SIGHUP, then a key file that is no key, SIGHUP: one error line
  each naming the key file; new connections still see B for longer than gRPC takes to pick up
  new files, a third gateway still registers and is linked, the register runs on;
- the callers: the gateway's and the worker's --register-tls-ca file gets a second CA, SIGHUP
  (one line each); the register moves to a certificate C of the second CA and restarts: both
  get back to it over new connections (a gateway trusting only the first CA cannot), and the
  worker's new Watch stream tells it of a new gateway; a broken CA file on the worker leaves one
  error line and the worker still gets back to a restarted register.
"""

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, Pki, TestFailure, check, check_eq, connect, expect_reply, log, poll_until,
    run_test)

RELOADED = "register certificates reloaded"
FAILED = "register certificate reload failed"
CALLER_RELOADED = "register client certificates reloaded"
CALLER_FAILED = "register client certificate reload failed"
# gRPC looks at the register's reloaded files every second (grpc_tls_provider::k_refresh_s); a
# check that nothing changed after a reload lasts longer than that.
PICKUP_S = 1.0


def serial_of(cert_path):
    """The certificate's serial number as upper-case hex, as Python's getpeercert() shows it."""
    out = subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-serial"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].upper()


def handshake(addr, ca, client_cert, version=None):
    """A new TLS connection to the register (ALPN h2, like gRPC); returns (CN, serial) of the
    certificate it presents, verified against `ca` and the address."""
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(*client_cert)
    ctx.set_alpn_protocols(["h2"])
    if version is not None:
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ctx.maximum_version = version
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    with socket.create_connection((host, int(port)), timeout=REPLY_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
    cn = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"), None)
    return cn, cert.get("serialNumber", "").upper()


async def served(addr, ca, client_cert):
    return await asyncio.to_thread(handshake, addr, ca, client_cert)


def register_connections(pid, register_addr):
    """The local ports of the established TCP connections process `pid` holds to the register."""
    port = int(register_addr.rsplit(":", 1)[1])
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.match(r"^socket:\[(\d+)\]$", target)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}", encoding="ascii") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                local, remote, state, inode = cols[1], cols[2], cols[3], cols[9]
                if (state == "01" and inode in inodes and
                        int(remote.rsplit(":", 1)[1], 16) == port):
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def count_lines(c, proc, pattern):
    return sum(1 for ln in c.stderr_of(proc).splitlines() if pattern in ln)


async def main(h):
    c = h.cluster
    pki = Pki(os.path.join(h.tmp, "pki"))
    cert_a, cert_b = pki.issue("register-a"), pki.issue("register-b")
    serial_a, serial_b = serial_of(cert_a[0]), serial_of(cert_b[0])
    check(serial_a != serial_b, "test error: certificates A and B have the same serial")
    node = pki.issue("node")
    live_cert = os.path.join(h.tmp, "register-live.pem")
    live_key = os.path.join(h.tmp, "register-live.key")
    shutil.copyfile(cert_a[0], live_cert)
    shutil.copyfile(cert_a[1], live_key)

    register_tls = ["--tls-cert", live_cert, "--tls-key", live_key, "--tls-client-ca", pki.cert]
    reg = await c.start_register(extra=register_tls)
    # The callers' CA file, rewritten in the last part.
    caller_ca = os.path.join(h.tmp, "caller-ca.pem")
    shutil.copyfile(pki.cert, caller_ca)
    client_tls = ["--register-tls-ca", caller_ca, "--register-tls-cert", node[0],
                  "--register-tls-key", node[1]]
    gw1 = await c.start_gateway([reg.addr], name="gw1", extra=client_tls)
    w1 = await c.start_worker([reg.addr], "commands", name="w1", extra=client_tls)
    await c.wait_linked([w1], [gw1])
    alice = await connect(gw1, "ws", "alice")
    await expect_reply(alice, "echo before the reload", "before the reload")

    check_eq(await served(reg.addr, pki.cert, node), ("register-a", serial_a),
             "certificate (CN, serial) a new connection sees before any reload")
    try:
        await asyncio.to_thread(handshake, reg.addr, pki.cert, node, ssl.TLSVersion.TLSv1_1)
        raise TestFailure("the register accepted a TLS 1.1 handshake")
    except (ssl.SSLError, ConnectionError) as e:
        log(f"TLS 1.1 refused by the register ({type(e).__name__})")

    # gw1 registered (its lease keeper holds a connection), w1 watches (a Watch stream on its
    # own connection): both must keep exactly these connections across the reloads.
    conns = {p.name: register_connections(p.pid, reg.addr) for p in (gw1, w1)}
    for name, ports in conns.items():
        check(ports, f"{name} holds no TCP connection to the register")
    log(f"connections to the register before the reload (local ports): {conns}")
    lines = {(p.name, pat): count_lines(c, p, pat)
             for p, pats in ((gw1, ("registered with", "unreachable")),
                             (w1, ("up, watching", "unreachable"))) for pat in pats}
    check_eq(lines[("gw1", "registered with")], 1, "gw1's 'registered with' lines")
    check_eq(lines[("w1", "up, watching")], 1, "w1's 'up, watching' lines")

    # Certificate B, SIGHUP.
    shutil.copyfile(cert_b[0], live_cert)
    shutil.copyfile(cert_b[1], live_key)
    line = await c.sighup_and_wait(reg, RELOADED, "register SIGHUP")
    check(live_cert in line and live_key in line, f"the reload line does not name the files: "
                                                  f"{line!r}")
    seen = await poll_until(lambda: served(reg.addr, pki.cert, node),
                            lambda v: v == ("register-b", serial_b), REPLY_TIMEOUT,
                            "a new connection sees certificate B after SIGHUP")
    log(f"after SIGHUP a new connection sees {seen}")
    gw2 = await c.start_gateway([reg.addr], name="gw2", extra=client_tls)
    await c.wait_linked([w1], [gw2])
    bob = await connect(gw2, "ws", "bob")
    await expect_reply(bob, "echo through a gateway found after the reload", "through a gateway "
                                                                             "found after the reload")
    await expect_reply(alice, "echo after the reload", "after the reload")
    after = {p.name: register_connections(p.pid, reg.addr) for p in (gw1, w1)}
    check_eq(after, conns, "gw1's and w1's connections to the register after the reload "
                           "(local ports; a change means a dropped connection)")
    for (name, pat), n in lines.items():
        proc = gw1 if name == "gw1" else w1
        check_eq(count_lines(c, proc, pat), n, f"{name}'s {pat!r} lines after the reload")
    log("reload: gw1 and w1 kept their register connections (lease and Watch stream), the Watch "
        "stream told w1 of gw2, which registered over a new connection seeing B")

    # A key that is not B's (A's: a well-formed key, only wrong) keeps B.
    shutil.copyfile(cert_a[1], live_key)
    line = await c.sighup_and_wait(reg, FAILED, "register SIGHUP with a mismatched key")
    check(live_key in line and "does not match" in line,
          f"the reload error does not name the key file and the mismatch: {line!r}")
    with open(live_key, "w", encoding="ascii") as f:
        f.write("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    line = await c.sighup_and_wait(reg, FAILED, "register SIGHUP with a broken key")
    check(live_key in line, f"the reload error does not name the key file: {line!r}")
    deadline = time.monotonic() + 2.5 * PICKUP_S
    probes = 0
    while True:
        check_eq(await served(reg.addr, pki.cert, node), ("register-b", serial_b),
                 f"certificate a new connection sees {probes * 0.2:.1f}s after the failed "
                 f"reloads")
        probes += 1
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.2)  # a window in which nothing may change, not a wait for an event
    gw3 = await c.start_gateway([reg.addr], name="gw3", extra=client_tls)
    await c.wait_linked([w1], [gw3])
    await expect_reply(alice, "echo after the failed reloads", "after the failed reloads")
    check_eq({p.name: register_connections(p.pid, reg.addr) for p in (gw1, w1)}, conns,
             "gw1's and w1's connections to the register after the failed reload")
    check(reg.running(), "the register exited after a failed reload")
    check_eq(count_lines(c, reg, RELOADED), 1, "info lines of successful reloads")
    log(f"mismatched, then broken key: one error line each naming it; {probes} new connections over "
        f"{2.5 * PICKUP_S:.1f}s still saw B; gw3 registered and was linked")

    await callers_reload(c, h, reg, register_tls, pki, node, caller_ca, gw1, w1)
    await alice.close()
    await bob.close()


async def callers_reload(c, h, reg, register_tls, pki, node, caller_ca, gw1, w1):
    """gw1 and w1 re-read --register-tls-* on SIGHUP. They come to trust a second CA, the
    register moves to a certificate of that CA and restarts: they get back to it only if their
    reload took effect (a gateway that trusts only the first CA cannot)."""
    ca2 = Pki(os.path.join(h.tmp, "pki2"), "ca2")
    cert_c = ca2.issue("register-c")
    with open(caller_ca, "w", encoding="ascii") as out:
        for path in (pki.cert, ca2.cert):
            with open(path, encoding="ascii") as f:
                out.write(f.read())
    for p in (gw1, w1):
        line = await c.sighup_and_wait(p, CALLER_RELOADED, f"{p.name} SIGHUP")
        check(caller_ca in line, f"{p.name}'s reload line does not name the CA file: {line!r}")
    shutil.copyfile(cert_c[0], register_tls[1])
    shutil.copyfile(cert_c[1], register_tls[3])
    await c.sighup_and_wait(reg, RELOADED, "register SIGHUP to certificate C (second CA)")
    await poll_until(lambda: served(reg.addr, caller_ca, node),
                     lambda v: v[0] == "register-c", REPLY_TIMEOUT,
                     "a new connection sees certificate C")

    async def restart(reg, what):
        """Restarts the register on its address; waits until gw1 registered again and w1
        watches again, over new TLS connections."""
        before = {p: count_lines(c, p, pat) for p, pat in ((gw1, "registered"),
                                                          (w1, "up, watching"))}
        await reg.stop()
        reg = await c.start_register(name="register", listen=reg.addr, extra=register_tls)
        for p, pat in ((gw1, "registered"), (w1, "up, watching")):
            await poll_until(lambda: asyncio.sleep(0, count_lines(c, p, pat)),
                             lambda n: n > before[p], REPLY_TIMEOUT,
                             f"{what}: {p.name} back at the restarted register ({pat!r})")
        return reg

    reg = await restart(reg, "after the callers' reload")
    gw4 = await c.start_gateway([reg.addr], name="gw4", extra=[
        "--register-tls-ca", ca2.cert, "--register-tls-cert", node[0], "--register-tls-key",
        node[1]])
    await c.wait_linked([w1], [gw4])
    stranger = await c.start_gateway([reg.addr], name="gw-old-ca", extra=[
        "--register-tls-ca", pki.cert, "--register-tls-cert", node[0], "--register-tls-key",
        node[1]])
    await poll_until(lambda: asyncio.sleep(0, c.stderr_of(stranger)),
                     lambda text: "certificate verify failed" in text, REPLY_TIMEOUT,
                     "a gateway trusting only the first CA refused by its lease keeper")
    log("callers' SIGHUP: gw1 and w1 trust the second CA, got back to the restarted register "
        "(certificate C) over new connections, w1's new Watch stream told it of gw4; a gateway "
        "trusting only the first CA cannot register")

    # A broken CA file on the worker keeps the bundle it read before.
    with open(caller_ca, "w", encoding="ascii") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    line = await c.sighup_and_wait(w1, CALLER_FAILED, "w1 SIGHUP with a broken CA file")
    check(caller_ca in line, f"w1's reload error does not name the CA file: {line!r}")
    await restart(reg, "after a failed reload")
    check(w1.running() and gw1.running(), "a process exited after a reload")
    log("broken CA file: one error line naming it; w1 still gets back to a restarted register")


if __name__ == "__main__":
    run_test(main)
