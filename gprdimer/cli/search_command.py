"""`gprdimer search`: one saddle search from a guess, its trajectory and a JSON record."""

from __future__ import annotations

import dataclasses
import json
import math
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

import numpy as np

from ..calculators.factory import make_calculator
from ..errors import InputError
from ..inputs import check_multiplicity, read_mode, read_structure
from ..modes import MODE_CHOICES
from ..runner import check_params, check_settings, run_search
from .options import check_positive

EXAMPLE = "hcn_to_hnc.xyz"  # the README's first command: HCN -> HNC at HF/3-21G, seconds


def command(args):
    from ..provenance import software_versions, thread_limit

    steps = check_settings(args.method, args.fmax, args.steps)
    params = dict(args.params or {})
    if args.verify:
        if args.method == "sella":
            raise InputError("--verify: for Sella's saddles use gprdimer verify on a batch "
                             "database")
        params["verify"] = "hessian"
    params = check_params(args.method, params)
    check_positive(args.threads, "--threads")
    with ExitStack() as stack:
        if args.guess is None:
            guess = stack.enter_context(
                resources.as_file(resources.files("gprdimer") / "examples" / EXAMPLE))
            folder = Path.cwd()
        else:
            guess, folder = args.guess, args.guess.parent
        atoms = read_structure(guess)
    check_multiplicity(atoms, args.charge, args.multiplicity, str(args.guess or EXAMPLE))
    mode = args.mode if args.mode in MODE_CHOICES else read_mode(args.mode, len(atoms))
    atoms.calc = make_calculator(args.calc, args.charge, args.multiplicity, threads=args.threads,
                                 label=guess.stem)
    stem = f"{guess.stem}.{args.method}"
    trajectory, summary = folder / f"{stem}.traj", folder / f"{stem}.json"
    print(f"gprdimer search: {guess.name}, {args.method} on {args.calc}, "
          f"charge {args.charge}, multiplicity {args.multiplicity}", flush=True)
    with thread_limit(args.threads):
        result = run_search(atoms, args.method, mode=mode, fmax=args.fmax, steps=steps,
                            seed=args.seed, trajectory=str(trajectory), logfile="-",
                            params=params)
    record = {
        "input": str(args.guess or EXAMPLE), "method": args.method, "calc": args.calc,
        "charge": args.charge, "multiplicity": args.multiplicity,
        "settings": {"fmax": args.fmax, "steps": steps, "seed": args.seed,
                     "mode": str(args.mode), "threads": args.threads, "params": params},
        "versions": software_versions(args.method, args.calc),
        **dataclasses.asdict(result),
        "stop": result.stop.value, "stop_reason": result.stop_reason,
    }
    summary.write_text(json.dumps(_jsonable(record), indent=2) + "\n")
    _print_summary(result, trajectory, summary)
    return 0 if result.converged else 1


def _jsonable(value):
    """Arrays as lists, NaN and infinity as null (JSON has neither)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _imaginary_text(result):
    if result.n_imaginary is None:
        return "not checked (the forces never met the criterion with negative curvature)"
    text = f"{result.n_imaginary} imaginary mode{'s' if result.n_imaginary != 1 else ''}"
    if result.frequencies is not None:
        shown = ", ".join(f"{f:.0f}" for f in result.frequencies[:6])
        more = ", ..." if len(result.frequencies) > 6 else ""
        text += f"; true Hessian: {shown}{more} cm⁻¹"
    return text


def _print_summary(result, trajectory, summary):
    status = "yes" if result.converged else "no"
    print(f"\nconverged    {status} ({result.stop_reason})\n"
          f"calls        {result.calls} in {result.outer_iterations} outer iterations, "
          f"{result.starts} start{'s' if result.starts != 1 else ''}\n"
          f"energy       {result.energy:.6f} eV\n"
          f"fmax         {result.fmax:.4f} eV/Å\n"
          f"curvature    {result.curvature:.4g} eV/Å²\n"
          f"saddle check {_imaginary_text(result)}\n"
          f"time         {result.wall_time:.1f} s, of which GP {result.gp_time:.2f} s\n"
          f"wrote        {trajectory}, {summary}")
