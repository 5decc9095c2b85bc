#!/usr/bin/python3
"""A cluster across hosts (network namespaces, tests/e2e/netns.py) under real network faults.

Hosts: `reg` (ctl), `gw1` and `gw2` (pub, data, ctl), `gw3` (the same; started late), `w1` and
`w2` (data, ctl), and `ops`, where the test itself and its clients and gwxctl run. Every process
uses the product's default timeouts (link keepalive 1 s / 5 s, lease 6 s): the figures are what
an operator would see. Both workers run the `commands` app; the load is 60 clients (WebSocket
and tcp+line, both gateways) sending numbered `echo` commands, at most 4 unanswered each.

1. Addresses: each gateway advertises its own 198.18.0.x address (the workers print `linked` for
   it; `gwxctl gateways` lists it); nothing in the cluster is on loopback.
2. gw1 cut from the workers (its `data` port down: packets vanish, no reset) for 10 s under the
   load. Both workers must print `unlinked gw1` (the detection time is printed); during the cut
   gw2 keeps answering its clients, a group push from gw2 reaches gw2's member, `count` from a
   gw2 client counts gw2's clients, and `gwxctl stats` returns in bounded time with gw2's line
   and names gw1 as `no answer`. gw1 keeps its clients (its metrics, read over `pub`, show the
   events queued). After the heal both workers link gw1 again; the load settles with every
   message answered in order, lost = 0, no client disconnected (duplicates are allowed: events
   in flight at the cut are redelivered, and counted).
3. The register cut away (its `ctl` port down) for 8 s, past the gateways' lease TTL, under a
   fresh load: nothing on the data path notices. No worker prints `unlinked`, no gateway logs a
   worker's unlink, pushes and `count` (all clients of both gateways) keep working, and after the
   heal the register knows both gateways again and a new gateway (gw3) started after the heal is
   linked by both workers — the watchers are live — while the old links were never dropped; the
   load settles with nothing lost, nothing duplicated, no disconnect.
4. gw2's host cut from every internal network (`data` and `ctl`) for 10 s under a load on the
   three gateways: the workers drop it, the register drops it when its lease lapses, a push from
   gw1 reaches gw1; its clients stay connected; after the heal it registers again, the workers
   link it and its clients' events are answered in order (lost 0).
5. w1's host cut off under load: every gateway drops w1 within the keepalive bound, w1's
   unacknowledged events are redelivered to w2 (counted, > 0) and every client is answered
   again; after the heal w1 links every gateway again; lost 0, no disconnect.
"""

import asyncio
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    assert_quiet, check, check_eq, connect, expect_reply, log, poll_until,
    push_and_check, query_int)
from netns import run_netns_test  # noqa: E402
from upgrade_load import Ctl, EchoLoad, parse_stats  # noqa: E402

HOSTS = {
    "reg": ("ctl",),
    "gw1": ("pub", "data", "ctl"),
    "gw2": ("pub", "data", "ctl"),
    "gw3": ("pub", "data", "ctl"),
    "w1": ("data", "ctl"),
    "w2": ("data", "ctl"),
}
CUT_S = 10.0
# Past the 6 s lease (so the register drops every gateway meanwhile) but shorter than the
# watchers' gRPC keepalive needs to declare their streams dead (10 s + 5 s): the register's
# news of the lapsed leases reaches the workers when the partition heals.
REG_CUT_S = 8.0
CLIENTS = 60
WINDOW = 4
# Detection: the link keepalive's 5 s timeout plus its 1 s interval, plus a margin for a busy
# machine.
DETECT_BOUND_S = 5.0 + 1.0 + 4.0
# After a heal: the link backoff's 5 s ceiling plus a margin.
RELINK_BOUND_S = 5.0 + 10.0
GWXCTL_BOUND_S = 10.0
# The worker's default query timeout (cluster_options::query_timeout).
QUERY_TIMEOUT_S = 3.0


def metric(text, name):
    """Sum of every sample of `name` in a Prometheus text page."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def scrape(addr):
    def get():
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=5) as r:
            return r.read().decode()
    return await asyncio.get_running_loop().run_in_executor(None, get)


def by_gateway(load, gw):
    """The load's clients connected to `gw` (EchoLoad spreads client i over gateway i % n)."""
    return [lc for i, lc in enumerate(load.clients) if load.gateways[i % len(load.gateways)] is gw]


async def wait_answers(clients, count, what, timeout=30.0):
    """Waits until `clients` together got `count` more distinct echoes."""
    target = sum(lc.next for lc in clients) + count
    await poll_until(lambda: asyncio.sleep(0, sum(lc.next for lc in clients)),
                     lambda v: v >= target, timeout, what)


async def heal_and_settle(c, fabric, ctl, load, workers, gw, networks, gws):
    """Heals `gw`'s host on `networks`, waits until both workers link it again and its clients
    are answered, settles the load; returns (seconds to relink, `gwxctl stats` sums)."""
    marks = {w: len(w.lines) for w in workers}
    fabric.heal(fabric.hosts[gw.name], *networks)
    t_heal = time.monotonic()
    await c.wait_linked(workers, [gw], RELINK_BOUND_S, start=marks)
    relink = time.monotonic() - t_heal
    clients = by_gateway(load, gw)
    await wait_answers(clients, 2 * len(clients), f"{gw.name}'s clients answered after the heal")
    await load.settle()
    return relink, await ctl.stats_sum(gws)


async def main(h, fabric):
    c = h.cluster
    hosts = fabric.hosts
    reg = await c.start_register(listen=f"{hosts['reg'].addr['ctl']}:0",
                                 launcher=hosts["reg"].launcher)
    regs = [reg.addr]

    async def gateway(name):
        host = hosts[name]
        return await c.start_gateway(
            regs, name=name, launcher=host.launcher, threads=2,
            listeners=(f"ws://{host.addr['pub']}:0/", f"tcp+line://{host.addr['pub']}:0"),
            internal=f"{host.addr['data']}:0",
            extra=["--metrics", f"{host.addr['pub']}:0"])

    gw1 = await gateway("gw1")
    gw2 = await gateway("gw2")
    gws = [gw1, gw2]
    workers = [await c.start_worker(regs, "commands", name=n, launcher=hosts[n].launcher)
               for n in ("w1", "w2")]
    await c.wait_linked(workers, gws)
    metrics1 = (await gw1.wait_line(r"^listening metrics://(\S+)\s*$"))[0].group(1)

    # ---- 1. real addresses ------------------------------------------------------------------
    for g in gws:
        check(g.internal.startswith(hosts[g.name].addr["data"] + ":"),
              f"{g.name}: internal address {g.internal} is not its host's data address "
              f"{hosts[g.name].addr['data']}")
    ctl = Ctl(c, regs, timeout_ms=3000)
    out = await ctl.run("gateways")
    for g in gws:
        check(g.internal in out, f"gwxctl gateways: {g.internal} missing from {out!r}")
    check("127.0.0.1" not in out, f"gwxctl gateways: a loopback address in {out!r}")
    log(f"addresses: gateways advertise {[g.internal for g in gws]}, register {reg.addr}")

    # Push and query probes: m1 on gw1 and m2 on gw2 in group g; p2 on gw2 pushes and asks.
    m1 = await connect(gw1, "ws", "m1")
    m2 = await connect(gw2, "tcp+line", "m2")
    p2 = await connect(gw2, "ws", "p2")
    for m in (m1, m2):
        await expect_reply(m, "join g", "ok")
    probes = [m1, m2, p2]

    # ---- 2. gw1 cut from the workers under load --------------------------------------------
    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW, command="echo ", prefix="a")
    await load.connect()
    on_gw1, on_gw2 = by_gateway(load, gw1), by_gateway(load, gw2)
    load.start()
    await load.wait_progress(4 * CLIENTS, "load before the cut")
    before = await ctl.stats_sum(gws)
    marks = {w: len(w.lines) for w in workers}

    fabric.cut(hosts["gw1"], "data")
    t_cut = time.monotonic()
    sent_at_cut = {lc.name: lc.sent for lc in on_gw2}
    detected = {}

    async def unlinked(w):
        await w.wait_line(w.unlinked_pattern(gw1.internal), DETECT_BOUND_S, start=marks[w])
        detected[w.name] = time.monotonic() - t_cut

    async def early_count():
        """`count` asked before anyone noticed the cut: gw1 is silent, the answer must not wait
        for it longer than the query timeout."""
        t0 = time.monotonic()
        n = await query_int(p2, "count", "count")
        return n, time.monotonic() - t0

    early = asyncio.create_task(early_count())
    await asyncio.gather(*(unlinked(w) for w in workers))
    detection = max(detected.values())
    log(f"cut: workers unlinked gw1 after {', '.join(f'{k} {v:.2f}s' for k, v in detected.items())}")
    n_early, took_early = await early
    check_eq(n_early, len(on_gw2) + 2, "count asked right after the cut (gw2's clients)")
    check(took_early < QUERY_TIMEOUT_S + 3.0,
          f"count asked right after the cut took {took_early:.1f}s (query timeout "
          f"{QUERY_TIMEOUT_S:.0f}s)")
    log(f"count asked right after the cut answered in {took_early:.2f}s without gw1")

    # gw2's clients go on (everything they sent after the cut gets answered).
    await poll_until(lambda: asyncio.sleep(0, [lc for lc in on_gw2
                                               if lc.next <= sent_at_cut[lc.name]]),
                     lambda v: not v, 15.0, "gw2's clients answered during the cut")
    await push_and_check(p2, "to-group g during-cut", "during-cut", [m2], [m2, p2],
                         "group push during the cut (gw2's member)")
    count = await query_int(p2, "count", "count")
    check_eq(count, len(on_gw2) + 2, "count from gw2 during the cut (gw2's clients: the load's "
                                     "and the probes m2, p2)")
    t0 = time.monotonic()
    status, out, err = await c.run("gwxctl", ctl.base + ["stats"], timeout=GWXCTL_BOUND_S + 5)
    took = time.monotonic() - t0
    check(took < GWXCTL_BOUND_S, f"gwxctl stats took {took:.1f}s during the cut")
    check_eq(status, 1, f"gwxctl stats exit status during the cut (partial); stdout {out!r}, "
                        f"stderr {err!r}")
    check(f"no answer: {gw1.internal}" in out,
          f"gwxctl stats should name gw1 ({gw1.internal}) as not answering: {out!r}")
    check(gw2.internal in parse_stats(out), f"gwxctl stats: no line for gw2 in {out!r}")
    log(f"during the cut: gwxctl stats in {took:.2f}s names {gw1.internal} as no answer")

    # gw1's clients are connected and their events wait at gw1.
    page = await scrape(metrics1)
    queued = metric(page, "gwx_gateway_events_queued")
    open_conns = metric(page, "gwx_gateway_connections")
    check(queued > 0, f"gw1 queues no event during the cut (gwx_gateway_events_queued {queued})")
    check(open_conns >= len(on_gw1) + 1, f"gw1 has {open_conns} connections during the cut, "
                                        f"expected at least {len(on_gw1) + 1}")
    load.check_connected("during the cut")
    # The fault lasts CUT_S whatever the detection took: this is the length of the outage.
    await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - t_cut)))
    queued_end = metric(await scrape(metrics1), "gwx_gateway_events_queued")

    relink, after = await heal_and_settle(c, fabric, ctl, load, workers, gw1, ("data",), gws)
    redelivered = after["redelivered"] - before["redelivered"]
    load.report("netns gateway cut", {
        "cut_s": CUT_S, "detection_s": f"{detection:.2f}", "relink_s": f"{relink:.2f}",
        "queued_at_gw1": int(queued), "queued_at_heal": int(queued_end),
        "redelivered": redelivered, "dropped": after["dropped"] - before["dropped"]})
    load.check_no_loss("gateway cut from the workers for 10 s", allow_duplicates=True)
    check_eq(after["dropped"] - before["dropped"], 0, "events dropped by the gateways")
    # m1 missed the push of the cut (pushes are not queued); nothing else is pending for it,
    # and pushes reach both gateways again.
    await assert_quiet(probes, "after the heal")
    await push_and_check(p2, "to-group g after-heal", "after-heal", [m1, m2], probes,
                         "group push after the heal")
    await load.close()

    # ---- 3. the register cut away ------------------------------------------------------------
    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW, command="echo ", prefix="b")
    await load.connect()
    load.start()
    await load.wait_progress(2 * CLIENTS, "load before the register cut")
    # The first load's clients are closed once the gateways have seen their closes.
    await poll_until(lambda: query_int(p2, "count", "count"), lambda v: v == CLIENTS + 3, 10.0,
                     "count of the second load and the probes")
    marks = {p: len(p.lines) for p in workers}
    err_marks = {g: len(c.stderr_of(g)) for g in gws}
    before = await ctl.stats_sum(gws)
    fabric.cut(hosts["reg"], "ctl")
    t_cut = time.monotonic()
    while time.monotonic() - t_cut < REG_CUT_S:
        await push_and_check(p2, "to-group g reg-cut", "reg-cut", [m1, m2], probes,
                             "group push while the register is cut away", quiet=True)
        check_eq(await query_int(p2, "count", "count"), CLIENTS + 3,
                 "count while the register is cut away")
        await load.wait_progress(CLIENTS, "load while the register is cut away")
    log(f"register cut for {time.monotonic() - t_cut:.1f}s: pushes, count and the load went on")
    fabric.heal(hosts["reg"], "ctl")
    t_heal = time.monotonic()
    # The register really dropped the gateways meanwhile: its news reaches the workers now.
    lapsed = c.stderr_of(reg).count("lease lapsed")
    check(lapsed >= 2, f"the register did not drop both gateways' leases during the cut "
                       f"({lapsed} 'lease lapsed' lines): the cut was too short to test anything")

    async def listed():
        s, out, _ = await c.run("gwxctl", ctl.base + ["gateways"], timeout=GWXCTL_BOUND_S + 5)
        return s == 0 and all(g.internal in out for g in gws)
    await poll_until(listed, bool, 30.0, "the register lists both gateways after the heal",
                     interval=0.5)
    relisted = time.monotonic() - t_heal
    gw3 = await gateway("gw3")
    await c.wait_linked(workers, [gw3], 40.0)
    watchers_live = time.monotonic() - t_heal
    await load.wait_progress(CLIENTS, "load after the register heal")
    await load.settle()
    after = await ctl.stats_sum([gw1, gw2, gw3])
    unlinks = [ln for w in workers for ln in w.lines[marks[w]:] if ln.startswith("unlinked")]
    gw_unlinks = [ln for g in gws for ln in c.stderr_of(g)[err_marks[g]:].splitlines()
                  if re.search(r"worker '.*' unlinked", ln)]
    load.report("netns register cut", {
        "cut_s": REG_CUT_S, "leases_lapsed": lapsed, "relisted_s": f"{relisted:.2f}", "new_gateway_linked_s":
        f"{watchers_live:.2f}", "worker_unlinks": len(unlinks) + len(gw_unlinks),
        "redelivered": after["redelivered"] - before["redelivered"]})
    check(not unlinks, f"workers unlinked a gateway because the register was cut away: {unlinks}")
    check(not gw_unlinks, f"gateways lost a worker because the register was cut away: "
                          f"{gw_unlinks}")
    load.check_no_loss("register cut away", allow_duplicates=False)
    check_eq(after["redelivered"] - before["redelivered"], 0,
             "events redelivered while only the register was cut away")
    await load.close()

    # ---- 4. gw2's host cut from every internal network -------------------------------------
    gws = [gw1, gw2, gw3]
    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW, command="echo ", prefix="c")
    await load.connect()
    on_gw2 = by_gateway(load, gw2)
    load.start()
    await load.wait_progress(2 * CLIENTS, "load before gw2's host is cut off")
    before = await ctl.stats_sum(gws)
    marks = {w: len(w.lines) for w in workers}
    fabric.cut(hosts["gw2"], "data", "ctl")
    t_cut = time.monotonic()
    await asyncio.gather(*(w.wait_line(w.unlinked_pattern(gw2.internal), DETECT_BOUND_S,
                                       start=marks[w]) for w in workers))
    detection = time.monotonic() - t_cut
    # The register drops gw2 when its lease lapses; a push from gw1 reaches gw1's member only.
    await poll_until(lambda: ctl.run("gateways", expect_status=None),
                     lambda out: gw2.internal not in out, 15.0,
                     "the register drops gw2 once its lease lapsed", interval=0.5)
    lapsed = time.monotonic() - t_cut
    await push_and_check(m1, "to-group g host-cut", "host-cut", [m1], [m1],
                         "group push from gw1 while gw2's host is cut off")
    load.check_connected("while gw2's host is cut off")
    await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - t_cut)))
    relink, after = await heal_and_settle(c, fabric, ctl, load, workers, gw2, ("data", "ctl"),
                                          gws)
    load.report("netns gateway host cut", {
        "cut_s": CUT_S, "detection_s": f"{detection:.2f}", "lease_dropped_s": f"{lapsed:.2f}",
        "relink_s": f"{relink:.2f}", "redelivered": after["redelivered"] - before["redelivered"],
        "dropped": after["dropped"] - before["dropped"]})
    load.check_no_loss("gw2's host cut off for 10 s", allow_duplicates=True)
    check_eq(after["dropped"] - before["dropped"], 0, "events dropped by the gateways")
    await assert_quiet(probes, "after gw2's host healed")
    await load.close()

    # ---- 5. a worker's host cut off ----------------------------------------------------------
    w1 = workers[0]
    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW, command="echo ", prefix="d")
    await load.connect()
    load.start()
    await load.wait_progress(2 * CLIENTS, "load before w1's host is cut off")
    before = await ctl.stats_sum(gws)
    err_marks = {g: len(c.stderr_of(g)) for g in gws}
    fabric.cut(hosts["w1"], "data", "ctl")
    t_cut = time.monotonic()
    sent_at_cut = {lc.name: lc.sent for lc in load.clients}

    async def gateways_dropped_w1():
        return [g.name for g in gws
                if "worker 'w1' unlinked" not in c.stderr_of(g)[err_marks[g]:]]
    await poll_until(gateways_dropped_w1, lambda v: not v, DETECT_BOUND_S,
                     "every gateway drops w1 (link keepalive)", interval=0.1)
    detection = time.monotonic() - t_cut
    # Every client is answered again (w1's clients by w2, their unacknowledged events redelivered).
    await poll_until(lambda: asyncio.sleep(0, [lc.name for lc in load.clients
                                               if lc.next <= sent_at_cut[lc.name]]),
                     lambda v: not v, 15.0, "every client answered while w1 is cut off")
    resumed = time.monotonic() - t_cut
    marks = {w1: len(w1.lines)}
    fabric.heal(hosts["w1"], "data", "ctl")
    t_heal = time.monotonic()
    await c.wait_linked([w1], gws, RELINK_BOUND_S, start=marks)
    relink = time.monotonic() - t_heal
    await load.wait_progress(CLIENTS, "load after w1 is back")
    await load.settle()
    after = await ctl.stats_sum(gws)
    load.report("netns worker host cut", {
        "detection_s": f"{detection:.2f}", "all_answered_again_s": f"{resumed:.2f}",
        "relink_s": f"{relink:.2f}", "redelivered": after["redelivered"] - before["redelivered"],
        "dropped": after["dropped"] - before["dropped"]})
    load.check_no_loss("w1's host cut off", allow_duplicates=True)
    check(after["redelivered"] > before["redelivered"],
          "no event was redelivered although w1 vanished with events in flight")
    await load.close()


if __name__ == "__main__":
    run_netns_test(main, HOSTS)
