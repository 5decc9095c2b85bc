#!/usr/bin/python3
"""SNI end to end: one gateway, two certificates (--tls-cert/--tls-key given twice).

A throw-away CA made with `openssl` signs certificate A (alpha.example, and 127.0.0.1) and
certificate B (beta.example and *.beta.example). Cluster: 1 register, 1 gateway with a wss://
listener, a tls+line:// listener and a wss:// listener requiring client certificates, all with
both certificates, 1 worker with the `commands` app.

Checks: Python ssl clients verifying the name they ask for, over every listener, see A for
alpha.example and B for beta.example and for a name under *.beta.example; a client that asks for
an unknown name, and one that sends no SNI at all, get the default (A, the first given); a
websockets client over wss with server_hostname beta.example chats, and so does a device with a
client certificate on the listener that requires one; SIGHUP after B is renewed serves the new B
to beta.example and leaves A and the connected clients alone.
"""

import asyncio
import os
import shutil
import signal
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, LineClient, WsClient, check_eq, expect_reply, log, poll_until, run_test)
from tls_pki import Pki, client_context, peer_common_name  # noqa: E402


async def served_cn(host, port, ctx, server_hostname):
    """The CN of the certificate the server presents to a client asking for `server_hostname`
    (None: no SNI)."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=ctx, server_hostname=server_hostname),
        REPLY_TIMEOUT)
    cn = peer_common_name(writer.get_extra_info("ssl_object"))
    writer.close()
    return cn


def unchecked_names(ca, cert=None):
    """Trusts the CA but does not match the name: to see which certificate comes back for a name
    no certificate carries."""
    ctx = client_context(ca, cert=cert)
    ctx.check_hostname = False
    return ctx


async def main(h):
    pki = Pki(os.path.join(h.tmp, "pki"))
    ca = pki.make_ca("root")
    a_cert, a_key = pki.make_leaf("root", "alpha", "/O=gwx e2e/CN=alpha",
                                  ["DNS:alpha.example", "IP:127.0.0.1"])
    b_first = pki.make_leaf("root", "beta", "/O=gwx e2e/CN=beta",
                            ["DNS:beta.example", "DNS:*.beta.example"])
    b_renewed = pki.make_leaf("root", "beta-renewed", "/O=gwx e2e/CN=beta renewed",
                              ["DNS:beta.example", "DNS:*.beta.example"])
    device = pki.make_leaf("root", "device", "/O=Fleet/CN=device-7")
    b_cert, b_key = pki.path("live-beta.pem"), pki.path("live-beta.key")
    shutil.copyfile(b_first[0], b_cert)
    shutil.copyfile(b_first[1], b_key)

    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway(
        [reg.addr], name="gw",
        listeners=["wss://127.0.0.1:0/", "tls+line://127.0.0.1:0",
                   f"wss://127.0.0.1:0/?tls_client_ca={ca}&tls_client_auth=require"],
        extra=["--tls-cert", a_cert, "--tls-key", a_key, "--tls-cert", b_cert, "--tls-key", b_key])
    worker = await c.start_worker([reg.addr], "commands", name="w")
    await c.wait_linked([worker], [gw])
    trusting = client_context(ca)
    with_device = client_context(ca, cert=device)
    listeners = [("wss", gw.host_port("wss", 0), trusting, unchecked_names(ca)),
                 ("tls+line", gw.host_port("tls+line"), trusting, unchecked_names(ca)),
                 ("wss with client certificates", gw.host_port("wss", 1), with_device,
                  unchecked_names(ca, cert=device))]

    # Each name gets its own certificate (the client checks the name); others get the default.
    for what, (host, port), ctx, any_name in listeners:
        check_eq(await served_cn(host, port, ctx, "alpha.example"), "alpha",
                 f"{what}: certificate for alpha.example")
        check_eq(await served_cn(host, port, ctx, "beta.example"), "beta",
                 f"{what}: certificate for beta.example")
        check_eq(await served_cn(host, port, ctx, "edge-3.beta.example"), "beta",
                 f"{what}: certificate for edge-3.beta.example (*.beta.example)")
        check_eq(await served_cn(host, port, any_name, "unknown.example"), "alpha",
                 f"{what}: certificate for an unknown name (the default)")
        check_eq(await served_cn(host, port, any_name, None), "alpha",
                 f"{what}: certificate without SNI (the default)")
    log("SNI: alpha.example -> alpha, beta.example and *.beta.example -> beta, "
        "unknown name and no SNI -> alpha (the default), on every listener")

    # Whole sessions over the certificate SNI picked.
    beta_ws = await WsClient.connect(gw.url("wss", 0), "beta-ws", ssl=trusting,
                                     server_hostname="beta.example")
    await expect_reply(beta_ws, "echo hello over beta", "hello over beta")
    host, port = gw.host_port("tls+line")
    beta_line = await LineClient.connect(host, port, "beta-line", ssl=trusting,
                                         server_hostname="edge-3.beta.example")
    await expect_reply(beta_line, "echo hello over tls+line", "hello over tls+line")
    dev = await WsClient.connect(gw.url("wss", 1), "device-7", ssl=with_device,
                                 server_hostname="beta.example")
    await expect_reply(dev, "get tls_subject", "value CN=device-7,O=Fleet")
    log("sessions over the SNI-picked certificate chat, a device's certificate still verified")

    # Renew B only: SIGHUP serves the new B, A stays, connected clients stay.
    shutil.copyfile(b_renewed[0], b_cert)
    shutil.copyfile(b_renewed[1], b_key)
    before = c.stderr_of(gw).count("certificates reloaded")
    gw.send_signal(signal.SIGHUP)
    await poll_until(lambda: asyncio.sleep(0, c.stderr_of(gw).count("certificates reloaded")),
                     lambda n: n >= before + 3, REPLY_TIMEOUT,
                     "a 'certificates reloaded' line for each of the 3 listeners")
    for what, (host, port), ctx, _ in listeners:
        check_eq(await served_cn(host, port, ctx, "beta.example"), "beta renewed",
                 f"{what}: certificate for beta.example after SIGHUP")
        check_eq(await served_cn(host, port, ctx, "alpha.example"), "alpha",
                 f"{what}: certificate for alpha.example after SIGHUP")
    for client in (beta_ws, beta_line, dev):
        await expect_reply(client, "echo after the reload", "after the reload")
    log("SIGHUP: beta.example gets the renewed certificate, alpha.example and open sessions stay")
    for client in (beta_ws, beta_line, dev):
        await client.close()


if __name__ == "__main__":
    run_test(main)
