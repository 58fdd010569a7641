"""Where a GPR-dimer search spends its time: GP work per outer iteration against the true calls.

For one system of each size (default: the first 8-, 16- and 25-atom systems of the set) it runs a
GPR-dimer search on the chosen calculator (HF/3-21G by default) and times, in the same run, every
electronic-structure call and every GP step: `add` (observation into the model, extending the
factor), `train` (hyperparameters on the subset, and the refactorisation when they moved) and the
inner loop on the surrogate. It prints, per system, the mean GP seconds per outer iteration (the
search's GP time over its outer iterations, trainings included) and its split into add / train /
inner loop, the median, the seconds per true call, the GP share of the wall time, and, in the
same run, Sella's calls and wall time on the same system (`--no-sella` leaves it out).

    OMP_NUM_THREADS=1 python benchmarks/overhead.py [--data DIR] [--calc hf/3-21g]
        [--systems singlets/034,singlets/000,doublets/009] [--no-sella] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from gprdimer import GPRDimer  # noqa: E402
from gprdimer.calculators.factory import make_calculator  # noqa: E402
from gprdimer.data import load_sella500  # noqa: E402
from gprdimer.batch.tasks import task_seed  # noqa: E402
from set_location import default_set  # noqa: E402
DEFAULT_SYSTEMS = "singlets/034,singlets/000,doublets/009"  # 8, 16 and 25 atoms
PARTS = ("add", "train", "inner loop")


class Timed:
    """Wraps a callable; every call's duration goes to `log[name]` of the current iteration."""

    def __init__(self, fn, name, clock):
        self.fn, self.name, self.clock = fn, name, clock

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.clock.current[self.name] += time.perf_counter() - t


class Clock:
    """Seconds per part, one dict per outer iteration (index 0: the start-up)."""

    def __init__(self):
        self.iterations = [defaultdict(float)]
        self.calls = []

    @property
    def current(self):
        return self.iterations[-1]

    def next_iteration(self):
        self.iterations.append(defaultdict(float))


def timed_calculator(calc, clock):
    """The calculator with its `calculate` timed (one entry per true call)."""
    inner = calc.calculate

    def calculate(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            clock.calls.append(time.perf_counter() - t)

    calc.calculate = calculate
    return calc


def profile(reaction, calc_spec, fmax, steps):
    clock = Clock()
    atoms = reaction.atoms.copy()
    atoms.calc = timed_calculator(make_calculator(calc_spec, reaction.charge, reaction.multiplicity,
                                                  threads=1, label=reaction.name), clock)
    opt = GPRDimer(atoms, logfile=None, seed=task_seed(reaction.name))
    opt.gp.add = Timed(opt.gp.add, "add", clock)
    opt.gp.train = Timed(opt.gp.train, "train", clock)
    opt._relax = Timed(opt._relax, "inner loop", clock)
    opt.attach(clock.next_iteration)
    t = time.perf_counter()
    opt.run(fmax=fmax, steps=steps)
    wall = time.perf_counter() - t
    # the observer runs after each iteration, so the last dict is empty
    loop = [it for it in clock.iterations[1:] if it]
    per_iter = [sum(it[p] for p in PARTS) for it in loop]
    r = opt.result
    outer = max(1, r.outer_iterations)
    return {
        "gp_mean": r.gp_time / outer,
        "totals": {p: sum(it[p] for it in clock.iterations) / outer for p in PARTS},
        "system": reaction.name, "atoms": len(atoms), "converged": r.converged,
        "stop": r.stop_reason, "calls": r.calls, "outer": r.outer_iterations,
        "observations": opt.gp.n_observations, "wall": wall, "gp_total": r.gp_time,
        "call_median": statistics.median(clock.calls), "call_total": sum(clock.calls),
        "gp_median": statistics.median(per_iter) if per_iter else float("nan"),
        "parts": {p: statistics.median(it[p] for it in loop) if loop else float("nan")
                  for p in PARTS},
        "gp_last": per_iter[-1] if per_iter else float("nan"),
    }


def sella_run(reaction, calc_spec, fmax):
    """Sella on the same system and calculator, as the batch runs it: (calls, wall s)."""
    from gprdimer.runner import run_search

    atoms = reaction.atoms.copy()
    atoms.calc = make_calculator(calc_spec, reaction.charge, reaction.multiplicity, threads=1,
                                 label=reaction.name)
    result = run_search(atoms, "sella", fmax=fmax)
    return result.calls, result.wall_time, result.converged


def table(rows, calc_spec):
    lines = [
        f"| system | atoms | converged | calls | outer | mean GP s/outer iteration "
        f"(add / train / inner loop) | median | last | median {calc_spec} s/call | "
        f"GP share of wall | wall s | Sella calls | Sella wall s | wall / Sella's |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parts = " / ".join(f"{r['totals'][p]:.3f}" for p in PARTS)
        sella_calls, sella_wall, _ = r.get("sella", (None, float("nan"), None))
        lines.append(
            f"| {r['system']} | {r['atoms']} | {'yes' if r['converged'] else 'no: ' + r['stop']} | "
            f"{r['calls']} | {r['outer']} | {r['gp_mean']:.3f} ({parts}) | "
            f"{r['gp_median']:.3f} | {r['gp_last']:.3f} | {r['call_median']:.3f} | "
            f"{100 * r['gp_total'] / r['wall']:.1f} % | {r['wall']:.1f} | "
            f"{'—' if sella_calls is None else sella_calls} | {sella_wall:.1f} | "
            f"{r['wall'] / sella_wall:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=default_set())
    p.add_argument("--calc", default="hf/3-21g")
    p.add_argument("--systems", default=DEFAULT_SYSTEMS)
    p.add_argument("--fmax", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--no-sella", action="store_true", help="leave out the Sella runs")
    p.add_argument("--out", type=Path, help="append the table to this Markdown file")
    args = p.parse_args(argv)
    wanted = args.systems.split(",")
    known = {r.name: r for r in load_sella500(args.data)}
    missing = [w for w in wanted if w not in known]
    if missing:
        sys.exit(f"overhead.py: unknown system(s) {', '.join(missing)} in {args.data}")
    rows = []
    for name in wanted:
        rows.append(profile(known[name], args.calc, args.fmax, args.steps))
        r = rows[-1]
        if not args.no_sella:
            r["sella"] = sella_run(known[name], args.calc, args.fmax)
        print(f"{name}: {r['atoms']} atoms, {r['calls']} calls, GP mean {r['gp_mean']:.3f} "
              f"s/iteration, call {r['call_median']:.3f} s, share "
              f"{100 * r['gp_total'] / r['wall']:.1f} %", flush=True)
    text = table(rows, args.calc)
    print(text)
    if args.out:
        stamp = time.strftime("%Y-%m-%d")
        with open(args.out, "a") as fh:
            fh.write(f"\n### GP overhead per outer iteration, {args.calc} ({stamp})\n\n"
                     f"`OMP_NUM_THREADS=1 python benchmarks/overhead.py --calc {args.calc} "
                     f"--systems {args.systems}`: the mean is the search's GP time over its "
                     f"outer iterations (start-up and trainings included), split into add / "
                     f"train / inner loop; median and last are per outer iteration; the share "
                     f"is all GP time over the search's wall time.\n\n{text}\n")


if __name__ == "__main__":
    main()
