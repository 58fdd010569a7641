"""The GP's memory bound in a long search: peak memory and GP seconds per outer iteration.

Runs GPR-dimer searches that never converge (an unreachable force target, no restarts), so that
every one runs its full step budget and its GP only grows: the longest search of the set
(singlets/082, 21 atoms, 327 calls on xTB) and a 60-atom molecule (C60 by default), each with
`memory_limit` as given (default: the default, 1000 MB) and, with `--unbounded`, without it in
the same run. Each search runs in a fresh process so that its peak resident memory is its own.
Prints, per search, the peak memory, the most observations the GP held, and the GP seconds of
the outer iterations in four quarters of the run (a cost that stops growing levels off).

    OMP_NUM_THREADS=1 python benchmarks/memory_bound.py [--calc xtb] [--steps 300]
        [--memory-limit 1000] [--unbounded] [--systems singlets/082,C60]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

DEFAULT_SYSTEMS = "singlets/082,C60"


def one_search(system, calc_spec, steps, memory_limit, data):
    """In this process: the search, then one JSON line with what it measured."""
    import resource

    import ase.build

    from gprdimer import GPRDimer
    from gprdimer.calculators.factory import make_calculator
    from gprdimer.data import load_sella500

    if "/" in system:
        reaction = next(r for r in load_sella500(data) if r.name == system)
        atoms, charge, multiplicity = reaction.atoms, reaction.charge, reaction.multiplicity
    else:
        atoms, charge, multiplicity = ase.build.molecule(system), 0, 1
    atoms.calc = make_calculator(calc_spec, charge, multiplicity)
    opt = GPRDimer(atoms, logfile=None, memory_limit=memory_limit, patience=0,
                   fallback_mode=None, fresh_starts=0)
    gp_times, held = [], []
    last = [0.0]

    def observe():
        gp_times.append(opt.result.gp_time - last[0])
        last[0] = opt.result.gp_time
        held.append(opt.gp.n_observations)

    opt.attach(observe)
    t = time.perf_counter()
    opt.run(fmax=1e-9, steps=steps)
    quarters = [gp_times[i * len(gp_times) // 4:(i + 1) * len(gp_times) // 4]
                for i in range(4)]
    print(json.dumps({
        "system": system, "atoms": len(atoms), "memory_limit": memory_limit,
        "outer": opt.result.outer_iterations, "calls": opt.result.calls,
        "stop": opt.result.stop_reason, "wall": time.perf_counter() - t,
        "most_observations": max(held) if held else 0,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "gp_per_iteration_by_quarter": [sum(q) / len(q) if q else float("nan")
                                        for q in quarters]}))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calc", default="xtb")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--memory-limit", type=float, default=1000.0)
    p.add_argument("--unbounded", action="store_true", help="also run each without a bound")
    p.add_argument("--systems", default=DEFAULT_SYSTEMS,
                   help="set names (singlets/082) or ase.build.molecule names (C60)")
    p.add_argument("--data", default=None, help="the 500-reaction set [GPRDIMER_SELLA500]")
    p.add_argument("--one", nargs=2, metavar=("SYSTEM", "LIMIT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.data is None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from set_location import default_set
        args.data = str(default_set())
    if args.one:
        limit = None if args.one[1] == "none" else float(args.one[1])
        return one_search(args.one[0], args.calc, args.steps, limit, args.data)
    limits = [args.memory_limit] + (["none"] if args.unbounded else [])
    print("| system | atoms | memory_limit MB | outer | most observations | peak memory MB | "
          "GP s per outer iteration, by quarter of the run | wall s |\n|---|---|---|---|---|---|---|---|",
          flush=True)
    for system in args.systems.split(","):
        for limit in limits:
            done = subprocess.run([sys.executable, __file__, "--one", system, str(limit),
                                   "--calc", args.calc, "--steps", str(args.steps),
                                   "--data", args.data], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"| {system} | — | {limit} | failed: {done.stderr.strip()[-200:]} |")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            quarters = " / ".join(f"{q:.3f}" for q in r["gp_per_iteration_by_quarter"])
            print(f"| {system} | {r['atoms']} | {limit} | {r['outer']} | "
                  f"{r['most_observations']} | {r['peak_mb']:.0f} | {quarters} | "
                  f"{r['wall']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
