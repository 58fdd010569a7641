"""The independent verifier of a results database: a true Hessian at the final geometry of every
row reported converged, whatever method wrote it.

Each row gains `verified_imaginary` (imaginary frequencies beyond `vibrations.IMAGINARY_CM`),
`verified_lowest_cm`, `verify_calls` and `verify_time`, and its data the frequencies (cm⁻¹,
imaginary negative, rigid motions removed); a row whose Hessian could not be computed gains
`verify_error` instead. Rows that have either are done, so a stopped verification resumes.
`gprdimer report` counts as a success only a converged row with exactly one imaginary mode.
"""

from __future__ import annotations

import time

from ase import Atoms

from .calculators.factory import make_calculator
from .hessian import true_hessian
from .vibrations import IMAGINARY_CM, count_imaginary, harmonic_analysis

VERIFIED = "verified_imaginary"


def verification_task(row_id, row, positions, numbers, threads=1, threshold=IMAGINARY_CM):
    """What a worker needs to verify one row."""
    return {"id": int(row_id), "calc": row["calc"], "charge": int(row.get("total_charge", 0)),
            "multiplicity": int(row.get("multiplicity", 1)), "system": row.get("system", ""),
            "numbers": list(map(int, numbers)), "positions": [list(map(float, p)) for p in positions],
            "threads": int(threads), "threshold": float(threshold)}


def verify_task(task) -> dict:
    """The key-value pairs and data a verified row gains: never raises."""
    from .provenance import thread_limit

    t0 = time.time()
    atoms = Atoms(numbers=task["numbers"], positions=task["positions"])
    try:
        atoms.calc = make_calculator(task["calc"], charge=task["charge"],
                                     multiplicity=task["multiplicity"], threads=task["threads"],
                                     label=task["system"])
        with thread_limit(task["threads"]):
            hessian, calls = true_hessian(atoms)
        analysis = harmonic_analysis(hessian, atoms)
    except Exception as exc:  # a failed SCF at that geometry is a finding, not a crash
        return {"id": task["id"], "pairs": {"verify_error": f"{type(exc).__name__}: {exc}",
                                            "verify_time": time.time() - t0}, "data": {}}
    wavenumbers = analysis.wavenumbers
    return {"id": task["id"],
            "pairs": {VERIFIED: count_imaginary(wavenumbers, task["threshold"]), "verified_lowest_cm": float(wavenumbers[0]),
                      "verify_calls": int(calls), "verify_time": time.time() - t0},
            "data": {"verified_frequencies": wavenumbers}}


def is_verified_success(row) -> bool:
    """A converged row whose true Hessian has exactly one imaginary mode."""
    return bool(row.get("converged")) and row.get(VERIFIED) == 1
