#!/usr/bin/python3
"""Browser test: headless Chromium opens tools/demo/index.html and chats through a real cluster.

Cluster: 1 register, 1 gateway (ws listener), 1 worker with the `chat` app. tools/demo is served by
`python3 -m http.server` on an ephemeral port; Chromium is started headless with its DevTools port
chosen by itself (read from <profile>/DevToolsActivePort) and driven over the DevTools protocol
(Runtime.evaluate) with the websockets library. A second client (python websockets) sees the
browser join, receives "<nick>: <message>" typed and sent in the page, and its own message shows
up in the page's list.
"""

import asyncio
import itertools
import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import websockets  # noqa: E402

from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, START_TIMEOUT, TestFailure, WsClient, check, log, poll_until,
    run_test)

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    @classmethod
    async def attach(cls, port, page_url_prefix):
        def targets():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                return json.loads(r.read().decode())

        async def probe():
            try:
                return await asyncio.to_thread(targets)
            except OSError:
                return []

        found = await poll_until(
            probe, lambda ts: any(t.get("type") == "page" and
                                  t.get("url", "").startswith(page_url_prefix) for t in ts),
            START_TIMEOUT, "Chromium page target for the demo page")
        target = next(t for t in found if t.get("type") == "page" and
                      t.get("url", "").startswith(page_url_prefix))
        ws = await websockets.connect(target["webSocketDebuggerUrl"], max_size=None,
                                      ping_interval=None)
        return cls(ws)

    async def call(self, method, **params):
        msg_id = next(self.ids)
        await self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(await asyncio.wait_for(self.ws.recv(), REPLY_TIMEOUT))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise TestFailure(f"DevTools {method} failed: {reply['error']}")
                return reply["result"]

    async def evaluate(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            raise TestFailure(f"page script {expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def close(self):
        await self.ws.close()


async def serve_demo(h, demo_dir, ws_url):
    """Serves `demo_dir` over HTTP on an ephemeral port; returns the demo page's URL for
    `ws_url`."""
    http = await h.cluster.spawn("http-server", [
        "/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory",
        demo_dir])
    m, _ = await http.wait_line(r"port (\d+)")
    return (f"http://127.0.0.1:{m.group(1)}/index.html?"
            + urllib.parse.urlencode({"ws": ws_url}))


async def open_chromium(h, chromium, page_url, name, extra_flags=()):
    """Starts headless Chromium (process `name`, its own profile) on `page_url` and attaches to
    the page over the DevTools protocol; returns (DevTools, the browser's Proc)."""
    profile = os.path.join(h.tmp, f"{name}-profile")
    os.makedirs(profile)
    browser = await h.cluster.spawn(name, [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--no-default-browser-check", *extra_flags,
        f"--user-data-dir={profile}", "--remote-debugging-port=0", page_url])
    port_file = os.path.join(profile, "DevToolsActivePort")

    async def devtools_port():
        if not browser.running():
            raise TestFailure(f"Chromium exited with status {browser.proc.returncode}")
        try:
            with open(port_file) as f:
                first = f.readline().strip()
            return int(first) if first.isdigit() else None
        except OSError:
            return None

    port = await poll_until(devtools_port, lambda p: p, START_TIMEOUT, "DevToolsActivePort")
    return await DevTools.attach(port, page_url.split("?", 1)[0]), browser


async def main(h):
    demo_dir = os.path.abspath(h.args.demo_dir)
    check(os.path.isfile(os.path.join(demo_dir, "index.html")), f"no index.html in {demo_dir}")
    chromium = next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)
    check(chromium, f"no Chromium among {CHROMIUM_CANDIDATES} (apt-get install -y chromium)")

    c = h.cluster
    reg = await c.start_register()
    gw = await c.start_gateway([reg.addr], name="gw", listeners=["ws://127.0.0.1:0/"])
    worker = await c.start_worker([reg.addr], "chat", name="chat-worker")
    await c.wait_linked([worker], [gw])
    ws_url = gw.url("ws")

    page_url = await serve_demo(h, demo_dir, ws_url)

    # The python client joins first and learns its own nick from its own message.
    peer = await WsClient.connect(ws_url, "python-peer")
    await peer.send("hello from python")
    seen = []
    msg = await poll_until(peer.recv, lambda t: (seen.append(t) or t.endswith(": hello from python")),
                           REPLY_TIMEOUT, "the python client's own chat message relayed back")
    peer_nick = msg[: -len(": hello from python")]
    check(peer_nick, f"empty nick in {msg!r}")
    log(f"python client is {peer_nick!r} (saw {seen})")

    dt, _ = await open_chromium(h, chromium, page_url, "chromium")
    state = await poll_until(lambda: dt.evaluate("document.body ? document.body.dataset.state : 'loading'"),
                             lambda s: s in ("connected", "closed"), START_TIMEOUT,
                             "the demo page to connect")
    check(state == "connected", f"demo page state {state!r}, title "
                                f"{await dt.evaluate('document.title')!r}")
    title = await dt.evaluate("document.title")
    check(title.endswith("connected"), f"title {title!r} should say connected")
    log(f"page connected to {ws_url} (title {title!r})")

    # The browser's join notice reaches the python client and names the browser's nick.
    notice = await poll_until(peer.recv, lambda t: re.match(r"^\* (.+) joined$", t) is not None,
                              REPLY_TIMEOUT, "the browser's join notice at the python client")
    browser_nick = re.match(r"^\* (.+) joined$", notice).group(1)
    check(browser_nick != peer_nick, f"browser and python client share the nick {peer_nick!r}")
    log(f"python client saw {notice!r}")

    async def type_and_send(text):
        """Types `text` into the page's input and clicks Send, as a user would."""
        await dt.evaluate(
            "(() => { const i = document.getElementById('text'); i.focus(); i.value = %s;"
            " i.dispatchEvent(new Event('input', {bubbles: true}));"
            " document.getElementById('send').click(); return true; })()" % json.dumps(text))

    # Rename in the page: the chat app's /nick command, typed like any message.
    new_nick = f"chromium-{os.getpid()}"
    await type_and_send(f"/nick {new_nick}")
    got = await peer.recv()
    check(got == f"* {browser_nick} is now {new_nick}",
          f"python client expected the rename notice, got {got!r}")
    log(f"python client saw {got!r}")
    browser_nick = new_nick

    # Type a message into the page and click Send.
    text = f"hello from chromium {os.getpid()}-{int(time.time())}"
    await type_and_send(text)
    got = await peer.recv()
    check(got == f"{browser_nick}: {text}",
          f"python client expected {browser_nick + ': ' + text!r}, got {got!r}")
    log(f"python client received {got!r} typed and sent in Chromium")
    cleared = await dt.evaluate("document.getElementById('text').value")
    check(cleared == "", f"the input should be cleared after sending, holds {cleared!r}")

    # And the other way: the python client's message appears in the page's list, after the
    # page's own message (relayed to everyone, the sender included).
    await peer.send("hi browser")
    check((await peer.recv()) == f"{peer_nick}: hi browser", "python client's own relay")
    items = await poll_until(
        lambda: dt.evaluate("Array.from(document.querySelectorAll('#messages li'),"
                            " li => li.textContent)"),
        lambda xs: f"{peer_nick}: hi browser" in xs, REPLY_TIMEOUT,
        "the python client's message in the page's list")
    check(f"{browser_nick}: {text}" in items, f"the page's own message missing from {items}")
    check(items.index(f"{browser_nick}: {text}") < items.index(f"{peer_nick}: hi browser"),
          f"page list out of order: {items}")
    log(f"page list has {len(items)} items incl. its own message and {peer_nick!r}'s reply")
    await dt.close()
    await peer.close()


if __name__ == "__main__":
    run_test(main, extra_args=[(("--demo-dir",), {"required": True,
                                                   "help": "directory with the demo index.html"})])
