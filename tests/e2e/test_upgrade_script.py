#!/usr/bin/python3
"""deploy/rolling-restart.sh on its own: bringing workers up, a clean restart, and how it stops
when something goes wrong (the happy path under load is in test_upgrade_rolling.py).

Cluster: 1 register, 2 gateways, `echo` workers started by the script. A WebSocket client keeps
echoing throughout to show the cluster serves (each echo checked).
1. Command line: --help exits 0 and documents the pid files; no --pid-dir, no worker command, a
   command without {name}, no readiness criterion, a missing pid dir: exit 2.
2. `--start-missing` brings up slots w1 and w2 (w1-g1, w2-g1), both linked to both gateways
   (gwxctl stats lists them), pid files written.
3. A slot without a pid file and without --start-missing: exit 1, nothing started.
4. A new worker that exits at once (bad --app): exit 1 naming it, the old worker untouched
   (still running, still in SLOT.pid).
5. A new worker that never gets ready (--gateways 3 with 2 gateways, --ready-timeout 2): exit 1;
   the old worker untouched.
6. An old worker that does not exit within --drain-timeout (it is SIGSTOPped, its SIGTERM stays
   pending): exit 1 naming it, nothing killed; after SIGCONT it drains and exits 0.
7. A clean restart of both slots: exit 0, the old workers' statuses 0, the new ones linked.
"""

import asyncio
import glob
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, connect, log, run_test  # noqa: E402
from upgrade_load import Ctl  # noqa: E402

LISTENERS = ("ws://127.0.0.1:0/", "tcp+line://127.0.0.1:0")


def script_path(h):
    d = h.args.deploy_dir or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                          "deploy")
    return os.path.abspath(os.path.join(d, "rolling-restart.sh"))


def read(path):
    with open(path) as f:
        return f.read().strip()


async def exit_status(path, timeout=10):
    """An instance's NAME.status: its supervising shell writes it just after the worker exits,
    so it may not be there yet when the worker is already gone."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        check(time.monotonic() < deadline, f"{os.path.basename(path)} not written within "
                                           f"{timeout} s of the worker's exit")
        await asyncio.sleep(0.05)
    return read(path)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


async def main(h):
    c = h.cluster
    reg = await c.start_register()
    regs = [reg.addr]
    gws = [await c.start_gateway(regs, name=n, listeners=LISTENERS, threads=2)
           for n in ("gw-a", "gw-b")]
    ctl = Ctl(c, regs)
    script = script_path(h)
    pid_dir = os.path.join(h.tmp, "workers")
    os.makedirs(pid_dir)
    gwxctl_cmd = " ".join(ctl.base)

    def worker_cmd(app="echo"):
        return [c.binary("gwx-worker"), "--register", ",".join(regs), "--secret", c.secret,
                "--app", app, "--name", "{name}"]

    async def run(args, expect, what, timeout=60):
        status, out, err = await c.run("rolling-restart", ["bash", script] + args, timeout)
        check_eq(status, expect, f"{what}: exit status of rolling-restart.sh (stdout {out!r}, "
                                 f"stderr {err!r})")
        return out, err

    echo_n = 0
    probe = await connect(gws[0], "ws", "probe")

    async def echo_ok(what):
        nonlocal echo_n
        echo_n += 1
        await probe.send(f"probe:{echo_n}")
        check_eq(await probe.recv(), f"probe:{echo_n}", f"{what}: echo")

    try:
        # 1. command line
        out, _ = await run(["--help"], 0, "--help")
        check("SLOT.pid" in out and "{name}" in out, f"--help documents pid files and {{name}}: "
                                                     f"{out!r}")
        bad = [
            (["--gateways", "2", "--"] + worker_cmd(), "no --pid-dir"),
            (["--pid-dir", pid_dir, "--gateways", "2"], "no worker command"),
            (["--pid-dir", pid_dir, "--gateways", "2", "--", "/bin/true"], "no {name}"),
            (["--pid-dir", pid_dir, "--"] + worker_cmd(), "no readiness criterion"),
            (["--pid-dir", pid_dir + "/nope", "--gateways", "2", "--"] + worker_cmd(),
             "missing pid dir"),
            (["--pid-dir", pid_dir, "--gateways", "two", "--"] + worker_cmd(), "bad number"),
        ]
        for args, what in bad:
            _, err = await run(args, 2, what)
            check(err.strip(), f"{what}: no message on stderr")
        log(f"command line: --help 0, {len(bad)} bad command lines exit 2 with a message")

        common = ["--pid-dir", pid_dir, "--gateways", "2", "--gwxctl", gwxctl_cmd]

        # 2. bring up two slots
        await run(common + ["--slots", "w1,w2", "--start-missing", "--"] + worker_cmd(), 0,
                  "start-missing")
        pids = {s: int(read(os.path.join(pid_dir, f"{s}.pid"))) for s in ("w1", "w2")}
        check_eq({s: read(os.path.join(pid_dir, f"{s}.name")) for s in pids},
                 {"w1": "w1-g1", "w2": "w2-g1"}, "instance names")
        per_gw = await ctl.stats(gws)
        for g, st in per_gw.items():
            check_eq(sorted(st["worker_names"]), ["w1-g1", "w2-g1"], f"workers on {g}")
        await echo_ok("after start-missing")
        log(f"start-missing: w1-g1 (pid {pids['w1']}) and w2-g1 (pid {pids['w2']}) linked to "
            f"both gateways")

        # 3. unknown slot without --start-missing
        _, err = await run(common + ["--slots", "w9", "--"] + worker_cmd(), 1, "missing slot")
        check(not glob.glob(os.path.join(pid_dir, "w9-*")),
              "a worker was started for a slot without pid file")
        log(f"slot without pid file: exit 1 ({err.strip().splitlines()[-1]!r})")

        # 4. new worker exits at once
        _, err = await run(common + ["--slots", "w1", "--"] +
                           worker_cmd(app="/nonexistent/libnope.so"), 1, "bad new worker")
        check("exited before it was ready" in err, f"bad new worker: message {err!r}")
        check(alive(pids["w1"]), "bad new worker: the old w1 worker must still run")
        check_eq(int(read(os.path.join(pid_dir, "w1.pid"))), pids["w1"], "w1.pid after failure")
        await echo_ok("after a failed start")
        log("new worker exiting at once: exit 1, old worker untouched")

        # 5. never ready
        _, err = await run(["--pid-dir", pid_dir, "--gateways", "3", "--ready-timeout", "2",
                            "--slots", "w1", "--"] + worker_cmd(), 1, "never ready")
        check("not ready within 2s" in err, f"never ready: message {err!r}")
        check(alive(pids["w1"]), "never ready: the old w1 worker must still run")
        # The unready instance was left running (documented); stop it so it does not count.
        stray = int(read(os.path.join(pid_dir, "w1-g3.workerpid")))
        os.kill(stray, signal.SIGTERM)
        log("new worker never ready: exit 1 after --ready-timeout, old worker untouched")

        # 6. old worker that does not exit in time
        os.kill(pids["w2"], signal.SIGSTOP)
        try:
            _, err = await run(common + ["--slots", "w2", "--drain-timeout", "2", "--"] +
                               worker_cmd(), 1, "slow drain")
        finally:
            os.kill(pids["w2"], signal.SIGCONT)
        check("still running 2s after SIGTERM" in err, f"slow drain: message {err!r}")
        for _ in range(200):
            if not alive(pids["w2"]):
                break
            await asyncio.sleep(0.05)
        check(not alive(pids["w2"]), "w2-g1 did not exit after SIGCONT (its SIGTERM was pending)")
        check_eq(await exit_status(os.path.join(pid_dir, "w2-g1.status")), "0",
                 "w2-g1 exit status")
        await echo_ok("after the slow drain")
        log("old worker not exiting within --drain-timeout: exit 1, nothing killed; it drained "
            "and exited 0 once continued")
        # The slot still names the old worker; its successor w2-g2 runs: record it as the
        # operator would after looking at the failure.
        with open(os.path.join(pid_dir, "w2.pid"), "w") as f:
            f.write(read(os.path.join(pid_dir, "w2-g2.workerpid")) + "\n")
        with open(os.path.join(pid_dir, "w2.name"), "w") as f:
            f.write("w2-g2\n")

        # 7. clean restart of both slots
        out, _ = await run(common + ["--slots", "w1,w2", "--"] + worker_cmd(), 0, "clean restart")
        for name in ("w1-g1", "w2-g2"):
            check_eq(await exit_status(os.path.join(pid_dir, f"{name}.status")), "0",
                     f"{name} exit status")
        per_gw = await ctl.stats(gws)
        for g, st in per_gw.items():
            check_eq(sorted(st["worker_names"]), ["w1-g4", "w2-g3"], f"workers on {g}")
        await echo_ok("after the clean restart")
        log(f"clean restart: {[ln for ln in out.splitlines() if 'drained' in ln]}")
        log(f"FIGURES script: probe_echoes={echo_n} lost=0 disconnects=0 reconnects=0")
    finally:
        for path in glob.glob(os.path.join(pid_dir, "*.workerpid")):
            try:
                os.kill(int(read(path)), signal.SIGKILL)
            except (OSError, ValueError):
                pass


if __name__ == "__main__":
    run_test(main, extra_args=[(("--deploy-dir",), {"default": None,
                                                    "help": "directory of rolling-restart.sh"})])
