#!/usr/bin/python3
"""The example user app (worker/examples/greeter_app.cpp), loaded from its shared library.

Documented behaviour: each client is greeted with "hello <client_id>" and put in the "lobby"
group; "name NAME" answers "you are NAME" and remembers the name in the session; anything else is
relayed to the lobby as "<name> says <text>" ("someone" before a name is set); when a client closes
the lobby gets "<client_id> left".

Cluster: 1 register, 2 gateways, 1 worker started with `--app <path to the .so>`; clients in
several framings on both gateways, so the lobby spans gateways.
"""

import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, connect, log, run_test  # noqa: E402


async def main(h):
    lib = h.args.app_lib
    if not lib:
        found = sorted(glob.glob(os.path.join(h.bin_dir, "lib*example*.so")))
        check(found, f"no lib*example*.so in {h.bin_dir} (build the example app target)")
        lib = found[0]
    check(os.path.isfile(lib), f"example app library {lib} not found")
    c = h.cluster
    reg = await c.start_register()
    ga = await c.start_gateway([reg.addr], name="gw-a")
    gb = await c.start_gateway([reg.addr], name="gw-b")
    w = await c.start_worker([reg.addr], os.path.abspath(lib), name="example-worker")
    await c.wait_linked([w], [ga, gb])
    log(f"worker runs {lib}")

    lobby = []

    async def join(gw, kind, name):
        x = await connect(gw, kind, name)
        greeting = await x.recv()
        m = re.match(r"^hello ([0-9a-f]+)$", greeting)
        check(m, f"{name}: expected 'hello <client_id>' on connect, got {greeting!r}")
        x.id = m.group(1)
        lobby.append(x)
        return x

    ann = await join(ga, "ws", "ann")
    bob = await join(gb, "tcp+line", "bob")
    cid = await join(gb, "ws", "cid")
    dee = await join(ga, "tcp+frame", "dee")
    check_eq(len({x.id for x in lobby}), len(lobby), "greeted client ids are distinct")
    log(f"greeting: {len(lobby)} clients on 2 gateways each got 'hello <their id>'")

    async def relay(sender, text, expected):
        await sender.send(text)
        for x in lobby:
            check_eq(await x.recv(), expected, f"lobby relay of {text!r} from {sender.name} to {x.name}")

    await relay(bob, "good morning", "someone says good morning")
    check_eq(await ann.cmd("name Ann"), "you are Ann", "ann: name Ann")
    check_eq(await dee.cmd("name Dee Dee"), "you are Dee Dee", "dee: name with a space")
    await relay(ann, "hi all", "Ann says hi all")
    await relay(dee, "hey", "Dee Dee says hey")
    await relay(bob, "still nameless", "someone says still nameless")
    # the name lives in the session: it survives further messages and can change
    await relay(ann, "again", "Ann says again")
    check_eq(await ann.cmd("name Annie"), "you are Annie", "ann: rename")
    await relay(ann, "renamed", "Annie says renamed")
    # "name " with nothing after it is an ordinary message
    await relay(cid, "name ", "someone says name ")
    log(f"relay: 7 messages reached all {len(lobby)} lobby members; names kept in the session")

    # on_close tells the lobby; the closed client is no longer in it
    await cid.close()
    lobby.remove(cid)
    for x in lobby:
        check_eq(await x.recv(), f"{cid.id} left", f"{x.name}: notice of cid leaving")
    await relay(bob, "after", "someone says after")
    await bob.close()
    lobby.remove(bob)
    for x in lobby:
        check_eq(await x.recv(), f"{bob.id} left", f"{x.name}: notice of bob leaving")
    await relay(dee, "bye", "Dee Dee says bye")
    log(f"close: 2 leave notices reached the {len(lobby)} remaining members, who keep chatting")


if __name__ == "__main__":
    run_test(main, extra_args=[(("--app-lib",), {"default": None,
                                                  "help": "path of the example app .so"})])
