"""Is a point with converged forces a first-order saddle? The acceptance test of every search.

A dimer knows the curvature along one direction only, and at a dimer separation of 0.01 Å a
curvature of -0.001 eV/Å² is force noise on a flat direction (a torsion, two fragments far
apart), not a reaction coordinate. The check therefore asks for exactly one *clearly* negative
curvature (an imaginary frequency beyond `vibrations.IMAGINARY_CM`), rigid motions aside, from
true forces:

- `subspace_check` (every search, few calls): a curvature model (the GP's Hessian) names the
  directions that could decide the answer, its softest internal modes; a true force call along
  each (forward differences, like the dimer's image) and the true force calls already made
  (the dimer's image) give the true mass-weighted Hessian on that subspace (Rayleigh-Ritz), and
  its eigenvalues are counted. Directions the model puts well above zero are not probed.
- `hessian_check` (`verify='hessian'`): the same count on a full true Hessian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vibrations import (IMAGINARY_CM, MassWeighting, count_imaginary, harmonic_analysis,
                         to_wavenumber)

# Model modes softer than this many times the imaginary threshold (mass-weighted GP Hessian) get
# a true force call: the GP's curvature on directions its data barely cover is uncertain by tens
# of cm⁻¹, so the ones near the threshold must be measured, not believed.
PROBE_BELOW = 2.0
# At most this many true calls per check, softest model modes first.
MAX_PROBES = 4
# A model mode that is mostly inside the span already measured adds nothing: it is probed only
# when at least this share of its norm lies outside that span.
NEW_DIRECTION = 0.5


@dataclass(frozen=True)
class SaddleCheck:
    """Outcome of a saddle check at one point.

    wavenumbers: ascending, cm⁻¹ (imaginary negative): the Ritz values of the probed subspace,
        or every internal frequency of a full Hessian. mode: Cartesian unit vector of the moving
        coordinates along the lowest. curvature: along it, eV/Å². calls: true calls it made.
    frequencies: every internal frequency when a full true Hessian was computed, else None.
    """

    wavenumbers: np.ndarray
    mode: np.ndarray
    curvature: float
    calls: int
    threshold: float = IMAGINARY_CM
    frequencies: np.ndarray | None = None

    @property
    def n_imaginary(self) -> int:
        return count_imaginary(self.wavenumbers, self.threshold)

    @property
    def first_order(self) -> bool:
        return self.n_imaginary == 1

    def verdict(self) -> str:
        """The stop reason of a search that ends at this point without a saddle."""
        source = "true Hessian" if self.frequencies is not None else "saddle check"
        n = self.n_imaginary
        return (f"not a first-order saddle: {n} imaginary mode{'s' if n != 1 else ''} "
                f"(lowest {self.wavenumbers[0]:.0f} cm⁻¹, {source})")


def subspace_check(weighting: MassWeighting, g0, model_hessian, probes, gradient_at, step,
                   threshold=IMAGINARY_CM):
    """Saddle check on the subspace that `model_hessian` says could hold negative curvature.

    Parameters
    ----------
    weighting : MassWeighting at the point checked.
    g0 : true gradient there (moving coordinates, eV/Å).
    model_hessian : Cartesian curvature model there (moving coordinates, eV/Å²).
    probes : (direction, gradient) pairs already evaluated: the true gradient at the point plus
        `step` times the unit Cartesian `direction` (the dimer's image).
    gradient_at : displacement (moving coordinates, Å) -> true gradient at the point plus it;
        each use is one true call.
    step : length of every probe displacement, Å.
    threshold : imaginary frequencies count beyond this magnitude, cm⁻¹.
    """
    g0 = np.asarray(g0, dtype=float)
    basis, images = [], []  # internal mass-weighted directions s and K_true·s estimates

    def measured(direction, gradient):
        basis.append(weighting.to_internal(direction))
        images.append(weighting.internal.T @ ((np.asarray(gradient) - g0) / step
                                              / weighting.sqrt_mass))

    for direction, gradient in probes:
        measured(np.asarray(direction) / np.linalg.norm(direction), gradient)
    values, vectors = np.linalg.eigh(weighting.weigh(model_hessian))
    calls = 0
    for i in range(len(values)):
        if calls == MAX_PROBES or (i > 0 and to_wavenumber(values[i]) >= PROBE_BELOW * threshold):
            break
        candidate = vectors[:, i]
        if basis:
            span = _orthonormal(np.array(basis).T)
            candidate = candidate - span @ (span.T @ candidate)
        if np.linalg.norm(candidate) < NEW_DIRECTION:
            continue
        direction, _ = weighting.to_cartesian(candidate / np.linalg.norm(candidate))
        direction = direction[:, 0]
        measured(direction, gradient_at(step * direction))
        calls += 1
    return _ritz(weighting, np.array(basis).T, np.array(images).T, calls, threshold)


def hessian_check(atoms, hessian, positions, fixed, calls, threshold=IMAGINARY_CM) -> SaddleCheck:
    """Saddle check on a full true Hessian (moving coordinates, eV/Å²) that cost `calls`."""
    analysis = harmonic_analysis(hessian, atoms, positions, fixed)
    return SaddleCheck(analysis.wavenumbers, analysis.modes[:, 0], float(analysis.curvatures[0]),
                       calls, threshold, frequencies=analysis.wavenumbers)


def _orthonormal(columns, tolerance=1e-6):
    """Orthonormal basis of the span of `columns`, dropping directions below `tolerance`."""
    u, s, _ = np.linalg.svd(columns, full_matrices=False)
    return u[:, s > tolerance * max(s[0], 1e-300)]


def _ritz(weighting, basis, images, calls, threshold):
    """Rayleigh-Ritz of the true internal Hessian K on span(basis), given K·basis ≈ images."""
    gram = basis.T @ basis
    g_values, g_vectors = np.linalg.eigh(gram)
    keep = g_values > 1e-8 * g_values.max()
    to_orthonormal = g_vectors[:, keep] / np.sqrt(g_values[keep])
    projected = basis.T @ images
    projected = to_orthonormal.T @ (0.5 * (projected + projected.T)) @ to_orthonormal
    values, vectors = np.linalg.eigh(projected)
    ritz = basis @ (to_orthonormal @ vectors)
    modes, factors = weighting.to_cartesian(ritz)
    return SaddleCheck(to_wavenumber(values), modes[:, 0], float(values[0] / factors[0]), calls,
                       threshold)
