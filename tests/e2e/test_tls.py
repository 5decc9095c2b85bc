#!/usr/bin/python3
"""TLS client listeners end to end: wss://, tls+line://, tls+frame://, tls+raw:// on a real cluster.

A throw-away CA and certificates are made with the `openssl` command. Cluster: 1 register, 1 gateway
with TLS listeners (one of them requiring client certificates) and a plain ws:// one, 1 worker with
the `commands` app (which puts a TLS client's verified certificate subject into its session).

Checks: python websockets over wss trusting the CA chats, and one that does not trust it fails the
handshake; ALPN http/1.1 on wss (a client offering only h2 is refused); tls+line, tls+frame and
tls+raw clients (Python ssl) exchange messages; with tls_client_auth=require a client without a
certificate and one whose certificate comes from another CA are refused, a CA-signed one gets in
and the worker sees its subject and SANs; hostile input (an HTTP request and random bytes before
the ClientHello, a handshake that never finishes) closes only that connection, counted by reason
in /metrics and logged at most once per interval; SIGHUP with a new certificate keeps existing
connections and serves the new one to new connections, and SIGHUP with a broken file keeps the
previous certificate; the plain ws:// listener still works beside the TLS ones; --print-config
refuses a wss:// listener without a certificate.
"""

import asyncio
import os
import re
import shutil
import signal
import ssl
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, TestFailure, WsClient, check, check_eq, connect, expect_reply, log,
    poll_until, run_test)
from tls_pki import Pki, client_context, peer_common_name  # noqa: E402

HANDSHAKE_TIMEOUT_MS = 1500


def scrape(metrics_addr):
    with urllib.request.urlopen(f"http://{metrics_addr}/metrics", timeout=5) as r:
        return r.read().decode()


def failures(text, listener, reason):
    rx = re.compile(r'^gwx_gateway_tls_handshake_failures_total\{(?P<labels>[^}]*)\} (?P<v>\S+)$',
                    re.M)
    for m in rx.finditer(text):
        labels = m.group("labels")
        if f'listener="{listener}"' in labels and f'reason="{reason}"' in labels:
            return int(float(m.group("v")))
    raise TestFailure(f"no gwx_gateway_tls_handshake_failures_total for {listener} {reason}")


async def tls_probe(host, port, ctx, server_hostname="localhost"):
    """Completes a TLS handshake and a first read attempt; returns the SSL object (for the peer
    certificate and ALPN) or raises what the handshake raised."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_hostname),
        REPLY_TIMEOUT)
    obj = writer.get_extra_info("ssl_object")
    writer.close()
    return obj


async def refused(coro_factory, what):
    """Runs the connection attempt; fails the test if it succeeds. Returns the error."""
    try:
        await coro_factory()
    except (TestFailure, ssl.SSLError, OSError, asyncio.IncompleteReadError) as e:
        log(f"{what}: refused as expected ({type(e).__name__}: {e})")
        return e
    raise TestFailure(f"{what}: expected the connection to be refused, but it succeeded")


async def ws_refused_after_handshake(url, ctx, what):
    """A wss client the server refuses: the connect fails, or (TLS 1.3, where the server checks
    the client certificate after the client finished) the first exchange fails."""
    async def attempt():
        client = await WsClient.connect(url, what, ssl=ctx, server_hostname="localhost")
        reply = await client.cmd("id")
        raise TestFailure(f"{what}: got in and was answered {reply!r}")
    try:
        await attempt()
    except TestFailure as e:
        if "got in" in str(e):
            raise
        log(f"{what}: refused as expected ({e})")
        return
    except Exception as e:  # noqa: BLE001 - any connection error is the refusal
        log(f"{what}: refused as expected ({type(e).__name__}: {e})")


async def print_config_checks(h, pki, cert, key):
    c = h.cluster
    gw = c.binary("gwx-gateway")
    status, out, err = await c.run("print-config-nocert", [
        gw, "--secret", "s", "--listen", "wss://127.0.0.1:0/", "--print-config"])
    check(status == 2, f"--print-config with a wss listener and no certificate: status {status} "
                       f"(expected 2); stderr {err!r}")
    check("needs a certificate" in err, f"unclear error for a wss listener without a "
                                        f"certificate: {err!r}")
    # Start-up reads the files: a missing one stops the gateway with one line naming it.
    missing = pki.path("missing.pem")
    status, out, err = await c.run("start-missing-cert", [
        gw, "--secret", "s", "--register", "127.0.0.1:1", "--internal", "127.0.0.1:0",
        "--listen", "tls+line://127.0.0.1:0", "--tls-cert", missing, "--tls-key", key])
    check(status == 2 and missing in err and len(err.strip().splitlines()) == 1,
          f"start with a missing certificate: status {status}, stderr {err!r}")
    status, out, err = await c.run("start-key-mismatch", [
        gw, "--secret", "s", "--register", "127.0.0.1:1", "--internal", "127.0.0.1:0",
        "--listen", "wss://127.0.0.1:0/", "--tls-cert", cert, "--tls-key", pki.path("device.key")])
    check(status == 2 and "does not match" in err,
          f"start with a key of another certificate: status {status}, stderr {err!r}")
    status, out, err = await c.run("print-config-unpaired", [
        gw, "--secret", "s", "--listen", "wss://127.0.0.1:0/", "--tls-cert", cert,
        "--tls-cert", cert, "--tls-key", key, "--print-config"])
    check(status == 2 and "pair" in err,
          f"--print-config with 2 certificates and 1 key: status {status}, stderr {err!r}")
    status, out, err = await c.run("print-config-plain-tls-option", [
        gw, "--secret", "s", "--listen", f"ws://127.0.0.1:0/?tls_cert={cert}", "--print-config"])
    check(status == 2 and "tls_cert" in err,
          f"tls_cert on a ws:// listener: status {status}, stderr {err!r}")
    status, out, err = await c.run("print-config-ok", [
        gw, "--secret", "s", "--listen", "wss://127.0.0.1:0/", "--tls-cert", cert, "--tls-key", key,
        "--print-config"])
    check(status == 0 and "wss://127.0.0.1:0/" in out,
          f"--print-config with a certificate: status {status}, stdout {out!r}, stderr {err!r}")
    log("--print-config validates TLS listeners")


async def main(h):
    pki = Pki(os.path.join(h.tmp, "pki"))
    ca = pki.make_ca("root")
    pki.make_ca("other")
    first_cert, first_key = pki.make_leaf("root", "server-first", "/O=gwx e2e/CN=first",
                                          ["DNS:localhost", "IP:127.0.0.1"])
    renewed_cert, renewed_key = pki.make_leaf("root", "server-renewed", "/O=gwx e2e/CN=renewed",
                                              ["DNS:localhost", "IP:127.0.0.1"])
    device = pki.make_leaf("root", "device", "/O=Fleet/CN=device-42",
                           ["URI:urn:device:42", "DNS:dev42.fleet.example"])
    stranger = pki.make_leaf("other", "stranger", "/O=Elsewhere/CN=stranger")
    # The gateway reads these paths; SIGHUP makes it read them again.
    live_cert, live_key = pki.path("live.pem"), pki.path("live.key")
    shutil.copyfile(first_cert, live_cert)
    shutil.copyfile(first_key, live_key)

    await print_config_checks(h, pki, live_cert, live_key)

    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway(
        [reg.addr], name="gw",
        listeners=[
            "wss://127.0.0.1:0/",
            "tls+line://127.0.0.1:0",
            "tls+frame://127.0.0.1:0",
            f"tls+raw://127.0.0.1:0?handshake_timeout_ms={HANDSHAKE_TIMEOUT_MS}",
            f"wss://127.0.0.1:0/?tls_client_ca={ca}&tls_client_auth=require",
            "ws://127.0.0.1:0/",
        ],
        extra=["--tls-cert", live_cert, "--tls-key", live_key, "--metrics", "127.0.0.1:0"])
    m, _ = await gw.wait_line(r"^listening metrics://(\S+)\s*$")
    metrics_addr = m.group(1)
    worker = await c.start_worker([reg.addr], "commands", name="w")
    await c.wait_linked([worker], [gw])
    trusting = client_context(ca)
    wss_url = gw.url("wss", 0)
    auth_url = gw.url("wss", 1)
    check("wss://127.0.0.1:" in wss_url, f"wss listener printed as {wss_url!r}")

    # wss: a client that trusts the CA chats; one that does not fails the handshake.
    alice = await connect(gw, "wss", "alice", ssl=trusting)
    await expect_reply(alice, "echo hello over wss", "hello over wss")
    await expect_reply(alice, "get tls_version", "value TLSv1.3")
    bob = await connect(gw, "wss", "bob", ssl=trusting)
    bob_id = (await bob.cmd("id")).split(" ", 1)[1]
    await expect_reply(alice, f"to-client {bob_id} hi bob", "ok")
    check_eq(await bob.recv(), "hi bob", "bob's message from alice over wss")
    host, port = gw.host_port("wss", 0)
    err = await refused(lambda: tls_probe(host, port, client_context(None)),
                        "a client trusting only the system CAs")
    check(isinstance(err, ssl.SSLCertVerificationError),
          f"expected a certificate verification error, got {err!r}")

    # ALPN: http/1.1 on wss; a client offering only h2 is refused (no_application_protocol).
    obj = await tls_probe(host, port, client_context(ca, alpn=["h2", "http/1.1"]))
    check_eq(obj.selected_alpn_protocol(), "http/1.1", "ALPN selected on wss")
    check(obj.version() in ("TLSv1.3", "TLSv1.2"), f"TLS version {obj.version()}")
    await refused(lambda: tls_probe(host, port, client_context(ca, alpn=["h2"])),
                  "a wss client offering only h2")
    old = client_context(ca)
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    version_before = failures(scrape(metrics_addr), wss_url, "version")
    await refused(lambda: tls_probe(host, port, old), "a TLS 1.1 client")
    await poll_until(lambda: asyncio.to_thread(
                         lambda: failures(scrape(metrics_addr), wss_url, "version")),
                     lambda v: v > version_before, REPLY_TIMEOUT,
                     "the TLS 1.1 client counted under reason version")

    # tls+line, tls+frame, tls+raw.
    for scheme in ("tls+line", "tls+frame", "tls+raw"):
        client = await connect(gw, scheme, f"{scheme}-client", ssl=trusting)
        await expect_reply(client, f"echo over {scheme}", f"over {scheme}")
        await expect_reply(client, "get tls_version", "value TLSv1.3")
        await expect_reply(alice, f"to-client {(await client.cmd('id')).split(' ', 1)[1]} "
                                  f"from alice", "ok")
        check_eq(await client.recv(), "from alice", f"push to the {scheme} client")
        if scheme != "tls+raw":
            await client.close()
        else:
            raw_client = client  # kept open across the reloads below
    log("tls+line, tls+frame and tls+raw clients exchange messages")

    # Client certificates required.
    before = scrape(metrics_addr)
    await ws_refused_after_handshake(auth_url, trusting, "a client without a certificate")
    await ws_refused_after_handshake(auth_url, client_context(ca, cert=stranger),
                                     "a client with a certificate from another CA")
    dev = await WsClient.connect(auth_url, "device-42", ssl=client_context(ca, cert=device),
                                 server_hostname="localhost")
    await expect_reply(dev, "get tls_subject", "value CN=device-42,O=Fleet")
    await expect_reply(dev, "get tls_sans", "value URI:urn:device:42,DNS:dev42.fleet.example")
    # A device whose uid comes from its certificate (the app binds it from the session value).
    await expect_reply(dev, "bind device-42", "ok")
    await expect_reply(alice, "uid-online device-42", "uid-online 1")
    # The plain listener's clients carry no TLS details.
    plain = await connect(gw, "ws", "plain")
    await expect_reply(plain, "echo plain still works", "plain still works")
    await expect_reply(plain, "get tls_version", "value")

    def auth_failures():
        text = scrape(metrics_addr)
        return (failures(text, auth_url, "no_client_certificate")
                - failures(before, auth_url, "no_client_certificate"),
                failures(text, auth_url, "bad_client_certificate")
                - failures(before, auth_url, "bad_client_certificate"))

    counts = await poll_until(lambda: asyncio.to_thread(auth_failures),
                              lambda v: v[0] >= 1 and v[1] >= 1, REPLY_TIMEOUT,
                              "client-certificate refusals counted in /metrics")
    log(f"client certificates: refusals counted {counts}, device admitted with its subject")

    # Hostile input before the ClientHello, and a handshake that never finishes.
    logged = f"{wss_url}: TLS handshake from"
    stderr_before = c.stderr_of(gw).count(logged)
    base = scrape(metrics_addr)
    garbage = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"garbage before the hello " * 24,
               b"\x16\x03\x01\xff\xff" + b"\x01" * 64, b"\x00" * 32]

    async def read_all(reader):
        data = b""
        try:
            while chunk := await reader.read(4096):
                data += chunk
        except ConnectionError:
            pass
        return data

    for blob in garbage:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(blob)
        await writer.drain()
        # An alert at most, then the close; never an HTTP answer, never a hang.
        data = await asyncio.wait_for(read_all(reader), REPLY_TIMEOUT)
        check(len(data) < 64 and not data.startswith(b"HTTP/"),
              f"garbage {blob[:16]!r} was answered {data!r}")
        writer.close()
    raw_host, raw_port = gw.host_port("tls+raw")
    stalled = []
    for payload in (b"", b"\x16\x03\x01\x00\x50\x01\x00\x00"):  # nothing; half a ClientHello
        reader, writer = await asyncio.open_connection(raw_host, raw_port)
        if payload:
            writer.write(payload)
            await writer.drain()
        stalled.append((reader, writer))
    for reader, _ in stalled:
        data = await asyncio.wait_for(reader.read(4096), HANDSHAKE_TIMEOUT_MS / 1000 + REPLY_TIMEOUT)
        check(data == b"", f"a stalled handshake got bytes instead of the close: {data!r}")

    def hostile_counts():
        text = scrape(metrics_addr)
        return (failures(text, wss_url, "not_tls") + failures(text, wss_url, "protocol_error")
                - failures(base, wss_url, "not_tls") - failures(base, wss_url, "protocol_error"),
                failures(text, gw.url("tls+raw"), "timeout")
                - failures(base, gw.url("tls+raw"), "timeout"))

    counts = await poll_until(lambda: asyncio.to_thread(hostile_counts),
                              lambda v: v[0] >= len(garbage) and v[1] >= 2, REPLY_TIMEOUT,
                              "hostile handshakes counted in /metrics")
    lines = c.stderr_of(gw).count(logged) - stderr_before
    check(lines <= 1, f"{len(garbage)} failed handshakes within seconds logged {lines} lines "
                      f"(at most one per interval expected)")
    check(c.stderr_of(gw).count(logged) >= 1, "no failed handshake on wss was ever logged")
    await expect_reply(alice, "echo alive after the hostile clients", "alive after the hostile clients")
    log(f"hostile input: {counts} counted (garbage, timeouts), {lines} new log line(s)")

    # SIGHUP with a renewed certificate.
    check_eq(peer_common_name(await tls_probe(host, port, trusting)), "first", "certificate before")
    shutil.copyfile(renewed_cert, live_cert)
    shutil.copyfile(renewed_key, live_key)
    reloaded_before = c.stderr_of(gw).count("certificates reloaded")
    gw.send_signal(signal.SIGHUP)
    await poll_until(lambda: asyncio.sleep(0, c.stderr_of(gw).count("certificates reloaded")),
                     lambda n: n >= reloaded_before + 5, REPLY_TIMEOUT,
                     "a 'certificates reloaded' line for each of the 5 TLS listeners")
    check_eq(peer_common_name(await tls_probe(host, port, trusting)), "renewed",
             "certificate a new wss connection sees after SIGHUP")
    raw_host, raw_port = gw.host_port("tls+line")
    check_eq(peer_common_name(await tls_probe(raw_host, raw_port, trusting)), "renewed",
             "certificate a new tls+line connection sees after SIGHUP")
    await expect_reply(alice, "echo alice survived the reload", "alice survived the reload")
    await expect_reply(dev, "echo device survived the reload", "device survived the reload")
    await expect_reply(raw_client, "echo raw survived", "raw survived")
    log("SIGHUP: new connections get the renewed certificate, old ones keep working")

    # SIGHUP with a broken file keeps the renewed certificate.
    with open(live_cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    failed_before = c.stderr_of(gw).count("certificate reload failed")
    gw.send_signal(signal.SIGHUP)
    await poll_until(lambda: asyncio.sleep(0, c.stderr_of(gw).count("certificate reload failed")),
                     lambda n: n >= failed_before + 1, REPLY_TIMEOUT,
                     "a 'certificate reload failed' line")
    failed_lines = [ln for ln in c.stderr_of(gw).splitlines() if "certificate reload failed" in ln]
    check(live_cert in failed_lines[-1], f"the reload error does not name the file: "
                                         f"{failed_lines[-1]!r}")
    check_eq(peer_common_name(await tls_probe(host, port, trusting)), "renewed",
             "certificate after a SIGHUP with a broken file")
    await expect_reply(alice, "echo alice survived the failed reload",
                       "alice survived the failed reload")
    fresh = await connect(gw, "wss", "fresh", ssl=trusting)
    await expect_reply(fresh, "echo new connections still work", "new connections still work")
    check(gw.running(), "the gateway exited")
    log("SIGHUP with a broken certificate file: the previous certificate stays")

    for client in (alice, bob, dev, plain, fresh, raw_client):
        await client.close()


if __name__ == "__main__":
    run_test(main)
