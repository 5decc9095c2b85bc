#!/usr/bin/python3
"""TLS on the internal hops: the register's gRPC and the gateway<->worker links.

Certificates come from throw-away CAs made with the `openssl` command (gwx_cluster.Pki): the
cluster's CA, and another CA whose certificates must get nowhere.

Links (a TLS gateway and a plain gateway in one register; every worker dials both):
- a TLS worker links to the TLS gateway and a client's messages go through it; towards the plain
  gateway both sides log one clear line (the worker: the peer speaks a plain link; the gateway:
  the peer speaks TLS) however often the worker retries;
- a plain worker links to the plain gateway; the TLS gateway refuses it, and tells it why in a
  Reject frame the worker logs ("TLS is required on this link");
- a worker whose certificate comes from another CA never links to the TLS gateway, which logs
  "certificate verify failed" naming the peer; the worker logs that its certificate was refused,
  once, however often it retries;
- gwxctl with the link TLS options pushes through the TLS gateway;
- bad link TLS options stop the binaries at start with one line.

Register over TLS (client certificates required, token set):
- a gateway registers over TLS and gwxctl, with the CA, its certificate and the token, lists it;
- the token is still enforced over TLS: no token and a wrong token are UNAUTHENTICATED;
- a caller that trusts another CA fails with "certificate verify failed" and a hint;
- a caller without a client certificate, or with one from the other CA, gets nowhere;
- a plaintext caller fails with a hint to set --register-tls-ca;
- bad files stop every binary at start with one line and exit status 2.
"""

import asyncio
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    Pki, check, check_eq, connect, expect_reply, log, poll_until, run_test)

TOKEN = "e2e-register-token"


def nonblank_lines(text):
    return [line for line in text.splitlines() if line.strip()]


async def check_bad_start(c, name, argv, expected):
    """The binary exits 2 at once with one stderr line matching `expected`."""
    status, out, err = await c.run(name, argv)
    lines = nonblank_lines(err)
    check_eq(status, 2, f"{name}: exit status ({err.strip()!r})")
    check(len(lines) == 1 and re.search(expected, lines[0]),
          f"{name}: expected one line matching /{expected}/ on stderr, got {lines!r}")
    log(f"{name}: exit 2, {lines[0]!r}")


async def register_checks(h, pki, other):
    c = h.cluster
    reg_cert, reg_key = pki.issue("register")
    gw_cert, gw_key = pki.issue("gateway")
    ctl_cert, ctl_key = pki.issue("gwxctl")
    stranger_cert, stranger_key = other.issue("stranger")

    reg = await c.start_register(
        name="register-tls", token=TOKEN,
        extra=["--tls-cert", reg_cert, "--tls-key", reg_key, "--tls-client-ca", pki.cert])
    client_tls = ["--register-tls-ca", pki.cert]
    gw = await c.start_gateway(
        [reg.addr], name="gw-register-tls",
        extra=client_tls + ["--register-tls-cert", gw_cert, "--register-tls-key", gw_key,
                            "--token", TOKEN])
    gwxctl = c.binary("gwxctl")
    base = [gwxctl, "--register", reg.addr, "--timeout-ms", "3000"]
    good = client_tls + ["--register-tls-cert", ctl_cert, "--register-tls-key", ctl_key]

    # The gateway is listed through TLS (its lease went over TLS too): poll until it shows up.
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        status, out, err = await c.run("gwxctl-gateways", base + good + ["--token", TOKEN,
                                                                         "gateways"])
        if status == 0 and gw.internal in out:
            break
        check(asyncio.get_running_loop().time() < deadline,
              f"gwxctl gateways over TLS never listed {gw.internal}: status {status}, "
              f"stdout {out!r}, stderr {err!r}")
        await asyncio.sleep(0.2)
    log(f"register over TLS: gateway {gw.internal} registered and listed by gwxctl")

    # The token is still required over TLS.
    for label, token_args in (("no token", []), ("wrong token", ["--token", "not-the-token"])):
        status, out, err = await c.run("gwxctl-token", base + good + token_args + ["gateways"])
        check_eq(status, 1, f"gwxctl over TLS with {label}: exit status")
        check("UNAUTHENTICATED" in err and gw.internal not in out,
              f"gwxctl over TLS with {label}: expected UNAUTHENTICATED and no gateway, got "
              f"stdout {out!r} stderr {err!r}")
        log(f"register over TLS, {label}: refused (UNAUTHENTICATED)")

    # A caller that trusts another CA refuses the register's certificate.
    status, out, err = await c.run(
        "gwxctl-wrong-ca", base + ["--register-tls-ca", other.cert, "--register-tls-cert",
                                   ctl_cert, "--register-tls-key", ctl_key, "--token", TOKEN,
                                   "gateways"])
    check_eq(status, 1, "gwxctl trusting another CA: exit status")
    check("certificate verify failed" in err and "not signed by --register-tls-ca" in err,
          f"gwxctl trusting another CA: expected 'certificate verify failed' with a hint, got "
          f"{err!r}")
    log("register over TLS, caller trusting another CA: 'certificate verify failed' + hint")

    # The register requires a client certificate signed by its CA.
    for label, cert_args in (("no client certificate", []),
                             ("a certificate from another CA",
                              ["--register-tls-cert", stranger_cert,
                               "--register-tls-key", stranger_key])):
        status, out, err = await c.run("gwxctl-client-cert",
                                       base + client_tls + cert_args + ["--token", TOKEN,
                                                                        "gateways"])
        check_eq(status, 1, f"gwxctl with {label}: exit status")
        check("require a client certificate" in err and gw.internal not in out,
              f"gwxctl with {label}: expected a failure hinting at the client certificate, got "
              f"stdout {out!r} stderr {err!r}")
        log(f"register over TLS, caller with {label}: refused")

    # A plaintext caller gets a hint.
    status, out, err = await c.run("gwxctl-plain", base + ["--token", TOKEN, "gateways"])
    check_eq(status, 1, "plaintext gwxctl against a TLS register: exit status")
    check("set --register-tls-ca" in err,
          f"plaintext gwxctl against a TLS register: expected a hint to set --register-tls-ca, "
          f"got {err!r}")
    log("plaintext caller against a TLS register: refused with a hint")

    # A TLS caller against a plaintext register.
    plain = await c.start_register(name="register-plain")
    status, out, err = await c.run(
        "gwxctl-tls-to-plain", [gwxctl, "--register", plain.addr, "--timeout-ms", "3000"] + good
        + ["gateways"])
    check_eq(status, 1, "TLS gwxctl against a plaintext register: exit status")
    check("the register does not" in err,
          f"TLS gwxctl against a plaintext register: expected a hint, got {err!r}")
    log("TLS caller against a plaintext register: refused with a hint")

    # Bad files: one line, exit 2, before anything starts.
    await check_bad_start(c, "register-mismatched-key",
                          [c.binary("gwx-register"), "--listen", "127.0.0.1:0", "--tls-cert",
                           reg_cert, "--tls-key", gw_key],
                          r"^gwx-register: .*private key .* does not match certificate")
    await check_bad_start(c, "register-missing-cert",
                          [c.binary("gwx-register"), "--listen", "127.0.0.1:0", "--tls-cert",
                           os.path.join(h.tmp, "absent.pem"), "--tls-key", reg_key],
                          r"^gwx-register: .*cannot read .*absent\.pem")
    await check_bad_start(c, "register-key-alone",
                          [c.binary("gwx-register"), "--tls-key", reg_key],
                          r"^gwx-register: --tls-cert and --tls-key go together")
    await check_bad_start(c, "gwxctl-ca-not-pem",
                          [gwxctl, "--register", reg.addr, "--register-tls-ca", reg_key,
                           "gateways"],
                          r"^gwxctl: --register-tls-\*: .*CA")
    await check_bad_start(c, "gateway-cert-without-ca",
                          [c.binary("gwx-gateway"), "--secret", "s", "--register-tls-cert",
                           gw_cert, "--register-tls-key", gw_key],
                          r"^gwx-gateway: .*need --register-tls-ca")
    await check_bad_start(c, "worker-mismatched-key",
                          [c.binary("gwx-worker"), "--register", reg.addr, "--secret", "s",
                           "--app", "echo", "--register-tls-ca", pki.cert, "--register-tls-cert",
                           gw_cert, "--register-tls-key", ctl_key],
                          r"^gwx-worker: .*does not match certificate")
    await gw.stop()
    await reg.stop()
    await plain.stop()


def link_args(cert, key, ca):
    return ["--link-tls-cert", cert, "--link-tls-key", key, "--link-tls-ca", ca]


def stderr_lines(c, proc, pattern):
    rx = re.compile(pattern)
    return [line for line in c.stderr_of(proc).splitlines() if rx.search(line)]


async def wait_stderr(c, proc, pattern, what):
    """Waits (by polling the process's stderr file) until a line matches; returns the lines."""
    async def probe():
        return stderr_lines(c, proc, pattern)
    lines = await poll_until(probe, lambda v: len(v) > 0, 20, what, interval=0.1)
    log(f"{what}: {lines[0].split(': ', 1)[-1]!r}")
    return lines


async def link_checks(h, pki, other):
    c = h.cluster
    node_cert, node_key = pki.issue("link-node")
    stranger_cert, stranger_key = other.issue("link-stranger")
    reg = await c.start_register(name="register-links")
    gw_tls = await c.start_gateway([reg.addr], name="gw-tls", lease_ttl_ms=2000,
                                   extra=link_args(node_cert, node_key, pki.cert))
    gw_plain = await c.start_gateway([reg.addr], name="gw-plain", lease_ttl_ms=2000)
    started = asyncio.get_running_loop().time()
    check("(TLS links)" in c.stderr_of(gw_tls) and "(plain links)" in c.stderr_of(gw_plain),
          "the gateways say at start whether their links are TLS")

    w_tls = await c.start_worker([reg.addr], "commands", name="w-tls",
                                 extra=link_args(node_cert, node_key, pki.cert))
    w_plain = await c.start_worker([reg.addr], "commands", name="w-plain")
    # At debug level the worker also logs its quiet retries ("failed again").
    w_stranger = await c.start_worker([reg.addr], "commands", name="w-stranger",
                                      extra=link_args(stranger_cert, stranger_key, pki.cert)
                                      + ["--log-level", "debug"])
    await c.wait_linked([w_tls], [gw_tls])
    await c.wait_linked([w_plain], [gw_plain])

    # Messages go through the TLS link.
    client = await connect(gw_tls, "ws", "tls-client")
    await expect_reply(client, "echo over a TLS link", "over a TLS link")
    log("a client of the TLS gateway is served by the TLS worker")

    # TLS worker vs plain gateway: refused on both sides, one line each.
    plain_addr = re.escape(gw_plain.internal)
    tls_addr = re.escape(gw_tls.internal)
    await wait_stderr(c, w_tls, rf"link to gateway {plain_addr} .*failed: the peer speaks a plain "
                      r"link, this end requires TLS", "TLS worker -> plain gateway, worker side")
    await wait_stderr(c, gw_plain, r"link from 127\.0\.0\.1:\d+ refused: the peer speaks TLS, "
                      r"this end's links are plain", "TLS worker -> plain gateway, gateway side")

    # Plain worker vs TLS gateway: the gateway says why, in the clear.
    await wait_stderr(c, w_plain, rf"link to gateway {tls_addr} .*failed: refused by the gateway: "
                      r"TLS is required on this link", "plain worker -> TLS gateway, worker side")
    await wait_stderr(c, gw_tls, r"link from 127\.0\.0\.1:\d+ refused: the peer speaks a plain "
                      r"link, this end requires TLS", "plain worker -> TLS gateway, gateway side")

    # A certificate from another CA.
    await wait_stderr(c, gw_tls, r"link from 127\.0\.0\.1:\d+ refused: TLS handshake failed: "
                      r"certificate verify failed .*not signed by --link-tls-ca",
                      "worker with another CA's certificate, gateway side")
    await wait_stderr(c, w_stranger, rf"link to gateway {tls_addr} .*failed: .*refused this end's "
                      r"certificate", "worker with another CA's certificate, worker side")
    async def retries():
        return stderr_lines(c, w_stranger, rf"link to gateway {tls_addr} .*failed again")
    await poll_until(retries, lambda v: len(v) >= 3, 20,
                     "the worker with another CA's certificate retries")
    check(not w_stranger.has_line(w_stranger.linked_pattern(gw_tls.internal)),
          "the worker with another CA's certificate must never link to the TLS gateway")
    check(not w_plain.has_line(w_plain.linked_pattern(gw_tls.internal)),
          "the plain worker must never link to the TLS gateway")
    check(not w_tls.has_line(w_tls.linked_pattern(gw_plain.internal)),
          "the TLS worker must never link to the plain gateway")

    # gwxctl over TLS links, once the plain gateway is gone from the register.
    await gw_plain.stop()
    status, out, err = await c.run(
        "gwxctl-send-to-all", [c.binary("gwxctl"), "--register", reg.addr, "--secret", c.secret,
                               "--timeout-ms", "8000"] + link_args(node_cert, node_key, pki.cert)
        + ["send-to-all", "pushed over TLS"])
    check_eq(status, 0, f"gwxctl send-to-all over TLS links (stderr {err!r})")
    check_eq(await client.recv(), "pushed over TLS", "push from gwxctl over a TLS link")
    log("gwxctl with --link-tls-* pushed to a client of the TLS gateway")

    # However often the workers retried, each mismatch was logged once per interval.
    elapsed = asyncio.get_running_loop().time() - started
    allowed = 1 + int(elapsed // 10)
    for proc, pattern in ((w_tls, rf"link to gateway {plain_addr} .*failed: the peer speaks a plain"),
                          (w_plain, rf"link to gateway {tls_addr} .*failed: refused by the gateway"),
                          (w_stranger, rf"warning .*link to gateway {tls_addr} .*failed:"),
                          (gw_tls, r"refused: the peer speaks a plain link"),
                          (gw_tls, r"refused: TLS handshake failed")):
        lines = stderr_lines(c, proc, pattern)
        check(1 <= len(lines) <= allowed,
              f"{proc.name}: expected 1..{allowed} lines matching /{pattern}/ in {elapsed:.0f}s, "
              f"got {len(lines)}: {lines!r}")
    log(f"each refusal logged at most once per 10 s interval on each side ({elapsed:.0f}s)")

    # Bad link TLS options.
    await check_bad_start(c, "gateway-link-cert-alone",
                          [c.binary("gwx-gateway"), "--secret", "s", "--link-tls-cert", node_cert],
                          r"^gwx-gateway: --link-tls-cert, --link-tls-key and --link-tls-ca go "
                          r"together \(missing --link-tls-key\)")
    await check_bad_start(c, "worker-link-key-mismatch",
                          [c.binary("gwx-worker"), "--register", reg.addr, "--secret", "s",
                           "--app", "echo"] + link_args(node_cert, stranger_key, pki.cert),
                          r"^gwx-worker: --link-tls-\*: .*does not match certificate")
    await check_bad_start(c, "gwxctl-link-ca-missing",
                          [c.binary("gwxctl"), "--register", reg.addr, "--secret", "s"]
                          + link_args(node_cert, node_key, os.path.join(h.tmp, "no-ca.pem"))
                          + ["count"],
                          r"^gwxctl: --link-tls-\*: .*cannot read .*no-ca\.pem")
    await client.close()
    for p in (w_tls, w_plain, w_stranger, gw_tls, reg):
        await p.stop()


async def main(h):
    pki = Pki(os.path.join(h.tmp, "pki"), "cluster-ca")
    other = Pki(os.path.join(h.tmp, "pki-other"), "other-ca")
    await register_checks(h, pki, other)
    await link_checks(h, pki, other)


if __name__ == "__main__":
    run_test(main)
