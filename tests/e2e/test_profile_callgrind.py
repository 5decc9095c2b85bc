#!/usr/bin/python3
"""tools/bench/profile.sh --tool callgrind and the counter behind it (functional only: no
figure is asserted beyond being a count of something that happened).

1. tools/bench/callgrind_per_call.py on a hand-written callgrind file that uses the format's
   name compression (a name defined once, then referred to by its id, from fn= and cfn= lines)
   and several callers of one function: the totals, the units and the counts per unit are
   exactly the file's.
2. profile.sh --tool callgrind on a real cluster, the gateway under valgrind, then the worker:
   the load ran without errors, and the report gives instructions per echoed message and
   allocations per message read from the process's own callgrind file.
3. Bad arguments exit 2 with one clear line.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwx_cluster import check, check_eq, log, run_test  # noqa: E402

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "bench")
COUNTER = os.path.join(TOOLS, "callgrind_per_call.py")
PROFILE = os.path.join(TOOLS, "profile.sh")

# Two callers of `execute` (4 + 2 calls), `operator new` called 3 times by one of them and once
# by `main`; `execute` and `operator new` are named once, then by id only.
SYNTHETIC = """# callgrind format
version: 1
creator: hand
events: Ir
summary: 12345

fl=(1) a.cpp
fn=(1) main
1 100
cfn=(2) worker_link::on_command(Command&)
calls=4 10
10 4000
cfn=(3) operator new(unsigned long)
calls=1 20
20 50

fn=(2)
2 200
cfn=(4) command_executor::execute(Command const&)
calls=4 30
30 3000
cfn=(3)
calls=3 40
40 150

fn=(5) bus_subscriber::dispatch()
5 10
cfn=(4)
calls=2 50
50 1500

fn=(4)
3 4500
"""


async def main(h):
    c = h.cluster
    python = sys.executable

    # 1. The counter on a file whose answer is known.
    path = os.path.join(h.tmp, "synthetic.callgrind")
    with open(path, "w") as f:
        f.write(SYNTHETIC)
    status, out, err = await c.run("counter", [python, COUNTER, path, r"command_executor::execute\(",
                                               "--count", r"^operator new\(",
                                               "--count", r"^malloc$"], timeout=30)
    check_eq(status, 0, f"counter exit status (stderr {err!r})")
    check("instructions 12,345; units (calls to 'command_executor::execute\\(') 6; "
          "instructions per unit 2,058" in out, f"counter totals: {out!r}")
    check("calls to '^operator new\\(': 4, 0.67 per unit" in out, f"counter counts: {out!r}")
    check("calls to '^malloc$': 0, 0.00 per unit" in out, f"counter counts: {out!r}")
    status, out, err = await c.run("counter-none", [python, COUNTER, path, "no_such_function"],
                                   timeout=30)
    check_eq(status, 1, "counter exit status when nothing matches")
    check("no calls to a function matching 'no_such_function'" in err, f"stderr {err!r}")
    with open(os.path.join(h.tmp, "not-callgrind"), "w") as f:
        f.write("hello\n")
    status, out, err = await c.run("counter-bad", [python, COUNTER,
                                                   os.path.join(h.tmp, "not-callgrind"), "x"],
                                   timeout=30)
    check(status != 0 and "no summary line" in err, f"not a callgrind file: {status} {err!r}")
    log("callgrind_per_call.py: totals, units, counts per unit and refusals as expected")

    # 2. The whole tool on a real cluster, one process under valgrind at a time.
    for process, unit in (("gateway", "command_executor::execute"),
                          ("worker", "link_codec::encode_send_to_client")):
        out_dir = os.path.join(h.tmp, f"profile-{process}")
        status, out, err = await c.run(
            f"profile-{process}",
            ["bash", PROFILE, "--bin", h.bin_dir, "--tool", "callgrind", "--process", process,
             "--seconds", "2", "--connections", "20", "--top", "5", "--out", out_dir],
            timeout=120)
        check_eq(status, 0, f"profile.sh --process {process} exit status (stdout {out!r}; "
                            f"stderr {err!r})")
        load = re.search(r"^load \(the (\w+) under valgrind\): (.*)$", out, re.M)
        check(load is not None, f"no load line: {out!r}")
        check_eq(load.group(1), process, "process named in the load line")
        check(" errors=0 " in load.group(2) + " ", f"load had errors: {load.group(2)!r}")
        m = re.search(r"^instructions ([\d,]+); units \(calls to '(.*?)'\) ([\d,]+); "
                      r"instructions per unit ([\d,]+)$", out, re.M)
        check(m is not None, f"no instructions line: {out!r}")
        check(unit in m.group(2), f"unit of the {process}: {m.group(2)!r}")
        units = int(m.group(3).replace(",", ""))
        per_unit = int(m.group(4).replace(",", ""))
        # 20 connections at 8 in flight for 2 s under valgrind: thousands of echoes at least.
        check(units >= 1000, f"{process}: only {units} messages counted")
        check(100 <= per_unit <= 1_000_000, f"{process}: {per_unit} instructions per message")
        check(re.search(r"^calls to '\^operator new\\\(': [\d,]+, [\d.]+ per unit$", out, re.M),
              f"no allocation count: {out!r}")
        check(os.path.getsize(os.path.join(out_dir, f"{process}.callgrind")) > 0,
              "callgrind file kept")
        log(f"profile.sh --tool callgrind --process {process}: {units} messages, "
            f"{per_unit} instructions each")

    # 3. Refusals.
    for args, text in ((["--tool", "gprof"], "--tool must be perf or callgrind"),
                       (["--tool", "callgrind", "--process", "register"],
                        "--process must be gateway or worker"),
                       (["--frobnicate"], "unknown argument '--frobnicate'")):
        status, out, err = await c.run("profile-bad", ["bash", PROFILE, "--bin", h.bin_dir] + args,
                                       timeout=30)
        check_eq(status, 2, f"profile.sh {' '.join(args)} exit status")
        check(text in err, f"profile.sh {' '.join(args)}: stderr {err!r}")
    log("profile.sh refuses bad arguments with exit status 2")


if __name__ == "__main__":
    run_test(main)
