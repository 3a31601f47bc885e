#!/usr/bin/env python3
"""Per-test times from a log of scripts/test.sh, as the table in docs/TESTING.md.

test.sh runs the tests with libtest's `--report-time` (each result line ends in `<1.234s>`)
and marks each pass in the log with a line `== pass: NAME`. This prints, for every test
binary and test, its time in each pass, slowest binaries first, and each binary's and pass's
total (the sum of its tests' times: with two test threads the wall time is lower).

    scripts/test-times.py LOG > table.md
"""
import re
import sys
from collections import defaultdict

RESULT = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)(?: <([0-9.]+)s>)?")
RUNNING = re.compile(r"^\s*Running (\S+)")


def binary_of(target):
    # `tests/boundary.rs` → boundary; `unittests src/lib.rs` is named by the crate below.
    return target.rsplit("/", 1)[-1].removesuffix(".rs")


def parse(lines):
    times = defaultdict(dict)  # (binary, test) -> {pass: seconds}
    passes, pass_name, binary = [], "native", "?"
    for line in lines:
        if line.startswith("== pass: "):
            pass_name = line.split(":", 1)[1].strip()
            continue
        m = RUNNING.match(line)
        if m:
            target = m.group(1)
            crate = re.search(r"\(target/(?:debug|release)/deps/([a-z_0-9]+?)-[0-9a-f]+\)", line)
            name = crate.group(1) if crate else binary_of(target)
            binary = name if target == "unittests" else binary_of(target)
            if target == "unittests":
                binary = f"{name} (unit)"
            continue
        m = RESULT.match(line)
        if m and m.group(3):
            if pass_name not in passes:
                passes.append(pass_name)
            times[(binary, m.group(1))][pass_name] = float(m.group(3))
    return times, passes or ["native"]


def main():
    with open(sys.argv[1], errors="replace") as f:
        times, passes = parse(f)
    per_bin = defaultdict(lambda: defaultdict(float))
    for (b, _), t in times.items():
        for p, s in t.items():
            per_bin[b][p] += s
    order = sorted(per_bin, key=lambda b: -sum(per_bin[b].values()))
    print("| test | " + " | ".join(f"{p} (s)" for p in passes) + " |")
    print("|---|" + "---:|" * len(passes))
    for b in order:
        tests = sorted((t for (bb, t) in times if bb == b), key=lambda t: -max(times[(b, t)].values()))
        cells = " | ".join(f"**{per_bin[b][p]:.1f}**" if p in per_bin[b] else "–" for p in passes)
        print(f"| **{b}** ({len(tests)} tests, sum) | {cells} |")
        if b.endswith("(unit)"):
            # Unit tests take milliseconds; one line per crate is enough.
            continue
        for t in tests:
            cells = " | ".join(
                f"{times[(b, t)][p]:.2f}" if p in times[(b, t)] else "–" for p in passes
            )
            print(f"| {t} | {cells} |")
    totals = " | ".join(f"**{sum(per_bin[b].get(p, 0) for b in per_bin):.0f}**" for p in passes)
    print(f"| **all tests** (sum) | {totals} |")


main()
