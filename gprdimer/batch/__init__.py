"""Many searches on Dask: tasks run on workers, their rows are written here as they finish.

    store = Store("results.db")
    todo = [t for t in tasks if t["key"] not in store.done_keys()]
    with Client(make_cluster("local", workers=2)) as client:
        run_batch(client, todo, store)
"""

from __future__ import annotations

import sys
import time

from ..search import StopReason
from .cluster import ALLOWED_FAILURES, connect, make_cluster
from .store import Store, read_rows
from .tasks import failed_row, make_task, run_task, task_key, task_seed

__all__ = ["Progress", "Store", "connect", "failed_row", "make_cluster", "make_task", "read_rows",
           "run_batch", "run_task", "run_tasks", "run_verification", "task_key", "task_seed"]


def run_batch(client, tasks, store, progress=None, function=run_task) -> dict:
    """Runs `tasks` on `client`'s workers; writes each row as its task ends.

    Returns counts: written, converged, failed (did not converge, for whatever reason),
    duplicates (rows another runner wrote first).
    """
    counts = dict(written=0, converged=0, failed=0, duplicates=0)

    def record(row):
        counts["written" if store.write(row) else "duplicates"] += 1
        ok = bool(row["converged"])
        counts["converged" if ok else "failed"] += 1
        return ok

    def lost(task, reason):
        return failed_row(task, StopReason.ERROR, reason)

    run_tasks(client, tasks, function, record, lost, progress)
    return counts


def run_verification(client, tasks, store, progress=None) -> dict:
    """Runs `gprdimer verify`'s tasks; records each row's verification as it ends."""
    from ..verify import VERIFIED, verify_task

    counts = dict(verified=0, first_order=0, rejected=0)

    def record(result):
        store.record_verification(result)
        ok = result["pairs"].get(VERIFIED) == 1
        counts["verified"] += 1
        counts["first_order" if ok else "rejected"] += 1
        return ok

    def lost(task, reason):
        return {"id": task["id"], "pairs": {"verify_error": reason}, "data": {}}

    run_tasks(client, tasks, verify_task, record, lost, progress)
    return counts


def run_tasks(client, tasks, function, record, lost, progress=None):
    """function(task) on the workers; record(result) -> success as each ends, here; a task whose
    worker died or that could not start gives lost(task, reason) instead."""
    from distributed import as_completed

    progress = progress or Progress(len(tasks))
    futures = {client.submit(function, task, pure=False): task for task in tasks}
    try:
        for future in as_completed(futures):
            task = futures.pop(future)
            result = _result_of(future, task, lost)
            future.release()
            progress.update(record(result), running=_running(client, len(futures)))
    finally:
        client.cancel(list(futures))
        progress.close()


def _result_of(future, task, lost):
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return lost(task, f"worker lost {ALLOWED_FAILURES + 1} times (killed or out of memory)")
    except Exception as exc:  # a task that could not even be unpickled or started
        return lost(task, f"{type(exc).__name__}: {exc}")


def _running(client, pending):
    """Tasks now on a worker: at most one per worker thread."""
    try:
        slots = sum(client.nthreads().values())
    except Exception:  # scheduler busy or gone; the count is only for display
        return 0
    return min(slots, pending)


class Progress:
    """Done / failed / running / time left: a tqdm bar if tqdm is installed, else one line per
    finished task."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self._t0 = time.time()
        try:
            from tqdm import tqdm
        except ImportError:
            self._bar = None
        else:
            self._bar = tqdm(total=total, unit="task", file=self.stream, dynamic_ncols=True)

    def update(self, converged, running):
        self.done += 1
        self.failed += not converged
        if self._bar is not None:
            self._bar.set_postfix(failed=self.failed, running=running, refresh=False)
            self._bar.update(1)
            return
        elapsed = time.time() - self._t0
        left = elapsed / self.done * (self.total - self.done)
        print(f"{self.done}/{self.total} done, {self.failed} failed, {running} running, "
              f"~{_duration(left)} left", file=self.stream, flush=True)

    def close(self):
        if self._bar is not None:
            self._bar.close()


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
