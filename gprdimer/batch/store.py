"""Batch results in an SQLite ase.db: one row per finished task, written exactly once.

Only the runner process writes (workers return rows). Each row goes in one SQLite transaction
that first takes the database's write lock (BEGIN IMMEDIATE) and then checks the task key, so a
killed runner leaves either the whole row or none, and two runners on one file never write a task
twice.
"""

from __future__ import annotations

import math
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path

import ase.db
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..errors import InputError
from .tasks import ARRAY_FIELDS

KEY = "task_key"


class Store:
    """The results database at `path`, created if absent."""

    def __init__(self, path):
        self.path = Path(path)
        _check_writable(self.path)
        # ase's lock file would sit beside the database and serialise only single writes; the
        # SQLite lock covers the check and the insert together.
        self._db = ase.db.connect(str(self.path), type="db", use_lock_file=False)
        try:
            with self._transaction() as db:
                db.count()  # creates the tables, under the lock when two runners start at once
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: cannot be used as a results database ({exc})") from None

    def rows(self) -> list[dict]:
        """Every row's key-value pairs, in the order written."""
        try:
            return [dict(row.key_value_pairs) for row in self._db.select()]
        except sqlite3.Error as exc:
            raise OSError(f"{self.path}: cannot read the results database ({exc})") from None

    def done_keys(self) -> set[str]:
        """Task keys already recorded; a restarted batch runs only the others."""
        try:
            return {row[KEY] for row in self._db.select(columns=["key_value_pairs"])
                    if KEY in row}
        except sqlite3.Error as exc:
            raise OSError(f"{self.path}: cannot read the results database ({exc})") from None

    def write(self, row: dict) -> bool:
        """Records one task's row; False (and nothing written) if its key is already there."""
        atoms, pairs, data = _split(row)
        try:
            with self._transaction() as db:
                if db.count(**{KEY: pairs[KEY]}):
                    return False
                db.write(atoms, key_value_pairs=pairs, data=data)
        except sqlite3.Error as exc:
            raise OSError(f"{self.path}: could not record task {pairs[KEY]!r} ({exc}); the rows "
                          f"written before it are intact") from None
        return True

    def to_verify(self, methods=None):
        """(id, key-value pairs, positions, numbers, guess or None) of every converged row not
        yet verified, of the given methods (all when None)."""
        from ..verify import VERIFIED

        try:
            return [(row.id, dict(row.key_value_pairs), row.positions, row.numbers,
                     row.data.get("initial_positions"))
                    for row in self._db.select(converged=True)
                    if VERIFIED not in row and "verify_error" not in row
                    and (methods is None or row.get("method") in methods)]
        except sqlite3.Error as exc:
            raise OSError(f"{self.path}: cannot read the results database ({exc})") from None

    def record_verification(self, result: dict) -> bool:
        """Adds a verification's key-value pairs and data to its row, in one transaction."""
        try:
            with self._transaction() as db:
                db.update(result["id"], data={k: np.asarray(v) for k, v in result["data"].items()},
                          **{k: _plain(v) for k, v in result["pairs"].items()})
        except sqlite3.Error as exc:
            raise OSError(f"{self.path}: could not record the verification of row "
                          f"{result['id']} ({exc})") from None
        return True

    @contextmanager
    def _transaction(self):
        """One SQLite transaction holding the write lock from its start; commits on success,
        rolls back on any exception."""
        with self._db as db:
            db.connection.execute("BEGIN IMMEDIATE")
            yield db


def read_rows(path) -> list[dict]:
    """Every row's key-value pairs and its number of atoms (`natoms`), in the order written."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such results database")
    try:
        db = ase.db.connect(str(path), type="db", use_lock_file=False)
        return [{**row.key_value_pairs, "natoms": row.natoms} for row in db.select()]
    except (sqlite3.Error, OSError) as exc:
        raise InputError(f"{path}: not a readable results database ({exc})") from None


def _split(row):
    """(Atoms with the final energy and forces, key-value pairs, data) of a task row."""
    atoms = Atoms(numbers=row["numbers"], positions=row["positions"])
    energy = row.get("saddle_energy")
    forces = row.get("forces")
    if energy is not None and math.isfinite(energy):
        atoms.calc = SinglePointCalculator(
            atoms, energy=energy, forces=None if forces is None else np.asarray(forces))
    pairs = {k: _plain(v) for k, v in row.items() if k not in ARRAY_FIELDS and v is not None}
    data = {k: np.asarray(row[k]) for k in ("mode", "initial_positions", "frequencies")
            if row.get(k) is not None}
    return atoms, pairs, data


def _plain(value):
    """ase.db takes int, float, str and bool; NumPy scalars are converted."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)


def _check_writable(path):
    """A clear message before any search runs, rather than a failed write after the first."""
    if path.exists():
        if path.is_dir():
            raise InputError(f"{path}: is a directory, not a results database")
        if not os.access(path, os.R_OK | os.W_OK):
            raise InputError(f"{path}: results database is not writable")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"{path}: folder {folder} does not exist")
    # SQLite writes a journal beside the database, so the folder must be writable too.
    if not os.access(folder, os.W_OK):
        raise InputError(f"{path}: folder {folder} is not writable")
