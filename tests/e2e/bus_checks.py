"""What every push bus mode must do, shared by test_bus_redis.py and test_bus_amqp.py.

`BusCluster` is one register, two gateways subscribed to the bus (each with --metrics), a
worker running the `commands` app (clients use it to bind uids, join groups, read their session
and prove with a sentinel that nothing unexpected reached them) and four clients, two on each
gateway. A test publishes bus messages from outside (redis-cli, python3-redis, python3-pika)
through `publish(pubs)`, `pubs` being (routing_key, json) pairs — the key matters in AMQP routed
mode only.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request

from gwx_cluster import (REPLY_TIMEOUT, assert_quiet, check, check_eq, connect, expect_reply,
                         fetch_id, log, poll_until)


def scrape(addr):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text, name, **labels):
    """The value of one sample (labels must match exactly the given ones among the sample's)."""
    total = None
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r"^(\w+)(\{([^}]*)\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total = (total or 0) + float(m.group(4))
    return total


class BusCluster:
    def __init__(self, h):
        self.h = h
        self.c = h.cluster

    async def start(self, bus_url, worker_extra=(), gateway_extra=()):
        c = self.c
        self.register = await c.start_register()
        regs = [self.register.addr]
        self.gateways = []
        for name in ("gw-a", "gw-b"):
            g = await c.start_gateway(regs, name=name, extra=[
                "--bus", bus_url, "--metrics", "127.0.0.1:0", "--bus-max-message", "65536",
                *gateway_extra])
            m, _ = await g.wait_line(r"^listening metrics://(\S+)\s*$")
            g.metrics = m.group(1)
            self.gateways.append(g)
        self.ga, self.gb = self.gateways
        self.worker = await c.start_worker(regs, "commands", name="worker", extra=worker_extra)
        await c.wait_linked([self.worker], self.gateways)
        # Subscribed before any client talks: a worker pushing through the bus sends even its
        # replies that way.
        await self.wait_connected()
        self.a1 = await connect(self.ga, "ws", "a1")
        self.a2 = await connect(self.ga, "tcp+line", "a2")
        self.b1 = await connect(self.gb, "ws", "b1")
        self.b2 = await connect(self.gb, "tcp+frame", "b2")
        self.everyone = [self.a1, self.a2, self.b1, self.b2]
        for x in self.everyone:
            await fetch_id(x)
        return self

    async def metrics(self, g):
        return await asyncio.to_thread(scrape, g.metrics)

    async def bus_value(self, g, name, **labels):
        return metric(await self.metrics(g), name, **labels)

    async def wait_connected(self, up=True, timeout=60):
        for g in self.gateways:
            async def probe(g=g):
                return await self.bus_value(g, "gwx_gateway_bus_connected")
            await poll_until(probe, lambda v: v == (1.0 if up else 0.0), timeout,
                             f"{g.name}: gwx_gateway_bus_connected == {1 if up else 0}")
        log(f"bus {'connected' if up else 'disconnected'} on both gateways")

    async def received(self):
        return {g.name: await self.bus_value(g, "gwx_gateway_bus_messages_total", result="received")
                for g in self.gateways}

    def client_key(self, client):
        """The routing key of the gateway holding `client` (README: client.<id minus 16 hex>)."""
        return "client." + client.id[:-16]


async def expect_push(recipients, text, everyone, what, binary=False):
    async def one(c):
        if binary:
            msg = await asyncio.wait_for(c.ws.recv(), REPLY_TIMEOUT)
            check(isinstance(msg, bytes), f"{what}: {c.name} got a text frame, expected binary")
            check_eq(msg, text, f"{what}: {c.name}")
        else:
            check_eq(await c.recv(), text, f"{what}: {c.name}")
    await asyncio.gather(*(one(c) for c in recipients))
    others = [c for c in everyone if c not in recipients]
    await assert_quiet(others, what)
    log(f"{what}: reached {[c.name for c in recipients]}, not {[c.name for c in others]}")


def op(**fields):
    return json.dumps(fields, separators=(",", ":"))


async def check_every_op(bc: BusCluster, publish, routed=False, before_push=None):
    """Every op of the README reaches exactly its clients on both gateways and nobody else.

    `before_push(keys)` (routed mode) waits until the gateways have bound `keys` ({routing
    key: set of "a"/"b", the gateways holding it}), so that a push published right after
    reaches them."""
    a1, a2, b1, b2 = bc.a1, bc.a2, bc.b1, bc.b2
    everyone = bc.everyone
    ka, kb = bc.client_key(a1), bc.client_key(b1)
    check(ka != kb and ka == bc.client_key(a2) and kb == bc.client_key(b2),
          "client keys: one per gateway")

    for x, uid in ((a1, "alice"), (b1, "alice"), (a2, "bob")):
        await expect_reply(x, f"bind {uid}", "ok")
    for x, group in ((a1, "room"), (b2, "room"), (b1, "lobby")):
        await expect_reply(x, f"join {group}", "ok")
    if before_push:
        await before_push({"all": {"a", "b"}, "uid.alice": {"a", "b"}, "uid.bob": {"a"},
                           "group.room": {"a", "b"}, "group.lobby": {"b"}})

    await publish([("uid.alice", op(op="send_to_uid", uids=["alice"], data="to alice"))])
    await expect_push([a1, b1], "to alice", everyone, "send_to_uid alice")

    if routed:
        pubs = [("uid.alice", op(op="send_to_uid", uids=["alice"], data="to alice+bob")),
                ("uid.bob", op(op="send_to_uid", uids=["bob"], data="to alice+bob"))]
    else:
        pubs = [("all", op(op="send_to_uid", uids=["alice", "bob"], data="to alice+bob"))]
    await publish(pubs)
    await expect_push([a1, b1, a2], "to alice+bob", everyone, "send_to_uid alice, bob")

    if routed:
        pubs = [(ka, op(op="send_to_client", client_ids=[a2.id], data="to clients")),
                (kb, op(op="send_to_client", client_ids=[b2.id], data="to clients"))]
    else:
        pubs = [("all", op(op="send_to_client", client_ids=[a2.id, b2.id], data="to clients"))]
    await publish(pubs)
    await expect_push([a2, b2], "to clients", everyone, "send_to_client a2, b2")

    await publish([(kb, op(op="send_to_client", client_ids=[b1.id], data_b64="AAEC/w=="))])
    await expect_push([b1], b"\x00\x01\x02\xff", everyone, "send_to_client data_b64", binary=True)

    await publish([("group.room", op(op="send_to_group", groups=["room"], exclude=[a1.id],
                                     data="to room"))])
    await expect_push([b2], "to room", everyone, "send_to_group room exclude a1")

    await publish([("all", op(op="send_to_all", only=[a1.id, b2.id], exclude=[b2.id],
                              data="only a1"))])
    await expect_push([a1], "only a1", everyone, "send_to_all only a1+b2 exclude b2")

    await publish([("all", op(op="send_to_all", exclude=[a2.id], data="to all"))])
    await expect_push([a1, b1, b2], "to all", everyone, "send_to_all exclude a2")

    # Membership through the bus, read back through the links.
    await publish([(ka, op(op="join_group", client_id=a2.id, group="vip")),
                   (kb, op(op="bind_uid", client_id=b2.id, uid="carol"))])
    await poll_until(lambda: a2.cmd(f"groups {a2.id}"), lambda r: r == "groups vip", 10,
                     "join_group via the bus")
    # The two gateways read the bus each at its own pace: gw-b may bind after gw-a has joined.
    await poll_until(lambda: b2.cmd(f"uid-of {b2.id}"), lambda r: r == "uid-of carol", 10,
                     "bind_uid via the bus")
    if before_push:
        await before_push({"group.vip": {"a"}, "uid.carol": {"b"}})
    await publish([("group.vip", op(op="send_to_group", groups=["vip"], data="to vip"))])
    await expect_push([a2], "to vip", everyone, "send_to_group after join_group")
    await publish([("uid.carol", op(op="send_to_uid", uids=["carol"], data="to carol"))])
    await expect_push([b2], "to carol", everyone, "send_to_uid after bind_uid")

    await publish([(ka, op(op="leave_group", client_id=a2.id, group="vip")),
                   (kb, op(op="unbind_uid", client_id=b2.id))])
    await poll_until(lambda: a2.cmd(f"groups {a2.id}"), lambda r: r == "groups", 10,
                     "leave_group via the bus")
    await poll_until(lambda: b2.cmd(f"uid-of {b2.id}"), lambda r: r == "uid-of", 10,
                     "unbind_uid via the bus")
    if before_push:
        await before_push({"group.vip": set(), "uid.carol": set()})
    await publish([("all", op(op="send_to_group", groups=["vip"], data="nobody")),
                   ("all", op(op="send_to_uid", uids=["carol"], data="nobody"))])
    await assert_quiet(everyone, "send to a left group and an unbound uid")

    await publish([("group.room", op(op="ungroup", group="room"))])
    await poll_until(lambda: a1.cmd("group-count room"), lambda r: r == "group-count 0", 10,
                     "ungroup via the bus")

    await publish([(ka, op(op="update_session", client_id=a1.id,
                           session={"plan": "gold", "tmp": "x"}))])
    await poll_until(lambda: a1.cmd("get plan"), lambda r: r == "value gold", 10,
                     "update_session via the bus")
    await publish([(ka, op(op="update_session", client_id=a1.id, session={"tmp": None}))])
    await poll_until(lambda: a1.cmd("get tmp"), lambda r: r == "value", 10,
                     "update_session null erases")
    await expect_reply(a1, "get plan", "value gold")
    log("membership and session ops applied: join/leave_group, bind/unbind_uid, ungroup, "
        "update_session")

    await publish([(kb, op(op="close_client", client_ids=[b2.id], data="bye"))])
    check_eq(await b2.recv(), "bye", "close_client: final message first")
    await b2.expect_closed()
    bc.everyone = [a1, a2, b1]
    await assert_quiet(bc.everyone, "close_client b2")
    log("close_client: b2 got 'bye' and was closed; the others stay")


async def check_hostile(bc: BusCluster, publish_raw, big_ok=True):
    """Garbage, 10 MB, deep nesting, wrong types, unknown ops: counted by reason, the gateways
    keep serving and keep applying good messages."""
    before = {g.name: await bc.metrics(g) for g in bc.gateways}
    bad = [b"garbage{", b"[1,2]", b'{"op":"send_to_uid","uids":"alice","data":"x"}',
           b'{"op":"send_to_uid","uids":[1],"data":"x"}', b'{"op":"launch"}',
           b'{"op":"send_to_all","data":"x","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
           b"\xff\xfe\x00"]
    if big_ok:
        bad.append(b'{"op":"send_to_all","data":"' + b"x" * (10 << 20) + b'"}')
    for payload in bad:
        await publish_raw(payload)
    # Every hostile message counted (Redis: the 10 MB one makes the gateway drop its
    # connection rather than read it, and subscribe again) before the good one is published.
    for g in bc.gateways:
        base = metric(before[g.name], "gwx_gateway_bus_messages_total", result="rejected") or 0

        async def rejected(g=g):
            return await bc.bus_value(g, "gwx_gateway_bus_messages_total", result="rejected")
        await poll_until(rejected, lambda v, base=base: v is not None and v - base >= len(bad),
                         60, f"{g.name}: {len(bad)} hostile messages rejected")
    await bc.wait_connected()
    await publish_raw(op(op="send_to_all", data="still here").encode())
    await expect_push(bc.everyone, "still here", bc.everyone, "a good message after hostile ones")
    for g in bc.gateways:
        text = await bc.metrics(g)

        def delta(reason, text=text, g=g):
            b = metric(before[g.name], "gwx_gateway_bus_rejected_total", reason=reason) or 0
            return (metric(text, "gwx_gateway_bus_rejected_total", reason=reason) or 0) - b

        check_eq(delta("invalid_json"), 3, f"{g.name}: rejected invalid_json")
        check_eq(delta("bad_field"), 2, f"{g.name}: rejected bad_field")
        check_eq(delta("unknown_op"), 1, f"{g.name}: rejected unknown_op")
        check_eq(delta("too_deep"), 1, f"{g.name}: rejected too_deep")
        if big_ok:
            check_eq(delta("too_large"), 1, f"{g.name}: rejected too_large")
    for x in bc.everyone:
        await expect_reply(x, "echo alive", "alive")
    log("hostile bus messages: counted by reason on both gateways, every client still served")
