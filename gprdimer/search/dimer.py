"""Dimer: the classical dimer on the true surface, CG rotations and L-BFGS translations.

Every rotation and translation uses the same C++ code as the GP inner loop; each image
evaluation is a true call. Its saddle check takes the curvature model from a GP on its latest
evaluations: the dimer has no model of its own, and these lie along its last steps and
rotations, around the point checked.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .. import _core
from ..gp import GaussianProcess, GPSettings
from .outer_loop import SaddleSearch, all_finite
from .result import Stop, StopReason
from .settings import DimerSettings, parameter_table
from .surrogate_model import NUMERICAL_ERRORS

# The plain dimer's curvature model: a GP on its latest evaluations, trained once, to the SCG's
# own tolerance, on a subset of them.
CHECK_OBSERVATIONS = 20
CHECK_GP = GPSettings(training_subset=15, training_tolerance=0.01, retrain_tolerance=0.0)


class Dimer(SaddleSearch):
    """The classical dimer on the true surface (atoms, restart, logfile, trajectory and mode as
    GPRDimer; settings a DimerSettings, keywords as in the table below)."""

    settings_class = DimerSettings

    def __init__(self, atoms, restart=None, logfile="-", trajectory=None, *, mode="random",
                 settings=None, **keywords):
        settings = self.settings_from(settings, **keywords)
        super().__init__(atoms, restart, logfile, trajectory, mode, settings)
        self.rotation = settings.rotation.to_core(settings.search.separation)
        self._translation = settings.translation.to_core()

    def _surface(self, x):
        energy, forces = self.oracle.evaluate(self.coords.positions(x))
        return energy, -self.coords.moving(forces)

    def _observe(self, positions, energy, forces):
        self._recent.append((np.array(positions), energy, np.array(forces)))

    def _curvature_model(self, x):
        gp = GaussianProcess.from_atoms(self.atoms, settings=CHECK_GP)
        try:
            for observation in self._recent:
                gp.add(*observation)
            gp.train()
            return self._gp_hessian(gp, x)
        except NUMERICAL_ERRORS as exc:
            raise Stop(StopReason.CHECK_FAILURE, f"its curvature model: {exc}") from exc

    def _start(self):
        x_start, tau = self._initial_mode(None, self.settings.search.seed)
        self._recent = deque(maxlen=CHECK_OBSERVATIONS)
        self._higher_order_points = 0
        e0, f0 = self.oracle.evaluate(x_start)
        self.result.starts = 1
        self._e_start = e0
        c = self.coords
        self._x, self._g, self._tau = c.moving(x_start), -c.moving(f0), c.moving(tau)
        self._translator = _core.Translator(self._x.size, self._translation)
        self._g1 = None
        self._record(x_start, e0, f0, math.nan, tau)
        self._conclude(x_start, e0, f0)

    def _conclude(self, positions, energy, forces):
        """The acceptance test at the new point; then the atoms are left at it."""
        check, image = self._accept(self._x, self._g, self._tau)
        self._g1 = None if image is None else -self.coords.moving(image[2])
        self.result.converged = check is not None and self._take(check)
        self.oracle.leave_at(positions, energy, forces)
        if check is not None and not self.result.converged:
            self._tau, self._g1 = self._next_mode(check), None

    def step(self, *args, **kwargs):
        try:
            rot = _core.rotate_dimer(self._surface, self._x, self._g, self._tau, self._g1,
                                     self.rotation)
            dx = np.asarray(self._translator.step(self._x, self._g, np.array(rot.tau),
                                                  rot.curvature))
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            raise Stop(StopReason.DIMER_FAILURE, str(exc)) from exc
        if not all_finite(rot.tau, dx):
            raise Stop(StopReason.DIMER_FAILURE, "the rotation or translation is not finite")
        self._tau = np.array(rot.tau)
        self._x = self._x + dx
        positions = self.coords.positions(self._x)
        energy, forces = self.oracle.evaluate(positions)
        self._g = -self.coords.moving(forces)
        self._record(positions, energy, forces, float(rot.curvature), self.coords.full(self._tau))
        self._note = f"{rot.rotations} rotations"
        self._conclude(positions, energy, forces)


Dimer.__doc__ += "\n" + parameter_table(DimerSettings)
