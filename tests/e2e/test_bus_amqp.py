#!/usr/bin/python3
"""The push bus through RabbitMQ: AMQP fanout, then AMQP routed (issue 8).

One private RabbitMQ node for the whole test (own node name, ports, Mnesia and log folders, no
plugins), published to with python3-pika.

Fanout: two gateways with `--bus amqp://…?exchange=gwx.fanout&mode=fanout`, a worker with the
`commands` app: every op reaches exactly its clients on both gateways; hostile messages
(garbage, 10 MB, deep nesting, wrong types) are counted and the gateways keep serving.

Routed: two new gateways with `mode=routed` and a worker with `--push-via bus` (its writes,
replies included, go through the exchange): every op again, published with the routing key of
its target; `rabbitmqctl list_bindings` shows `uid.dave` bound only to the queue of the gateway
holding dave, gone once dave's last client closed; a send_to_uid while one gateway holds the uid
is received by that gateway alone (bus metrics); the node is killed and restarted: no client is
disconnected, every binding comes back, pushes resume.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (ClientClosed, TestFailure, assert_quiet, check,  # noqa: E402
                         check_eq, check_memory, connect, expect_reply, fetch_id, log,
                         poll_until, run_test)
from bus_brokers import RabbitServer  # noqa: E402
from bus_checks import (BusCluster, check_every_op, check_hostile, expect_push,  # noqa: E402
                        metric, op)

try:
    import pika
except ImportError:
    sys.stderr.write("test_bus_amqp: python3-pika is missing (apt-get install python3-pika)\n")
    sys.exit(1)


class Publisher:
    """A pika connection publishing to one exchange (declared as the gateways declare it)."""

    def __init__(self, port, exchange, kind):
        self.exchange = exchange
        self.conn = pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=port, credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=3, retry_delay=1))
        self.ch = self.conn.channel()
        self.ch.exchange_declare(exchange=exchange, exchange_type=kind, durable=False)

    def publish(self, key, body):
        if isinstance(body, str):
            body = body.encode()
        self.ch.basic_publish(exchange=self.exchange, routing_key=key, body=body)

    def close(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the broker may be gone
            pass


async def echo_through_restarted_bus(client):
    """An echo answered through the bus after a broker restart. The worker's publisher may
    lose what it sent into the dead connection (at-most-once), so a few distinct tries."""
    for attempt in range(4):
        token = f"alive-{attempt}"
        await client.send(f"echo {token}")
        try:
            while True:
                got = await client.recv(5.0)
                if got == token:
                    return
        except ClientClosed:
            raise
        except TestFailure:
            continue
    raise TestFailure(f"{client.name}: no echo through the bus after the broker restart")


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise TestFailure(f"no VmHWM for pid {pid}")


async def check_huge_message_costs_one_frame(bc, publish_raw):
    """A 100 MiB message (over the gateways' limit) is skipped frame by frame: neither gateway's
    peak resident memory grows by anything near its size."""
    peaks = {g.name: peak_rss_kib(g.pid) for g in bc.gateways}
    before = {g.name: await bc.bus_value(g, "gwx_gateway_bus_rejected_total", reason="too_large")
              or 0 for g in bc.gateways}
    await publish_raw(b'{"op":"send_to_all","data":"' + b"x" * (100 << 20) + b'"}')
    grown = {}
    for g in bc.gateways:
        async def too_large(g=g):
            return await bc.bus_value(g, "gwx_gateway_bus_rejected_total", reason="too_large")
        await poll_until(too_large, lambda v, g=g: (v or 0) - before[g.name] == 1, 60,
                         f"{g.name}: the 100 MiB message rejected")
        grown[g.name] = peak_rss_kib(g.pid) - peaks[g.name]
        check_memory(grown[g.name], 24 << 10,
                     f"{g.name}: peak RSS while skipping a 100 MiB bus message")
    await publish_raw(op(op="send_to_all", data="after the huge one").encode())
    await expect_push(bc.everyone, "after the huge one", bc.everyone, "a push after 100 MiB")
    log(f"a 100 MiB bus message: rejected as too large, the gateways' peak RSS grew {grown} KiB")


async def check_broker_closing_the_connection(bc, rabbit):
    """The broker closes every connection (connection.close on channel 0): each gateway says
    why, reconnects and applies pushes again."""
    connects = {g.name: await bc.bus_value(g, "gwx_gateway_bus_connects_total")
                for g in bc.gateways}
    await rabbit.ctl("close_all_connections", "closed by the e2e test")
    for g in bc.gateways:
        async def said(g=g):
            with open(g.stderr_path, encoding="utf-8", errors="replace") as f:
                return [ln for ln in f if "the broker closed the connection: 320 " in ln]
        lines = await poll_until(said, bool, 30, f"{g.name}: logs that the broker closed")
        check("closed by the e2e test" in lines[0], f"{g.name}: the broker's reason {lines}")

        async def reconnected(g=g):
            return await bc.bus_value(g, "gwx_gateway_bus_connects_total")
        await poll_until(reconnected, lambda v, g=g: v > connects[g.name], 60,
                         f"{g.name}: the bus reconnected")
    await bc.wait_connected(True)
    pub = await asyncio.to_thread(Publisher, rabbit.port, "gwx.fanout", "fanout")
    await asyncio.to_thread(pub.publish, "", op(op="send_to_all", data="after the close"))
    await expect_push(bc.everyone, "after the close", bc.everyone, "a push after close_all")
    pub.close()
    log("rabbitmqctl close_all_connections: each gateway logged the broker's reason, "
        "reconnected and applied pushes again")


async def fanout_phase(h, rabbit):
    bc = await BusCluster(h).start(rabbit.url("gwx.fanout", "fanout"))
    pub = await asyncio.to_thread(Publisher, rabbit.port, "gwx.fanout", "fanout")

    async def publish(pubs):
        for key, text in pubs:
            await asyncio.to_thread(pub.publish, key, text)

    async def publish_raw(payload):
        await asyncio.to_thread(pub.publish, "", payload)

    bindings = await rabbit.bindings("gwx.fanout")
    check_eq(len(bindings.get("", set())), 2, f"fanout: one binding per gateway queue {bindings}")
    await check_every_op(bc, publish)
    await check_hostile(bc, publish_raw)
    for g in bc.gateways:
        check_eq(await bc.bus_value(g, "gwx_gateway_bus_bindings"), 1.0, f"{g.name} bindings")
    await check_huge_message_costs_one_frame(bc, publish_raw)
    pub.close()
    await check_broker_closing_the_connection(bc, rabbit)
    for p in [bc.worker, *bc.gateways, bc.register]:
        await p.stop()
    log("fanout: done; its cluster stopped")


async def routed_phase(h, rabbit):
    ex = "gwx.routed"
    url = rabbit.url(ex, "routed")
    bc = await BusCluster(h).start(url, worker_extra=["--push-via", "bus", "--bus", url])
    pub = await asyncio.to_thread(Publisher, rabbit.port, ex, "direct")
    ka, kb = bc.client_key(bc.a1), bc.client_key(bc.b1)

    async def queue_of(key):
        b = await rabbit.bindings(ex)
        check_eq(len(b.get(key, set())), 1, f"binding of {key} ({b})")
        return next(iter(b[key]))

    # Each rabbitmqctl call starts an Erlang VM: 1-2 s on an idle machine, 10-20 s on a loaded
    # one, so a wait for bindings allows several slow calls.
    bindings_timeout = 150

    qa, qb = await queue_of(ka), await queue_of(kb)
    check(qa != qb, "each gateway has its own queue")

    async def wait_bindings(expected):
        """`expected`: {routing key: set of queues}, for the keys named."""
        async def probe():
            return await rabbit.bindings(ex)
        return await poll_until(
            probe, lambda b: all(b.get(k, set()) == v for k, v in expected.items()),
            bindings_timeout, f"bindings {expected}", interval=0.3)

    async def before_push(keys):
        queues = {"a": qa, "b": qb}
        await wait_bindings({k: {queues[g] for g in v} for k, v in keys.items()})

    async def publish(pubs):
        for key, text in pubs:
            await asyncio.to_thread(pub.publish, key, text)

    await check_every_op(bc, publish, routed=True, before_push=before_push)

    # uid.dave: held by one client of gw-a only.
    dave = await connect(bc.ga, "ws", "dave")
    await fetch_id(dave)
    bc.everyone.append(dave)
    await expect_reply(dave, "bind dave", "ok")
    await wait_bindings({"uid.dave": {qa}})
    log(f"rabbitmqctl list_bindings: uid.dave bound to {qa} (gw-a) only")
    before = await bc.received()
    await publish([("uid.dave", op(op="send_to_uid", uids=["dave"], data="to dave"))])
    check_eq(await dave.recv(), "to dave", "dave: routed send_to_uid")
    after = await bc.received()
    check_eq(after[bc.ga.name] - before[bc.ga.name], 1.0, "gw-a bus messages received for uid.dave")
    check_eq(after[bc.gb.name] - before[bc.gb.name], 0.0, "gw-b bus messages received for uid.dave")
    # (The sentinels below travel through the bus too: the worker pushes via the bus.)
    await assert_quiet([x for x in bc.everyone if x is not dave], "routed send_to_uid dave")
    log("send_to_uid dave: received by gw-a's bus only (gw-b's counter unchanged)")

    # The worker's own send_to_uid goes through the bus to gw-a only: `to-uid` from b1.
    before = await bc.received()
    await bc.b1.send("to-uid dave from the worker")
    check_eq(await bc.b1.recv(), "ok", "b1: to-uid reply (through the bus)")
    check_eq(await dave.recv(), "from the worker", "dave: worker push through the bus")
    after = await bc.received()
    # gw-b received the `ok` reply to b1 (its client key) but not the push to dave.
    check_eq(after[bc.ga.name] - before[bc.ga.name], 1.0, "gw-a: the worker's send_to_uid")
    check_eq(after[bc.gb.name] - before[bc.gb.name], 1.0, "gw-b: only the reply to b1")
    log("worker --push-via bus: its send_to_uid reached gw-a alone")

    await dave.close()
    bc.everyone.remove(dave)
    await wait_bindings({"uid.dave": set()})
    log("dave's last client closed: uid.dave unbound")

    # Hostile input in routed mode too (on `all`, which every gateway binds).
    async def publish_raw(payload):
        await asyncio.to_thread(pub.publish, "all", payload)
    await check_hostile(bc, publish_raw)

    # The node is killed and restarted: clients stay, bindings come back, pushes resume.
    held = await rabbit.bindings(ex)
    pub.close()
    await rabbit.kill()
    await bc.wait_connected(False)
    # The worker's replies travel through the bus, so none can come back now; the clients'
    # connections must survive, which the replies after the restart prove.
    await rabbit.start()
    await bc.wait_connected(True, timeout=90)
    # The queues are new (exclusive queues die with their connection) under the same names;
    # the gateways bind before they consume, so `connected` already implies the bindings, but
    # the broker may list them a moment later.
    await poll_until(lambda: rabbit.bindings(ex), lambda b: b == held, bindings_timeout,
                     "bindings after the broker restart", interval=0.5)
    for x in bc.everyone:
        await echo_through_restarted_bus(x)
    pub = await asyncio.to_thread(Publisher, rabbit.port, ex, "direct")
    await publish([("uid.alice", op(op="send_to_uid", uids=["alice"], data="after restart"))])
    await expect_push([bc.a1, bc.b1], "after restart", bc.everyone, "routed push after restart")
    for g in bc.gateways:
        text = await bc.metrics(g)
        check(metric(text, "gwx_gateway_bus_connects_total") >= 2,
              f"{g.name}: the bus reconnected")
    pub.close()
    log("rabbitmq killed and restarted: no client disconnected, bindings restored, "
        "pushes resumed")


async def main(h):
    rabbit = await RabbitServer(h).start()
    await fanout_phase(h, rabbit)
    await routed_phase(h, rabbit)


if __name__ == "__main__":
    run_test(main)
