"""The true Hessian at a geometry: analytic where the calculator has one, else central
differences of its forces.

A calculator offers an analytic Hessian through a `get_hessian(atoms)` method returning the
(3N, 3N) Cartesian Hessian in eV/Å² (gprdimer's PySCFCalculator does, for RHF/UHF/DFT).
"""

from __future__ import annotations

import numpy as np

from . import _core
from .constraints import fixed_mask

# Central-difference step, Å: small enough for the harmonic region of a stiff X-H stretch,
# large enough that SCF noise (1e-6 eV/Å in the forces) stays below 0.001 eV/Å².
FD_STEP = 0.005


def true_hessian(atoms, fixed=None, evaluate=None, step=FD_STEP):
    """(hessian, calls) at `atoms`' positions: the Cartesian Hessian of the moving coordinates
    (eV/Å²) and the calls it made itself.

    `evaluate(positions) -> (energy, forces)` makes the finite-difference calls (a search passes
    its own, which counts them; `calls` then leaves them out); by default the atoms' calculator,
    counted in `calls`. An analytic Hessian counts as one call.
    """
    mask = fixed_mask(len(atoms), fixed)
    moving = np.repeat(~mask, 3)
    analytic = getattr(atoms.calc, "get_hessian", None)
    if analytic is not None:
        try:
            hessian = np.asarray(analytic(atoms), dtype=float)
        except NotImplementedError:  # this calculator's method has none: differences below
            pass
        else:
            return hessian[np.ix_(moving, moving)], 1
    counted = [0]
    reference = atoms.positions.copy()
    if evaluate is None:
        def evaluate(positions):
            probe = atoms.copy()
            probe.calc = atoms.calc
            probe.positions = positions
            counted[0] += 1
            return probe.get_potential_energy(), probe.get_forces()

        # The point itself first: a calculator that starts each SCF from its last wavefunction
        # (tblite) then starts every displaced one 0.005 Å from a converged solution, on the
        # state the point has; from its own initial guess an SCF at a displaced point can fail
        # to converge where it does from the point's solution.
        evaluate(reference)

    def surface(x):
        positions = reference.copy()
        positions[~mask] = x.reshape(-1, 3)
        energy, forces = evaluate(positions)
        return float(energy), -np.asarray(forces, dtype=float)[~mask].ravel()

    hessian = np.asarray(_core.finite_difference_hessian(surface, reference[~mask].ravel(), step))
    return hessian, counted[0]
