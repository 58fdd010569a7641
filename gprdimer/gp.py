"""GaussianProcess: the inverse-distance GP on energies and forces (docs/model.md).

A pure-Python facade over the private C++ core; `backend='gpytorch'` selects the independent
torch implementation in `gprdimer.gp_torch` (optional extra `gprdimer[torch]`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from . import _core
from .constraints import fixed_atoms, fixed_mask
from .errors import GPError, InputError
from .setting import check_choice, check_fields, check_number, setting
from .training_report import TrainingReport

__all__ = ["GaussianProcess", "GPSettings", "TrainingReport"]

BACKENDS = ("cpp", "gpytorch")


@dataclass(frozen=True)
class GPSettings:
    """The GP model and its hyperparameter training (docs/model.md); the GPR-dimer's defaults."""

    noise: float = setting(1e-5, "variance on every diagonal entry", paper="1e-5")
    prior_dof: float = setting(28.0, "Student-t prior's degrees of freedom on the signal scale",
                               paper=28)
    variance_barrier: bool = setting(False, "log barrier keeping sigma_m² below 2",
                                     "paper (OT-GP on)", "off")
    training_subset: int | None = setting(15, "hyperparameters trained on at most this many "
                                          "observations (None: all); all stay in the model",
                                          "bounds the training cost", "all", history=True)
    latest: int = setting(2, "the most recent observations always in that subset", "OT-GP", "—")
    retrain_tolerance: float = setting(0.2, "keep the hyperparameters (and the extended factor) "
                                       "when a training moves none by more than this, log scale "
                                       "(0: always adopt)",
                                       "halved the GP time", "—", history=True)
    training_tolerance: float = setting(0.1, "a training (scaled conjugate gradient) ends at the "
                                        "first step moving no log hyperparameter by more than this",
                                        "a seventh of the GP time of 0.01", 0.01, history=True)
    training_iterations: int = setting(400, "scaled conjugate gradient steps per training at most",
                                       paper=400)
    objective_tolerance: float = setting(1e-4, "... or when the objective changes by less",
                                         paper="1e-4")
    lambda_init: float = setting(100.0, "SCG's initial scale", paper=100)
    lambda_limit: float = setting(1e16, "SCG's largest scale", paper="1e16")
    memory_limit: float | None = setting(1000.0, "MB of covariance factor the model may hold "
                                         "((observations x (3N+1))² x 8 bytes, in one storage "
                                         "of this size); past it the oldest observations go, "
                                         "down to three quarters (None: no bound)", "bounds memory and the cost per "
                                         "iteration; at most 28 of 458 xTB searches of the set "
                                         "hold that many calls", "none", history=True)
    backend: str = setting("cpp", "'cpp' (the C++ core) or 'gpytorch' (torch; GPUs, large "
                           "systems; trains on all data: training_subset None)",
                           "the core is the fastest on a CPU", "—")

    def __post_init__(self):
        check_fields(self, positive=("noise", "training_tolerance", "training_iterations",
                                     "objective_tolerance", "lambda_init", "lambda_limit"),
                     non_negative=("prior_dof", "latest", "retrain_tolerance"))
        if self.training_subset is not None:
            check_number("training_subset", self.training_subset, low=1, strict=False)
        if self.memory_limit is not None:
            check_number("memory_limit", self.memory_limit)
        check_choice("backend", self.backend, BACKENDS)

    @property
    def max_rows(self) -> int:
        """The covariance rows that `memory_limit` allows (0: no bound)."""
        if self.memory_limit is None:
            return 0
        return max(1, int(math.sqrt(self.memory_limit * 1e6 / 8)))

    def with_keywords(self, **keywords):
        """These settings with some changed; InputError naming an unknown keyword."""
        known = {f.name for f in fields(self)}
        for name in sorted(keywords):
            if name not in known:
                raise InputError(f"unknown GP keyword {name!r}; known: {', '.join(sorted(known))}")
        return replace(self, **keywords) if keywords else self

    def to_core(self) -> _core.GPSettings:
        s = _core.GPSettings()
        s.prior.noise = float(self.noise)
        s.prior.prior_dof = float(self.prior_dof)
        s.prior.variance_barrier = bool(self.variance_barrier)
        s.training_subset = int(self.training_subset or 0)
        s.latest = int(self.latest)
        s.retrain_tolerance = float(self.retrain_tolerance)
        s.max_rows = self.max_rows
        s.scg.max_iterations = int(self.training_iterations)
        s.scg.tol_sol = float(self.training_tolerance)
        s.scg.tol_func = float(self.objective_tolerance)
        s.scg.lambda_init = float(self.lambda_init)
        s.scg.lambda_limit = float(self.lambda_limit)
        return s


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
    settings : a GPSettings; keywords change single fields of it (noise=..., training_subset=...).
    """

    def __init__(self, symbols, fixed=None, cell=None, pbc=None, *, settings=None, **keywords):
        self.symbols = [str(s) for s in symbols]
        self.n_atoms = len(self.symbols)
        if self.n_atoms < 2:
            raise InputError(f"a GP on inverse distances needs at least 2 atoms, got {self.n_atoms}")
        self.fixed = [bool(v) for v in fixed_mask(self.n_atoms, fixed)]
        cell, pbc = _cell_and_pbc(cell, pbc)
        self._cell, self._pbc = cell, pbc
        self.settings = (settings or GPSettings()).with_keywords(**keywords)
        self.backend = backend = self.settings.backend
        if backend == "cpp":
            try:
                self._impl = _core.GaussianProcess(self.symbols, self.fixed, cell, pbc,
                                                   self.settings.to_core())
            except ValueError as exc:
                raise InputError(str(exc)) from None
        elif backend == "gpytorch":
            from .gp_torch import TorchGaussianProcess

            s = self.settings
            if s.training_subset is not None:
                raise InputError("training_subset is implemented by the 'cpp' backend only: "
                                 "pass training_subset=None with backend='gpytorch'")
            self._impl = TorchGaussianProcess(self.symbols, fixed=self.fixed, cell=cell, pbc=pbc,
                                              noise=s.noise, prior_dof=s.prior_dof,
                                              variance_barrier=s.variance_barrier,
                                              max_rows=s.max_rows)

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

    def surrogate(self):
        """What the C++ inner loop (`relax_on_surrogate`, `rotate_on_surrogate`) takes: the core GP
        itself, or for another backend its observations and a callback to `predict`."""
        if self.backend == "cpp":
            return self._impl
        moving = ~np.array(self.fixed)

        def evaluate(positions, with_variance):
            energy, forces, variance = self.predict(positions, variance=with_variance)
            return energy, -forces[moving].ravel(), variance

        return _core.CallbackSurrogate(self.symbols, self.fixed, self._cell, self._pbc,
                                       self._impl.configurations, evaluate)

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
    def configurations(self) -> list:
        """The positions of the observations the model holds, (N, 3) each, oldest first."""
        return [np.array(c) for c in self._impl.configurations]

    @property
    def n_observations(self) -> int:
        return int(self._impl.n_observations)

    @property
    def type_names(self) -> list[str]:
        return list(self._impl.type_names)
