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
  its eigenvalues are counted. Where a Ritz pair's residual leaves it unknown on which side of
  the threshold its true eigenvalue lies (outside the soft band, with the model's curvature
  along the residual), the check measures along the residual as well (Davidson steps on true
  forces) until every pair's side is known. Beyond the model's lowest mode (mostly the
  dimer's, already measured) the check always measures the next softest; directions the model
  puts well above zero are not probed unless the last probe showed the model wrong along its
  own direction. A lowest mode imaginary
  but near the threshold must stay negative over a finite displacement (`FINITE_STEP`, central
  differences) to count.
- `hessian_check` (`verify='hessian'`): the same count on a full true Hessian.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vibrations import (IMAGINARY_CM, WAVENUMBER, MassWeighting, count_imaginary,
                         harmonic_analysis, to_wavenumber)

# Model modes softer than this many times the imaginary threshold (mass-weighted GP Hessian) get
# a true force call: the GP's curvature on directions its data barely cover is uncertain by tens
# of cm⁻¹, so the ones near the threshold must be measured, not believed.
PROBE_BELOW = 2.0
# However stiff the model says the rest is, this many of its softest modes beyond its lowest
# (outside the span already measured) get a true call: a GP trained along a search path can
# swap modes, and has called a true 244i cm⁻¹ mode 347 cm⁻¹ while the dimer sat on a 77i one.
# A probe of the lowest mode's part outside the dimer's direction does not count: it measures
# the reaction mode, not the rest.
# A probe along which the model's curvature lies above the soft band (PROBE_BELOW x threshold,
# in cm⁻¹) and the true one further than that band from it shows the model wrong on the stiff
# side: the next model mode is probed too, however stiff the model calls it (xTB doublets/167:
# a true 77i cm⁻¹ second mode spread over model modes the model put at 278 and 382 cm⁻¹, true
# 168 and 241).
ALWAYS_PROBE = 1
# At most this many true calls per check (the finite step below aside). Soft pairs of a floppy
# molecule keep a forward-difference residual that no probe removes and would spend any number;
# six ended xTB doublets/167's check with its 77i cm⁻¹ second mode still at +138 cm⁻¹ (a
# residual spanning the threshold), ten find it (−84 cm⁻¹).
MAX_PROBES = 10
# A Ritz pair whose residual |K s - μ s| exceeds this share of the threshold's eigenvalue, and
# whose interval μ ± |r| holds the threshold's eigenvalue, may have its true eigenvalue on
# either side of the threshold: the check then measures along its Davidson correction too,
# until no such pair is left. A pair whose interval lies wholly on one side is decided, however
# large its residual (forward differences leave one on the reaction mode and on stiff pairs).
RESIDUAL = 0.5
# Outside the soft band a pair's interval is narrowed by the model: the next probe, along the
# residual's direction q, would find the lower eigenvalue of [[μ, |r|], [|r|, β]] on span(s, q),
# with β the true curvature along q, and the pair is refined only where that could fall below
# the threshold. β is taken as μ + MODEL_TRUST · (qᵀMq − μ), M the model: half the model's gap,
# because a GP trained along a path can be wrong on a direction its data barely cover (the test
# of a mode turned 40°: the model says 2.0 eV/Å² where the truth is 1.05). Inside the soft band
# the model is not trusted at all (the test of a soft pair: 2.0 where the truth is 0.03).
MODEL_TRUST = 0.5
# A lowest Ritz mode imaginary within this factor of the threshold is measured again over
# FINITE_STEP (central differences): a reaction coordinate stays negative over a tenth of an
# ångström, while a floppy direction (a libration of fragments 8 Å apart) can be negative over
# 0.01 Å only and turn positive beyond, which is no barrier a chemist can use. The less
# negative curvature counts. A second imaginary mode is not measured again: a frequency
# calculation counts it, so a finite step along it could only accept a point it rejects.
MARGIN = 2.0
FINITE_STEP = 0.05
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
        """What it found, as the detail of a search's stop there ('not a first-order saddle')."""
        source = "true Hessian" if self.frequencies is not None else "saddle check"
        n = self.n_imaginary
        return (f"{n} imaginary mode{'s' if n != 1 else ''} "
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

    def probe(candidate):
        """Measures along the part of `candidate` outside the span measured so far, if that
        part is at least NEW_DIRECTION of it; whether it did."""
        span = _orthonormal(np.array(basis).T)
        candidate = candidate / np.linalg.norm(candidate)
        candidate = candidate - span @ (span.T @ candidate)
        if np.linalg.norm(candidate) < NEW_DIRECTION:
            return False
        direction, _ = weighting.to_cartesian(candidate / np.linalg.norm(candidate))
        direction = direction[:, 0]
        measured(direction, gradient_at(step * direction))
        return True

    for direction, gradient in probes:
        measured(np.asarray(direction) / np.linalg.norm(direction), gradient)
    soft = PROBE_BELOW * threshold
    weighted_model = weighting.weigh(model_hessian)
    values, vectors = np.linalg.eigh(weighted_model)
    calls = beyond_lowest = 0
    contradicted = False
    for i in range(len(values)):
        if calls == MAX_PROBES or (beyond_lowest >= ALWAYS_PROBE and not contradicted
                                   and to_wavenumber(values[i]) >= soft):
            break
        if probe(vectors[:, i]):
            calls += 1
            beyond_lowest += i > 0
            s, image = basis[-1], images[-1]
            model_cm = to_wavenumber(float(s @ weighted_model @ s))
            contradicted = model_cm >= soft and abs(to_wavenumber(float(s @ image))
                                                    - model_cm) > soft
    threshold_value = -(threshold / WAVENUMBER) ** 2
    tolerance = RESIDUAL * -threshold_value
    soft_band = (soft / WAVENUMBER) ** 2
    model_values, model_vectors = values, vectors
    while True:
        values, ritz, residuals = _ritz_pairs(np.array(basis).T, np.array(images).T)
        # Pairs inside the soft band first, the softest first: the residual of a stiff pair is
        # large (forward differences) and would spend the calls elsewhere. A correction inside
        # the measured span gives way to the next pair's.
        unsettled = sorted(((v, r) for v, r in zip(values, residuals.T)
                            if np.linalg.norm(r) > tolerance
                            and _leaves_count_open(v, r, weighted_model, threshold_value,
                                                   soft_band)),
                           key=lambda pair: (abs(pair[0]) >= soft_band, pair[0]))
        if calls == MAX_PROBES or not any(probe(_correction(model_values, model_vectors, v, r,
                                                            tolerance))
                                          for v, r in unsettled):
            break
        calls += 1
    modes, factors = weighting.to_cartesian(ritz)
    if -MARGIN * threshold < to_wavenumber(values[0]) < -threshold:
        direction = FINITE_STEP * modes[:, 0]
        difference = gradient_at(direction) - gradient_at(-direction)
        calls += 2
        values[0] = max(values[0], factors[0] * float(modes[:, 0] @ difference) / (2 * FINITE_STEP))
    order = np.argsort(values, kind="stable")
    values, modes, factors = values[order], modes[:, order], factors[order]
    return SaddleCheck(to_wavenumber(values), modes[:, 0], float(values[0] / factors[0]), calls,
                       threshold)


def hessian_check(atoms, hessian, positions, fixed, calls, threshold=IMAGINARY_CM) -> SaddleCheck:
    """Saddle check on a full true Hessian (moving coordinates, eV/Å²) that cost `calls`."""
    analysis = harmonic_analysis(hessian, atoms, positions, fixed)
    return SaddleCheck(analysis.wavenumbers, analysis.modes[:, 0], float(analysis.curvatures[0]),
                       calls, threshold, frequencies=analysis.wavenumbers)


def _leaves_count_open(value, residual, weighted_model, threshold_value, soft_band):
    """Whether a Ritz pair (value, residual) could have its true eigenvalue on the other side of
    the threshold's eigenvalue: a true eigenvalue lies within |r| of the Ritz value, and above
    the soft band the model's curvature along r narrows that interval (MODEL_TRUST)."""
    size = np.linalg.norm(residual)
    if value < soft_band:
        return size > abs(value - threshold_value)
    q = residual / size
    beta = value + MODEL_TRUST * (float(q @ weighted_model @ q) - value)
    lower = 0.5 * (value + beta) - np.sqrt((0.5 * (beta - value)) ** 2 + size ** 2)
    return lower < threshold_value


def _orthonormal(columns, tolerance=1e-6):
    """Orthonormal basis of the span of `columns`, dropping directions below `tolerance`."""
    u, s, _ = np.linalg.svd(columns, full_matrices=False)
    return u[:, s > tolerance * max(s[0], 1e-300)]


def _correction(model_values, model_vectors, value, residual, tolerance):
    """Davidson's correction of a Ritz pair with the model as preconditioner: the residual's
    stiff part says little about a soft mode, its parts the model puts near the Ritz value
    much."""
    gaps = model_values - value
    gaps = np.where(np.abs(gaps) < tolerance, np.copysign(tolerance, gaps), gaps)
    return model_vectors @ ((model_vectors.T @ residual) / gaps)


def _ritz_pairs(basis, images):
    """Rayleigh-Ritz of the true internal Hessian K on span(basis), given K·basis ≈ images:
    the Ritz values ascending, their vectors (columns) and residuals K·s − μ·s."""
    gram = basis.T @ basis
    g_values, g_vectors = np.linalg.eigh(gram)
    keep = g_values > 1e-8 * g_values.max()
    to_orthonormal = g_vectors[:, keep] / np.sqrt(g_values[keep])
    projected = basis.T @ images
    projected = to_orthonormal.T @ (0.5 * (projected + projected.T)) @ to_orthonormal
    values, vectors = np.linalg.eigh(projected)
    coefficients = to_orthonormal @ vectors
    ritz = basis @ coefficients
    return values, ritz, images @ coefficients - ritz * values
