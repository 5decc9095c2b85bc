#!/usr/bin/python3
"""SIGHUP reloads the link certificates (--link-tls-cert, --link-tls-key, --link-tls-ca) of
gateways and workers.

Two throw-away CAs made with `openssl` (gwx_cluster.Pki): the cluster moves from CA 1 to CA 2.
Each gateway and worker reads its link files from paths the test rewrites, then signals.

Checks:
- a worker whose files now hold a CA-2 certificate and trust only CA 2 reloads on SIGHUP (one
  line): its link to the CA-1 gateway stays up and carries messages, and a new CA-2-only gateway
  links to it (it could not with the old files: each side would refuse the other);
- a gateway moved to CA 2 the same way reloads on SIGHUP: its link to the worker stays up, a new
  TLS connection to its internal port is served the new certificate, and a new CA-2 worker links;
- a broken certificate file on a worker, and a broken key on a gateway, leave one error line
  naming the file; everything stays up, and new links and connections still get the previous
  (renewed) certificates.
"""

import asyncio
import os
import shutil
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, Pki, check, check_eq, connect, expect_reply, log, run_test)
from tls_pki import peer_common_name  # noqa: E402

RELOADED = "link certificates reloaded"
FAILED = "link certificate reload failed"


class LinkFiles:
    """The paths a process reads its link TLS from, and what they hold now."""

    def __init__(self, directory, name):
        self.cert = os.path.join(directory, f"{name}-live.pem")
        self.key = os.path.join(directory, f"{name}-live.key")
        self.ca = os.path.join(directory, f"{name}-live-ca.pem")

    def use(self, cert_key, ca):
        shutil.copyfile(cert_key[0], self.cert)
        shutil.copyfile(cert_key[1], self.key)
        shutil.copyfile(ca, self.ca)

    def args(self):
        return ["--link-tls-cert", self.cert, "--link-tls-key", self.key, "--link-tls-ca", self.ca]


async def served_cn(internal, ca, client_cert):
    """The CN of the certificate a gateway's internal port serves to a new TLS connection."""
    host, port = internal.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(*client_cert)
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=ctx, server_hostname="127.0.0.1"),
        REPLY_TIMEOUT)
    cn = peer_common_name(writer.get_extra_info("ssl_object"))
    writer.close()
    return cn


async def main(h):
    c = h.cluster
    pki_dir = os.path.join(h.tmp, "pki")
    ca1, ca2 = Pki(pki_dir, "ca1"), Pki(pki_dir, "ca2")
    gw1_files, w1_files = LinkFiles(pki_dir, "gw1"), LinkFiles(pki_dir, "w1")
    gw1_files.use(ca1.issue("gw1"), ca1.cert)
    w1_files.use(ca1.issue("w1"), ca1.cert)
    probe_cert = ca2.issue("probe")

    reg = await c.start_register()
    gw1 = await c.start_gateway([reg.addr], name="gw1", extra=gw1_files.args())
    w1 = await c.start_worker([reg.addr], "commands", name="w1", extra=w1_files.args())
    await c.wait_linked([w1], [gw1])
    alice = await connect(gw1, "ws", "alice")
    await expect_reply(alice, "echo over the CA-1 link", "over the CA-1 link")

    # The worker moves to CA 2.
    w1_files.use(ca2.issue("w1-renewed"), ca2.cert)
    line = await c.sighup_and_wait(w1, RELOADED, "worker SIGHUP")
    check(w1_files.cert in line, f"the reload line does not name the files: {line!r}")
    await expect_reply(alice, "echo the link survived the worker's reload",
                       "the link survived the worker's reload")
    check(not w1.has_line(w1.unlinked_pattern(gw1.internal)), "the worker's link to gw1 dropped")
    gw2_files = LinkFiles(pki_dir, "gw2")
    gw2_files.use(ca2.issue("gw2"), ca2.cert)
    gw2 = await c.start_gateway([reg.addr], name="gw2", extra=gw2_files.args())
    await c.wait_linked([w1], [gw2])
    bob = await connect(gw2, "ws", "bob")
    await expect_reply(bob, "echo over a new CA-2 link", "over a new CA-2 link")
    log("worker SIGHUP: its CA-1 link stays up, a new CA-2-only gateway links with the new files")

    # The gateway moves to CA 2.
    check_eq(await served_cn(gw1.internal, ca1.cert, ca1.issue("probe-1")), "gw1",
             "gw1's link certificate before its reload")
    gw1_files.use(ca2.issue("gw1-renewed"), ca2.cert)
    line = await c.sighup_and_wait(gw1, RELOADED, "gateway SIGHUP")
    check(gw1_files.cert in line and gw1.internal in line, f"unclear reload line: {line!r}")
    await expect_reply(alice, "echo the link survived the gateway's reload",
                       "the link survived the gateway's reload")
    check(not w1.has_line(w1.unlinked_pattern(gw1.internal)), "the worker's link to gw1 dropped")
    check_eq(await served_cn(gw1.internal, ca2.cert, probe_cert), "gw1-renewed",
             "gw1's link certificate for a new connection after its reload")
    w2_files = LinkFiles(pki_dir, "w2")
    w2_files.use(ca2.issue("w2"), ca2.cert)
    w2 = await c.start_worker([reg.addr], "commands", name="w2", extra=w2_files.args())
    await c.wait_linked([w2], [gw1, gw2])
    log("gateway SIGHUP: its link stays up, new connections get the renewed certificate, "
        "a CA-2 worker links")

    # Broken files keep the previous certificates.
    with open(w1_files.cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    line = await c.sighup_and_wait(w1, FAILED, "worker SIGHUP with a broken certificate")
    check(w1_files.cert in line, f"the worker's reload error does not name the file: {line!r}")
    gw3_files = LinkFiles(pki_dir, "gw3")
    gw3_files.use(ca2.issue("gw3"), ca2.cert)
    gw3 = await c.start_gateway([reg.addr], name="gw3", extra=gw3_files.args())
    await c.wait_linked([w1], [gw3])
    with open(gw1_files.key, "w") as f:
        f.write("not a key\n")
    line = await c.sighup_and_wait(gw1, FAILED, "gateway SIGHUP with a broken key")
    check(gw1_files.key in line, f"the gateway's reload error does not name the file: {line!r}")
    check_eq(await served_cn(gw1.internal, ca2.cert, probe_cert), "gw1-renewed",
             "gw1's link certificate after a reload with a broken key")
    for client in (alice, bob):
        await expect_reply(client, "echo still linked", "still linked")
    check(w1.running() and gw1.running(), "a process exited after a failed reload")
    log("broken files: one error line each naming the file; the previous certificates stay "
        "for new links (gw3 linked, gw1 serves gw1-renewed)")
    await alice.close()
    await bob.close()


if __name__ == "__main__":
    run_test(main)
