#!/usr/bin/env python3
"""Instructions per unit of work from a callgrind output file.

usage: callgrind_per_call.py FILE PATTERN [--count PATTERN ...]

PATTERN is a regular expression matched (re.search) against function names; the calls to every
matching function are the units (e.g. 'command_executor::execute\\(' in the gateway: one call per
reply command, so per echoed message). Prints the file's total instructions, the units, the
instructions per unit and, for each --count PATTERN, the calls to the matching functions per
unit (e.g. '^operator new\\(' for allocations per message). Exit status 1 when no call matches.
Reads the format valgrind writes (name compression included); needs no other package.
"""
import argparse
import re
import sys
from collections import Counter


def read_calls(path):
    """Returns (total instructions, Counter of calls per called function name)."""
    names = {}
    calls = Counter()
    total = None
    callee = None

    def name_of(spec):
        # "(id) name" defines a compressed name, "(id)" refers to it, a bare name is itself.
        m = re.match(r"\((\d+)\)(?: (.*))?$", spec)
        if not m:
            return spec
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("cfn="):
                callee = name_of(line[4:].strip())
            elif line.startswith("fn="):
                name_of(line[3:].strip())  # may define a name a later cfn= refers to
            elif line.startswith("calls=") and callee is not None:
                calls[callee] += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if total is None:
        raise SystemExit(f"{path}: no summary line (is it a callgrind output file?)")
    return total, calls


def calls_matching(calls, pattern):
    rx = re.compile(pattern)
    return sum(n for fn, n in calls.items() if rx.search(fn))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("unit", help="regular expression: the function whose calls are the units")
    ap.add_argument("--count", action="append", default=[],
                    help="regular expression: report these calls per unit (repeatable)")
    args = ap.parse_args()
    total, calls = read_calls(args.file)
    units = calls_matching(calls, args.unit)
    if units == 0:
        print(f"no calls to a function matching '{args.unit}' in {args.file}", file=sys.stderr)
        return 1
    print(f"instructions {total:,}; units (calls to '{args.unit}') {units:,}; "
          f"instructions per unit {total / units:,.0f}")
    for pattern in args.count:
        n = calls_matching(calls, pattern)
        print(f"calls to '{pattern}': {n:,}, {n / units:.2f} per unit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
