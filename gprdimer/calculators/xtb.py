"""GFN-xTB through tblite, with one retry from a fresh guess after an SCF failure.

tblite's ASE calculator starts each SCF from the wavefunction of its previous point. A saddle
search can move far between calls (a GP step, a second start back at the guess), and from a
distant point's wavefunction the SCF may not converge in its 250 cycles where it does from
tblite's own initial guess.
"""

from __future__ import annotations

from ase.calculators.calculator import CalculationFailed, all_changes
from tblite.ase import TBLite


class XTBCalculator(TBLite):
    """tblite's TBLite with one retry from a fresh guess when an SCF from the previous
    wavefunction fails; same parameters as TBLite."""

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        try:
            super().calculate(atoms, properties, system_changes)
        except CalculationFailed:
            if self._res is None:  # it already started from tblite's own guess
                raise
            self._res = None
            super().calculate(atoms, properties, system_changes)
