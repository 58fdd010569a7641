"""Where a batch runs: worker processes on this machine, a SLURM/PBS allocation, or an existing
Dask scheduler.

Every worker runs one task at a time (one Dask thread) and gives that task `threads_per_worker`
BLAS/OpenMP threads: measured here, independent single-thread searches side by side beat
threaded ones, and two layers of threads on one core slow each other down by up to 9x.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import InputError
from ..provenance import THREAD_VARIABLES

KINDS = ("local", "slurm", "pbs")
# A worker that dies (killed, out of memory) twice on one task is not given it a third time; the
# task is recorded as failed instead of taking down one worker after another.
ALLOWED_FAILURES = 1
SUBMIT_COMMANDS = {"slurm": "sbatch", "pbs": "qsub"}


def make_cluster(kind="local", workers=None, threads_per_worker=None, queue=None, walltime=None,
                 cores=None, memory=None, jobs=None, config=None, submit=True):
    """A started Dask cluster object.

    local: `workers` processes here. slurm/pbs: jobs of `cores` CPUs and `memory` each, holding
    cores // threads_per_worker single-thread workers, scaled to `jobs` (none if 0 or None).
    `config` is a YAML file with the same option names (arguments other than None win) and,
    for slurm/pbs, any further dask-jobqueue keyword (account, job_extra_directives, ...).
    Workers and threads default to 1. With submit False a slurm/pbs cluster submits no job
    (its `job_script()` is what it would submit).
    """
    if kind not in KINDS:
        raise InputError(f"unknown cluster {kind!r}; choose one of {', '.join(KINDS)}")
    import dask
    import distributed  # noqa: F401  (its config defaults must exist before they are changed)

    # The scheduler reads this once, when it is created here.
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
        return _make_cluster(kind, workers, threads_per_worker, queue, walltime, cores, memory,
                             jobs, config, submit)


def job_script(kind, **options) -> str:
    """The job script a slurm/pbs batch with these options would submit; submits nothing."""
    if kind not in SUBMIT_COMMANDS:
        raise InputError(f"a job script is for --cluster slurm or pbs, not {kind}")
    cluster = make_cluster(kind, submit=False, **options)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


def _make_cluster(kind, workers, threads_per_worker, queue, walltime, cores, memory, jobs, config,
                  submit):
    given = dict(workers=workers, threads_per_worker=threads_per_worker, queue=queue,
                 walltime=walltime, cores=cores, memory=memory, jobs=jobs)
    options = {**read_config(config), **{k: v for k, v in given.items() if v is not None}}
    threads = _positive(options.pop("threads_per_worker", 1), "threads_per_worker")
    env = {name: str(threads) for name in THREAD_VARIABLES}
    if kind == "local":
        from distributed import LocalCluster

        extra = sorted(set(options) - {"workers"})
        if extra:
            raise InputError(f"{', '.join(extra)}: only for --cluster slurm or pbs, not local")
        # Workers start with the thread variables set, before any BLAS library loads.
        return LocalCluster(n_workers=_positive(options.get("workers", 1), "workers"),
                            threads_per_worker=1, processes=True, env=env,
                            dashboard_address=None)
    return _jobqueue_cluster(kind, options, threads, env, config, submit)


def _jobqueue_cluster(kind, options, threads, env, config, submit):
    import dask_jobqueue

    options.pop("workers", None)  # a job's worker count follows from its cores
    jobs = options.pop("jobs", None)
    cores, memory = options.pop("cores", None), options.pop("memory", None)
    if cores is None or memory is None:
        raise InputError(f"--cluster {kind} needs --cores and --memory "
                         f"(or cores: and memory: in a --cluster-config file)")
    cores = _positive(cores, "cores")
    command = SUBMIT_COMMANDS[kind]
    if submit and shutil.which(command) is None:
        # dask-jobqueue would start a scheduler and wait for workers that never come
        raise InputError(f"--cluster {kind}: no {command} on this machine; run the batch where "
                         f"{kind} takes jobs (--dry-run prints the job script)")
    processes = max(1, cores // threads)
    prologue = [f"export {name}={value}" for name, value in env.items()]
    options["job_script_prologue"] = prologue + list(options.get("job_script_prologue", []))
    # Dask counts one thread per worker process; the scheduler reserves all `cores` CPUs, so
    # each task's BLAS threads have cores of their own.
    if kind == "slurm":
        cls = dask_jobqueue.SLURMCluster
        options.setdefault("job_cpu", cores)
    else:
        from dask.utils import parse_bytes
        from dask_jobqueue.pbs import pbs_format_bytes_ceil

        cls = dask_jobqueue.PBSCluster
        try:
            pbs_memory = pbs_format_bytes_ceil(parse_bytes(str(memory)))
        except ValueError as exc:
            raise InputError(f"--memory {memory!r}: {exc}") from None
        options.setdefault("resource_spec", f"select=1:ncpus={cores}:mem={pbs_memory}")
    try:
        cluster = cls(cores=processes, processes=processes, memory=str(memory), **options)
    except (TypeError, ValueError) as exc:
        where = f"{config}: " if config else ""
        raise InputError(f"{where}--cluster {kind}: {exc}") from None
    if jobs and submit:
        cluster.scale(jobs=_positive(jobs, "jobs"))
    return cluster


def read_config(path) -> dict:
    """Options from a YAML mapping (option names with '-' or '_'); {} without a file."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such cluster configuration file")
    import yaml

    try:
        content = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable YAML file ({exc})") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise InputError(f"{path}: expected a mapping of option: value, "
                         f"got {type(content).__name__}")
    return {str(k).replace("-", "_"): v for k, v in content.items()}


def connect(scheduler):
    """A client of the running scheduler at `scheduler` (an address or a scheduler JSON file)."""
    from distributed import Client

    try:
        if Path(scheduler).is_file():
            return Client(scheduler_file=scheduler, timeout="30s")
        return Client(scheduler, timeout="30s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None


def _positive(value, name):
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
