"""Wall-time ratios against Sella where the two methods' rows ran on different machines.

A database whose GPR-dimer rows ran on one machine and whose Sella rows (copied in) ran mostly
on another compares wall times of two machines. This script measures the machine factor from
the GPR-dimer itself: the median, per size band, of the per-call wall time of each system's row
in `current.db` over that of its row in `earlier.db`, a run of the same systems on the other
machine (rows whose `cpu` contains `--other-cpu`). A call is one electronic-structure
evaluation in both runs and the GP a small share of it, so the ratio is the machines' (and
their loads'). It then prints, per band, the GPR-dimer's median wall time over Sella's in
`current.db` (verified successes), raw and with each Sella row of the other machine scaled by
its band's factor.

    python benchmarks/machine_factor.py current.db earlier.db --other-cpu "AMD EPYC"
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

from gprdimer.batch.store import read_rows
from gprdimer.report_tables import SIZE_BANDS, size_band
from gprdimer.verify import is_verified_success

METHOD = "gprd"
ALL = "all"


def by_system(rows, method):
    return {r["system"]: r for r in rows if r["method"] == method}


def per_call(row):
    return row["wall_time"] / row["calls"]


def machine_factors(current, earlier, other_cpu):
    """Per band (and ALL): median per-call wall of `current` rows over `earlier` rows of the
    other machine, with the number of systems."""
    ratios = defaultdict(list)
    for system, old in earlier.items():
        new = current.get(system)
        if new is None or other_cpu not in old["cpu"] or not new["calls"] or not old["calls"]:
            continue
        ratio = per_call(new) / per_call(old)
        ratios[size_band(new["natoms"])].append(ratio)
        ratios[ALL].append(ratio)
    return {band: (statistics.median(v), len(v)) for band, v in ratios.items()}


def wall_ratios(rows, factors, other_cpu):
    """Per band (and ALL): GPR-dimer median wall over Sella's, raw and corrected."""
    walls = defaultdict(lambda: {"gprd": [], "raw": [], "corrected": []})
    for r in rows:
        if not is_verified_success(r) or r["method"] not in (METHOD, "sella"):
            continue
        band = size_band(r["natoms"])
        for key in (band, ALL):
            if r["method"] == METHOD:
                walls[key]["gprd"].append(r["wall_time"])
                continue
            scale = factors[band][0] if other_cpu in r["cpu"] else 1.0
            walls[key]["raw"].append(r["wall_time"])
            walls[key]["corrected"].append(r["wall_time"] * scale)
    return {key: (statistics.median(w["gprd"]) / statistics.median(w["raw"]),
                  statistics.median(w["gprd"]) / statistics.median(w["corrected"]))
            for key, w in walls.items() if w["gprd"] and w["raw"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("current", help="database with the GPR-dimer and the Sella rows")
    parser.add_argument("earlier", help="database with GPR-dimer rows of the same systems on "
                        "the other machine")
    parser.add_argument("--other-cpu", required=True,
                        help="a substring of the other machine's `cpu` field, e.g. 'AMD EPYC'")
    args = parser.parse_args()
    rows = read_rows(args.current)
    factors = machine_factors(by_system(rows, METHOD), by_system(read_rows(args.earlier), METHOD),
                              args.other_cpu)
    if ALL not in factors:
        parser.error(f"no system of {args.earlier} ran on a cpu matching {args.other_cpu!r}")
    ratios = wall_ratios(rows, factors, args.other_cpu)
    print("band | systems | per-call factor | median wall vs Sella, raw | corrected")
    bands = [size_band(n) for n in (*SIZE_BANDS, SIZE_BANDS[-1] + 1)] + [ALL]
    for band in bands:
        if band in factors and band in ratios:
            factor, n = factors[band]
            raw, corrected = ratios[band]
            print(f"{band} | {n} | {factor:.3f} | {raw:.3f} | {corrected:.3f}")


if __name__ == "__main__":
    main()
