"""The acceptance test of every search, at a point whose true forces meet the criterion: the
true curvature along the dimer mode, then the saddle check (gprdimer/saddle_check.py), then with
verify='hessian' a true Hessian. Only a first-order saddle is taken.

A mixin of the outer loop (outer_loop.SaddleSearch): it uses the loop's oracle, coordinates,
settings and result, and the method's curvature model (`_curvature_model`).
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..hessian import true_hessian
from ..saddle_check import hessian_check, subspace_check
from ..vibrations import MassWeighting
from .result import NoProgress, StopReason

# A search whose saddle check finds two or more imaginary modes goes on along the lowest one
# (descending along the others); after this many such points in one start it gives up there.
MAX_HIGHER_ORDER = 3
# Central-difference step of the curvature model's Hessian, Å: the inner loop's own.
MODEL_HESSIAN_STEP = _core.InnerSettings().hessian_step


def fmax_of(forces):
    return float(np.sqrt((np.asarray(forces)**2).sum(axis=1)).max())


class Acceptance:
    def _accept(self, x, g0, tau, image=None):
        """(check, image) at the point x (moving coordinates) with true gradient g0.

        Where the force criterion holds, the true curvature along the dimer mode tau comes from
        the image (positions, energy, forces) at x + separation·tau, evaluated here unless given;
        where it is negative, the saddle check decides. `check` is None where no check ran:
        forces too large, or no negative curvature along tau.
        """
        c, separation = self.coords, self.settings.search.separation
        if self._force_measure(c.full(-g0)) >= self.fmax:
            return None, image
        if image is None:
            positions = c.positions(x + separation * tau)
            image = (positions, *self.oracle.evaluate(positions))
        g1 = -c.moving(image[2])
        self.result.curvature = float(np.dot(g1 - g0, tau) / separation)
        if self.result.curvature >= 0.0:
            return None, image
        return self._saddle_check(x, g0, tau, g1), image

    def _saddle_check(self, x, g0, tau, g1):
        """The subspace check at x on the curvature model, then with verify='hessian' a true
        Hessian; every call they make is counted, in `calls` and in `check_calls`."""
        c, search = self.coords, self.settings.search
        calls = self.result.calls
        positions = c.positions(x)
        weighting = MassWeighting(self.atoms, positions, c.fixed)

        def gradient_at(dx):
            return -c.moving(self.oracle.evaluate(c.positions(x + dx))[1])

        check = subspace_check(weighting, g0, self._curvature_model(x), [(tau, g1)], gradient_at,
                               search.separation, search.imaginary_threshold)
        if check.first_order and search.verify == "hessian":
            probe = self.atoms.copy()
            probe.calc = self.atoms.calc
            probe.positions = positions
            # finite-difference points are no observations: they would crowd the GP at one point
            hessian, outside = true_hessian(probe, c.fixed,
                                            lambda p: self.oracle.evaluate(p, observe=False))
            self.result.calls += outside
            check = hessian_check(self.atoms, hessian, positions, c.fixed,
                                  self.result.calls - calls, search.imaginary_threshold)
        self.result.check_calls += self.result.calls - calls
        return check

    def _curvature_model(self, x):
        """Cartesian Hessian of a curvature model at x (moving coordinates, eV/Å²)."""
        raise NotImplementedError

    def _gp_hessian(self, gp, x):
        """Hessian of the GP mean at x by central differences of its gradient."""
        c = self.coords

        def surface(v):
            energy, forces, _ = gp.predict(c.positions(v), variance=False)
            return energy, -c.moving(forces)

        return np.asarray(_core.finite_difference_hessian(surface, np.asarray(x, dtype=float),
                                                          MODEL_HESSIAN_STEP))

    def _take(self, check):
        """Records what a check found; True at a first-order saddle, whose mode and curvature
        are then the check's lowest."""
        r = self.result
        r.n_imaginary, r.frequencies = check.n_imaginary, check.frequencies
        if check.first_order:
            r.mode, r.curvature = self.coords.full(check.mode), check.curvature
        return check.first_order

    def _next_mode(self, check):
        """The mode to go on along after a check that found no first-order saddle: its lowest,
        so that the dimer descends along any other negative one. NoProgress where it found no
        imaginary mode (a minimum, or a flat direction: nothing to climb) or where this start
        has met too many higher-order points."""
        self._higher_order_points += 1
        if check.n_imaginary == 0 or self._higher_order_points >= MAX_HIGHER_ORDER:
            raise NoProgress(StopReason.NOT_FIRST_ORDER, check.verdict())
        return np.array(check.mode)
