"""`gprdimer search`: one saddle search from a guess; beside the guess it writes GUESS.METHOD
with the suffixes .traj (the saddle path), .calls.traj (every call: what --restart resumes
from), .json (the record of the search) and, where it converged, .ts.xyz and .mode.xyz."""

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
from ..inputs import check_multiplicity, read_mode
from ..modes import MODE_CHOICES
from ..runner import SearchInterrupted, check_params, check_settings, run_search
from ..search import StopReason
from ..saddle_files import point_atoms, saddle_atoms, write_mode_animation, write_point
from ..structures import read_structure, split_frame, system_spin
from .options import check_positive

EXAMPLE = "hcn_to_hnc.xyz"  # the README's first command: HCN -> HNC at HF/3-21G, seconds
# what a converged search (with --irc) adds to GUESS.METHOD, removed before a new search ends
STALE = ("ts.xyz", "mode.xyz", "forward.xyz", "reverse.xyz", "irc.forward.traj",
         "irc.reverse.traj")


def _beside(stem, kind):
    """The output file GUESS.METHOD.KIND beside the guess."""
    return stem.with_name(f"{stem.name}.{kind}")


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
        else:
            guess = args.guess
        atoms = read_structure(guess)
    guess, _ = split_frame(guess)
    folder = Path.cwd() if args.guess is None else guess.parent
    where = str(args.guess or EXAMPLE)
    charge, multiplicity = system_spin(atoms, args.charge, args.multiplicity, where)
    check_multiplicity(atoms, charge, multiplicity, where)
    mode = args.mode if args.mode in MODE_CHOICES else read_mode(args.mode, len(atoms))
    atoms.calc = make_calculator(args.calc, charge, multiplicity, threads=args.threads,
                                 label=guess.stem)
    stem = folder / f"{guess.stem}.{args.method}"
    files = {kind: _beside(stem, kind)
             for kind in ("traj", "calls.traj", "json", "ts.xyz", "mode.xyz")}
    restart = _restart_file(args, files)
    files["json"].unlink(missing_ok=True)  # until this search writes its own: it has not finished
    print(f"gprdimer search: {guess.name}, {args.method} on {args.calc}, "
          f"charge {charge}, multiplicity {multiplicity}", flush=True)
    record = {
        "input": where, "method": args.method, "calc": args.calc,
        "charge": charge, "multiplicity": multiplicity,
        "settings": {"fmax": args.fmax, "steps": steps, "seed": args.seed,
                     "mode": str(args.mode), "threads": args.threads, "params": params},
        "versions": software_versions(args.method, args.calc),
    }
    try:
        with thread_limit(args.threads):
            result = run_search(atoms, args.method, mode=mode, fmax=args.fmax, steps=steps,
                                seed=args.seed, trajectory=str(files["traj"]), logfile="-",
                                restart=restart, params=params)
    except SearchInterrupted as interrupt:
        _write_record(files["json"], record, interrupt.result)
        print(f"\ninterrupted after {interrupt.result.calls} calls; wrote {files['json']}"
              + ("" if restart is None else "; continue with the same command and --restart"),
              flush=True)
        raise
    _write_record(files["json"], record, result)
    written = [files["traj"], files["json"]] + ([] if restart is None else [files["calls.traj"]])
    for kind in STALE:  # a saddle of an earlier search is not this one's
        _beside(stem, kind).unlink(missing_ok=True)
    if result.converged:
        saddle = saddle_atoms(atoms.numbers, result, charge, multiplicity, atoms.constraints)
        write_point(files["ts.xyz"], saddle)
        written.append(files["ts.xyz"])
        if write_mode_animation(files["mode.xyz"], saddle):
            written.append(files["mode.xyz"])
    _print_summary(result, written)
    if args.irc and result.converged:
        _follow_irc(atoms, result, stem, files["json"], args.fmax, (charge, multiplicity))
    return 0 if result.converged else 1


def _follow_irc(atoms, result, stem, record_path, fmax, spin):
    """The IRC from the saddle: both minima written beside the other files, its summary added
    to the JSON record."""
    from ..irc import follow_irc

    print("\nIRC from the saddle, both ways (Sella), then each end relaxed", flush=True)
    atoms.positions = result.positions
    irc = follow_irc(atoms, fmax=fmax, trajectory=str(_beside(stem, "irc")))
    paths = [_beside(stem, f"irc.{end.direction}.traj") for end in irc.ends]
    for end, barrier in zip(irc.ends, irc.barriers):
        path = _beside(stem, f"{end.direction}.xyz")
        write_point(path, point_atoms(atoms.numbers, end.positions, *spin, end.energy,
                                      constraints=atoms.constraints))
        paths.append(path)
        state = "minimum" if end.converged else f"not relaxed (fmax {end.fmax:.3f} eV/Å)"
        print(f"{end.direction:<12} {end.energy:.6f} eV, barrier {barrier:.4f} eV, "
              f"{end.calls} calls, {state}")
    verdict = ("two distinct minima" if irc.distinct else
               "both ends are the same minimum: this saddle does not join two minima")
    print(f"ends         {verdict}{'' if irc.same_bonds else ' (the bonds change)'}\n"
          f"wrote        " + "\n             ".join(str(p) for p in paths))
    record = json.loads(record_path.read_text())
    record["irc"] = irc.summary()
    record_path.write_text(json.dumps(_jsonable(record), indent=2) + "\n")


def _restart_file(args, files):
    """The file of every call for the dimer methods: with --restart the one to resume from,
    else a new one. The calls of a search that did not finish are never overwritten."""
    path = files["calls.traj"]
    if args.method == "sella":
        if args.restart:
            raise InputError("--restart: Sella searches are not restarted; start a new one")
        return None
    if args.restart:
        if not path.is_file():
            raise InputError(f"--restart: {path} does not exist; there is no search to resume")
    elif path.is_file():
        if not _finished(files["json"]):
            raise InputError(f"{path} holds the calls of a search that did not finish: add "
                             "--restart to continue it, or delete the file to start anew")
        path.unlink()
    return str(path)


def _finished(record):
    try:
        return json.loads(record.read_text())["stop"] != StopReason.INTERRUPTED.value
    except (OSError, ValueError, KeyError, TypeError):  # killed before it wrote its record
        return False


def _write_record(path, record, result):
    record = {**record, **dataclasses.asdict(result), "stop": result.stop.value,
              "stop_reason": result.stop_reason}
    path.write_text(json.dumps(_jsonable(record), indent=2) + "\n")


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


def _print_summary(result, written):
    status = "yes" if result.converged else "no"
    print(f"\nconverged    {status} ({result.stop_reason})\n"
          f"calls        {result.calls} in {result.outer_iterations} outer iterations, "
          f"{result.starts} start{'s' if result.starts != 1 else ''}"
          + (f" ({result.reused_calls} more read from the restart file)"
             if result.reused_calls else "") + "\n"
          f"energy       {result.energy:.6f} eV\n"
          f"fmax         {result.fmax:.4f} eV/Å\n"
          f"curvature    {result.curvature:.4g} eV/Å²\n"
          f"saddle check {_imaginary_text(result)}\n"
          f"time         {result.wall_time:.1f} s, of which GP {result.gp_time:.2f} s\n"
          f"wrote        " + "\n             ".join(str(p) for p in written))
