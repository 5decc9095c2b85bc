#!/usr/bin/python3
"""Every command of the `commands` app, across two gateways, several framings, two workers.

Cluster: 2 registers, 2 gateways (ws, tcp+line, tcp+frame, tcp+raw each), 2 workers running the
`commands` app. Clients sit on both gateways in every framing. Checks replies, pushes (recipients
get it, non-recipients provably don't), membership ending at close, counts and lists, the session
across messages, kick (text first, then the close), ungroup, and that a client_id from a gateway
that restarted (on new ports, then on the same internal port) reads as offline and routes nowhere.
"""

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, assert_quiet, check, check_eq, connect, expect_list, expect_reply,
    fetch_id, log, poll_until, push_and_check, query_int, run_test)

LEASE_MS = 2000


async def main(h):
    c = h.cluster
    r1 = await c.start_register()
    r2 = await c.start_register()
    regs = [r1.addr, r2.addr]
    ga = await c.start_gateway(regs, name="gw-a", lease_ttl_ms=LEASE_MS)
    gb = await c.start_gateway(regs, name="gw-b", lease_ttl_ms=LEASE_MS)
    w1 = await c.start_worker(regs, "commands", name="worker1", threads=2)
    w2 = await c.start_worker(regs, "commands", name="worker2", threads=2)
    await c.wait_linked([w1, w2], [ga, gb])

    # --- clients on both gateways, every framing --------------------------------------------
    a_ws = await connect(ga, "ws", "a_ws")
    a_line = await connect(ga, "tcp+line", "a_line")
    a_frame = await connect(ga, "tcp+frame", "a_frame")
    a_raw = await connect(ga, "tcp+raw", "a_raw")
    b_ws = await connect(gb, "ws", "b_ws")
    b_line = await connect(gb, "tcp+line", "b_line")
    b_frame = await connect(gb, "tcp+frame", "b_frame")
    b_raw = await connect(gb, "tcp+raw", "b_raw")
    everyone = [a_ws, a_line, a_frame, a_raw, b_ws, b_line, b_frame, b_raw]

    # id
    ids = await asyncio.gather(*(fetch_id(x) for x in everyone))
    check_eq(len(set(ids)), len(ids), "client ids are distinct")
    check(all(len(i) >= 16 for i in ids), f"client ids look too short to name a gateway: {ids}")
    again = await a_ws.cmd("id")
    check_eq(again, f"id {a_ws.id}", "a_ws: 'id' is stable across messages")
    log(f"id: {len(ids)} distinct ids over 2 gateways x 4 framings")

    # echo, with spaces and non-ASCII text
    for x in everyone:
        await expect_reply(x, "echo hello big world", "hello big world")
    await expect_reply(a_ws, "echo héllo ✓ wörld", "héllo ✓ wörld")
    await expect_reply(b_frame, "echo grüße €", "grüße €")
    log(f"echo: {len(everyone)} clients got their text back (incl. non-ASCII on ws, tcp+frame)")

    # errors
    bad = ["frobnicate", "frobnicate now please", "join", "bind", "get", "online",
           "uid-online", "group-count", "uid-clients", "to-client", "to-uid", "to-group",
           "ungroup", "kick", "set"]
    for i, command in enumerate(bad):
        x = everyone[i % len(everyone)]
        reply = await x.cmd(command)
        check(reply.startswith("error ") and len(reply) > len("error "),
              f"{x.name}: {command!r} -> expected 'error <reason>', got {reply!r}")
    log(f"errors: {len(bad)} malformed/unknown commands each got 'error <reason>'")
    # the connection is still usable after an error
    await expect_reply(a_raw, "echo after-error", "after-error")

    # count (all clients in the cluster), asked on both gateways
    for x in (a_ws, b_raw, a_frame, b_line):
        check_eq(await query_int(x, "count", "count"), len(everyone), f"{x.name}: count")
    log(f"count: {len(everyone)} from clients on both gateways")

    # online
    for asker, target in ((a_ws, b_frame), (b_raw, a_line), (a_frame, a_raw)):
        await expect_reply(asker, f"online {target.id}", "online 1")
    log("online: 3 cross/same-gateway ids read online 1")

    # --- uid --------------------------------------------------------------------------------
    await expect_reply(a_ws, "uid-online alice", "uid-online 0")
    await expect_list(a_ws, "uid-clients alice", "uid-clients", [])
    for x in (a_ws, b_line, b_frame):
        await expect_reply(x, "bind alice", "ok")
    await expect_reply(a_frame, "bind bob", "ok")
    await expect_reply(b_raw, "uid-online alice", "uid-online 1")
    await expect_reply(a_line, "uid-online bob", "uid-online 1")
    await expect_reply(a_line, "uid-online nobody", "uid-online 0")
    alice = sorted([a_ws.id, b_line.id, b_frame.id])
    await expect_list(b_ws, "uid-clients alice", "uid-clients", alice)
    await expect_list(a_raw, "uid-clients alice", "uid-clients", alice)
    await expect_list(a_raw, "uid-clients bob", "uid-clients", [a_frame.id])
    log(f"uid: alice has {len(alice)} clients on 2 gateways, bob 1, nobody 0")

    await push_and_check(b_raw, "to-uid alice hi-alice", "hi-alice",
                         [a_ws, b_line, b_frame], everyone, "uid push")
    await push_and_check(a_ws, "to-uid alice hi-self", "hi-self",
                         [a_ws, b_line, b_frame], everyone, "uid push incl. sender")
    await push_and_check(a_line, "to-uid nobody hi-nobody", "hi-nobody", [], everyone,
                         "uid push to an unbound uid")

    # one uid per client: binding again moves the client
    await expect_reply(a_frame, "bind carol", "ok")
    await expect_reply(b_ws, "uid-online bob", "uid-online 0")
    await expect_list(b_ws, "uid-clients carol", "uid-clients", [a_frame.id])
    await push_and_check(b_ws, "to-uid bob hi-bob", "hi-bob", [], everyone,
                         "uid push to a uid whose client re-bound")
    # unbind
    await expect_reply(b_frame, "unbind", "ok")
    alice = sorted([a_ws.id, b_line.id])
    await expect_list(a_line, "uid-clients alice", "uid-clients", alice)
    await push_and_check(a_raw, "to-uid alice hi-alice-2", "hi-alice-2", [a_ws, b_line],
                         everyone, "uid push after unbind")
    log("uid: re-bind moves a client (bob offline, carol has it), unbind removes it")

    # --- to-client ------------------------------------------------------------------------
    await push_and_check(a_line, f"to-client {b_raw.id} direct-1", "direct-1", [b_raw], everyone,
                         "client push across gateways")
    await push_and_check(b_frame, f"to-client {b_ws.id} direct-2", "direct-2", [b_ws], everyone,
                         "client push on the same gateway")
    await push_and_check(a_frame, f"to-client {a_frame.id} direct-self", "direct-self",
                         [a_frame], everyone, "client push to oneself")

    # --- groups ---------------------------------------------------------------------------
    await expect_reply(a_ws, "group-count g1", "group-count 0")
    await expect_list(a_ws, "groups", "groups", [])
    for x in (a_ws, b_ws, b_frame, a_raw):
        await expect_reply(x, "join g1", "ok")
    await expect_reply(a_ws, "join g1", "ok")  # joining twice changes nothing
    for x in (a_line, b_line):
        await expect_reply(x, "join g2", "ok")
    await expect_reply(a_ws, "join zz-last", "ok")
    await expect_reply(b_raw, "join a-first", "ok")
    check_eq(await query_int(b_line, "group-count g1", "group-count"), 4, "group-count g1")
    check_eq(await query_int(a_frame, "group-count g2", "group-count"), 2, "group-count g2")
    await expect_list(a_frame, "groups", "groups", ["a-first", "g1", "g2", "zz-last"])
    await expect_list(b_ws, "groups", "groups", ["a-first", "g1", "g2", "zz-last"])
    log("groups: g1 has 4 (join twice counted once), g2 2, 4 groups listed sorted")

    g1 = [a_ws, b_ws, b_frame, a_raw]
    await push_and_check(b_line, "to-group g1 hi-g1", "hi-g1", g1, everyone, "group push")
    await push_and_check(b_ws, "to-group g1 hi-g1-self", "hi-g1-self", g1, everyone,
                         "group push incl. sender")
    await push_and_check(a_line, "to-group nogroup hi-none", "hi-none", [], everyone,
                         "group push to an empty group")
    await expect_reply(b_ws, "leave g1", "ok")
    await expect_reply(b_ws, "leave g1", "ok")  # leaving twice changes nothing
    check_eq(await query_int(a_line, "group-count g1", "group-count"), 3, "group-count g1 after leave")
    g1 = [a_ws, b_frame, a_raw]
    await push_and_check(a_frame, "to-group g1 hi-g1-2", "hi-g1-2", g1, everyone,
                         "group push after leave")
    await push_and_check(b_raw, "to-group g2 hi-g2", "hi-g2", [a_line, b_line], everyone,
                         "group push g2")

    # ungroup
    await expect_reply(b_line, "ungroup g1", "ok")
    await poll_until(lambda: query_int(a_ws, "group-count g1", "group-count"), lambda n: n == 0,
                     REPLY_TIMEOUT, "group-count g1 after ungroup")
    await expect_list(a_ws, "groups", "groups", ["a-first", "g2", "zz-last"])
    await push_and_check(a_line, "to-group g1 after-ungroup", "after-ungroup", [], everyone,
                         "group push after ungroup")
    check_eq(await query_int(b_ws, "group-count g2", "group-count"), 2, "ungroup g1 left g2 alone")
    log("ungroup: g1 empty and gone from groups, g2 untouched")

    # --- to-all ---------------------------------------------------------------------------
    await push_and_check(a_line, "to-all hello-everyone", "hello-everyone", everyone, everyone,
                         "all push")
    await push_and_check(b_frame, "to-all hello-again", "hello-again", everyone, everyone,
                         "all push from the other gateway")

    # --- session across messages ----------------------------------------------------------
    await expect_reply(a_ws, "get color", "value")
    await expect_reply(a_ws, "set color blue", "ok")
    await expect_reply(b_raw, "set color green", "ok")
    await expect_reply(a_ws, "set size 42", "ok")
    for i in range(5):
        await expect_reply(a_ws, f"echo filler-{i}", f"filler-{i}")
        await expect_reply(a_ws, "get color", "value blue")
        await expect_reply(b_raw, "get color", "value green")
    await expect_reply(a_ws, "get size", "value 42")
    await expect_reply(a_ws, "set color red", "ok")
    await expect_reply(a_ws, "get color", "value red")
    await expect_reply(a_frame, "get color", "value")  # sessions are per client
    await expect_reply(b_line, "set k1 v1", "ok")
    await expect_reply(b_line, "set k2 v2", "ok")
    await expect_reply(b_line, "get k1", "value v1")
    await expect_reply(b_line, "get k2", "value v2")
    log("session: values kept over 5+ messages on ws and tcp+raw, overwritten, per-client, "
        "several keys merged")

    # --- membership ends when a client closes ---------------------------------------------
    for kind, gw in (("ws", gb), ("tcp+line", ga), ("tcp+frame", gb)):
        leaver = await connect(gw, kind, f"leaver_{kind}")
        await fetch_id(leaver)
        # a long group name (beyond any small-string buffer) and a short one
        uid, group = f"solo-uid-{kind}", f"solo-group-with-a-long-name-{kind}"
        await expect_reply(leaver, f"bind {uid}", "ok")
        await expect_reply(leaver, f"join {group}", "ok")
        await expect_reply(leaver, "join g2", "ok")
        await expect_reply(a_ws, f"uid-online {uid}", "uid-online 1")
        check_eq(await query_int(a_ws, f"group-count {group}", "group-count"), 1,
                 f"group-count {group}")
        check_eq(await query_int(b_ws, "group-count g2", "group-count"), 3, "group-count g2 + leaver")
        check_eq(await query_int(b_raw, "count", "count"), len(everyone) + 1, "count with leaver")
        await leaver.close()
        await poll_until(lambda: a_ws.cmd(f"uid-online {uid}"), lambda r: r == "uid-online 0",
                         REPLY_TIMEOUT, f"uid-online {uid} after its only client closed")
        await expect_list(b_frame, f"uid-clients {uid}", "uid-clients", [])
        await expect_reply(a_line, f"group-count {group}", "group-count 0")
        await expect_reply(b_line, "group-count g2", "group-count 2")
        await expect_list(a_frame, "groups", "groups", ["a-first", "g2", "zz-last"])
        await expect_reply(a_raw, f"online {leaver.id}", "online 0")
        check_eq(await query_int(b_raw, "count", "count"), len(everyone), "count after leaver")
        await push_and_check(a_line, f"to-uid {uid} to-a-ghost", "to-a-ghost", [], everyone,
                             f"uid push to the closed {kind} client's uid")
    # Clients connected after the leavers closed (the gateway may reuse the leavers' memory for
    # them) are in no group: pushes to the leavers' groups reach nobody.
    newcomers = [await connect(gw, kind, f"newcomer_{kind}_{gw.name}")
                 for gw in (ga, gb) for kind in ("ws", "tcp+line", "tcp+frame")]
    for x in newcomers:
        await fetch_id(x)
    for kind in ("ws", "tcp+line", "tcp+frame"):
        await push_and_check(b_frame, f"to-group solo-group-with-a-long-name-{kind} stale",
                             "stale", [], everyone + newcomers,
                             f"group push to the closed {kind} client's group")
    for x in newcomers:
        await x.close()
    await poll_until(lambda: query_int(a_raw, "count", "count"), lambda n: n == len(everyone),
                     REPLY_TIMEOUT, "count after the newcomers closed")
    # a uid shared by two clients stays online while one remains
    await b_line.close()
    everyone.remove(b_line)
    await poll_until(lambda: a_frame.cmd("uid-clients alice"),
                     lambda r: r.split() == ["uid-clients", a_ws.id], REPLY_TIMEOUT,
                     "uid-clients alice after b_line closed")
    await expect_reply(b_raw, "uid-online alice", "uid-online 1")
    await expect_reply(b_raw, "group-count g2", "group-count 1")
    check_eq(await query_int(a_raw, "count", "count"), len(everyone), "count after b_line closed")
    await push_and_check(b_frame, "to-uid alice hi-alice-3", "hi-alice-3", [a_ws], everyone,
                         "uid push after one of its clients closed")
    log("close: uid, groups, group counts, online and count all dropped the closed clients "
        "(ws, tcp+line, tcp+frame); a shared uid stays online with its remaining client")

    # --- kick -----------------------------------------------------------------------------
    for kind, gw, kicker in (("tcp+frame", ga, b_ws), ("ws", gb, a_line), ("tcp+line", ga, a_ws)):
        victim = await connect(gw, kind, f"victim_{kind}")
        await fetch_id(victim)
        await expect_reply(victim, "join g2", "ok")
        await expect_reply(kicker, f"kick {victim.id} bye-now", "ok")
        got = await victim.recv()
        check_eq(got, "bye-now", f"kick: {kind} victim's last message")
        code = await victim.expect_closed()
        await poll_until(lambda: kicker.cmd(f"online {victim.id}"), lambda r: r == "online 0",
                         REPLY_TIMEOUT, f"online of the kicked {kind} client")
        await expect_reply(a_frame, "group-count g2", "group-count 1")
        log(f"kick: {kind} victim on {gw.name} got 'bye-now' then the close"
            + (f" (code {code})" if code is not None else ""))
    await assert_quiet(everyone, "after kicks")
    check_eq(await query_int(a_raw, "count", "count"), len(everyone), "count after kicks")

    # --- a client_id from a restarted gateway reads offline -------------------------------
    old_b = b_ws
    await expect_reply(a_ws, f"online {old_b.id}", "online 1")
    marks = {w: len(w.lines) for w in (w1, w2)}
    await gb.stop(signal.SIGTERM)
    for x in (b_ws, b_frame, b_raw):
        await x.expect_closed()
        everyone.remove(x)
    gb2 = await c.start_gateway(regs, name="gw-b2", lease_ttl_ms=LEASE_MS)
    log(f"restarted gw-b: internal {gb.internal} -> {gb2.internal}")
    await c.wait_linked([w1, w2], [gb2], start=marks)
    await expect_reply(a_ws, f"online {old_b.id}", "online 0")
    fresh = await connect(gb2, "ws", "b2_ws")
    await fetch_id(fresh)
    await expect_reply(fresh, f"online {old_b.id}", "online 0")
    everyone.append(fresh)
    await push_and_check(a_line, f"to-client {old_b.id} ghost-1", "ghost-1", [], everyone,
                         "push to a client_id of the stopped gateway")
    check_eq(await query_int(fresh, "count", "count"), len(everyone), "count after restart")
    # b_raw's group went with its gateway
    await expect_list(fresh, "groups", "groups", ["g2", "zz-last"])
    log("restart (new ports): the old gateway's client_id reads online 0 from both gateways")

    # Same internal address again: only the epoch tells the generations apart. The first client of
    # each run is likely to get the same connection number, so a missing epoch would show here.
    second = await connect(gb2, "ws", "b2_second")  # second connection on gb2
    await fetch_id(second)
    old_ids = [fresh.id, second.id]
    marks = {w: len(w.lines) for w in (w1, w2)}
    await gb2.stop(signal.SIGTERM)
    for x in (fresh, second):
        await x.expect_closed()
    everyone.remove(fresh)
    gb3 = await c.start_gateway(regs, name="gw-b3", lease_ttl_ms=LEASE_MS, internal=gb2.internal)
    check_eq(gb3.internal, gb2.internal, "gw-b3 reuses gw-b2's internal address")
    await c.wait_linked([w1, w2], [gb3], start=marks)
    new1 = await connect(gb3, "ws", "b3_ws1")
    new2 = await connect(gb3, "tcp+line", "b3_line2")
    for x in (new1, new2):
        await fetch_id(x)
        everyone.append(x)
    check(not set(old_ids) & {new1.id, new2.id},
          f"client ids reused after a restart on the same address: old {old_ids}, "
          f"new {[new1.id, new2.id]}")
    for old in old_ids:
        await expect_reply(a_ws, f"online {old}", "online 0")
        await expect_reply(new1, f"online {old}", "online 0")
        await push_and_check(a_frame, f"to-client {old} ghost-2", "ghost-2", [], everyone,
                             "push to a client_id of the previous run on the same address")
    await expect_reply(a_ws, f"online {new1.id}", "online 1")
    check_eq(await query_int(new2, "count", "count"), len(everyone), "count after second restart")
    log(f"restart (same internal address {gb3.internal}): {len(old_ids)} old client_ids read "
        f"online 0 and route nowhere, new ids differ")
    await assert_quiet(everyone, "end")


if __name__ == "__main__":
    run_test(main)
