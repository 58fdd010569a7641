"""One saddle search by name: 'gprd', 'dimer' or 'sella', on any ASE calculator.

The command line and the batch runner both come through here, so that every method is counted
and reported the same way (a SearchResult).
"""

from __future__ import annotations

import inspect
import math
import time

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.singlepoint import SinglePointCalculator

from .errors import InputError
from .modes import SEED
from .search import Dimer, GPRDimer, SearchResult, StopReason
from .search.acceptance import fmax_of
from .search.settings import check_run_settings

METHODS = ("gprd", "dimer", "sella")
# Outer iterations at most: the published GPR-dimer and dimer runs stopped at 300, Sella's at 200.
DEFAULT_STEPS = {"gprd": 300, "dimer": 300, "sella": 200}


class CountingCalculator(Calculator):
    """Counts the electronic-structure calls an optimizer makes through it (Sella's, here)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        image = self.atoms.copy()
        image.calc = self.inner
        self.calls += 1
        self.results = {"energy": image.get_potential_energy(), "forces": image.get_forces()}


def check_settings(method, fmax, steps=None):
    """InputError for an unknown method or bad fmax/steps; returns the steps to run
    (the method's default when `steps` is None)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    steps = steps_for(method, steps)
    check_run_settings(fmax, steps)
    return int(steps)


# Set by run_search from its own arguments, never through `params`.
_RUNNER_KEYWORDS = ("self", "atoms", "mode", "seed", "trajectory", "logfile", "restart")


def check_params(method, params=None):
    """`params` (keyword arguments of the method's class) as a dict, before anything is built;
    InputError naming the first keyword the method does not have or, for the dimer methods, the
    value it refuses."""
    params = _check_keywords(method, params)
    if method != "sella":  # refused here, by the class itself, not once per task of a batch
        probe = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
        probe.calc = SinglePointCalculator(probe, energy=0.0, forces=np.zeros((2, 3)))
        _search_class(method)(probe, logfile=None, **params)
    return params


def _check_keywords(method, params):
    """`params` as a dict whose keywords the method's class has (values unchecked)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise InputError(f"params must map keywords to values, got {type(params).__name__}")
    cls = _search_class(method)
    if method == "sella":
        signature = inspect.signature(cls.__init__)
        known = {name for name, p in signature.parameters.items()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    else:
        known = set(cls.settings_class.keywords())
    known -= set(_RUNNER_KEYWORDS)
    for name in sorted(params):
        if name in _RUNNER_KEYWORDS:
            raise InputError(f"params: {name!r} is set by the search itself, not through params")
        if name not in known:
            raise InputError(f"params: {name!r} is not a keyword of {method}; "
                             f"known: {', '.join(sorted(known))}")
    return dict(params)


def _search_class(method):
    if method == "sella":
        try:
            from sella import Sella
        except ImportError:
            raise InputError("method 'sella' needs Sella: pip install 'gprdimer[sella]'") from None
        return Sella
    return GPRDimer if method == "gprd" else Dimer


def steps_for(method, steps=None):
    """`steps`, or the method's default outer-iteration limit when it is None."""
    return DEFAULT_STEPS[method] if steps is None else steps


def run_search(atoms, method="gprd", *, mode="random", fmax=0.01, steps=None, seed=SEED,
               trajectory=None, logfile=None, restart=None, params=None) -> SearchResult:
    """Runs one search from `atoms` (calculator attached); returns its SearchResult.

    `mode`, `seed` and `restart` (the file of every call, GPRDimer's) apply to the dimer
    methods (Sella starts from the undisplaced guess and finds its own mode); `params` are
    keyword arguments of the method's class.
    """
    steps = check_settings(method, fmax, steps)
    # the method's class, built below before any call, refuses a bad value itself
    params = _check_keywords(method, params)
    if method == "sella":
        if restart is not None:
            raise InputError("restart: the runner restarts the dimer methods only, not Sella")
        return _run_sella(atoms, fmax, steps, trajectory, logfile, params)
    opt = _search_class(method)(atoms, restart, logfile, trajectory, mode=mode, seed=seed,
                                **params)
    with opt:
        try:
            opt.run(fmax=fmax, steps=steps)
        except KeyboardInterrupt as exc:
            raise SearchInterrupted(opt.result) from exc
    return opt.result


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a search, with what the search had found so far."""

    def __init__(self, result):
        super().__init__(result.stop_reason)
        self.result = result


def _run_sella(atoms, fmax, steps, trajectory, logfile, params):
    Sella = _search_class("sella")
    result = SearchResult(starts=1)
    counter = CountingCalculator(atoms.calc)
    user_calc = atoms.calc
    atoms.calc = counter
    t0 = time.time()
    settings = {"internal": True, **params}
    try:
        with Sella(atoms, trajectory=trajectory, logfile=logfile, **settings) as opt:
            converged = bool(opt.run(fmax=fmax, steps=steps))
            try:
                curvature = float(np.linalg.eigvalsh(opt.pes.get_HL().asarray()).min())
            except Exception:  # Sella's Hessian interface varies between versions
                curvature = math.nan
            result.outer_iterations = opt.nsteps
        forces = atoms.get_forces()
        result.energy = float(atoms.get_potential_energy())
        result.forces = np.array(forces)
        result.fmax = fmax_of(forces)
        result.force_norm = float(np.linalg.norm(forces))
        result.curvature = curvature
        result.converged = converged and result.fmax < fmax and not curvature >= 0
        result.end(StopReason.CONVERGED if result.converged else (
            StopReason.POSITIVE_CURVATURE if converged else StopReason.MAX_ITERATIONS))
    except Exception as exc:  # a calculator fault inside Sella ends the search, as for ours
        result.end(StopReason.CALCULATOR_FAILURE, f"{type(exc).__name__}: {exc}")
    finally:
        result.calls = counter.calls
        result.wall_time = time.time() - t0
        result.positions = atoms.positions.copy()
        result.mode = np.zeros_like(atoms.positions)
        atoms.calc = user_calc
    return result
