"""GaussianProcess: the inverse-distance GP on energies and forces (docs/model.md).

A pure-Python facade over the private C++ core; `backend='gpytorch'` selects the independent
torch implementation in `gprdimer.gp_torch` (optional extra `gprdimer[torch]`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _core
from .constraints import fixed_atoms, fixed_mask
from .errors import GPError, InputError

__all__ = ["GaussianProcess", "TrainingReport"]


@dataclass(frozen=True)
class TrainingReport:
    iterations: int
    evaluations: int
    converged: bool
    failed: bool
    reinitialised: bool
    objective: float
    subset: tuple[int, ...]
    kept: bool = False


def _cell_and_pbc(cell, pbc):
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=float).reshape(3, 3)
    if pbc is None:
        pbc = (False, False, False)
    elif np.ndim(pbc) == 0:
        pbc = (bool(pbc),) * 3
    return cell, tuple(bool(p) for p in pbc)


class GaussianProcess:
    """GP over configurations of one molecule, trained on energies (eV) and forces (eV/Å).

    Parameters
    ----------
    symbols : element symbols, one per atom.
    fixed : fixed atoms (boolean mask or indices); they enter the kernel as fixed reference points.
    cell, pbc : periodic cell (rows are lattice vectors) and periodic directions: distances then
        use the minimum image.
    noise : variance added to every diagonal entry (energies and gradients).
    prior_dof : degrees of freedom of the Student-t prior on the signal scale.
    variance_barrier : keep sigma_m^2 below 2 with the log barrier of the OT-GP variant.
    training_subset : train hyperparameters on at most this many observations (the `latest` most
        recent plus farthest-point sampling); the model is then rebuilt on all of them.
    max_iterations, tol_sol, tol_func, lambda_init, lambda_limit : scaled conjugate gradient.
    retrain_tolerance : keep the previous hyperparameters, and the factor that `add` extended,
        when a training moves no log hyperparameter by more than this (0: always adopt).
    backend : 'cpp' (default) or 'gpytorch'.
    """

    def __init__(self, symbols, fixed=None, cell=None, pbc=None, *, noise=1e-5, prior_dof=28.0,
                 variance_barrier=False, training_subset=None, latest=2, max_iterations=400,
                 tol_sol=0.01, tol_func=1e-4, lambda_init=100.0, lambda_limit=1e16,
                 retrain_tolerance=0.0, backend="cpp"):
        self.symbols = [str(s) for s in symbols]
        self.n_atoms = len(self.symbols)
        if self.n_atoms < 2:
            raise InputError(f"a GP on inverse distances needs at least 2 atoms, got {self.n_atoms}")
        self.fixed = [bool(v) for v in fixed_mask(self.n_atoms, fixed)]
        cell, pbc = _cell_and_pbc(cell, pbc)
        if noise <= 0 or not np.isfinite(noise):
            raise InputError(f"noise must be a positive number, got {noise}")
        if training_subset is not None and training_subset < 1:
            raise InputError(f"training_subset must be at least 1, got {training_subset}")
        self.backend = backend
        if backend == "cpp":
            try:
                self._impl = _core.GaussianProcess(
                    self.symbols, self.fixed, cell, pbc, noise, prior_dof, variance_barrier,
                    training_subset or 0, latest, max_iterations, tol_sol, tol_func, lambda_init,
                    lambda_limit, retrain_tolerance)
            except ValueError as exc:
                raise InputError(str(exc)) from None
        elif backend == "gpytorch":
            from .gp_torch import TorchGaussianProcess

            if training_subset is not None:
                raise InputError("training_subset is implemented by the 'cpp' backend only")
            self._impl = TorchGaussianProcess(self.symbols, fixed=self.fixed, cell=cell, pbc=pbc,
                                              noise=noise, prior_dof=prior_dof,
                                              variance_barrier=variance_barrier)
        else:
            raise InputError(f"unknown backend {backend!r}: use 'cpp' or 'gpytorch'")

    @classmethod
    def from_atoms(cls, atoms, **params):
        """A GP for this ASE Atoms object: its symbols, FixAtoms constraints, cell and pbc."""
        return cls(atoms.get_chemical_symbols(), fixed=fixed_atoms(atoms) or None,
                   cell=atoms.cell.array if atoms.pbc.any() else None, pbc=atoms.pbc, **params)

    def _positions(self, positions, what="positions"):
        x = np.ascontiguousarray(positions, dtype=float)
        if x.shape != (self.n_atoms, 3):
            raise InputError(f"{what} have shape {x.shape}, expected ({self.n_atoms}, 3)")
        if not np.all(np.isfinite(x)):
            raise InputError(f"{what} contain NaN or infinite values")
        return x

    def add(self, positions, energy, forces):
        """Adds one observation; with fixed hyperparameters the factor is extended, not rebuilt."""
        x = self._positions(positions)
        f = self._positions(forces, "forces")
        if not np.isfinite(energy):
            raise InputError(f"energy is not finite: {energy}")
        try:
            self._impl.add(x, float(energy), f)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        except RuntimeError as exc:
            raise GPError(str(exc)) from None

    def train(self) -> TrainingReport:
        """Fits the hyperparameters (MAP, scaled conjugate gradient, warm-started)."""
        try:
            r = self._impl.train()
        except RuntimeError as exc:
            raise GPError(str(exc)) from None
        if isinstance(r, TrainingReport):
            return r
        return TrainingReport(r.iterations, r.evaluations, r.converged, r.failed, r.reinitialised,
                              r.objective, tuple(r.subset), getattr(r, "kept", False))

    def predict(self, positions, variance=True):
        """(energy in eV, forces (N, 3) in eV/Å, latent energy variance or NaN)."""
        x = self._positions(positions)
        try:
            if self.backend == "cpp":
                e, f, v = self._impl.predict(x, variance)
            else:
                e, f, v = self._impl.predict(x)
        except RuntimeError as exc:
            raise GPError(str(exc)) from None
        return float(e), np.asarray(f), float(v)

    def objective(self, log_hyperparameters):
        """MAP objective and its gradient at the given log hyperparameters, on all data."""
        return self._impl.objective(np.asarray(log_hyperparameters, dtype=float))

    @property
    def log_hyperparameters(self) -> np.ndarray:
        """(log sigma_m^2, log l_1, ..., log l_T), one length scale per element pair."""
        return np.array(self._impl.log_hyperparameters)

    @log_hyperparameters.setter
    def log_hyperparameters(self, value):
        self._impl.log_hyperparameters = np.asarray(value, dtype=float)

    @property
    def sigma_c2(self) -> float:
        return float(self._impl.sigma_c2)

    @sigma_c2.setter
    def sigma_c2(self, value):
        self._impl.sigma_c2 = float(value)

    @property
    def n_observations(self) -> int:
        return int(self._impl.n_observations)

    @property
    def type_names(self) -> list[str]:
        return list(self._impl.type_names)
