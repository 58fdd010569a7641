"""One method's searches in two result databases, system by system: what a setting changed.

For a rerun of the same tasks with one setting changed (a copy of the database with that
method's rows deleted, then `gprdimer batch` again), it prints, over the systems both databases
hold, the verified successes, median calls and GP seconds of each, the stop reasons of the failures,
and every system whose outcome changed.

    python benchmarks/compare_runs.py before.db \
        after.db [--method gprd]
"""

from __future__ import annotations

import argparse
from collections import Counter

from gprdimer.batch.store import read_rows
from gprdimer.report import summary_table
from gprdimer.verify import is_verified_success


def by_system(path, method):
    return {r["system"]: r for r in read_rows(path) if r["method"] == method}


def summary(rows):
    """Verified success and median cost (the report's summary table), and the stop reasons of
    the rest."""
    reasons = Counter(r["stop_reason"].split(":")[0] for r in rows if not is_verified_success(r))
    costs = "; ".join(f"{t['calc']}: {t['verified']}/{t['systems']} verified, median calls "
                      f"{t['calls_median']:g}, median GP s {t['gp_s_median']:.2f}"
                      for t in summary_table(rows))
    return f"{costs}, failures {dict(sorted(reasons.items()))}"


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
        if is_verified_success(a[s]) != is_verified_success(b[s]):
            print(f"  {s}: {a[s]['stop_reason'][:45]} ({a[s]['calls']} calls) -> "
                  f"{b[s]['stop_reason'][:45]} ({b[s]['calls']} calls)")


if __name__ == "__main__":
    main()
