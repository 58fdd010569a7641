"""`gprdimer batch`, `verify` and `report`: many searches on Dask into an ase.db, a true Hessian
at every converged row, and the tables and plots of a database."""

from __future__ import annotations

import math
import os
from contextlib import ExitStack, contextmanager

from ..calculators.factory import make_calculator
from ..errors import InputError
from ..inputs import check_multiplicity
from ..structures import read_structure, system_spin
from ..runner import check_params, check_settings
from .options import check_positive, split_list


# A task's row settings that change its result, as (row key, task key, option) each.
_ROW_SETTINGS = (("fmax_target", "fmax", "--fmax"), ("steps", "steps", "--steps"),
                 ("seed", "seed", "--seed"), ("total_charge", "charge", "--charge"),
                 ("multiplicity", "multiplicity", "--multiplicity"))


def open_store(db, tasks):
    """The batch's store, refused where it holds these tasks' systems run with other settings.
    The store creates a new database's tables under its write lock, before anything reads it:
    a second runner started at the same moment waits for them instead of creating them too."""
    from ..batch import Store

    store = Store(db)
    _check_one_parameter_set(store, tasks)
    return store


def _check_one_parameter_set(store, tasks):
    """A database holds one set of settings per method and calculator, as its report compares
    methods by name: rows run with other keywords, force target, step limit, seed or spin make
    another database (a rerun would otherwise find every task "already in")."""
    from ..batch.tasks import parameters_text

    db = store.path
    wanted = {(t["method"], t["calc"]): parameters_text(t["params"]) for t in tasks}
    by_key = {t["key"]: t for t in tasks}
    for row in store.rows():
        want = wanted.get((row.get("method"), row.get("calc")))
        if want is not None and row.get("parameters", "{}") != want:
            raise InputError(f"{db}: its {row['method']} rows on {row['calc']} were run with "
                             f"--params {row.get('parameters', '{}')}, this batch asks for {want}; "
                             "use another --db")
        task = by_key.get(row.get("task_key"))
        for row_key, task_key, option in _ROW_SETTINGS if task is not None else ():
            if row.get(row_key) is not None and row[row_key] != task[task_key]:
                raise InputError(f"{db}: {row['system']} ({row['method']}, {row['calc']}) was "
                                 f"run with {option} {row[row_key]}, this batch asks for "
                                 f"{task[task_key]}; use another --db")


def require_dask(command):
    """InputError naming the extra when Dask is missing, before anything is read or written."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(f"gprdimer {command} needs Dask: pip install 'gprdimer[hpc]'") from None


def batch(args):
    require_dask("batch")
    from ..batch import make_task, run_batch

    methods = split_list(args.methods, "--methods")
    calcs = split_list(args.calc, "--calc")
    steps = {method: check_settings(method, args.fmax, args.steps) for method in methods}
    params = {method: check_params(method, args.params) for method in methods}
    for calc in calcs:
        make_calculator(calc)
    _check_cluster_options(args)
    for option in ("limit", "smallest", "stride"):
        value = getattr(args, option)
        if value is not None:
            check_positive(value, "--" + option.replace("_", "-"))
    if args.timeout is not None and not (math.isfinite(args.timeout) and args.timeout > 0):
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    systems = _select(_load_systems(args), args)
    for name, atoms, charge, multiplicity in systems:
        check_multiplicity(atoms, charge, multiplicity, name)
    threads = args.threads_per_worker or 1
    tasks = [make_task(name, atoms, method=method, calc=calc, charge=charge,
                       multiplicity=multiplicity, fmax=args.fmax, steps=steps[method],
                       base_seed=args.seed, threads=threads, timeout=args.timeout,
                       params=params[method], irc=args.irc)
             for name, atoms, charge, multiplicity in systems
             for calc in calcs for method in methods]
    if args.dry_run:
        return _print_job_script(args, threads)
    store = open_store(args.db, tasks)
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


def _cluster_options(args, threads):
    return dict(threads_per_worker=threads, queue=args.queue, walltime=args.walltime,
                cores=args.cores, memory=args.memory,
                jobs=args.jobs or (1 if args.cluster != "local" else None),
                config=args.cluster_config)


def _print_job_script(args, threads):
    from ..batch.cluster import job_script

    print(job_script(args.cluster, **_cluster_options(args, threads)))
    return 0


@contextmanager
def _client(args, threads):
    """A Dask client on the cluster the options name, closed (with its cluster) on exit."""
    from ..batch import connect, make_cluster

    with ExitStack() as stack:
        if args.scheduler:
            yield stack.enter_context(connect(args.scheduler))
            return
        workers = args.workers
        if args.cluster == "local" and workers is None:
            workers = max(1, _usable_cores() // threads)
        cluster = stack.enter_context(make_cluster(args.cluster, workers=workers,
                                                   **_cluster_options(args, threads)))
        from distributed import Client

        yield stack.enter_context(Client(cluster))


def _check_cluster_options(args):
    for option in ("workers", "threads_per_worker", "jobs", "cores"):
        value = getattr(args, option)
        if value is not None:
            check_positive(value, "--" + option.replace("_", "-"))


def verify(args):
    require_dask("verify")
    from ..batch import Store, run_verification
    from ..verify import verification_task

    _check_cluster_options(args)
    if not (math.isfinite(args.threshold) and args.threshold > 0):
        raise InputError(f"--threshold must be a positive number of cm⁻¹, got {args.threshold}")
    if args.dry_run:
        return _print_job_script(args, args.threads_per_worker or 1)
    if not args.db.is_file():
        raise InputError(f"{args.db}: no such results database")
    methods = None if args.methods is None else set(split_list(args.methods, "--methods"))
    store = Store(args.db)
    threads = args.threads_per_worker or 1
    todo = [verification_task(row_id, row, positions, numbers, threads, args.threshold, start)
            for row_id, row, positions, numbers, start in store.to_verify(methods)]
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
    """(name, atoms, charge, multiplicity) of every system in the set or the folder of guesses."""
    from ..data import load_sella500

    path = args.set
    if path.is_dir() and any(path.glob(args.files)):
        return [(f.stem, atoms, *system_spin(atoms, args.charge, args.multiplicity, str(f)))
                for f in sorted(path.glob(args.files)) for atoms in [read_structure(f)]]
    return [(r.name, r.atoms, r.charge, r.multiplicity) for r in load_sella500(path)]


def _select(systems, args):
    if args.only:
        wanted = split_list(args.only, "--only")
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


def report(args):
    from ..report import build_report

    if args.stride is not None:
        check_positive(args.stride, "--stride")
    for path in build_report(args.db, reference=args.reference, out=args.out, stride=args.stride):
        print(path)
    return 0
