"""GPR-dimer settings compared on a fixed sample of the set: one JSON line per search.

Runs every STRIDE-th system of the set (default 17: 30 systems, 16 singlets and 14 doublets) with
the given GPRDimer keywords and appends a line per search to OUT (system, converged, stop reason,
calls, wall and GP seconds, energy, and the true fmax after every outer iteration, from which the
effect of a `patience` setting can be read off). A rerun with the same OUT skips the systems done.
With --summary it only prints success, median calls and GP time of the files given.

    OMP_NUM_THREADS=1 python benchmarks/tune_sample.py '{"retrain_tolerance": 0.2}' v2.jsonl
    python benchmarks/tune_sample.py --summary v1.jsonl v2.jsonl
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from gprdimer import GPRDimer  # noqa: E402
from gprdimer.batch.tasks import task_seed  # noqa: E402
from gprdimer.calculators.factory import make_calculator  # noqa: E402
from gprdimer.data import load_sella500  # noqa: E402
from set_location import default_set  # noqa: E402


def run(params, out, data, stride, calc):
    done = {json.loads(line)["system"] for line in open(out)} if out.exists() else set()
    for r in list(load_sella500(data))[::stride]:
        if r.name in done:
            continue
        atoms = r.atoms.copy()
        atoms.calc = make_calculator(calc, r.charge, r.multiplicity)
        opt = GPRDimer(atoms, logfile=None, seed=task_seed(r.name), **params)
        history = []
        opt.attach(lambda: history.append(round(opt.result.fmax, 5)))
        t = time.time()
        opt.run(fmax=0.01, steps=300)
        res = opt.result
        with open(out, "a") as fh:
            fh.write(json.dumps(dict(system=r.name, atoms=len(atoms), converged=res.converged,
                                     stop=res.stop_reason, calls=res.calls,
                                     outer=res.outer_iterations, wall=time.time() - t,
                                     gp=res.gp_time, energy=res.energy, hist=history)) + "\n")


def longest_stall(history):
    """Outer iterations in the longest stretch without a new lowest fmax (the start excluded)."""
    best, at, longest = float("inf"), 0, 0
    for i, f in enumerate(history[1:]):
        if f < best:
            best, at = f, i
        longest = max(longest, i - at)
    return longest


def summary(files):
    for path in files:
        rows = [json.loads(line) for line in open(path)]
        ok = [r for r in rows if r["converged"]]
        calls = statistics.median(r["calls"] for r in ok) if ok else float("nan")
        stall = max((longest_stall(r["hist"]) for r in ok), default=0)
        print(f"{path}: {len(ok)}/{len(rows)} converged, median calls {calls}, "
              f"GP {sum(r['gp'] for r in rows):.1f} s in all, longest stall before a "
              f"convergence {stall} iterations")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("params", nargs="?", default="{}", help="GPRDimer keywords as JSON")
    p.add_argument("out", nargs="*", type=Path)
    p.add_argument("--data", type=Path, default=default_set())
    p.add_argument("--stride", type=int, default=17)
    p.add_argument("--calc", default="xtb")
    p.add_argument("--summary", action="store_true", help="summarise the files given instead")
    args = p.parse_args(argv)
    if args.summary:
        summary([Path(args.params), *args.out])
    else:
        run(json.loads(args.params), args.out[0], args.data, args.stride, args.calc)


if __name__ == "__main__":
    main()
