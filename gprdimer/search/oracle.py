"""The true surface a search evaluates: the atoms' calculator, one counted call at a time.

Every call is checked (a calculator's fault or malformed output ends the search with a
`calculator failure` stop), counted in the result, written to the trajectory and handed to the
search's observer (the GP's data). The point evaluated last, whose results the calculator
still holds, costs no call.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator

from .result import Stop, StopReason


def checked_results(energy, forces, n_atoms):
    """(energy, forces (N, 3)) as numbers; Stop naming what a calculator got wrong."""
    fail = StopReason.CALCULATOR_FAILURE
    try:
        energy = float(energy)
    except (TypeError, ValueError):
        raise Stop(fail, f"the energy is not a number ({energy!r})") from None
    if forces is None:
        raise Stop(fail, "it returned no forces (None)")
    try:
        forces = np.array(forces, dtype=float)
    except (TypeError, ValueError):
        raise Stop(fail, "the forces are not numbers") from None
    if forces.shape != (n_atoms, 3):
        raise Stop(fail, f"forces of shape {forces.shape}, expected ({n_atoms}, 3)")
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        raise Stop(fail, "non-finite energy or forces")
    return energy, forces


class Oracle:
    """Calls of `atoms.calc`, counted in `result.calls`; `observe(positions, energy, forces)`
    receives each new evaluation unless the caller says otherwise."""

    def __init__(self, atoms, result, observe):
        self.atoms = atoms
        self.result = result
        self.observe = observe
        self.trajectory = None
        self._held = None  # positions whose results this search left in the calculator

    def evaluate(self, positions, observe=True):
        """(energy, forces) at `positions`: one electronic-structure call."""
        self.atoms.positions = positions
        cached = self._cached_results()
        if cached is not None:
            return cached
        self.result.calls += 1
        try:
            energy, forces = self.atoms.get_potential_energy(), self.atoms.get_forces()
        except Exception as exc:  # any calculator fault ends the search, keeping what we have
            raise Stop(StopReason.CALCULATOR_FAILURE, f"{type(exc).__name__}: {exc}") from exc
        energy, forces = checked_results(energy, forces, len(self.atoms))
        self._held = np.array(positions, dtype=float)
        if self.trajectory is not None:
            snap = self.atoms.copy()
            snap.calc = SinglePointCalculator(snap, energy=energy, forces=forces)
            self.trajectory.write(snap)
        if observe:
            self.observe(positions, energy, forces)
        return energy, forces

    def leave_at(self, positions, energy, forces):
        """Leaves the atoms at `positions` with these results cached: reading them costs no
        call (a search ends at its midpoint, not at the image it evaluated last)."""
        self.atoms.positions = positions
        calc = self.atoms.calc
        if hasattr(calc, "results") and hasattr(calc, "atoms"):
            calc.atoms = self.atoms.copy()
            calc.results = {"energy": energy, "forces": np.array(forces)}
            self._held = np.array(positions, dtype=float)

    def _cached_results(self):
        """(energy, forces) the calculator would return without calculating, else None."""
        calc = self.atoms.calc
        try:
            held = getattr(calc, "atoms", None)
            # results the calculator had before the search are not ours to reuse
            if self._held is None or held is None or not np.array_equal(held.positions, self._held):
                return None
            if calc.check_state(self.atoms):  # ASE's own test (positions to 1e-15 Å)
                return None
            energy, forces = calc.results["energy"], calc.results["forces"]
        except Exception:  # a calculator without ASE's cache: every evaluation is a call
            return None
        energy, forces = float(energy), np.array(forces)
        if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
            return None
        return energy, forces
