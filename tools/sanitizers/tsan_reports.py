#!/usr/bin/python3
"""Sorts the reports of a TSan run (docs/testing.md, "TSan (by hand)").

Debian's gRPC, Abseil, protobuf and OpenSSL are not instrumented, so a TSan run of gwx prints
thousands of reports about memory that those libraries synchronise with locks TSan cannot see.
This reads a run's output and prints how many reports there are of each kind, then every
report whose two accesses both have a frame of the source tree (ROOT, default: this checkout)
on top, grouped by those two frames: the ones worth reading. A report with a library frame on
top of either access is counted, not listed.

usage: tsan_reports.py LOG [ROOT]
"""

import collections
import os
import re
import sys

# Frames of the sanitizer runtime itself (interceptors, new/delete) are skipped when looking
# for the top frame of an access.
RUNTIME = ("libtsan", "sanitizer_common", "/tsan/")
ACCESS = re.compile(r"^  (Read|Write|Previous|Atomic)")


def top_frame(lines):
    for line in lines:
        if line.lstrip().startswith("#") and not any(r in line for r in RUNTIME):
            return re.sub(r" \([^()]*\+0x[0-9a-f]+\)$", "", line.strip())
    return ""


def accesses(report):
    """The top frame of each access (the current one, then the previous one) of a report."""
    found, current = [], None
    for line in report.splitlines():
        if ACCESS.match(line):
            current = []
            found.append(current)
        elif current is not None and line.startswith("    #"):
            current.append(line)
        else:
            current = None
    return [top_frame(frames) for frames in found[:2]]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    root = sys.argv[2] if len(sys.argv) == 3 else os.path.dirname(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(sys.argv[1], errors="replace") as f:
        text = f.read()
    kinds = collections.Counter()
    ours = collections.Counter()
    for report in text.split("WARNING: ThreadSanitizer: ")[1:]:
        report = report.split("==================")[0]
        kind = report.split(" (pid=")[0].strip()
        kinds[kind] += 1
        tops = accesses(report)
        if tops and all(root in t for t in tops):
            ours[(kind, tuple(tops))] += 1
    print(f"{sum(kinds.values())} reports: " +
          ", ".join(f"{n} {k}" for k, n in kinds.most_common()))
    print(f"{sum(ours.values())} with a frame of {root} on top of every access:")
    for (kind, tops), n in ours.most_common():
        print(f"\n{n} x {kind}")
        for t in tops:
            print(f"    {t}")


if __name__ == "__main__":
    main()
