#!/usr/bin/python3
"""Rolling restart of every worker under load: no disconnect, every message echoed exactly once,
in order.

Cluster: 1 register, 2 gateways (--threads 2; ws and tcp+line listeners), 3 workers with the
`echo` app. Load: 200 clients (half WebSocket, half tcp+line, spread over both gateways) each
send "<client>:<n>" continuously with at most 8 unanswered (upgrade_load.EchoLoad).

Three rounds, each restarting the 3 workers one after another:
- round 1 by the test itself: start the new worker, wait for its `linked` line to both gateways,
  SIGTERM the old one, wait for it to exit with status 0;
To make every drain real work, the old worker is given a backlog first, as a busy worker would
have: it is SIGSTOPped for a moment (0.5 s in round 1; in the script rounds from the moment the
previous slot is drained until the script's "draining" line for it, at most 3 s) while the
gateways keep sending it its clients' events, and SIGCONTed together with its SIGTERM.
- rounds 2 and 3 through deploy/rolling-restart.sh (process mode: a pid file per slot, readiness
  by `linked` lines for 2 gateways and by `gwxctl stats` listing the new worker on every
  gateway). The test checks the script's exit status, that the workers the test started exited
  0 and that every worker the script started and drained recorded status 0.
Every drained worker must log a complete drain ("drained in … ms: N event(s) handled during the
drain"), and the drains together must have handled events (they happened under load). Between
restarts the load must make progress. At the end: every client still connected, every
number echoed exactly once and in order, and the gateways report nothing redelivered, nothing
dropped, nothing queued or in flight.
"""

import asyncio
import glob
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, log, run_test  # noqa: E402
from upgrade_load import Ctl, EchoLoad, drained_line, wait_exit  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")
SLOTS = ("w1", "w2", "w3")
CLIENTS = 200
WINDOW = 8
# Each old worker is stopped this long before its SIGTERM so that it has a backlog to drain.
BACKLOG_S = 0.5
MAX_STOP_S = 3.0


def signal_pid(pid, sig):
    """Sends sig; False when the process is gone already."""
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def script_path(h):
    d = h.args.deploy_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                          "deploy")
    return os.path.abspath(os.path.join(d, "rolling-restart.sh"))


async def main(h):
    c = h.cluster
    started = time.monotonic()
    reg = await c.start_register()
    regs = [reg.addr]
    gws = [await c.start_gateway(regs, name=n, listeners=LISTENERS, threads=2)
           for n in ("gw-a", "gw-b")]
    ctl = Ctl(c, regs)
    pid_dir = os.path.join(h.tmp, "workers")
    os.makedirs(pid_dir)

    def worker_argv_template():
        return [c.binary("gwx-worker"), "--register", ",".join(regs), "--secret", c.secret,
                "--app", "echo", "--name", "{name}"]

    harness_workers = []  # every worker the test started: each must exit 0 after its SIGTERM
    current = {}
    for slot in SLOTS:
        w = await c.start_worker(regs, "echo", name=f"{slot}-g1")
        current[slot] = w
        harness_workers.append(w)
    await c.wait_linked(list(current.values()), gws)

    load = EchoLoad(gws, n_clients=CLIENTS, window=WINDOW)
    await load.connect()
    load.start()
    await load.wait_progress(2 * CLIENTS, "load before the first restart")
    restarts = 0
    drains = {}  # worker name -> events it handled while draining (from its log)

    try:
        # ---- round 1: by the test -------------------------------------------------------
        for slot in SLOTS:
            old = current[slot]
            new = await c.start_worker(regs, "echo", name=f"{slot}-g2")
            await c.wait_linked([new], gws)
            # Give the old worker a backlog, as a busy worker has: stopped for BACKLOG_S, the
            # gateways keep sending it its clients' events. SIGTERM is then pending and acts
            # on SIGCONT, with those events still to handle.
            old.send_signal(signal.SIGSTOP)
            await asyncio.sleep(BACKLOG_S)
            in_flight = load.total("sent") - load.total("next")
            old.send_signal(signal.SIGTERM)
            old.send_signal(signal.SIGCONT)
            status = await wait_exit(old, 30, "round 1")
            check_eq(status, 0, f"round 1: exit status of {old.name} after SIGTERM")
            ms, handled = drained_line(c.stderr_of(old), old.name)
            drains[old.name] = handled
            restarts += 1
            current[slot] = new
            harness_workers.append(new)
            log(f"round 1: {old.name} drained in {ms} ms ({handled} events handled during the "
                f"drain; {in_flight} messages unanswered when it got SIGTERM) and exited 0, "
                f"{new.name} took over")
            load.check_connected(f"round 1 after restarting {slot}")
            await load.wait_progress(CLIENTS, f"round 1 after restarting {slot}")
        for slot, w in current.items():
            with open(os.path.join(pid_dir, f"{slot}.pid"), "w") as f:
                f.write(f"{w.pid}\n")
            with open(os.path.join(pid_dir, f"{slot}.name"), "w") as f:
                f.write(f"{w.name}\n")
            with open(os.path.join(pid_dir, f"{slot}.gen"), "w") as f:
                f.write("2\n")

        # ---- rounds 2 and 3: deploy/rolling-restart.sh ------------------------------------
        script = script_path(h)
        gwxctl_cmd = " ".join(ctl.base)
        for rnd in (2, 3):
            argv = ["bash", script, "--pid-dir", pid_dir, "--slots", ",".join(SLOTS),
                    "--gateways", str(len(gws)), "--gwxctl", gwxctl_cmd,
                    "--ready-timeout", "30", "--drain-timeout", "30", "--"
                    ] + worker_argv_template()
            # The same backlog, independent of how late this loop sees the script's lines:
            # the old worker of the first slot is stopped before the script starts; when the
            # script says it drains a worker, that one gets SIGCONT (its SIGTERM is pending or
            # follows) and the old worker of the next slot is stopped. No stop outlasts
            # MAX_STOP_S, well inside the gateways' 5 s link keepalive.
            def slot_pid(slot):
                with open(os.path.join(pid_dir, f"{slot}.pid")) as f:
                    return int(f.read().strip())

            stopped = {}  # pid -> since
            pending = list(SLOTS)

            def stop_next():
                slot = pending.pop(0)
                pid = slot_pid(slot)
                if signal_pid(pid, signal.SIGSTOP):
                    stopped[pid] = time.monotonic()

            stop_next()
            p = await c.spawn(f"rolling-restart-{rnd}", argv)
            seen = 0
            while p.running() or seen < len(p.lines):
                load.check_connected(f"round {rnd} (rolling-restart.sh running)")
                for ln in p.lines[seen:]:
                    m = re.search(r"draining \S+ \(pid (\d+)\)", ln)
                    if m:
                        pid = int(m.group(1))
                        if stopped.pop(pid, None) is not None:
                            signal_pid(pid, signal.SIGCONT)
                        if pending:
                            stop_next()
                seen = len(p.lines)
                for pid, since in list(stopped.items()):
                    if time.monotonic() - since > MAX_STOP_S:
                        signal_pid(pid, signal.SIGCONT)
                        del stopped[pid]
                try:
                    await asyncio.wait_for(asyncio.shield(p.proc.wait()), 0.05)
                except asyncio.TimeoutError:
                    pass
            for pid in stopped:
                signal_pid(pid, signal.SIGCONT)
            await asyncio.wait_for(p._reader, 5)
            status = p.proc.returncode
            check_eq(status, 0, f"round {rnd}: rolling-restart.sh exit status (stdout "
                                f"{p.lines!r}, stderr {c.stderr_of(p)!r})")
            drained = [ln for ln in p.lines if "drained and exited" in ln]
            check_eq(len(drained), len(SLOTS), f"round {rnd}: 'drained and exited' lines of "
                                               f"rolling-restart.sh ({p.lines!r})")
            restarts += len(SLOTS)
            log(f"round {rnd}: rolling-restart.sh restarted {len(SLOTS)} workers: "
                f"{[ln.split(': ', 1)[-1] for ln in drained]}")
            load.check_connected(f"round {rnd}")
            await load.wait_progress(CLIENTS, f"after round {rnd}")

        # Every worker the test started has exited 0 (the last of them were drained by the
        # script); every worker the script drained wrote status 0.
        for w in harness_workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 10)
            except asyncio.TimeoutError:
                check(False, f"{w.name} (pid {w.pid}) still running after the rolling restarts")
            check_eq(w.proc.returncode, 0, f"exit status of {w.name} after its SIGTERM")
        statuses = {}
        for path in glob.glob(os.path.join(pid_dir, "*.status")):
            with open(path) as f:
                statuses[os.path.basename(path)[:-len(".status")]] = f.read().strip()
        expected_drained = sorted(f"{s}-g3" for s in SLOTS)
        check_eq(sorted(statuses), expected_drained, "workers started and drained by the script")
        check(all(v == "0" for v in statuses.values()),
              f"exit statuses of the workers drained by the script: {statuses}")
        for name in expected_drained:
            with open(os.path.join(pid_dir, f"{name}.log"), errors="replace") as f:
                drains[name] = drained_line(f.read(), name)[1]
        for w in harness_workers[len(SLOTS):]:  # round 1's workers, drained by the script
            drains[w.name] = drained_line(c.stderr_of(w), w.name)[1]
        log(f"events handled while draining, per worker: {drains}")
        check(sum(drains.values()) > 0, "no drained worker handled any event during its drain: the "
                                "restarts did not happen under load (test error)")

        await load.settle(timeout=30)
        per_gw = await ctl.stats(gws)
        sums = {k: sum(v[k] for v in per_gw.values())
                for k in ("clients", "queued", "in_flight", "redelivered", "dropped")}
        extra = {"worker_restarts": restarts, "events_handled_while_draining": sum(drains.values()),
                 "redelivered(gateways)": sums["redelivered"],
                 "dropped(gateways)": sums["dropped"], "seconds": round(time.monotonic() -
                                                                        started, 1)}
        load.report("rolling restart", extra)
        load.check_no_loss("rolling restart", allow_duplicates=False)
        check_eq(sums["clients"], CLIENTS, f"clients the gateways hold ({per_gw})")
        check_eq(sums["redelivered"], 0, f"events redelivered by the gateways (a drained worker "
                                         f"must acknowledge everything it got) ({per_gw})")
        check_eq(sums["dropped"], 0, f"events dropped by the gateways ({per_gw})")
        check_eq((sums["queued"], sums["in_flight"]), (0, 0),
                 f"events queued / in flight after the load settled ({per_gw})")
        final_names = sorted(f"{s}-g4" for s in SLOTS)
        for g, st in per_gw.items():
            check_eq(sorted(st["worker_names"]), final_names, f"workers linked to {g}")
        await load.close()
    finally:
        # Workers the script started live in their own sessions: stop them here.
        for path in glob.glob(os.path.join(pid_dir, "*.workerpid")):
            try:
                with open(path) as f:
                    os.kill(int(f.read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass


if __name__ == "__main__":
    run_test(main, extra_args=[(("--deploy-dir",), {"default": None,
                                                    "help": "directory of rolling-restart.sh"})])
