#!/usr/bin/python3
"""gwxctl against a running cluster: listing, stats, pushes, presence queries, kick, exit codes.

Cluster: 2 registers, 2 gateways, 1 worker with the `commands` app (clients use it to bind uids,
join groups and to prove with a sentinel that they received nothing unexpected). gwxctl runs as a
separate process for each verb, as an operator would run it from a shell.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import (  # noqa: E402
    REPLY_TIMEOUT, assert_quiet, check, check_eq, connect, expect_reply, fetch_id, log,
    poll_until, run_test)


async def main(h):
    c = h.cluster
    r1 = await c.start_register()
    r2 = await c.start_register()
    regs = [r1.addr, r2.addr]
    ga = await c.start_gateway(regs, name="gw-a")
    gb = await c.start_gateway(regs, name="gw-b")
    w = await c.start_worker(regs, "commands", name="worker")
    await c.wait_linked([w], [ga, gb])
    gwxctl_bin = c.binary("gwxctl")
    base = [gwxctl_bin, "--register", ",".join(regs), "--secret", c.secret, "--timeout-ms", "5000"]

    async def ctl(*words, expect_status=0, argv=None):
        status, out, err = await c.run("gwxctl", (argv or base) + list(words), timeout=30)
        check(status == expect_status,
              f"gwxctl {' '.join(words)}: exit status {status}, expected {expect_status}; "
              f"stdout {out!r}; stderr {err!r}")
        return out

    a_ws = await connect(ga, "ws", "a_ws")
    a_line = await connect(ga, "tcp+line", "a_line")
    b_ws = await connect(gb, "ws", "b_ws")
    b_frame = await connect(gb, "tcp+frame", "b_frame")
    everyone = [a_ws, a_line, b_ws, b_frame]
    for x in everyone:
        await fetch_id(x)
    for x in (a_ws, b_frame):
        await expect_reply(x, "bind u1", "ok")
    for x in (a_line, b_ws):
        await expect_reply(x, "join grp", "ok")

    # gateways
    out = await ctl("gateways")
    lines = [ln for ln in out.splitlines() if ln.strip()]
    check_eq(len(lines), 2, f"gwxctl gateways line count (output {out!r})")
    listed = sorted(ln.split()[1] for ln in lines)
    check_eq(listed, sorted([ga.internal, gb.internal]), "gwxctl gateways internal addresses")
    for g in (ga, gb):
        line = next(ln for ln in lines if ln.split()[1] == g.internal)
        for urls in g.urls.values():
            for u in urls:
                port = u.rsplit(":", 1)[1].split("/")[0]
                check(f":{port}" in line, f"gwxctl gateways: {g.name}'s listener {u} not in {line!r}")
    log("gateways: both listed with their internal addresses and listeners")

    # stats
    out = await ctl("stats")
    per_gw = {}
    for ln in out.splitlines():
        m = re.match(r"^(\S+) id=\S+ clients=(\d+) groups=(\d+) uids=(\d+) workers=(\d+)", ln)
        if m:
            per_gw[m.group(1)] = tuple(int(x) for x in m.groups()[1:])
    check_eq(sorted(per_gw), sorted([ga.internal, gb.internal]), f"stats gateways ({out!r})")
    check_eq(per_gw[ga.internal][0], 2, f"stats clients on gw-a ({out!r})")
    check_eq(per_gw[gb.internal][0], 2, f"stats clients on gw-b ({out!r})")
    check_eq(per_gw[ga.internal][3], 1, f"stats workers on gw-a ({out!r})")
    total = re.search(r"^total gateways=(\d+) clients=(\d+) groups=(\d+) uids=(\d+) workers=(\d+)",
                      out, re.M)
    check(total, f"stats: no total line in {out!r}")
    check_eq(tuple(int(x) for x in total.groups()), (2, 4, 1, 1, 1), "stats total "
             "(gateways, clients, groups, uids, workers)")
    log("stats: 2 clients per gateway, total 4 clients, 1 group, 1 uid, 1 worker")

    # top: refreshes the same view; not a terminal here, so plain repeated tables
    out = await ctl("top", "0.2", "2")
    check_eq(out.count("GATEWAY "), 2, f"top: two refreshes ({out!r})")
    rows = {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^(\S+:\d+)\s+(\d+)\s+(\d+)\s", out, re.M)}
    check_eq(rows.get(ga.internal), (2, 1), f"top: gw-a clients and workers ({out!r})")
    check_eq(rows.get(gb.internal), (2, 1), f"top: gw-b clients and workers ({out!r})")
    check(re.search(r"^total\s+4\s", out, re.M), f"top: total of 4 clients ({out!r})")
    await ctl("top", "nonsense", expect_status=2)
    log("top: two refreshes, 2 clients and 1 worker per gateway, total 4")

    async def push(words, recipients, text, what):
        await ctl(*words)
        for x in recipients:
            check_eq(await x.recv(), text, f"{what}: {x.name}")
        others = [x for x in everyone if x not in recipients]
        await assert_quiet(others, what)
        log(f"{what}: {len(recipients)} recipients got it, {len(others)} non-recipients didn't")

    await push(["send-to-uid", "u1", "hello", "uid"], [a_ws, b_frame], "hello uid", "send-to-uid")
    await push(["send-to-group", "grp", "hi", "group"], [a_line, b_ws], "hi group",
               "send-to-group")
    await push(["send-to-all", "to", "everyone"], everyone, "to everyone", "send-to-all")
    await push(["send-to-client", b_ws.id, "just", "you"], [b_ws], "just you", "send-to-client")
    await push(["send-to-client", a_line.id, "cross"], [a_line], "cross",
               "send-to-client (other gateway)")
    await push(["send-to-uid", "nobody", "void"], [], "void", "send-to-uid to an unbound uid")

    # queries
    check_eq((await ctl("is-uid-online", "u1")).strip(), "1", "is-uid-online u1")
    check_eq((await ctl("is-uid-online", "nobody")).strip(), "0", "is-uid-online nobody")
    check_eq((await ctl("group-count", "grp")).strip(), "2", "group-count grp")
    check_eq((await ctl("group-count", "empty")).strip(), "0", "group-count empty")
    check_eq((await ctl("count")).strip(), "4", "count")
    check_eq((await ctl("online", b_frame.id)).strip(), "1", "online b_frame")
    log("queries: is-uid-online 1/0, group-count 2/0, count 4, online 1")

    # kick: the message first, then the close
    await ctl("kick", a_line.id, "go", "away")
    check_eq(await a_line.recv(), "go away", "kick: the kicked client's last message")
    await a_line.expect_closed()
    everyone.remove(a_line)
    await poll_until(lambda: ctl("count"), lambda o: o.strip() == "3", REPLY_TIMEOUT,
                     "gwxctl count after kick")
    check_eq((await ctl("group-count", "grp")).strip(), "1", "group-count after kick")
    check_eq((await ctl("online", a_line.id)).strip(), "0", "online of the kicked client")
    out = await ctl("stats")
    check(re.search(r"^total gateways=2 clients=3 ", out, re.M), f"stats after kick: {out!r}")
    await assert_quiet(everyone, "after kick")
    log("kick: text delivered, then closed; count 3, group-count 1, stats total clients=3")

    # kick without a message closes too
    await ctl("kick", b_frame.id)
    await b_frame.expect_closed()
    everyone.remove(b_frame)
    check_eq((await ctl("is-uid-online", "u1")).strip(), "1", "u1 still online via a_ws")
    await poll_until(lambda: ctl("uid-clients", "u1"), lambda o: o.split() == [a_ws.id],
                     REPLY_TIMEOUT, "uid-clients u1 after kicking b_frame")

    # command-line errors exit 2
    for words in (["frobnicate"], ["send-to-uid", "u1"], ["group-count"], []):
        await ctl(*words, expect_status=2)
    no_secret = [gwxctl_bin, "--register", ",".join(regs)]
    await ctl("send-to-all", "x", expect_status=2, argv=no_secret)
    await assert_quiet(everyone, "after bad command lines")
    log("errors: unknown verb, missing arguments, missing verb, missing --secret all exit 2")

    # A wrong secret is refused by both gateways and the secret never shows up in their logs.
    wrong = "not-the-secret-7f3a9c"
    out = await ctl("--timeout-ms", "2000", "count", expect_status=1,
                    argv=[gwxctl_bin, "--register", ",".join(regs), "--secret", wrong])
    intruder = await c.start_worker(regs, "commands", name="intruder", secret=wrong)

    async def refusals():
        return [ln for g in (ga, gb) for ln in c.stderr_of(g).splitlines()
                if "refused" in ln and "intruder" in ln]

    await poll_until(refusals, lambda ls: len(ls) >= 2, REPLY_TIMEOUT,
                     "both gateways logging the intruder worker's refusal")
    check(not intruder.has_line(r"^linked\b"), f"a worker with a wrong secret linked: "
                                               f"{intruder.lines}")
    for p in (ga, gb, intruder):
        check(wrong not in c.stderr_of(p), f"{p.name}'s log contains the secret")
        check(c.secret not in c.stderr_of(p), f"{p.name}'s log contains the real secret")
    await assert_quiet(everyone, "after the intruder")
    log("auth: gwxctl with a wrong secret exits 1, a worker with a wrong secret is refused by "
        "both gateways, and neither secret appears in any log")


if __name__ == "__main__":
    run_test(main)
