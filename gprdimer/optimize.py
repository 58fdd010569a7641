"""Saddle searches as ASE optimizers: GPRDimer (dimer on a GP surrogate) and the plain Dimer.

Both own their run loop instead of relying on ASE's `irun`, whose per-step call sequence changed
between ASE 3.23, 3.26 and 3.28; everything else (logfile, observers, `run(fmax, steps)`,
context manager) is ASE's.
"""

from __future__ import annotations

import io
import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import Trajectory
from ase.optimize.optimize import Optimizer

from . import _core
from .errors import GPError, InputError
from .constraints import fixed_atoms, fixed_mask
from .gp import GaussianProcess
from .hessian import true_hessian
from .modes import MODE_CHOICES, initial_mode
from .saddle_check import hessian_check, subspace_check
from .vibrations import IMAGINARY_CM, MassWeighting

__all__ = ["GPRDimer", "Dimer", "SearchResult"]

_METRICS = ("fmax", "norm")
VERIFY_CHOICES = (None, "hessian")
# A search whose saddle check finds two or more imaginary modes goes on along the lowest one
# (descending along the others); after this many such points in one start it gives up there.
_MAX_HIGHER_ORDER = 3
# Central-difference step of the curvature model's Hessian, Å: the inner loop's own.
_MODEL_HESSIAN_STEP = _core.InnerSettings().hessian_step
# The plain dimer's curvature model: a GP on its latest evaluations, trained on a subset of them.
_CHECK_OBSERVATIONS = 20
_CHECK_TRAINING_SUBSET = 15


@dataclass
class SearchResult:
    """What a saddle search ended with. `calls` counts every electronic-structure evaluation."""

    converged: bool = False
    stop_reason: str = "not started"
    calls: int = 0
    outer_iterations: int = 0
    energy: float = math.nan
    fmax: float = math.nan
    force_norm: float = math.nan
    curvature: float = math.nan
    mode: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    wall_time: float = 0.0
    gp_time: float = 0.0
    starts: int = 0
    # The last saddle check: imaginary modes beyond vibrations.IMAGINARY_CM (None before any),
    # and every internal frequency (cm⁻¹, imaginary negative) where a true Hessian was computed.
    n_imaginary: int | None = None
    frequencies: np.ndarray | None = None
    check_calls: int = 0  # the part of `calls` that the saddle checks made


class _Stop(Exception):
    """Ends a search with a stop reason; what was evaluated so far is kept."""


class _NoProgress(_Stop):
    """A stop that another start from the guess may get past: no new lowest true fmax for
    `patience` outer iterations, a GP search with nowhere to go, or an energy rise."""


def _fmax(forces):
    return float(np.sqrt((forces**2).sum(axis=1)).max())


# Errors of the GP and of the compiled surrogate searches (C++ invalid_argument -> ValueError,
# runtime_error -> RuntimeError); a calculator's faults never get here, _evaluate turns them into
# a _Stop first.
_NUMERICAL_ERRORS = (GPError, InputError, ValueError, RuntimeError, ArithmeticError)


def _check_number(name, value, *, low=0.0, strict=True, finite=True):
    """InputError unless `value` is a number above `low` (or at least `low` when not strict)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    above = v > low if strict else v >= low
    if not above or math.isnan(v) or (finite and not math.isfinite(v)):
        bound = f"{'above' if strict else 'at least'} {low:g}"
        raise InputError(f"{name} must be {'a finite number' if finite else 'a number'} {bound}, "
                         f"got {value!r}")
    return v


def check_run_settings(fmax, steps):
    """InputError unless fmax is a positive finite number and steps a whole number >= 1."""
    try:
        ok = math.isfinite(float(fmax)) and float(fmax) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"fmax must be a positive number, got {fmax}")
    try:
        too_few = int(steps) < 1
    except (TypeError, ValueError):
        raise InputError(f"steps must be a whole number, got {steps!r}") from None
    if too_few:
        raise InputError(f"steps must be at least 1, got {steps}")


def _all_finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


def _checked_results(energy, forces, n_atoms):
    """(energy, forces (N, 3)) as numbers; _Stop naming what a calculator got wrong."""
    try:
        energy = float(energy)
    except (TypeError, ValueError):
        raise _Stop(f"calculator failure: the energy is not a number ({energy!r})") from None
    if forces is None:
        raise _Stop("calculator failure: it returned no forces (None)")
    try:
        forces = np.array(forces, dtype=float)
    except (TypeError, ValueError):
        raise _Stop("calculator failure: the forces are not numbers") from None
    if forces.shape != (n_atoms, 3):
        raise _Stop(f"calculator failure: forces of shape {forces.shape}, expected ({n_atoms}, 3)")
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        raise _Stop("calculator failure: non-finite energy or forces")
    return energy, forces


class _SaddleSearch(Optimizer):
    """Shared outer loop: true evaluations, trajectory, convergence with curvature, result."""

    def __init__(self, atoms, mode=None, trajectory=None, logfile="-", *, metric="fmax",
                 separation=0.01, max_energy_rise=10.0, verify=None,
                 imaginary_threshold=IMAGINARY_CM, seed=706253457, **kwargs):
        if metric not in _METRICS:
            raise InputError(f"metric must be one of {_METRICS}, got {metric!r}")
        if verify not in VERIFY_CHOICES:
            raise InputError(f"verify must be None or 'hessian', got {verify!r}")
        self.verify = verify
        self.imaginary_threshold = _check_number("imaginary_threshold", imaginary_threshold)
        _check_number("separation", separation)
        _check_number("max_energy_rise", max_energy_rise, finite=False)
        if atoms.calc is None:
            raise InputError("atoms have no calculator attached")
        self.metric = metric
        self.separation = float(separation)
        self.max_energy_rise = float(max_energy_rise)
        self.seed = seed
        self._mode_spec = mode
        self._trajectory_path = trajectory
        Optimizer.__init__(self, atoms, restart=None, logfile=logfile, trajectory=None, **kwargs)
        self.fixed = fixed_mask(len(atoms), fixed_atoms(atoms))
        self.result = SearchResult()
        self._held = None  # positions whose results this search left in the calculator
        self._guess = None
        self._traj = None
        self._started = False
        self._t0 = None

    # --- evaluations -------------------------------------------------------------------------
    def _evaluate(self, positions, observe=True):
        """One electronic-structure call at `positions`; written to the trajectory and, with
        `observe`, handed to `_observe` (the GP's data).

        The point this search evaluated last, whose results the calculator still holds (the
        midpoint it was left at), costs no call: it is neither counted nor written again.
        """
        self.atoms.positions = positions
        cached = self._cached_results()
        if cached is not None:
            return cached
        self.result.calls += 1
        try:
            energy, forces = self.atoms.get_potential_energy(), self.atoms.get_forces()
        except Exception as exc:  # any calculator fault ends the search, keeping what we have
            raise _Stop(f"calculator failure: {type(exc).__name__}: {exc}") from exc
        energy, forces = _checked_results(energy, forces, len(self.atoms))
        self._held = np.array(positions, dtype=float)
        if self._traj is not None:
            snap = self.atoms.copy()
            snap.calc = SinglePointCalculator(snap, energy=energy, forces=forces)
            self._traj.write(snap)
        if observe:
            self._observe(positions, energy, forces)
        return energy, forces

    def _observe(self, positions, energy, forces):
        """A new true evaluation: the GP learns it; the plain dimer keeps it for its check."""

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

    def _force_measure(self, forces):
        return _fmax(forces) if self.metric == "fmax" else float(np.linalg.norm(forces))

    def _moving(self, arr):
        return np.asarray(arr)[~self.fixed].ravel()

    def _full(self, vec):
        out = np.zeros((len(self.atoms), 3))
        out[~self.fixed] = np.asarray(vec).reshape(-1, 3)
        return out

    def _record(self, positions, energy, forces, curvature, mode):
        r = self.result
        r.positions, r.energy = np.array(positions), energy
        r.fmax, r.force_norm = _fmax(forces), float(np.linalg.norm(forces))
        r.curvature, r.mode = curvature, np.array(mode)

    # --- ASE optimizer protocol -------------------------------------------------------------
    def todict(self):
        d = super().todict()
        d.update(metric=self.metric, separation=self.separation, verify=self.verify,
                 imaginary_threshold=self.imaginary_threshold)
        return d

    def converged(self, *args, **kwargs):
        return self.result.converged

    def gradient_converged(self, *args, **kwargs):
        return self.result.converged

    def log(self, *args, **kwargs):
        if self.logfile is None:
            return
        r = self.result
        if self.nsteps == 0:
            self.logfile.write(f"{'':>12s} {'step':>5s} {'calls':>5s} {'time':>8s} {'energy':>15s} "
                               f"{'fmax':>9s} {'|F|':>9s} {'curv':>9s}  note\n")
        self.logfile.write(f"{type(self).__name__:>12s} {self.nsteps:5d} {r.calls:5d} "
                           f"{time.time() - self._t0:8.2f} {r.energy:15.6f} {r.fmax:9.4f} "
                           f"{r.force_norm:9.4f} {r.curvature:9.3f}  {self._note}\n")
        # ASE < 3.26 hands us a plain buffered file; newer ASE wraps it in a Log that flushes.
        if isinstance(self.logfile, io.IOBase):
            self.logfile.flush()

    def irun(self, fmax=0.01, steps=300):
        check_run_settings(fmax, steps)
        self.fmax = float(fmax)
        self.max_steps = self.nsteps + int(steps)
        self._t0 = time.time() - self.result.wall_time
        if self._trajectory_path is not None and self._traj is None:
            self._traj = self.closelater(Trajectory(self._trajectory_path, "a" if self._started else "w"))
        self._note = "start"
        try:
            if not self._started:
                self._started = True
                self._start()
            self._finish_time()
            self.log()
            self.call_observers()
            yield self.result.converged
            while not self.result.converged and self.nsteps < self.max_steps:
                self._note = ""
                self.step()
                self.nsteps += 1
                self.result.outer_iterations = self.nsteps
                self._check_energy()
                self._finish_time()
                self.log()
                self.call_observers()
                yield self.result.converged
            if self.result.converged:
                self.result.stop_reason = "converged"
            else:
                self.result.stop_reason = "max iterations"
        except _Stop as stop:
            self.result.converged = False
            self.result.stop_reason = str(stop)
            self._finish_time()
            self._note = str(stop)
            self.log()
            yield False

    def run(self, fmax=0.01, steps=300):
        """Runs the search; returns True only at a verified first-order saddle."""
        converged = False
        for converged in self.irun(fmax=fmax, steps=steps):
            pass
        return converged

    def _finish_time(self):
        self.result.wall_time = time.time() - self._t0

    def _check_energy(self):
        if self.result.energy - self._e_start > self.max_energy_rise:
            raise _NoProgress(f"energy rise: {self.result.energy - self._e_start:.2f} eV above "
                              "the start")

    # --- shared pieces of the start and of the convergence test ------------------------------
    def _initial_mode(self, spec=None, seed=None):
        """Start point and orientation from the guess (the atoms as the search first found them),
        by `spec` or else by the mode the search was given; `seed` for another random one."""
        if self._guess is None:
            self._guess = self.atoms.copy()
        displacement, mode = initial_mode(self._guess, self._mode_spec if spec is None else spec,
                                          fixed=self.fixed,
                                          seed=self.seed if seed is None else seed)
        x_start = self._guess.positions + displacement
        # Until the first call succeeds the result holds the start, so that a search whose first
        # call fails still reports (N, 3) positions (a batch row needs them) and no energy.
        self.result.positions = x_start.copy()
        self.result.mode = np.zeros_like(x_start)
        return x_start, mode

    def _accept(self, x, g0, tau, image=None):
        """(check, image) at the point x (moving coordinates) with true gradient g0.

        Where the force criterion holds, the true curvature along the dimer mode tau comes from
        the image (positions, energy, forces) at x + separation·tau, evaluated here unless given;
        where it is negative, the saddle check (`saddle_check`) decides. `check` is None where
        no check ran: forces too large, or no negative curvature along tau.
        """
        if self._force_measure(self._full(-g0)) >= self.fmax:
            return None, image
        if image is None:
            positions = self._full(x + self.separation * tau) + self._fixed_positions()
            image = (positions, *self._evaluate(positions))
        g1 = -self._moving(image[2])
        self.result.curvature = float(np.dot(g1 - g0, tau) / self.separation)
        if self.result.curvature >= 0.0:
            return None, image
        return self._saddle_check(x, g0, tau, g1), image

    def _saddle_check(self, x, g0, tau, g1):
        """The subspace check at x on the curvature model, then with verify='hessian' a true
        Hessian; every call they make is counted, in `calls` and in `check_calls`."""
        calls = self.result.calls
        positions = self._full(x) + self._fixed_positions()
        weighting = MassWeighting(self.atoms, positions, self.fixed)

        def gradient_at(dx):
            return -self._moving(self._evaluate(self._full(x + dx) + self._fixed_positions())[1])

        check = subspace_check(weighting, g0, self._curvature_model(x), [(tau, g1)], gradient_at,
                               self.separation, self.imaginary_threshold)
        if check.first_order and self.verify == "hessian":
            probe = self.atoms.copy()
            probe.calc = self.atoms.calc
            probe.positions = positions
            # finite-difference points are no observations: they would crowd the GP at one point
            hessian, outside = true_hessian(probe, self.fixed,
                                            lambda p: self._evaluate(p, observe=False))
            self.result.calls += outside
            check = hessian_check(self.atoms, hessian, positions, self.fixed,
                                  self.result.calls - calls, self.imaginary_threshold)
        self.result.check_calls += self.result.calls - calls
        return check

    def _curvature_model(self, x):
        """Cartesian Hessian of a curvature model at x (moving coordinates, eV/Å²)."""
        raise NotImplementedError

    def _gp_hessian(self, gp, x):
        """Hessian of the GP mean at x by central differences of its gradient."""
        def surface(v):
            energy, forces, _ = gp.predict(self._full(v) + self._fixed_positions(), variance=False)
            return energy, -self._moving(forces)

        return np.asarray(_core.finite_difference_hessian(surface, np.asarray(x, dtype=float),
                                                          _MODEL_HESSIAN_STEP))

    def _take(self, check):
        """Records what a check found; True at a first-order saddle, whose mode and curvature
        are then the check's lowest."""
        r = self.result
        r.n_imaginary, r.frequencies = check.n_imaginary, check.frequencies
        if check.first_order:
            r.mode, r.curvature = self._full(check.mode), check.curvature
        return check.first_order

    def _next_mode(self, check):
        """The mode to go on along after a check that found no first-order saddle: its lowest,
        so that the dimer descends along any other negative one. _NoProgress where it found no
        imaginary mode (a minimum, or a flat direction: nothing to climb) or where this start
        has met too many higher-order points."""
        self._higher_order_points += 1
        if check.n_imaginary == 0 or self._higher_order_points >= _MAX_HIGHER_ORDER:
            raise _NoProgress(check.verdict())
        return np.array(check.mode)

    def _restore_midpoint(self, positions, energy, forces):
        """Leaves atoms at the midpoint with its results cached, so reading them costs no call."""
        self.atoms.positions = positions
        calc = self.atoms.calc
        if hasattr(calc, "results") and hasattr(calc, "atoms"):
            calc.atoms = self.atoms.copy()
            calc.results = {"energy": energy, "forces": np.array(forces)}
            self._held = np.array(positions, dtype=float)

    def _fixed_positions(self):
        out = np.zeros((len(self.atoms), 3))
        out[self.fixed] = self._x_start[self.fixed]
        return out


class GPRDimer(_SaddleSearch):
    """Dimer saddle search on a Gaussian-process surrogate: one true call per outer iteration.

    Parameters (defaults in brackets; docs/parameters.md gives the reasons)
    ----------
    atoms : ase.Atoms with a calculator; FixAtoms atoms stay put and enter the kernel as fixed
        reference points; with a periodic cell distances use the minimum image.
    mode : initial orientation: an (N, 3) array, 'random' (the paper's seeded displacement of the
        least-coordinated atom and its neighbours) or 'hessian' (lowest mode of a model Hessian).
        ['random']
    metric : 'fmax' (largest per-atom force, as ASE and Sella) or 'norm' (2-norm of the whole
        force vector, as the paper). ['fmax']
    separation : midpoint to image-1 distance, Å. [0.01]
    initial_rotations : passes of rotations with a true image evaluation each. [6]
    initial_angle : rotation angle (rad) below which the initial rotations stop. [0.0873]
    rotation_method : 'lbfgs' or 'cg' on the GP. ['lbfgs']
    max_rotations, rotation_angle : GP rotations per translation and their angle tolerance.
        [10, 0.01]
    max_inner_iterations : GP steps per outer iteration. [200]
    divisor : the inner loop stops at max(last true fmax / divisor, fmax / 10). [10]
    max_step, convex_step : translation cap and uphill step at positive curvature, Å. [0.05, 0.1]
    convex_relax : at positive curvature, translate on the modified force (uphill along the mode,
        downhill across it) instead of the fixed uphill step: True, False, or 'fresh' for the
        fresh starts only. [False]
    second_order : the inner loop takes P-RFO steps on the GP Hessian (uphill along its lowest
        mode, downhill along the others) instead of dimer rotations and translations: True,
        False, or 'fresh' for the fresh starts only. ['fresh']
    ratio_at_limit : distance-ratio trust window and per-atom step limiter. [0.8]
    trust : 'ratio' (every distance within ratio..1/ratio of one observation), 'transport' (the
        adaptive per-element transport radius of the OT-GP variant) or 'both'. ['both']
    max_variance : stop the inner loop where the GP energy variance exceeds this (eV²); 0 = off.
    training_subset : hyperparameters are trained on at most this many observations
        (farthest-point sampling); all of them stay in the model. [15]
    retrain_tolerance : keep the previous hyperparameters when a training moves none of them
        (log scale) by more than this, saving a refactorisation on all data. [0.2]
    skip_after_kept : outer iterations that do not train after a training that kept the
        hyperparameters; their observations still join the model. 0 trains every time. [2]
    training_tolerance : a training (scaled conjugate gradient) ends at the first step that
        moves no log hyperparameter by more than this. [0.1]
    patience : stop ('no progress') after this many outer iterations without a new lowest true
        fmax; 0 = off. [30]
    fallback_mode : after the first such stop, start once more from the guess with this
        orientation, keeping every observation in the GP: 'other' ('hessian' after 'random' or
        an array, 'random' after 'hessian'), 'random', 'hessian', or None for no second start.
        ['other']
    fresh_starts : after the second start's patience stop (the first's without a second start),
        this many more starts from the guess, each with a random orientation from a new seed on
        an empty GP. [2]
    noise, prior_dof, variance_barrier : GP model (docs/model.md). [1e-5, 28, False]
    max_energy_rise : end a start when the energy rises this far above the first start's, eV;
        the next start, if one is left, begins at the guess again. [10]
    imaginary_threshold : a point is a first-order saddle when exactly one harmonic frequency
        (mass-weighted, rigid motions removed) is imaginary beyond this, cm⁻¹; the saddle check
        decides it from true forces along the modes the GP cannot rule out. [50]
    verify : 'hessian' confirms that check with a true Hessian at the saddle (analytic where
        the calculator has `get_hessian`, else central differences of forces), counted in
        `calls`, and fills `result.frequencies`; None for the check alone. [None]
    seed : seed of the 'random' initial mode. [706253457]
    """

    def __init__(self, atoms, mode="random", trajectory=None, logfile="-", *, metric="fmax",
                 separation=0.01, initial_rotations=6, initial_angle=0.0873,
                 rotation_method="lbfgs", max_rotations=10, rotation_angle=0.01,
                 trial_angle=0.05, max_inner_iterations=200, divisor=10.0, max_step=0.05,
                 convex_step=0.1, convex_relax=False, second_order="fresh", ratio_at_limit=0.8,
                 trust="both", max_variance=0.0, training_subset=15, retrain_tolerance=0.2,
                 skip_after_kept=2,
                 training_tolerance=0.1, patience=30, fallback_mode="other", fresh_starts=2,
                 noise=1e-5, prior_dof=28.0, variance_barrier=False, max_energy_rise=10.0,
                 verify=None, imaginary_threshold=IMAGINARY_CM, seed=706253457, **kwargs):
        super().__init__(atoms, mode, trajectory, logfile, metric=metric, separation=separation,
                         max_energy_rise=max_energy_rise, verify=verify,
                         imaginary_threshold=imaginary_threshold, seed=seed, **kwargs)
        if trust not in ("ratio", "transport", "both"):
            raise InputError(f"trust must be 'ratio', 'transport' or 'both', got {trust!r}")
        if rotation_method not in ("lbfgs", "cg"):
            raise InputError(f"rotation_method must be 'lbfgs' or 'cg', got {rotation_method!r}")
        # Refused here, before the first call, rather than found out mid-search.
        for name, value in (("initial_rotations", initial_rotations), ("initial_angle", initial_angle),
                            ("max_rotations", max_rotations), ("rotation_angle", rotation_angle),
                            ("max_variance", max_variance), ("patience", patience),
                            ("fresh_starts", fresh_starts), ("skip_after_kept", skip_after_kept)):
            _check_number(name, value, strict=False)
        for name, value in (("max_inner_iterations", max_inner_iterations),
                            ("trial_angle", trial_angle), ("divisor", divisor),
                            ("max_step", max_step), ("convex_step", convex_step),
                            ("ratio_at_limit", ratio_at_limit),
                            ("training_tolerance", training_tolerance)):
            _check_number(name, value)
        if ratio_at_limit > 1:
            raise InputError(f"ratio_at_limit must be in (0, 1], got {ratio_at_limit}")
        if convex_relax not in (True, False, "fresh"):
            raise InputError(f"convex_relax must be True, False or 'fresh', got {convex_relax!r}")
        if second_order not in (True, False, "fresh"):
            raise InputError(f"second_order must be True, False or 'fresh', got {second_order!r}")
        self.convex_relax = convex_relax
        self.second_order = second_order
        self.initial_rotations = int(initial_rotations)
        self.initial_angle = float(initial_angle)
        self.divisor = float(divisor)
        self.trust = trust
        self.patience = int(patience)
        if fallback_mode == "other":
            fallback_mode = "random" if isinstance(mode, str) and mode == "hessian" else "hessian"
        if fallback_mode is not None and fallback_mode not in MODE_CHOICES:
            raise InputError(f"fallback_mode must be 'other', {', '.join(map(repr, MODE_CHOICES))} "
                             f"or None, got {fallback_mode!r}")
        self.fallback_mode = fallback_mode
        self.fresh_starts = int(fresh_starts)
        self.skip_after_kept = int(skip_after_kept)
        self._untrained = 0  # outer iterations left to run on the kept hyperparameters
        self._gp_settings = dict(noise=noise, prior_dof=prior_dof,
                                 variance_barrier=variance_barrier,
                                 training_subset=training_subset,
                                 retrain_tolerance=retrain_tolerance, tol_sol=training_tolerance)
        self.gp = GaussianProcess.from_atoms(atoms, **self._gp_settings)
        s = _core.InnerSettings()
        s.max_iterations = int(max_inner_iterations)
        s.rotation.max_rotations = int(max_rotations)
        s.rotation.converged_angle = float(rotation_angle)
        s.rotation.separation = self.separation
        s.rotation.trial_angle = float(trial_angle)
        s.rotation.method = getattr(_core.RotationMethod, rotation_method)
        s.translation.max_step = float(max_step)
        s.translation.convex_step = float(convex_step)
        s.translation.ratio_at_limit = float(ratio_at_limit)
        s.translation.convex_relax = convex_relax is True
        s.second_order = second_order is True
        s.ratio_trust = trust in ("ratio", "both")
        s.max_variance = float(max_variance)
        self.inner = s
        self._initial_rotation = _core.RotationSettings()
        self._initial_rotation.max_rotations = int(max_inner_iterations)
        self._initial_rotation.converged_angle = min(0.01, 0.1 * self.initial_angle)
        self._initial_rotation.separation = self.separation
        self._initial_rotation.trial_angle = float(trial_angle)
        self._initial_rotation.method = s.rotation.method
        self._initial_rotation.exact_image = True

    def _rotate(self, x, tau):
        rot = _core.rotate_on_surrogate(self.gp._impl, x, tau, self._initial_rotation)
        if not _all_finite(rot.tau):
            raise GPError("the rotation on the GP returned a non-finite mode")
        return rot

    def _relax(self, x, tau, settings):
        inner = _core.relax_on_surrogate(self.gp._impl, x, tau, settings)
        if not _all_finite(inner.positions, inner.tau):
            raise GPError("the search on the GP returned non-finite positions")
        return inner

    def _repeats_last(self, inner):
        """Whether the GP search came back to the last point and mode (to 1e-12)."""
        last_x, last_tau = self._last_point
        return bool(np.allclose(inner.positions, last_x, rtol=0.0, atol=1e-12)
                    and np.allclose(inner.tau, last_tau, rtol=0.0, atol=1e-12))

    def todict(self):
        d = super().todict()
        d.update(trust=self.trust, divisor=self.divisor, initial_rotations=self.initial_rotations,
                 fallback_mode=self.fallback_mode, fresh_starts=self.fresh_starts,
                 convex_relax=self.convex_relax, second_order=self.second_order,
                 skip_after_kept=self.skip_after_kept)
        return d

    def _gp(self, fn, *args):
        """Runs one GP or surrogate-search call, timed.

        A failure (a covariance that will not factorise even with jitter, runaway
        hyperparameters, a surrogate step that is not finite) gets one retry on hyperparameters
        reset to their data-driven start and retrained; a second failure ends the search.
        """
        t = time.perf_counter()
        try:
            try:
                return fn(*args)
            except _NUMERICAL_ERRORS as exc:
                self._reset_gp(exc)
            try:
                return fn(*args)
            except _NUMERICAL_ERRORS as exc:
                raise _Stop(f"GP failure: {exc} (after resetting the hyperparameters)") from exc
        finally:
            self.result.gp_time += time.perf_counter() - t

    def _reset_gp(self, exc):
        """Back to data-driven hyperparameters, retrained; _Stop when that fails too."""
        reset = getattr(self.gp._impl, "reset_hyperparameters", None)
        if reset is None:  # a backend without the reset: nothing to retry with
            raise _Stop(f"GP failure: {exc}") from exc
        try:
            reset()
            self.gp.train()
        except _NUMERICAL_ERRORS as again:
            raise _Stop(f"GP failure: {exc}; retraining from reset hyperparameters: {again}") from again
        self._note = (self._note + "; " if self._note else "") + "GP hyperparameters reset"

    def _add(self, positions, energy, forces):
        t = time.perf_counter()
        try:
            self.gp.add(positions, energy, forces)
        except GPError as exc:  # stored, but the extended factor failed: rebuild it on a reset
            self._reset_gp(exc)
        except (InputError, ValueError) as exc:  # not stored: the observation itself is unusable
            raise _Stop(f"GP failure: {exc}") from exc
        finally:
            self.result.gp_time += time.perf_counter() - t

    def _train(self):
        return self._gp(self.gp.train)

    def _observe(self, positions, energy, forces):
        self._add(positions, energy, forces)

    def _curvature_model(self, x):
        return self._gp(self._gp_hessian, self.gp, x)

    def _start(self):
        try:
            self._start_from()
        except _NoProgress as stop:
            self._start_again(stop)

    def _start_from(self, spec=None, seed=None):
        """Evaluates the start from the guess and turns the dimer there on true image calls."""
        x_start, tau = self._initial_mode(spec, seed)
        self._x_start = x_start
        self._higher_order_points = 0
        e0, f0 = self._evaluate(x_start)
        self.result.starts += 1
        if self.result.starts == 1:  # the energy-rise guard stays relative to the first start
            self._e_start = e0
        self._record(x_start, e0, f0, math.nan, tau)  # what a fault in the next call leaves
        tau = self._moving(tau)
        x0, g0 = self._moving(x_start), -self._moving(f0)
        image = x_start + self._full(self.separation * tau)
        e1, f1 = self._evaluate(image)
        g1 = -self._moving(f1)
        for _ in range(self.initial_rotations):
            angle = _core.estimated_rotation_angle(g0, g1, tau, self.separation)
            if angle < self.initial_angle:
                break
            self._train()
            rot = self._gp(self._rotate, x_start, tau)
            if rot.rotations == 0:
                break
            change = math.acos(min(1.0, abs(float(np.dot(rot.tau, tau)))))
            tau = np.array(rot.tau)
            image = x_start + self._full(self.separation * tau)
            e1, f1 = self._evaluate(image)
            g1 = -self._moving(f1)
            if change < self.initial_angle:
                break
        curvature = float(np.dot(g1 - g0, tau) / self.separation)
        self._initial = (x_start, tau, _fmax(self._full(-g0)))
        self._best = (math.inf, self.nsteps)  # lowest true fmax, and the outer iteration it came at
        self._last_point = (np.array(x_start), np.array(tau))
        self._latest_converged = None
        self._untrained = 0
        self._last_g = g0
        self._tau = tau
        self._record(x_start, e0, f0, curvature, self._full(tau))
        check, _ = self._accept(x0, g0, tau, (image, e1, f1))
        self.result.converged = check is not None and self._take(check)
        # the last call was at an image: restore the midpoint as the atoms' current state
        self._restore_midpoint(x_start, e0, f0)
        if check is not None and not self.result.converged:
            self._latest_converged = (x_start, self._next_mode(check), self._initial[2])

    def step(self, *args, **kwargs):
        try:
            self._translate()
            # A start that ran far uphill went astray; the next one begins at the guess again.
            self._check_energy()
        except _NoProgress as stop:
            self._start_again(stop)

    def _start_again(self, stop):
        """After a patience stop, a stall, an energy rise or a point that is no first-order
        saddle: the second start (fallback orientation, data kept), then the fresh starts; the
        stop stands when none is left."""
        while self.result.starts < 1 + (self.fallback_mode is not None) + self.fresh_starts:
            try:
                if self.result.starts == 1 and self.fallback_mode is not None:
                    # A patience stop mostly comes from a dimer that lost its mode and slid
                    # towards a minimum. Another orientation often finds the saddle, and with the
                    # first start's data kept it converted 7 of 12 xTB patience stops against 3
                    # of 12 on a fresh GP.
                    self._note = f"{stop}; second start from the guess, {self.fallback_mode} mode"
                    self._start_from(self.fallback_mode)
                else:
                    self._fresh_start(stop, self.result.starts)
                return
            except _NoProgress as again:
                stop = again
        raise stop

    def _fresh_start(self, stop, starts):
        # By now the GP holds the failed starts' data, and its cost grows with the cube of it;
        # an empty GP and another random orientation make an independent try instead. Failed
        # starts mostly climbed a soft mode at small positive curvature with the fixed uphill
        # step, the forces across it never relaxing; a dimer that relaxes them instead settles
        # in a minimum. P-RFO on the GP Hessian climbs the lowest mode and relaxes the rest from
        # one second-order model (docs/parameters.md, second_order).
        self.gp = GaussianProcess.from_atoms(self.atoms, **self._gp_settings)
        if self.convex_relax == "fresh":
            self.inner.translation.convex_relax = True
        if self.second_order == "fresh":
            self.inner.second_order = True
        self._note = f"{stop}; fresh start from the guess, random mode, empty GP"
        self._start_from("random", seed=None if self.seed is None else self.seed + starts)

    def _translate(self):
        # Once the hyperparameters hold still, a training mostly confirms them (37 of 42 kept on
        # xTB singlets/000), yet it is most of an outer iteration's GP time.
        if self._untrained > 0:
            self._untrained -= 1
        else:
            self._untrained = self.skip_after_kept if self._train().kept else 0
        s = self.inner
        start_x, start_tau, start_fmax = self._latest_converged or self._initial
        # The paper scales the GP tolerance by the last true point alone. After a step that went
        # wrong that tolerance is loose, the inner loop accepts its own start at once, and the
        # next call repeats a known point: the start's own true forces bound it as well.
        last_fmax = _fmax(self._full(-self._last_g))
        s.force_tolerance = max(min(last_fmax, start_fmax) / self.divisor, self.fmax / 10.0)
        if self.trust in ("transport", "both"):
            s.trust_radius = _adaptive_trust_radius(self.gp.n_observations, len(self.atoms))
        inner = self._gp(self._relax, start_x, start_tau, s)
        if self._repeats_last(inner):
            # Both true calls would repeat the last ones exactly: hyperparameters stuck where the
            # surrogate is flat, or a start at a minimum or on a flat surface. One retry from
            # reset hyperparameters; if the GP still has nowhere to go, this start can learn
            # nothing more.
            self._reset_gp(GPError("the GP search returned the point evaluated last"))
            inner = self._gp(self._relax, start_x, start_tau, s)
            if self._repeats_last(inner):
                raise _NoProgress("stalled: the GP search returned the point and mode evaluated "
                                  f"last (true fmax {self.result.fmax:.3g}, "
                                  f"curvature {self.result.curvature:.3g})")
        self._note = (self._note + "; " if self._note else "") + \
            f"GP: {inner.stop}, {inner.iterations} steps"
        x = np.array(inner.positions)
        tau = np.array(inner.tau)
        self._last_point = (x, tau)
        energy, forces = self._evaluate(x)
        g0 = -self._moving(forces)
        self._last_g = g0
        fmax_here = _fmax(forces)
        if inner.stop == "converged":
            self._latest_converged = (x, tau, fmax_here)
        self._record(x, energy, forces, float(inner.curvature), self._full(tau))
        check, _ = self._accept(self._moving(x), g0, tau)
        self.result.converged = check is not None and self._take(check)
        self._restore_midpoint(x, energy, forces)
        if check is not None and not self.result.converged:
            self._latest_converged = (x, self._next_mode(check), fmax_here)
        self._check_progress(fmax_here)

    def _check_progress(self, fmax):
        """_Stop once `patience` outer iterations in a row found no lower true fmax: past that
        point a search circles or drifts, and every further call adds to a GP whose cost grows
        with the cube of its data."""
        best, at = self._best
        if fmax < best:
            self._best = (fmax, self.nsteps + 1)
        elif self.patience and self.nsteps + 1 - at >= self.patience and not self.result.converged:
            which = f" (start {self.result.starts})" if self.result.starts > 1 else ""
            raise _NoProgress(f"no progress{which}: lowest true fmax {best:.3g} eV/Å, "
                              f"{self.patience} outer iterations ago")


def _adaptive_trust_radius(n_observations, n_atoms):
    """The OT-GP rule: grows with the data, capped by a size-dependent ceiling (Å)."""
    grown = 0.15 + 0.35 * (1.0 - math.exp(-math.log(2.0) * n_observations / 50.0))
    return min(grown, max(0.25, 1.3 / math.sqrt(n_atoms)))


class Dimer(_SaddleSearch):
    """The classical dimer on the true surface: CG rotations, L-BFGS translations.

    Every rotation and translation uses the same C++ code as the GP inner loop; each image
    evaluation is a true call. Parameters as GPRDimer where they share a name; `max_rotations`
    [10] and `rotation_angle` [0.0873, 5 degrees] bound the rotations per step. Its saddle check
    takes the curvature model from a GP on its latest evaluations.
    """

    def __init__(self, atoms, mode="random", trajectory=None, logfile="-", *, metric="fmax",
                 separation=0.01, rotation_method="cg", max_rotations=10, rotation_angle=0.0873,
                 trial_angle=0.05, max_step=0.05, convex_step=0.1, memory=25,
                 max_energy_rise=10.0, verify=None, imaginary_threshold=IMAGINARY_CM,
                 seed=706253457, **kwargs):
        super().__init__(atoms, mode, trajectory, logfile, metric=metric, separation=separation,
                         max_energy_rise=max_energy_rise, verify=verify,
                         imaginary_threshold=imaginary_threshold, seed=seed, **kwargs)
        if rotation_method not in ("lbfgs", "cg"):
            raise InputError(f"rotation_method must be 'lbfgs' or 'cg', got {rotation_method!r}")
        for name, value in (("max_rotations", max_rotations), ("rotation_angle", rotation_angle)):
            _check_number(name, value, strict=False)
        for name, value in (("trial_angle", trial_angle), ("max_step", max_step),
                            ("convex_step", convex_step), ("memory", memory)):
            _check_number(name, value)
        r = _core.RotationSettings()
        r.max_rotations = int(max_rotations)
        r.converged_angle = float(rotation_angle)
        r.separation = self.separation
        r.trial_angle = float(trial_angle)
        r.method = getattr(_core.RotationMethod, rotation_method)
        self.rotation = r
        t = _core.TranslationSettings()
        t.max_step = float(max_step)
        t.convex_step = float(convex_step)
        t.memory = int(memory)
        self._translation = t

    def _surface(self, x):
        energy, forces = self._evaluate(self._full(x) + self._fixed_positions())
        return energy, -self._moving(forces)

    def _observe(self, positions, energy, forces):
        self._recent.append((np.array(positions), energy, np.array(forces)))

    def _curvature_model(self, x):
        """The GP's Hessian on the latest evaluations: the dimer has no model of its own, and
        these lie along its last steps and rotations, around the point checked."""
        gp = GaussianProcess.from_atoms(self.atoms, training_subset=_CHECK_TRAINING_SUBSET)
        try:
            for observation in self._recent:
                gp.add(*observation)
            gp.train()
            return self._gp_hessian(gp, x)
        except _NUMERICAL_ERRORS as exc:
            raise _Stop(f"saddle check failed: its curvature model: {exc}") from exc

    def _start(self):
        x_start, tau = self._initial_mode()
        self._x_start = x_start
        self._recent = deque(maxlen=_CHECK_OBSERVATIONS)
        self._higher_order_points = 0
        e0, f0 = self._evaluate(x_start)
        self.result.starts = 1
        self._e_start = e0
        self._x, self._g, self._tau = self._moving(x_start), -self._moving(f0), self._moving(tau)
        self._translator = _core.Translator(self._x.size, self._translation)
        self._g1 = None
        self._record(x_start, e0, f0, math.nan, tau)
        self._verify(x_start, e0, f0)

    def _verify(self, positions, energy, forces):
        """The acceptance test at the new point; then the atoms are left at it."""
        check, image = self._accept(self._x, self._g, self._tau)
        self._g1 = None if image is None else -self._moving(image[2])
        self.result.converged = check is not None and self._take(check)
        self._restore_midpoint(positions, energy, forces)
        if check is not None and not self.result.converged:
            self._tau, self._g1 = self._next_mode(check), None

    def step(self, *args, **kwargs):
        try:
            rot = _core.rotate_dimer(self._surface, self._x, self._g, self._tau, self._g1,
                                     self.rotation)
            dx = np.asarray(self._translator.step(self._x, self._g, np.array(rot.tau),
                                                  rot.curvature))
        except (ValueError, RuntimeError, ArithmeticError) as exc:
            raise _Stop(f"dimer failure: {exc}") from exc
        if not _all_finite(rot.tau, dx):
            raise _Stop("dimer failure: the rotation or translation is not finite")
        self._tau = np.array(rot.tau)
        self._x = self._x + dx
        positions = self._full(self._x) + self._fixed_positions()
        energy, forces = self._evaluate(positions)
        self._g = -self._moving(forces)
        self._record(positions, energy, forces, float(rot.curvature), self._full(self._tau))
        self._note = f"{rot.rotations} rotations"
        self._verify(positions, energy, forces)
