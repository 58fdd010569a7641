"""One method's searches in two result databases, system by system: what a setting changed.

For a rerun of the same tasks with one setting changed (a copy of the database with that
method's rows deleted, then `gprdimer batch` again), it prints, over the systems both databases
hold, the converged count, median calls and GP seconds of each, the stop reasons of the failures,
and every system whose outcome changed.

    python benchmarks/compare_runs.py data/results/ratio_at_limit/xtb100_r23.db \
        data/results/ratio_at_limit/xtb100_r08.db [--method gprd]
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from gprdimer.batch.store import read_rows


def by_system(path, method):
    return {r["system"]: r for r in read_rows(path) if r["method"] == method}


def summary(rows):
    done = [r for r in rows if r["converged"]]
    reasons = Counter(r["stop_reason"].split(":")[0] for r in rows if not r["converged"])
    calls = statistics.median(r["calls"] for r in done) if done else float("nan")
    gp = statistics.median(r["gp_time"] for r in done) if done else float("nan")
    return (f"{len(done)}/{len(rows)} converged, median calls {calls:g}, median GP s {gp:.2f}, "
            f"failures {dict(sorted(reasons.items()))}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--method", default="gprd")
    args = parser.parse_args(argv)
    a, b = by_system(args.before, args.method), by_system(args.after, args.method)
    common = [s for s in a if s in b]
    print(f"{args.method}: {len(common)} systems in both")
    print(f"  before: {summary([a[s] for s in common])}")
    print(f"  after:  {summary([b[s] for s in common])}")
    for s in common:
        if a[s]["converged"] != b[s]["converged"]:
            print(f"  {s}: {a[s]['stop_reason'][:45]} ({a[s]['calls']} calls) -> "
                  f"{b[s]['stop_reason'][:45]} ({b[s]['calls']} calls)")


if __name__ == "__main__":
    main()
