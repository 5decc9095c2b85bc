#!/usr/bin/python3
"""The Gateway API calls that the unit tests only run against the in-memory fake, on real gateways.

Cluster: 1 register, 2 gateways, 1 worker with the `commands` app. Clients of every framing on
both gateways. Each call is made twice where both exist: from a worker handler (a client's command
to the `commands` app) and from outside (`gwxctl`, a `gwx::Client` push client), and each answer is
checked against what the test did:

- sessions: `set_session` (replace), `update_session` (merge), `get_session`, of the sender and of
  another client on another gateway; the session travels with the next event;
- by-group lists: `get_client_ids_by_group`, `get_client_sessions_by_group`, `get_uids_by_group`,
  `get_uid_count_by_group`, `get_client_count_by_groups` (batch);
- uids: `get_uid_by_client_id`, `get_all_uids`, `get_all_uid_count`, `is_uid_online_batch`,
  `bind_uid` of another client;
- all ids: `get_all_client_ids`, `get_all_group_ids`, `get_groups_of_client`;
- sends with lists and excludes: `send_to_clients`, `send_to_group` with excludes, `send_to_all`
  with excludes;
- `destroy_client`: the client is cut at once (no close handshake, nothing more delivered), its
  uid, groups and presence are gone everywhere, and bystanders are untouched;
- `gwxctl workers`: each worker with each gateway it is linked to, the clients it holds there,
  its address and state, and its totals.
"""

import asyncio
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, WsClient, assert_quiet, check, check_eq, connect, expect_list, expect_reply,
    fetch_id, log, poll_until, push_and_check, query_int, run_test)

import websockets.exceptions  # noqa: E402


def pairs(reply, head):
    """`head k=v k=v` -> dict."""
    parts = reply.split(" ")
    check(parts[0] == head, f"expected '{head} …', got {reply!r}")
    return dict(p.split("=", 1) for p in parts[1:] if p)


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    ga = await c.start_gateway([reg.addr], name="gw-a")
    gb = await c.start_gateway([reg.addr], name="gw-b")
    w = await c.start_worker([reg.addr], "commands", name="worker")
    await c.wait_linked([w], [ga, gb])
    base = [c.binary("gwxctl"), "--register", reg.addr, "--secret", c.secret,
            "--timeout-ms", "5000"]

    async def ctl(*words, expect_status=0):
        status, out, err = await c.run("gwxctl", base + list(words), timeout=30)
        check(status == expect_status,
              f"gwxctl {' '.join(words)}: exit status {status}, expected {expect_status}; "
              f"stdout {out!r}; stderr {err!r}")
        return [ln for ln in out.splitlines()]

    a_ws = await connect(ga, "ws", "a_ws")
    a_line = await connect(ga, "tcp+line", "a_line")
    a_frame = await connect(ga, "tcp+frame", "a_frame")
    b_ws = await connect(gb, "ws", "b_ws")
    b_line = await connect(gb, "tcp+line", "b_line")
    b_frame = await connect(gb, "tcp+frame", "b_frame")
    everyone = [a_ws, a_line, a_frame, b_ws, b_line, b_frame]
    for x in everyone:
        await fetch_id(x)
    ids = sorted(x.id for x in everyone)

    # ---- all ids ----------------------------------------------------------------------------
    await expect_list(a_ws, "clients", "clients", ids)
    await expect_list(b_frame, "clients", "clients", ids)
    check_eq(sorted(await ctl("clients")), ids, "gwxctl clients")
    log(f"get_all_client_ids: {len(ids)} clients on 2 gateways, from a handler and gwxctl")

    # ---- groups and uids ----------------------------------------------------------------------
    for x in (a_ws, a_line, b_ws):
        await expect_reply(x, "join red", "ok")
    for x in (a_frame, b_ws, b_line):
        await expect_reply(x, "join blue", "ok")
    await expect_reply(a_ws, "bind alice", "ok")
    await expect_reply(b_ws, "bind alice", "ok")
    # bind_uid of another client, on the other gateway
    await expect_reply(a_line, f"bind-other {b_line.id} bob", "ok")
    await expect_reply(a_frame, f"bind-other {a_line.id} carol", "ok")
    await expect_list(b_line, "uid-of " + b_line.id, "uid-of", ["bob"])
    await expect_list(b_line, "uid-of " + a_frame.id, "uid-of", [])
    check_eq(await ctl("uid-of", a_line.id), ["carol"], "gwxctl uid-of")
    none = await ctl("uid-of", b_frame.id)
    check(none in ([], [""]), f"gwxctl uid-of a client without a uid printed {none!r}")

    await expect_list(a_line, "group-clients red", "group-clients",
                      sorted([a_ws.id, a_line.id, b_ws.id]))
    await expect_list(b_frame, "group-clients blue", "group-clients",
                      sorted([a_frame.id, b_ws.id, b_line.id]))
    await expect_list(b_frame, "group-clients nobody", "group-clients", [])
    check_eq(sorted(await ctl("group-clients", "blue")), sorted([a_frame.id, b_ws.id, b_line.id]),
             "gwxctl group-clients blue")
    # red: alice (twice: a_ws, b_ws), carol (a_line); blue: alice (b_ws), bob (b_line)
    await expect_list(a_ws, "group-uids red", "group-uids", ["alice", "carol"])
    await expect_list(b_ws, "group-uids blue", "group-uids", ["alice", "bob"])
    check_eq(sorted(await ctl("group-uids", "red")), ["alice", "carol"], "gwxctl group-uids")
    check_eq(await query_int(a_ws, "group-uid-count red", "group-uid-count"), 2,
             "group-uid-count red")
    check_eq(await query_int(b_frame, "group-uid-count blue", "group-uid-count"), 2,
             "group-uid-count blue")
    check_eq(pairs(await a_frame.cmd("group-counts red blue green"), "group-counts"),
             {"red": "3", "blue": "3", "green": "0"}, "group-counts (batch)")
    await expect_list(b_line, "uids", "uids", ["alice", "bob", "carol"])
    check_eq(sorted(await ctl("uids")), ["alice", "bob", "carol"], "gwxctl uids")
    check_eq(await query_int(a_line, "uid-count", "uid-count"), 3, "uid-count")
    check_eq(pairs(await b_frame.cmd("uids-online alice dave carol"), "uids-online"),
             {"alice": "1", "dave": "0", "carol": "1"}, "uids-online (batch)")
    await expect_list(a_ws, "groups", "groups", ["blue", "red"])
    await expect_list(a_ws, f"groups {b_ws.id}", "groups", ["blue", "red"])
    await expect_list(b_ws, f"groups {a_frame.id}", "groups", ["blue"])
    await expect_list(b_ws, f"groups {b_frame.id}", "groups", [])
    check_eq(sorted(await ctl("groups")), ["blue", "red"], "gwxctl groups")
    check_eq(sorted(await ctl("groups", b_ws.id)), ["blue", "red"], "gwxctl groups ID")
    log("by-group lists, uid lookups and group ids answer from both gateways alike")

    # ---- sessions -------------------------------------------------------------------------------
    # set_session / update_session / get_session from outside (gwxctl), of a client on gw-b
    await ctl("set-session", b_line.id, "lang=fr", "tier=gold")
    await expect_list(a_ws, f"session {b_line.id}", "session", ["lang=fr", "tier=gold"])
    await ctl("update-session", b_line.id, "tier=silver", "seen=1")
    check_eq(sorted(await ctl("session", b_line.id)), ["lang=fr", "seen=1", "tier=silver"],
             "gwxctl session after update")
    # The session travels with b_line's own next event: its handler sees the merged map.
    await expect_list(b_line, "session", "session", ["lang=fr", "seen=1", "tier=silver"])
    await ctl("set-session", b_line.id, "only=this")  # replace, not merge
    await expect_list(b_line, "session", "session", ["only=this"])
    # from a handler: update_session of a client on the other gateway, the sender's own write-back
    await expect_reply(a_ws, f"update-session {b_frame.id} k1=v1 k2=v2", "ok")
    await expect_list(b_frame, "session", "session", ["k1=v1", "k2=v2"])
    await expect_reply(b_frame, "set k2 changed", "ok")
    await expect_list(a_line, f"session {b_frame.id}", "session", ["k1=v1", "k2=changed"])
    await expect_reply(a_frame, "set-session x=1 y=2", "ok")
    await expect_list(b_ws, f"session {a_frame.id}", "session", ["x=1", "y=2"])
    check_eq(sorted(await ctl("session", a_frame.id)), ["x=1", "y=2"], "gwxctl session")
    # get_client_sessions_by_group: blue = a_frame {x,y}, b_ws {}, b_line {only}
    reply = await a_ws.cmd("group-sessions blue")
    parts = reply.split(" ")
    check_eq(parts[0], "group-sessions", f"group-sessions reply {reply!r}")
    check_eq(sorted(parts[1:]),
             sorted([f"{a_frame.id}{{x=1,y=2}}", f"{b_ws.id}{{}}", f"{b_line.id}{{only=this}}"]),
             "group-sessions blue")
    # get_session of a client that is not there: offline (gwxctl exits 1)
    await ctl("session", "00" * 24, expect_status=1)
    log("set/update/get session from gwxctl and from handlers, across gateways; "
        "group sessions")

    # ---- sends with lists and excludes ----------------------------------------------------------
    await push_and_check(a_line, f"to-clients {a_ws.id},{b_frame.id} multi", "multi",
                         [a_ws, b_frame], everyone, "send_to_clients")
    await push_and_check(a_line, f"to-group-except red,blue {b_ws.id},{a_frame.id} grp-ex",
                         "grp-ex", [a_ws, a_line, b_line], everyone,
                         "send_to_group with excludes")
    await push_and_check(b_frame, f"to-all-except {a_ws.id},{a_line.id},{b_frame.id} all-ex",
                         "all-ex", [a_frame, b_ws, b_line], everyone, "send_to_all with excludes")

    # ---- destroy_client -------------------------------------------------------------------------
    # From a handler: b_ws (alice, red, blue) on gw-b, asked by a client on gw-a. A WebSocket
    # client sees the TCP connection end without a close frame (1006 in websockets' terms).
    await expect_reply(a_line, f"destroy {b_ws.id}", "ok")
    try:
        msg = await asyncio.wait_for(b_ws.ws.recv(), REPLY_TIMEOUT)
        raise AssertionError(f"destroyed client received {msg!r}")
    except websockets.exceptions.ConnectionClosed as e:
        check(e.rcvd is None,
              f"destroy_client must cut the connection without a close frame, got {e.rcvd!r}")
    await poll_until(lambda: a_line.cmd(f"online {b_ws.id}"), lambda r: r == "online 0",
                     REPLY_TIMEOUT, "destroyed client offline")
    await expect_list(a_line, "group-clients red", "group-clients", sorted([a_ws.id, a_line.id]))
    await expect_list(a_line, "group-clients blue", "group-clients",
                      sorted([a_frame.id, b_line.id]))
    await expect_list(a_line, "uid-clients alice", "uid-clients", [a_ws.id])
    # From outside: gwxctl destroy of a TCP client on gw-a, which sees EOF with nothing before it.
    await ctl("destroy", a_frame.id)
    await a_frame.expect_closed()
    await poll_until(lambda: b_line.cmd(f"online {a_frame.id}"), lambda r: r == "online 0",
                     REPLY_TIMEOUT, "gwxctl-destroyed client offline")
    remaining = [a_ws, a_line, b_line, b_frame]
    await expect_list(b_line, "clients", "clients", sorted(x.id for x in remaining))
    check_eq(await query_int(b_frame, "count", "count"), 4, "count after two destroys")
    await assert_quiet(remaining, "after destroy_client")
    # A destroyed client's id stays offline; destroying it again is harmless.
    await expect_reply(b_frame, f"destroy {b_ws.id}", "ok")
    await expect_reply(b_frame, f"online {b_ws.id}", "online 0")
    log("destroy_client (handler and gwxctl): cut at once, membership gone, bystanders fine")

    # ---- gwxctl workers: each worker with its gateways, clients and state ----------------------
    w2 = await c.start_worker([reg.addr], "commands", name="worker-two")
    await c.wait_linked([w2], [ga, gb])
    # New clients are spread over both workers (round robin on each of gw-b's loops).
    late = [await connect(gb, "ws", f"late{i}") for i in range(6)]
    for x in late:
        await fetch_id(x)
    rows = {}
    totals = {}
    for line in await ctl("workers"):
        m = re.match(r"^(\S+) (\S+) gateway=(\S+) clients=(\d+) events_in_flight=(\d+) "
                     r"state=(linked|draining)$", line)
        t = re.match(r"^worker (\S+) gateways=(\d+) clients=(\d+) events_in_flight=(\d+) "
                     r"state=(linked|draining)$", line)
        check(m or t, f"gwxctl workers: unexpected line {line!r}")
        if t:
            totals[t.group(1)] = (int(t.group(2)), int(t.group(3)))
        else:
            rows[(m.group(1), m.group(3))] = (m.group(2), int(m.group(4)), m.group(6))
    check_eq(sorted(rows), sorted((n, g.internal) for n in ("worker", "worker-two")
                                  for g in (ga, gb)), "gwxctl workers: worker x gateway rows")
    for (name, gw_addr), (addr, n, state) in rows.items():
        check(re.match(r"^127\.0\.0\.1:\d+$", addr), f"worker address {addr!r}")
        check_eq(state, "linked", f"{name} on {gw_addr}: state")
    # 4 clients left before the late ones (each has sent events, so each is stuck to a worker).
    check_eq(sum(n for _, n, _ in rows.values()), 10, "gwxctl workers: clients over all rows")
    check_eq(totals.get("worker", (0, 0))[0], 2, "worker: gateways")
    check_eq(totals["worker"][1] + totals["worker-two"][1], 10, "gwxctl workers: totals")
    check(totals["worker-two"][1] >= 1, f"the second worker got none of the new clients: {rows}")
    log(f"gwxctl workers: {totals}")

    check(not w.has_line(r"^unlinked"), "the worker's link dropped during the test")


if __name__ == "__main__":
    run_test(main)
