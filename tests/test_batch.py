"""Batch runs: tasks, the exactly-once store, local and jobqueue clusters, resuming after a kill."""

import json
import math
import multiprocessing
import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ase.db
import pytest
from ase import Atoms
from ase.build import molecule
from ase.io import write

from gprdimer.batch import (Progress, Store, connect, failed_row, make_cluster, make_task,
                            read_rows, run_batch, run_task)
from gprdimer.batch.tasks import task_seed
from gprdimer.search import StopReason
from gprdimer.cli import build_parser, main
from gprdimer.errors import InputError
from gprdimer.verify import verification_task

# Cheap EMT molecules; with an unreachable fmax every search runs its full step budget, so a
# task's duration is set by --steps alone.
MOLECULES = ("NH3", "CH4", "H2O", "HCN")


def xyz_folder(path, names=MOLECULES):
    path.mkdir()
    for name in names:
        atoms = molecule(name)
        atoms.rattle(0.05, seed=1)
        write(path / f"{name}.xyz", atoms, format="xyz")
    return path


def emt_task(name="NH3", method="dimer", system=None, **kwargs):
    atoms = molecule(name)
    atoms.rattle(0.05, seed=1)
    settings = dict(method=method, calc="emt", steps=5)
    settings.update(kwargs)
    return make_task(system or name, atoms, **settings)


def keys_in(db):
    with sqlite3.connect(db) as con:  # plain SQLite: reading while a runner writes
        try:
            return [r[0] for r in con.execute(
                "SELECT value FROM text_key_values WHERE key = 'task_key'")]
        except sqlite3.OperationalError:  # tables not created yet
            return []


# --- tasks -------------------------------------------------------------------------------------

def test_run_task_returns_a_complete_row():
    row = run_task(emt_task(method="gprd"))
    assert row["task_key"] == "NH3|gprd|emt"
    assert row["calls"] > 0 and math.isfinite(row["saddle_energy"])
    assert row["starts"] >= 1
    assert row["seed"] == task_seed("NH3") and row["spin"] == "singlets"
    assert len(row["positions"]) == 4 and len(row["forces"]) == 4
    assert '"ase"' in row["versions"] and row["cpu"]
    assert row["check_calls"] >= 0 and "n_imaginary" in row and row["frequencies"] is None


def test_a_verified_saddle_row_keeps_its_imaginary_count_and_frequencies(tmp_path):
    pytest.importorskip("tblite.ase", reason="tblite not installed (extra gprdimer[xtb])")
    atoms = Atoms("CNH", positions=[[0, 0, 0], [1.18, 0, 0], [0.55, 1.15, 0]])
    task = make_task("hcn", atoms, method="gprd", calc="xtb", steps=100,
                     mode=[[0, 0, 0], [0, 0, 0], [1.0, 0.2, 0]],
                     params={"verify": "hessian"})
    row = run_task(task)
    assert row["converged"] and row["n_imaginary"] == 1 and len(row["frequencies"]) == 3
    store = Store(tmp_path / "results.db")
    store.write(row)
    with ase.db.connect(str(tmp_path / "results.db")) as db:
        stored = db.get(task_key=row["task_key"])
    assert stored.n_imaginary == 1 and stored.check_calls == row["check_calls"] >= 18
    assert stored.data["frequencies"] == pytest.approx(row["frequencies"])


def test_seed_depends_on_system_and_base_only():
    assert task_seed("singlets/000") == task_seed("singlets/000")
    assert task_seed("singlets/000") != task_seed("singlets/001")
    assert task_seed("singlets/000", 1) != task_seed("singlets/000", 2)


def test_task_error_becomes_a_failed_row():
    row = run_task(emt_task(calc="no-such-calculator"))
    assert row["converged"] is False and row["starts"] == 0
    assert row["stop_reason"].startswith("error: InputError: unknown calculator")


def test_task_that_runs_too_long_is_stopped():
    # Starting the child interpreter alone takes longer than this.
    row = run_task(emt_task(timeout=0.2))
    assert row["converged"] is False and row["stop"] == "timeout" and row["stop_reason"] == "timeout: after 0.2 s"


def test_task_with_timeout_runs_in_a_child():
    row = run_task(emt_task(timeout=120))
    assert row["stop_reason"] == "max iterations" and row["calls"] > 0


# --- store -------------------------------------------------------------------------------------

def test_a_search_process_ends_when_its_worker_is_killed(tmp_path):
    """A timed task's search runs in a child process; killing the worker ends it too."""
    psutil = pytest.importorskip("psutil")
    task = emt_task(timeout=600, steps=100000, fmax=1e-12)  # runs until killed
    worker = subprocess.Popen(
        [sys.executable, "-c", "import pickle, sys; from gprdimer.batch.tasks import run_task; "
                               "run_task(pickle.loads(sys.stdin.buffer.read()))"],
        stdin=subprocess.PIPE, cwd=tmp_path)
    worker.stdin.write(pickle.dumps(task))
    worker.stdin.close()
    deadline = time.time() + 60
    children = []
    while not children and time.time() < deadline:
        children = psutil.Process(worker.pid).children()
        time.sleep(0.1)
    assert children, "the search process did not start"
    worker.kill()
    worker.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


def test_store_writes_each_task_once(tmp_path):
    store = Store(tmp_path / "r.db")
    row = failed_row(emt_task(), StopReason.ERROR, "test")
    assert store.write(row) is True
    assert store.write(row) is False
    assert store.done_keys() == {"NH3|dimer|emt"}
    assert len(read_rows(tmp_path / "r.db")) == 1


def test_a_failed_write_leaves_no_partial_row(tmp_path, monkeypatch):
    store = Store(tmp_path / "r.db")
    store.write(failed_row(emt_task("NH3"), StopReason.ERROR, "test"))
    original = store._db.write

    def write_then_fail(*args, **kwargs):
        original(*args, **kwargs)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store._db, "write", write_then_fail)
    with pytest.raises(OSError, match=r"r\.db: could not record task 'CH4\|dimer\|emt'.*full"):
        store.write(failed_row(emt_task("CH4"), StopReason.ERROR, "test"))
    assert [r["task_key"] for r in read_rows(tmp_path / "r.db")] == ["NH3|dimer|emt"]


@pytest.mark.parametrize("where, message", [("missing/r.db", "does not exist"),
                                            (".", "is a directory")])
def test_store_path_errors_name_the_path(tmp_path, where, message):
    with pytest.raises(InputError, match=message):
        Store(tmp_path / where)


def _refused_as(path, uid, results):
    """Opens the store as `uid` (root ignores file modes, so root's tests drop to nobody)."""
    if uid is not None:
        os.setgid(uid)
        os.setuid(uid)
    try:
        Store(path)
        results.put("opened")
    except Exception as exc:  # the test asserts on the message, whatever went wrong
        results.put(f"{type(exc).__name__}: {exc}")


def test_read_only_database_is_refused():
    # pytest's tmp_path sits under a root-only folder that nobody could not even reach
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o755)
        path = Path(folder) / "r.db"
        Store(path)
        path.chmod(0o444)
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_refused_as,
                                args=(path, 65534 if os.geteuid() == 0 else None, results))
        child.start()
        child.join(30)
        message = results.get(timeout=5)
    assert message.startswith("InputError") and "r.db: results database is not writable" in message


def _write_all(path, rows, barrier, results):
    store = Store(path)
    rows = list(rows)
    random.Random(os.getpid()).shuffle(rows)
    barrier.wait()
    results.put(sum(store.write(row) for row in rows))


def test_two_runners_on_one_database_write_no_duplicates(tmp_path):
    path = tmp_path / "r.db"
    # Enough rows that interleaved check-then-insert without the lock would write some twice.
    rows = [failed_row(emt_task(method=method, system=f"s{i:02d}"), StopReason.ERROR, "test")
            for i in range(20) for method in ("gprd", "dimer", "sella")]
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    runners = [context.Process(target=_write_all, args=(path, rows, barrier, results))
               for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(60)
    assert [runner.exitcode for runner in runners] == [0, 0]
    assert results.get() + results.get() == len(rows)
    keys = keys_in(path)
    assert sorted(keys) == sorted(row["task_key"] for row in rows)


# --- batches on Dask ---------------------------------------------------------------------------

def test_batch_of_four_tasks_on_two_workers(tmp_path, capsys):
    folder = xyz_folder(tmp_path / "set", MOLECULES[:2])
    db = tmp_path / "r.db"
    argv = ["batch", str(folder), "--methods", "gprd,dimer", "--calc", "emt", "--db", str(db),
            "--workers", "2", "--steps", "5"]
    assert main(argv) == 0
    rows = read_rows(db)
    assert sorted(r["task_key"] for r in rows) == sorted(
        f"{name}|{method}|emt" for name in MOLECULES[:2] for method in ("gprd", "dimer"))
    assert all(r["calls"] > 0 for r in rows)
    assert main(argv) == 0  # a finished batch runs nothing again
    assert "4 already in" in capsys.readouterr().out
    assert len(read_rows(db)) == 4


def test_batch_params_reach_the_search_and_its_rows(tmp_path, capsys):
    folder = xyz_folder(tmp_path / "set", MOLECULES[:1])
    db = tmp_path / "r.db"
    argv = ["batch", str(folder), "--methods", "gprd", "--calc", "emt", "--db", str(db),
            "--workers", "1", "--steps", "30", "--fmax", "1e-9"]
    keywords = '{"patience": 2, "fallback_mode": null, "fresh_starts": 0}'
    assert main(argv + ["--params", keywords]) == 0
    row, = read_rows(db)
    assert json.loads(row["parameters"]) == {"patience": 2, "fallback_mode": None,
                                             "fresh_starts": 0}
    assert row["task_key"] == 'NH3|gprd|emt|{"fallback_mode": null, "fresh_starts": 0, ' \
        '"patience": 2}'
    # the keywords took effect: an unreachable fmax ends in a patience stop after two
    # iterations without a new lowest fmax, in the first and only start
    assert row["stop_reason"].startswith("no progress:") and row["starts"] == 1
    assert row["outer_iterations"] < 30
    # other keywords, or none, into the same database would mix two settings under one name
    for other in (["--params", '{"patience": 3}'], []):
        assert main(argv + other) == 2
        err = capsys.readouterr().err
        assert "r.db: its gprd rows on emt were run with --params" in err and "another --db" in err
    assert len(read_rows(db)) == 1
    # so would another force target, step limit, seed or spin under the same task keys
    argv += ["--params", keywords]
    for option, value in (("--fmax", "1e-8"), ("--steps", "31"), ("--seed", "5"),
                          ("--charge", "2"), ("--multiplicity", "3")):
        changed = [*argv, option, value]
        if option in ("--fmax", "--steps"):
            at = changed.index(option)
            changed[at + 1] = value
            del changed[-2:]
        assert main(changed) == 2, option
        err = capsys.readouterr().err
        assert f"was run with {option} " in err and "another --db" in err, (option, err)
    assert len(read_rows(db)) == 1


def test_killed_batch_resumes_and_records_every_task_once(tmp_path):
    folder = xyz_folder(tmp_path / "set")
    db = tmp_path / "r.db"
    command = [sys.executable, "-m", "gprdimer", "batch", str(folder), "--methods", "dimer",
               "--calc", "emt", "--db", str(db), "--workers", "1", "--steps", "150",
               "--fmax", "1e-6"]
    # Its own session, so that the kill reaches the runner and its worker processes.
    # cwd outside the checkout: `-m` would otherwise import the uncompiled source tree
    runner = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while not keys_in(db) and time.time() < deadline and runner.poll() is None:
            time.sleep(0.05)
    finally:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    first = keys_in(db)
    assert 1 <= len(first) < len(MOLECULES)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert f"{len(first)} already in" in finished.stdout
    assert sorted(keys_in(db)) == sorted(f"{name}|dimer|emt" for name in MOLECULES)


def test_lost_worker_task_is_recorded_as_failed(tmp_path):
    def die(task):  # local, so that cloudpickle ships it by value to the worker
        os.kill(os.getpid(), signal.SIGKILL)

    store = Store(tmp_path / "r.db")
    with make_cluster("local", workers=1) as cluster, connect(cluster.scheduler_address) as client:
        counts = run_batch(client, [emt_task()], store, function=die)
    assert counts["failed"] == 1
    (row,) = read_rows(tmp_path / "r.db")
    assert row["stop"] == "error" and row["stop_reason"].startswith("error: worker lost 2 times")


def test_progress_without_tqdm_prints_lines(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` fail
    progress = Progress(4, stream=sys.stdout)
    progress.update(True, running=2)
    progress.update(False, running=1)
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("2/4 done, 1 failed, 1 running, ~") and line.endswith(" left")


# --- clusters ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, lines", [
    ("slurm", ["#SBATCH -p short", "#SBATCH -t 01:30:00", "#SBATCH --cpus-per-task=8",
               "#SBATCH --mem=4G"]),
    ("pbs", ["#PBS -q short", "#PBS -l walltime=01:30:00",
             "#PBS -l select=1:ncpus=8:mem=4096MB"]),
])
def test_jobqueue_cluster_from_command_line_options(tmp_path, kind, lines):
    args = build_parser().parse_args([
        "batch", "SET", "--cluster", kind, "--queue", "short", "--walltime", "01:30:00",
        "--cores", "8", "--memory", "4GiB", "--threads-per-worker", "2"])
    with make_cluster(args.cluster, threads_per_worker=args.threads_per_worker, queue=args.queue,
                      walltime=args.walltime, cores=args.cores, memory=args.memory,
                      submit=False) as cluster:
        script = cluster.job_script()
    for line in lines:
        assert line in script
    # Four single-thread workers per job, each task with two BLAS threads.
    assert "--nworkers 4" in script and "--nthreads 1" in script
    assert "export OMP_NUM_THREADS=2" in script


def test_cluster_config_file_and_overrides(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text("queue: long\ncores: 4\nmemory: 2GiB\naccount: chem\n"
                      "job-extra-directives: ['--constraint=cpu']\n")
    with make_cluster("slurm", queue="short", config=config, submit=False) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p short" in script and "#SBATCH -A chem" in script
    assert "#SBATCH --constraint=cpu" in script


@pytest.mark.parametrize("options, message", [
    (dict(kind="slurm", cores=4), "needs --cores and --memory"),
    (dict(kind="local", queue="short"), "queue: only for --cluster slurm or pbs"),
    (dict(kind="sge"), "unknown cluster 'sge'"),
    (dict(kind="slurm", cores=4, memory="2GiB", config="missing.yaml"), "missing.yaml: no such"),
])
def test_cluster_option_errors(options, message):
    with pytest.raises(InputError, match=message):
        make_cluster(submit=False, **options)


def test_a_folder_of_guesses_in_another_format_keeps_each_file_s_spin(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    cation = molecule("H2O")
    cation.info.update(charge=1, multiplicity=2)
    write(folder / "cation.extxyz", cation, format="extxyz")
    write(folder / "neutral.extxyz", molecule("NH3"), format="extxyz")
    write(folder / "ignored.xyz", molecule("CH4"), format="xyz")  # not matched by --files
    db = tmp_path / "r.db"
    assert main(["batch", str(folder), "--files", "*.extxyz", "--calc", "emt", "--db", str(db),
                 "--workers", "1", "--steps", "2"]) == 0
    spins = {r["system"]: (r["total_charge"], r["multiplicity"]) for r in read_rows(db)}
    assert spins == {"cation": (1, 2), "neutral": (0, 1)}
    # the verifier computes the Hessian of the charged system, not of its neutral parent
    row = ase.db.connect(str(db)).get(system="cation")
    task = verification_task(row.id, row.key_value_pairs, row.positions, row.numbers)
    assert (task["charge"], task["multiplicity"]) == (1, 2)


FIRST_RUNNER = """
import sqlite3, sys, time
from ase.db.sqlite import init_statements
first = sqlite3.connect(sys.argv[1], isolation_level=None)
first.execute("BEGIN IMMEDIATE")
for statement in init_statements:
    first.execute(statement)
print("creating", flush=True)
time.sleep(1.0)
first.execute("COMMIT")
"""


def test_a_runner_that_finds_a_new_database_being_created_waits_for_its_tables(tmp_path):
    # Two runners started together on a new database: one in four trials the second exited 2
    # with "table systems already exists", having looked for the tables while the first was
    # creating them. Here a first runner holds the write lock mid-creation.
    from gprdimer.cli.batch_commands import open_store

    db = tmp_path / "new.db"
    first = subprocess.Popen([sys.executable, "-c", FIRST_RUNNER, str(db)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "creating"
        store = open_store(db, [emt_task()])  # waits at the lock, then finds the tables
        assert store.done_keys() == set()
    finally:
        first.wait(30)
    assert first.returncode == 0
