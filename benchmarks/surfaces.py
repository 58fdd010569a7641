"""GPR-dimer vs dimer vs Sella on GFN2-xTB searches built from the 500-reaction set, in one run.

Takes the K smallest systems of the set (default 10), runs each method from the same guess (the
dimer methods from the paper's seeded random displacement, Sella from the undisplaced guess, as
in the published protocol) and prints success, median calls and median wall time per method.

    OMP_NUM_THREADS=1 python benchmarks/surfaces.py [--data DIR] [--count 10] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from gprdimer.calculators.factory import make_calculator
from gprdimer.data import load_sella500
from gprdimer.runner import run_search

ROOT = Path(__file__).resolve().parents[1]


def smallest(data, count):
    systems = sorted(load_sella500(data), key=lambda r: (len(r.atoms), r.name))
    return systems[:count]


def main(argv=None):
    here = ROOT.parent / "shared" / "data" / "sella500"
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("GPRDIMER_SELLA500", str(here)))
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--methods", default="gprd,dimer,sella")
    p.add_argument("--calc", default="xtb")
    p.add_argument("--fmax", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default=None, help="append the tables to this Markdown file")
    args = p.parse_args(argv)
    methods = args.methods.split(",")
    systems = smallest(args.data, args.count)
    rows = []
    header = "| system | atoms | " + " | ".join(f"{m} calls | {m} E (eV) | {m} s" for m in methods) + " |"
    print(header)
    per_method = {m: [] for m in methods}
    for r in systems:
        cells = []
        for m in methods:
            atoms = r.atoms.copy()
            atoms.calc = make_calculator(args.calc, r.charge, r.multiplicity)
            t = time.time()
            res = run_search(atoms, m, fmax=args.fmax, steps=args.steps)
            wall = time.time() - t
            per_method[m].append((res, wall))
            mark = "" if res.converged else " (failed: " + res.stop_reason + ")"
            cells.append(f"{res.calls}{mark} | {res.energy:.4f} | {wall:.1f}")
        row = f"| {r.name} | {len(r.atoms)} | " + " | ".join(cells) + " |"
        rows.append(row)
        print(row, flush=True)

    summary = ["| method | success | median calls (converged) | median wall s (converged) | median GP s |",
               "|---|---|---|---|---|"]
    for m in methods:
        ok = [(res, wall) for res, wall in per_method[m] if res.converged]
        med_calls = statistics.median(res.calls for res, _ in ok) if ok else float("nan")
        med_wall = statistics.median(wall for _, wall in ok) if ok else float("nan")
        med_gp = statistics.median(res.gp_time for res, _ in ok) if ok else float("nan")
        summary.append(f"| {m} | {len(ok)}/{len(per_method[m])} | {med_calls:g} | {med_wall:.2f} | {med_gp:.2f} |")
    # same saddle as the GPR-dimer, by energy within 0.01 eV, where both converged
    if "gprd" in methods:
        for m in methods:
            if m == "gprd":
                continue
            pairs = [(a, b) for (a, _), (b, _) in zip(per_method["gprd"], per_method[m]) if a.converged and b.converged]
            same = sum(abs(a.energy - b.energy) <= 0.01 for a, b in pairs)
            summary.append(f"\nSame saddle as gprd (|ΔE| ≤ 0.01 eV): {m} {same}/{len(pairs)}")
    text = "\n".join(summary)
    print(text)
    if args.out:
        cmd = "OMP_NUM_THREADS=1 python benchmarks/surfaces.py " + " ".join(sys.argv[1:])
        with open(args.out, "a") as fh:
            fh.write(f"\n## Saddle searches on {args.calc}, the {args.count} smallest systems (issue 3)\n\n"
                     f"`{cmd}` ({time.strftime('%Y-%m-%d')}); fmax {args.fmax} eV/Å, at most "
                     f"{args.steps} steps; dimer methods from the paper's seeded random mode, Sella "
                     f"(internal coordinates) from the undisplaced guess.\n\n{text}\n\n"
                     + header + "\n|" + "---|" * (2 + 3 * len(methods)) + "\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
