"""The `gprdimer` command: search (one saddle search), batch (many, on Dask), verify (a true
Hessian at every converged row of a batch database), report (tables and plots from it).

Everything a user can get wrong is checked before the first calculation and reported as one line,
`gprdimer: error: <what, naming the file or option>`, with exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from contextlib import ExitStack, contextmanager
from importlib import resources
from pathlib import Path

import numpy as np

from .calculators.factory import make_calculator
from .errors import InputError
from .inputs import read_mode, read_structure
from .modes import MODE_CHOICES, SEED
from .runner import METHODS, check_params, check_settings, run_search
from .vibrations import IMAGINARY_CM

EXAMPLE = "hcn_to_hnc.xyz"  # the README's first command: HCN -> HNC at HF/3-21G, seconds


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as the one-line error every other user error gets."""

    def error(self, message):
        _report_error(message)
        sys.exit(2)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.command(args)
    except (InputError, OSError) as exc:
        _report_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("gprdimer: interrupted", file=sys.stderr)
        return 130


def _report_error(message):
    print(f"gprdimer: error: {' '.join(str(message).split())}", file=sys.stderr)


def build_parser():
    parser = _Parser(prog="gprdimer", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    search = commands.add_parser("search", help="one saddle search from a guess geometry")
    search.set_defaults(command=_search)
    search.add_argument("guess", nargs="?", type=Path,
                        help=f"XYZ guess; without one, the built-in {EXAMPLE} example")
    _add_system_options(search)
    search.add_argument("--calc", default="hf/3-21g",
                        help="calculator: hf/3-21g, xtb, emt, ... [hf/3-21g]")
    search.add_argument("--mode", default="random",
                        help=f"initial mode: {' or '.join(MODE_CHOICES)} or a .npy/text file of "
                             f"3N numbers [random]")
    search.add_argument("--method", default="gprd", help=f"{' | '.join(METHODS)} [gprd]")
    _add_search_options(search)
    search.add_argument("--verify", action="store_true",
                        help="confirm the saddle with a true Hessian (analytic for PySCF, "
                             "finite differences otherwise), counted in the calls")
    search.add_argument("--seed", type=int, default=SEED, help=f"seed of the random mode [{SEED}]")
    search.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP/PySCF threads [1: fastest on a shared machine]")

    batch = commands.add_parser("batch", help="many searches on Dask, results in an ase.db")
    batch.set_defaults(command=_batch)
    batch.add_argument("set", type=Path, metavar="SET",
                       help="the 500-reaction set (folder or zip) or a folder of .xyz files")
    batch.add_argument("--methods", default="gprd", metavar="LIST",
                       help="comma-separated, e.g. gprd,dimer,sella [gprd]")
    batch.add_argument("--calc", default="hf/3-21g", metavar="LIST",
                       help="calculator(s), comma-separated [hf/3-21g]")
    batch.add_argument("--db", type=Path, default=Path("results.db"),
                       help="results database; a rerun skips its finished tasks [results.db]")
    _add_system_options(batch, "for a folder of .xyz files")
    _add_search_options(batch)
    batch.add_argument("--seed", type=int, default=SEED,
                       help="base seed; each system's seed derives from it and its name")
    batch.add_argument("--only", metavar="NAMES",
                       help="comma-separated system names, e.g. singlets/000,doublets/005")
    batch.add_argument("--limit", type=int, metavar="K", help="run only the first K systems")
    batch.add_argument("--smallest", type=int, metavar="K",
                       help="run only the K systems with fewest atoms")
    batch.add_argument("--stride", type=int, metavar="K",
                       help="run only every K-th system, ordered by name (a sample across "
                            "the set: 5 gives doublets/000, doublets/005, ...)")
    batch.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="stop a task after this long (it then runs in its own process)")
    _add_cluster_options(batch)

    verify = commands.add_parser(
        "verify", help="true Hessian at every converged row of a results database")
    verify.set_defaults(command=_verify)
    verify.add_argument("db", type=Path, help="results database written by gprdimer batch")
    verify.add_argument("--methods", metavar="LIST", help="only these methods' rows [all]")
    verify.add_argument("--threshold", type=float, default=IMAGINARY_CM, metavar="CM",
                        help=f"imaginary frequencies count beyond this, cm⁻¹ [{IMAGINARY_CM:g}]")
    _add_cluster_options(verify)

    report = commands.add_parser("report", help="tables and plots from a results database")
    report.set_defaults(command=_report)
    report.add_argument("db", type=Path, help="results database written by gprdimer batch")
    report.add_argument("--reference", type=Path,
                        help="set folder or reference/ folder with the published CSVs")
    report.add_argument("--out", type=Path, help="output folder [the database's folder]")
    report.add_argument("--stride", type=int, metavar="K",
                        help="only every K-th system of the database, ordered by name (the "
                             "sample `batch --stride K` runs) [all]")
    return parser


def _add_cluster_options(parser):
    parser.add_argument("--workers", type=int, metavar="N",
                        help="local worker processes [usable cores / threads per worker]")
    parser.add_argument("--threads-per-worker", type=int, metavar="T",
                        help="BLAS/OpenMP/PySCF threads per task [1]")
    parser.add_argument("--cluster", default="local", help="local | slurm | pbs [local]")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address or scheduler file of a running Dask cluster")
    parser.add_argument("--cluster-config", type=Path, metavar="FILE",
                        help="YAML file of cluster options; command-line values win")
    parser.add_argument("--queue", metavar="Q", help="slurm/pbs: queue or partition")
    parser.add_argument("--walltime", metavar="HH:MM:SS", help="slurm/pbs: per job")
    parser.add_argument("--cores", type=int, metavar="C", help="slurm/pbs: CPUs per job")
    parser.add_argument("--memory", metavar="SIZE", help="slurm/pbs: per job, e.g. 4GB")
    parser.add_argument("--jobs", type=int, metavar="J", help="slurm/pbs: jobs to start [1]")


def _add_system_options(parser, note=""):
    suffix = f" {note}" if note else ""
    parser.add_argument("--charge", type=int, default=0, help=f"total charge{suffix} [0]")
    parser.add_argument("--multiplicity", type=int, default=1,
                        help=f"spin multiplicity 2S+1{suffix} [1]")


def _add_search_options(parser):
    parser.add_argument("--fmax", type=float, default=0.01, help="force tolerance, eV/Å [0.01]")
    parser.add_argument("--steps", type=int,
                        help="outer iterations at most [300; Sella 200, the published settings]")
    parser.add_argument("--params", metavar="JSON", type=_params,
                        help="keywords of the method, as a JSON object, e.g. "
                             "'{\"convex_step\": 0.05}' (docs/parameters.md) [the defaults]")


def _params(text):
    """--params as a dict; argparse reports the error in one line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object of keyword: value is needed, got {text}")
    return value


# --- search ------------------------------------------------------------------------------------

def _search(args):
    from .batch.tasks import software_versions, thread_limit

    steps = check_settings(args.method, args.fmax, args.steps)
    params = dict(args.params or {})
    if args.verify:
        if args.method == "sella":
            raise InputError("--verify: for Sella's saddles use gprdimer verify on a batch "
                             "database")
        params["verify"] = "hessian"
    params = check_params(args.method, params)
    _check_positive(args.threads, "--threads")
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
    return 0


def check_multiplicity(atoms, charge, multiplicity, where):
    """The spin state must fit the electron count: 2S = multiplicity - 1 unpaired electrons,
    as many as there are electrons at most and of the same parity."""
    electrons = int(atoms.numbers.sum()) - int(charge)
    if electrons < 0:
        raise InputError(f"{where}: --charge {charge} removes more electrons than the "
                         f"{int(atoms.numbers.sum())} the atoms have")
    unpaired = multiplicity - 1
    if multiplicity < 1 or unpaired > electrons or unpaired % 2 != electrons % 2:
        parity = "odd" if electrons % 2 else "even"
        raise InputError(f"{where}: multiplicity {multiplicity} is impossible with {electrons} "
                         f"electrons (charge {charge}); an {parity} electron count needs an "
                         f"{'even' if electrons % 2 else 'odd'} multiplicity "
                         f"≤ {electrons + 1}")


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


# --- batch -------------------------------------------------------------------------------------

def _check_one_parameter_set(db, tasks):
    """A database holds one set of keywords per method and calculator, as its report compares
    methods by name: rows run with other keywords make another database."""
    if not Path(db).is_file():
        return
    from .batch import read_rows
    from .batch.tasks import parameters_text

    wanted = {(t["method"], t["calc"]): parameters_text(t["params"]) for t in tasks}
    for row in read_rows(db):
        want = wanted.get((row.get("method"), row.get("calc")))
        if want is not None and row.get("parameters", "{}") != want:
            raise InputError(f"{db}: its {row['method']} rows on {row['calc']} were run with "
                             f"--params {row.get('parameters', '{}')}, this batch asks for {want}; "
                             "use another --db")


def _batch(args):
    from .batch import Store, make_task, run_batch

    methods = _split_list(args.methods, "--methods")
    calcs = _split_list(args.calc, "--calc")
    steps = {method: check_settings(method, args.fmax, args.steps) for method in methods}
    params = {method: check_params(method, args.params) for method in methods}
    for calc in calcs:
        make_calculator(calc)
    _check_cluster_options(args)
    for option in ("limit", "smallest", "stride"):
        value = getattr(args, option)
        if value is not None:
            _check_positive(value, "--" + option.replace("_", "-"))
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    systems = _select(_load_systems(args), args)
    for name, atoms, charge, multiplicity in systems:
        check_multiplicity(atoms, charge, multiplicity, name)
    threads = args.threads_per_worker or 1
    tasks = [make_task(name, atoms, method=method, calc=calc, charge=charge,
                       multiplicity=multiplicity, fmax=args.fmax, steps=steps[method],
                       base_seed=args.seed, threads=threads, timeout=args.timeout,
                       params=params[method])
             for name, atoms, charge, multiplicity in systems
             for calc in calcs for method in methods]
    _check_one_parameter_set(args.db, tasks)
    store = Store(args.db)
    done = store.done_keys()
    todo = [task for task in tasks if task["key"] not in done]
    print(f"gprdimer batch: {len(tasks)} tasks, {len(tasks) - len(todo)} already in {args.db}, "
          f"{len(todo)} to run", flush=True)
    if not todo:
        return 0
    with _client(args, threads) as client:
        counts = run_batch(client, todo, store)
    print(f"gprdimer batch: {counts['written']} rows written to {args.db} "
          f"({counts['converged']} converged, {counts['failed']} failed"
          + (f", {counts['duplicates']} already written by another runner" if counts["duplicates"]
             else "") + ")")
    return 0


@contextmanager
def _client(args, threads):
    """A Dask client on the cluster the options name, closed (with its cluster) on exit."""
    from .batch import connect, make_cluster

    with ExitStack() as stack:
        if args.scheduler:
            yield stack.enter_context(connect(args.scheduler))
            return
        workers = args.workers
        if args.cluster == "local" and workers is None:
            workers = max(1, _usable_cores() // threads)
        cluster = stack.enter_context(make_cluster(
            args.cluster, workers=workers, threads_per_worker=threads, queue=args.queue,
            walltime=args.walltime, cores=args.cores, memory=args.memory,
            jobs=args.jobs or (1 if args.cluster != "local" else None),
            config=args.cluster_config))
        from distributed import Client

        yield stack.enter_context(Client(cluster))


def _check_cluster_options(args):
    for option in ("workers", "threads_per_worker", "jobs", "cores"):
        value = getattr(args, option)
        if value is not None:
            _check_positive(value, "--" + option.replace("_", "-"))


# --- verify ------------------------------------------------------------------------------------

def _verify(args):
    from .batch import Store, run_verification
    from .verify import verification_task

    _check_cluster_options(args)
    if not (math.isfinite(args.threshold) and args.threshold > 0):
        raise InputError(f"--threshold must be a positive number of cm⁻¹, got {args.threshold}")
    if not args.db.is_file():
        raise InputError(f"{args.db}: no such results database")
    methods = None if args.methods is None else set(_split_list(args.methods, "--methods"))
    store = Store(args.db)
    threads = args.threads_per_worker or 1
    todo = [verification_task(row_id, row, positions, numbers, threads, args.threshold)
            for row_id, row, positions, numbers in store.to_verify(methods)]
    for calc in {task["calc"] for task in todo}:  # an unknown name fails here, before any work
        make_calculator(calc)
    print(f"gprdimer verify: {len(todo)} converged rows of {args.db} to verify", flush=True)
    if not todo:
        return 0
    with _client(args, threads) as client:
        counts = run_verification(client, todo, store)
    print(f"gprdimer verify: {counts['verified']} rows verified, {counts['first_order']} "
          f"first-order saddles, {counts['rejected']} rejected")
    return 0


def _load_systems(args):
    """(name, atoms, charge, multiplicity) of every system in the set or .xyz folder."""
    from .data import load_sella500

    path = args.set
    if path.is_dir() and any(path.glob("*.xyz")):
        return [(f.stem, read_structure(f), args.charge, args.multiplicity)
                for f in sorted(path.glob("*.xyz"))]
    return [(r.name, r.atoms, r.charge, r.multiplicity) for r in load_sella500(path)]


def _select(systems, args):
    if args.only:
        wanted = _split_list(args.only, "--only")
        known = {s[0] for s in systems}
        missing = [name for name in wanted if name not in known]
        if missing:
            raise InputError(f"--only: {', '.join(missing)} not in {args.set}")
        systems = [s for s in systems if s[0] in wanted]
    if args.stride:
        every = set(sorted(s[0] for s in systems)[::args.stride])
        systems = [s for s in systems if s[0] in every]
    if args.smallest:
        by_size = sorted(range(len(systems)), key=lambda i: len(systems[i][1]))
        systems = [systems[i] for i in sorted(by_size[:args.smallest])]
    if args.limit:
        systems = systems[:args.limit]
    return systems


def _usable_cores():
    if hasattr(os, "sched_getaffinity"):  # the cores this process may use, not the machine's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _split_list(text, option):
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"{option}: expected a comma-separated list, got {text!r}")
    return items


def _check_positive(value, option):
    if value < 1:
        raise InputError(f"{option} must be at least 1, got {value}")


# --- report ------------------------------------------------------------------------------------

def _report(args):
    from .report import build_report

    if args.stride is not None:
        _check_positive(args.stride, "--stride")
    for path in build_report(args.db, reference=args.reference, out=args.out, stride=args.stride):
        print(path)
    return 0
