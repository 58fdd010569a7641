"""The true surface a search evaluates: the atoms' calculator, one counted call at a time.

Every call is checked (a calculator's fault or malformed output ends the search with a
`calculator failure` stop), counted in the result, written to the restart file
(search/call_record.py) and handed to the search's observer (the GP's data). The point
evaluated last, whose results the calculator still holds, costs no call, and neither does one
that the restart file holds for a replay.
"""

from __future__ import annotations

import numpy as np

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
        self.record = None  # the search's CallRecord, where it keeps one
        self._last = None  # (positions, energy, forces) of the point this search stands at
        self._called = False  # whether the calculator has run for this search

    def evaluate(self, positions, observe=True):
        """(energy, forces) at `positions`: one electronic-structure call."""
        self.atoms.positions = positions
        if self._last is not None and _same_point(self._last[0], self.atoms.positions):
            return self._last[1], self._last[2].copy()
        saved = None if self.record is None or self.record.saved is None \
            else self.record.saved.take(self.atoms.positions)
        if saved is not None:
            energy, forces = saved
            self.result.reused_calls += 1
        else:
            energy, forces = self._call()
        self._last = (self.atoms.positions.copy(), energy, forces.copy())
        if observe:
            self.observe(positions, energy, forces)
        return energy, forces

    def _call(self):
        self.result.calls += 1
        try:
            energy, forces = self.atoms.get_potential_energy(), self.atoms.get_forces()
        except Exception as exc:  # any calculator fault ends the search, keeping what we have
            raise Stop(StopReason.CALCULATOR_FAILURE, f"{type(exc).__name__}: {exc}") from exc
        energy, forces = checked_results(energy, forces, len(self.atoms))
        self._called = True
        if self.record is not None:
            self.record.write(self.atoms, energy, forces)
        return energy, forces

    def leave_at(self, positions, energy, forces):
        """Leaves the atoms at `positions` with these results: evaluating them again costs no
        call, and neither does reading them from the atoms afterwards (a search ends at its
        midpoint, not at the image it evaluated last)."""
        self.atoms.positions = positions
        self._last = (self.atoms.positions.copy(), energy, np.array(forces))
        calc = self.atoms.calc
        # only a calculator that has run here holds the state (neighbour lists, SCF) that
        # makes its cache safe to set
        if self._called and hasattr(calc, "results") and hasattr(calc, "atoms"):
            calc.atoms = self.atoms.copy()
            calc.results = {"energy": energy, "forces": np.array(forces)}


def _same_point(a, b):
    """ASE's own test of whether a calculator must run again (positions to 1e-15 Å)."""
    return bool(np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-15)
