"""One (system, method, calculator) search as a pure function of a plain dict, for Dask workers.

A task holds only numbers, strings and lists, so it pickles anywhere; the calculator is built in
the worker. `run_task` never raises: whatever goes wrong becomes a row with converged False and
the reason, so a batch always has one row per task.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from ase import Atoms

from ..calculators.factory import make_calculator
from ..modes import SEED
from ..provenance import THREAD_VARIABLES, processor, software_versions, thread_limit
from ..runner import run_search, steps_for
from ..search import StopReason

SPIN_NAMES = {1: "singlets", 2: "doublets"}  # the names the 500-reaction set and its CSVs use
# Rows keep these as arrays (the store puts them on the Atoms or in data=, not in key-value pairs).
ARRAY_FIELDS = ("numbers", "positions", "forces", "mode", "initial_positions", "frequencies")


def task_key(system: str, method: str, calc: str, params: dict | None = None) -> str:
    """The row a task writes; search keywords other than the defaults make another task."""
    key = f"{system}|{method}|{calc}"
    return f"{key}|{parameters_text(params)}" if params else key


def parameters_text(params: dict | None) -> str:
    """Search keywords as a row stores them."""
    return json.dumps(params or {}, sort_keys=True)


def task_seed(system: str, base_seed: int = SEED) -> int:
    """The same seed for a system whatever the batch, its order or its machine."""
    return (zlib.crc32(system.encode()) ^ int(base_seed)) & 0x7FFFFFFF


def spin_name(multiplicity: int) -> str:
    return SPIN_NAMES.get(int(multiplicity), f"multiplicity{int(multiplicity)}")


def make_task(system, atoms, *, method, calc, charge=0, multiplicity=1, fmax=0.01, steps=None,
              mode="random", base_seed=SEED, threads=1, timeout=None, params=None,
              irc=False) -> dict:
    return {
        "key": task_key(system, method, calc, params), "system": system, "method": method,
        "calc": calc, "charge": int(charge), "multiplicity": int(multiplicity),
        "numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
        "fmax": float(fmax), "steps": int(steps_for(method, steps)), "mode": mode,
        "seed": task_seed(system, base_seed), "threads": int(threads),
        "timeout": None if timeout is None else float(timeout), "params": dict(params or {}),
        "irc": bool(irc),
    }


def run_task(task: dict) -> dict:
    """The result row of one task; with task['timeout'] the search runs in a child process that
    is killed when the time is up."""
    if task.get("timeout"):
        return _run_with_timeout(task)
    try:
        with thread_limit(task["threads"]):
            return _search(task)
    except Exception as exc:  # anything the search did not catch itself still becomes a row
        return failed_row(task, StopReason.ERROR, f"{type(exc).__name__}: {exc}")


def failed_row(task: dict, stop: StopReason, detail: str = "") -> dict:
    """The row of a task that ended without a search result (error, timeout, lost worker)."""
    row = _base_row(task)
    row.update(converged=False, stop=stop.value, stop_reason=stop.text(detail), calls=0, outer_iterations=0, starts=0,
               check_calls=0,
               wall_time=math.nan, gp_time=math.nan, saddle_energy=math.nan,
               saddle_fmax=math.nan, force_norm=math.nan, curvature=math.nan,
               positions=task["positions"], forces=None, mode=None)
    return row


def _base_row(task):
    return {
        "task_key": task["key"], "system": task["system"], "method": task["method"],
        "calc": task["calc"], "spin": spin_name(task["multiplicity"]),
        "multiplicity": task["multiplicity"], "total_charge": task["charge"], "seed": task["seed"],
        "fmax_target": task["fmax"], "steps": task["steps"], "start_mode": str(task["mode"]),
        "threads": task["threads"], "parameters": parameters_text(task["params"]),
        "versions": json.dumps(software_versions(task["method"], task["calc"])),
        "cpu": processor(),
        "numbers": task["numbers"], "initial_positions": task["positions"],
    }


def _search(task):
    atoms = Atoms(numbers=task["numbers"], positions=task["positions"])
    atoms.calc = make_calculator(task["calc"], charge=task["charge"],
                                 multiplicity=task["multiplicity"], threads=task["threads"],
                                 label=task["system"])
    result = run_search(atoms, task["method"], mode=task["mode"], fmax=task["fmax"],
                        steps=task["steps"], seed=task["seed"], logfile=None,
                        params=task["params"])
    row = _base_row(task)
    row.update(converged=bool(result.converged), stop=result.stop.value,
               stop_reason=result.stop_reason,
               calls=int(result.calls), outer_iterations=int(result.outer_iterations),
               starts=int(result.starts), wall_time=float(result.wall_time),
               gp_time=float(result.gp_time),
               saddle_energy=float(result.energy), saddle_fmax=float(result.fmax),
               force_norm=float(result.force_norm), curvature=float(result.curvature),
               n_imaginary=None if result.n_imaginary is None else int(result.n_imaginary),
               check_calls=int(result.check_calls),
               positions=np.asarray(result.positions).tolist(),
               forces=None if result.forces is None else np.asarray(result.forces).tolist(),
               mode=np.asarray(result.mode).tolist(),
               frequencies=(None if result.frequencies is None
                            else np.asarray(result.frequencies).tolist()))
    if task.get("irc") and result.converged:
        row.update(_irc_of(atoms, result, task))
    return row


def _irc_of(atoms, result, task):
    """The IRC's summary for the row; a failed IRC is said in the row, the search stays."""
    from ..irc import follow_irc

    atoms.positions = result.positions
    try:
        return follow_irc(atoms, fmax=task["fmax"]).summary()
    except Exception as exc:
        return {"irc_error": f"{type(exc).__name__}: {exc}"}


def _run_with_timeout(task):
    """Runs the task in a fresh interpreter, because a search stuck inside compiled code (an SCF,
    a BLAS call) can only be stopped by killing its process."""
    timeout = float(task["timeout"])
    inner = dict(task, timeout=None)
    with tempfile.TemporaryDirectory(prefix="gprdimer-task-") as folder:
        task_file, row_file = Path(folder, "task.pkl"), Path(folder, "row.pkl")
        task_file.write_bytes(pickle.dumps(inner))
        env = dict(os.environ, **{name: str(task["threads"]) for name in THREAD_VARIABLES})
        code = ("import sys; from gprdimer.batch.tasks import _child_main; "
                "_child_main(*sys.argv[1:])")
        command = [sys.executable, "-c", code, str(task_file), str(row_file), str(os.getpid())]
        start = time.time()
        # Worker processes are daemons, which multiprocessing forbids to have children;
        # a subprocess is allowed. It runs in the scratch folder: `-c` puts the working
        # directory first on sys.path, and a source checkout there would shadow the installed
        # package and its compiled core.
        child = subprocess.Popen(command, env=env, cwd=folder, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            row = failed_row(task, StopReason.TIMEOUT, f"after {timeout:g} s")
            row["wall_time"] = time.time() - start
            return row
        if child.returncode != 0 or not row_file.exists():
            lines = stderr.decode(errors="replace").strip().splitlines()
            detail = lines[-1] if lines else f"exit code {child.returncode}"
            return failed_row(task, StopReason.ERROR, f"search process died: {detail}")
        return pickle.loads(row_file.read_bytes())


def _child_main(task_file, row_file, parent):
    _exit_with(int(parent))
    task = pickle.loads(Path(task_file).read_bytes())
    Path(row_file).write_bytes(pickle.dumps(run_task(task)))


def _exit_with(parent, every=1.0):
    """Ends this process once `parent` (the worker that waits for it) is gone.

    A killed runner takes its workers down, but a search process of theirs would be reparented
    and go on burning a core for up to its timeout; nobody would read its row."""
    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(3)

    threading.Thread(target=watch, daemon=True).start()
