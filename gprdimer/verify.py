"""The independent verifier of a results database: a true Hessian at the final geometry of every
row reported converged, whatever method wrote it.

Each row gains `verified_imaginary` (imaginary frequencies beyond `vibrations.IMAGINARY_CM`),
`verified_lowest_cm`, `verify_calls`, `verify_time` and `verify_lower_state` (how far below the
row's energy a fresh SCF lands at the point, eV; 0 where it lands on the row's state), and its
data the frequencies (cm⁻¹, imaginary negative, rigid motions removed); a row whose Hessian
could not be computed gains `verify_error` instead. Rows that have either are done, so a stopped
verification resumes. `gprdimer report` counts as a success only a converged row with exactly
one imaginary mode.

The Hessian is that of the surface the search walked: the electronic state whose energy the row
holds. An open-shell SCF has several solutions, and a fresh calculator at the final geometry
takes the lowest stable one it finds there, while a search's calculator follows the state it
found at the guess from call to call; where the two differ (by meV to eV; one state's energies
agree to about 1e-6 eV), the verifier starts a calculator at the row's guess as the search did
and follows the state along the straight line to the final geometry. Where that does not reach
the row's energy either, the row is not verified (`verify_error`).
"""

from __future__ import annotations

import time

import numpy as np
from ase import Atoms

from .calculators.factory import make_calculator
from .hessian import true_hessian
from .vibrations import IMAGINARY_CM, count_imaginary, harmonic_analysis

VERIFIED = "verified_imaginary"
# Energies of one electronic state at one geometry agree within this, eV (a search's calculator
# and a fresh one: about 1e-6); distinct SCF solutions lie meV to eV apart.
SAME_STATE = 1e-4
# The state is followed from the guess in steps moving no atom by more than this, Å.
FOLLOW_STEP = 0.05


def verification_task(row_id, row, positions, numbers, threads=1, threshold=IMAGINARY_CM,
                      start=None):
    """What a worker needs to verify one row; `start` is the row's guess (the search's first
    geometry), from which its electronic state can be followed."""
    energy = row.get("saddle_energy")
    return {"id": int(row_id), "calc": row["calc"], "charge": int(row.get("total_charge", 0)),
            "multiplicity": int(row.get("multiplicity", 1)), "system": row.get("system", ""),
            "numbers": list(map(int, numbers)), "positions": [list(map(float, p)) for p in positions],
            "threads": int(threads), "threshold": float(threshold),
            "energy": None if energy is None else float(energy),
            "start": None if start is None else [list(map(float, p)) for p in start]}


def verify_task(task) -> dict:
    """The key-value pairs and data a verified row gains: never raises."""
    from .provenance import thread_limit

    t0 = time.time()
    atoms = Atoms(numbers=task["numbers"], positions=task["positions"])
    try:
        with thread_limit(task["threads"]):
            lower, calls = _on_the_rows_state(atoms, task)
            hessian, hessian_calls = true_hessian(atoms)
        analysis = harmonic_analysis(hessian, atoms)
    except Exception as exc:  # a failed SCF at that geometry is a finding, not a crash
        return {"id": task["id"], "pairs": {"verify_error": f"{type(exc).__name__}: {exc}",
                                            "verify_time": time.time() - t0}, "data": {}}
    wavenumbers = analysis.wavenumbers
    return {"id": task["id"],
            "pairs": {VERIFIED: count_imaginary(wavenumbers, task["threshold"]),
                      "verified_lowest_cm": float(wavenumbers[0]),
                      "verify_calls": int(calls + hessian_calls), "verify_time": time.time() - t0,
                      "verify_lower_state": lower},
            "data": {"verified_frequencies": wavenumbers}}


class StateNotFound(RuntimeError):
    """Neither a fresh SCF nor the state followed from the guess has the row's energy."""


def _calculator(task):
    return make_calculator(task["calc"], charge=task["charge"], multiplicity=task["multiplicity"],
                           threads=task["threads"], label=task["system"])


def fresh_energy(task, atoms=None):
    """The energy (eV) of a new calculator at the row's final geometry, as the verifier starts;
    `atoms` (that geometry) keeps the calculator."""
    atoms = Atoms(numbers=task["numbers"], positions=task["positions"]) if atoms is None else atoms
    atoms.calc = _calculator(task)
    return atoms.get_potential_energy()


def _on_the_rows_state(atoms, task):
    """Attaches to `atoms` a calculator on the row's electronic state at its geometry; returns
    how far below the row's energy a fresh SCF there lies (eV, 0 on the same state) and the calls
    this took beyond the point's own, which the Hessian counts."""
    fresh = fresh_energy(task, atoms)
    if task["energy"] is None or abs(fresh - task["energy"]) <= SAME_STATE:
        return 0.0, 0
    if task["start"] is None:
        raise StateNotFound(f"a fresh SCF lies {fresh - task['energy']:+.4f} eV from the row's "
                            f"energy, and the row has no guess to follow its state from")
    start, end = np.asarray(task["start"], dtype=float), atoms.positions.copy()
    steps = max(1, int(np.ceil(np.linalg.norm(end - start, axis=1).max() / FOLLOW_STEP)))
    follower = _calculator(task)
    path = atoms.copy()
    path.calc = follower
    for k in range(steps + 1):
        path.positions = end if k == steps else start + (k / steps) * (end - start)
        followed = path.get_potential_energy()
    if abs(followed - task["energy"]) > SAME_STATE:
        raise StateNotFound(f"the row's electronic state is not found at its geometry: a fresh "
                            f"SCF lies {fresh - task['energy']:+.4f} eV from the row's energy, "
                            f"the state followed from the guess {followed - task['energy']:+.4f}")
    atoms.calc = follower
    return float(min(0.0, fresh - task["energy"])), 1 + steps


def is_verified_success(row) -> bool:
    """A converged row whose true Hessian has exactly one imaginary mode."""
    return bool(row.get("converged")) and row.get(VERIFIED) == 1
