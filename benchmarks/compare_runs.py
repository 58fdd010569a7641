"""One method's searches in two result databases, system by system: what a change changed.

For a rerun of the same tasks with one setting changed (a copy of the database with that
method's rows deleted, then `gprdimer batch` again), or of the same settings on changed code, it
prints, over the systems both databases hold, the verified successes, median calls and GP seconds
of each, the stops of the failures, the paired cost over the systems both verified, every system
whose outcome changed, and how many searches are identical (the same calls and stop, saddle
energies within 1e-6 eV): a change that must not alter behaviour shows all of them identical.

    python benchmarks/compare_runs.py before.db after.db [--method gprd]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections import Counter

from gprdimer.batch.store import read_rows
from gprdimer.report_tables import summary_table
from gprdimer.verify import is_verified_success


def by_system(path, method):
    return {r["system"]: r for r in read_rows(path) if r["method"] == method}


def stop_of(row):
    """The row's stop (a StopReason value); rows written before the key existed lack it."""
    return row.get("stop", "(not recorded)")


def summary(rows):
    """Verified success and median cost (the report's summary table), and the stops of the rest."""
    reasons = Counter(stop_of(r) for r in rows if not is_verified_success(r))
    costs = "; ".join(f"{t['calc']}: {t['verified']}/{t['systems']} verified, median calls "
                      f"{t['calls_median']:g}, median GP s {t['gp_s_median']:.2f}"
                      for t in summary_table(rows))
    return f"{costs}, failures {dict(sorted(reasons.items()))}"


def paired(a, b, systems):
    """Over the systems both runs verified: the cost of each run and the change system by system."""
    both = [s for s in systems if is_verified_success(a[s]) and is_verified_success(b[s])]
    if not both:
        return "no system verified in both"
    calls = {run: [r[s]["calls"] for s in both] for run, r in (("before", a), ("after", b))}
    wall = statistics.median(b[s]["wall_time"] / a[s]["wall_time"] for s in both)
    moves = [sum(op(b[s]["calls"], a[s]["calls"]) for s in both)
             for op in (int.__lt__, int.__eq__, int.__gt__)]
    return (f"{len(both)} verified in both: median calls {statistics.median(calls['before']):g} -> "
            f"{statistics.median(calls['after']):g}, mean {statistics.mean(calls['before']):.1f} -> "
            f"{statistics.mean(calls['after']):.1f} (fewer / same / more: "
            f"{' / '.join(map(str, moves))}), wall time a search a paired median {wall:.3g}x")


def identical(a, b):
    """The same search: calls, convergence and saddle energy (1e-6 eV; NaN equals NaN)."""
    ea, eb = a["saddle_energy"], b["saddle_energy"]
    same_energy = (math.isnan(ea) and math.isnan(eb)) or abs(ea - eb) <= 1e-6
    return a["calls"] == b["calls"] and a["converged"] == b["converged"] and same_energy


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
    print(f"  {paired(a, b, common)}")
    for s in common:
        if is_verified_success(a[s]) != is_verified_success(b[s]):
            print(f"  {s}: {a[s]['stop_reason'][:45]} ({a[s]['calls']} calls) -> "
                  f"{b[s]['stop_reason'][:45]} ({b[s]['calls']} calls)")
    differ = [s for s in common if not identical(a[s], b[s])]
    print(f"  identical searches: {len(common) - len(differ)} of {len(common)}"
          + (f"; differ: {', '.join(differ)}" if differ else ""))


if __name__ == "__main__":
    main()
