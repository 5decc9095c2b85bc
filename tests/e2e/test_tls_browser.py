#!/usr/bin/python3
"""Browser over wss://: headless Chromium opens tools/demo/index.html with a wss:// URL and chats.

A throw-away CA and server certificate are made with `openssl`. Chromium is told to accept exactly
that server key (--ignore-certificate-errors-spki-list with the key's SHA-256, which Chromium
honours only with a --user-data-dir): without it the page cannot connect, which the test checks
first with a second Chromium profile. A python websockets client over wss, trusting the CA, sees the
browser's messages and the browser sees its.
"""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, START_TIMEOUT, WsClient, check, log, poll_until, run_test)
from test_browser_chat import CHROMIUM_CANDIDATES, open_chromium, serve_demo  # noqa: E402
from tls_pki import Pki, client_context  # noqa: E402


async def page_state(dt):
    return await poll_until(
        lambda: dt.evaluate("document.body ? document.body.dataset.state : 'loading'"),
        lambda s: s in ("connected", "closed"), START_TIMEOUT, "the demo page to connect or fail")


async def main(h):
    demo_dir = os.path.abspath(h.args.demo_dir)
    check(os.path.isfile(os.path.join(demo_dir, "index.html")), f"no index.html in {demo_dir}")
    chromium = next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)
    check(chromium, f"no Chromium among {CHROMIUM_CANDIDATES} (apt-get install -y chromium)")

    pki = Pki(os.path.join(h.tmp, "pki"))
    ca = pki.make_ca("root")
    cert, key = pki.make_leaf("root", "server", "/O=gwx e2e/CN=localhost",
                              ["DNS:localhost", "IP:127.0.0.1"])

    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], name="gw", listeners=["wss://127.0.0.1:0/"],
                               extra=["--tls-cert", cert, "--tls-key", key])
    worker = await c.start_worker([reg.addr], "chat", name="chat-worker")
    await c.wait_linked([worker], [gw])
    wss_url = gw.url("wss")

    page_url = await serve_demo(h, demo_dir, wss_url)

    # Without being told about the certificate, Chromium refuses it: the page cannot connect.
    dt, browser = await open_chromium(h, chromium, page_url, "chromium-untrusting")
    state = await page_state(dt)
    check(state == "closed", f"a Chromium that does not trust the test CA reached state {state!r}")
    await dt.close()
    await browser.kill()
    log("Chromium without the certificate's key hash: the wss connection fails")

    peer = await WsClient.connect(wss_url, "python-peer", ssl=client_context(ca),
                                  server_hostname="localhost")
    await peer.send("hello from python")
    msg = await poll_until(peer.recv, lambda t: t.endswith(": hello from python"),
                           REPLY_TIMEOUT, "the python client's own chat message relayed back")
    peer_nick = msg[: -len(": hello from python")]

    spki = pki.spki_sha256(cert)
    dt, _ = await open_chromium(h, chromium, page_url, "chromium-trusting",
                                [f"--ignore-certificate-errors-spki-list={spki}"])
    state = await page_state(dt)
    check(state == "connected", f"demo page over wss reached state {state!r}, title "
                                f"{await dt.evaluate('document.title')!r}")
    log(f"page connected to {wss_url}")

    notice = await poll_until(peer.recv, lambda t: re.match(r"^\* (.+) joined$", t) is not None,
                              REPLY_TIMEOUT, "the browser's join notice at the python client")
    browser_nick = re.match(r"^\* (.+) joined$", notice).group(1)
    check(browser_nick != peer_nick, f"browser and python client share the nick {peer_nick!r}")

    text = f"hello over wss from chromium {os.getpid()}-{int(time.time())}"
    await dt.evaluate(
        "(() => { const i = document.getElementById('text'); i.focus(); i.value = %s;"
        " i.dispatchEvent(new Event('input', {bubbles: true}));"
        " document.getElementById('send').click(); return true; })()" % json.dumps(text))
    await poll_until(peer.recv, lambda t: t == f"{browser_nick}: {text}", REPLY_TIMEOUT,
                     "the browser's message at the python client")
    reply = f"hello back over wss {os.getpid()}"
    await peer.send(reply)
    await poll_until(lambda: dt.evaluate("document.body.innerText"),
                     lambda t: f"{peer_nick}: {reply}" in t, REPLY_TIMEOUT,
                     "the python client's message in the page")
    log("browser and python client chatted over wss")
    await dt.close()
    await peer.close()


if __name__ == "__main__":
    run_test(main, extra_args=[(("--demo-dir",), {"required": True,
                                                   "help": "directory with the demo index.html"})])
