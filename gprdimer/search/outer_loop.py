"""The outer loop both searches share, as an ASE optimizer: true evaluations through the oracle,
the trajectory of the saddle path, the restart file, the log, the acceptance test and the result.

It owns its run loop instead of relying on ASE's `irun`, whose per-step call sequence changed
between ASE 3.23, 3.26 and 3.28; everything else (logfile, observers, `run(fmax, steps)`,
context manager) is ASE's. A method supplies `_start()`, `step()` and `_curvature_model(x)`.
"""

from __future__ import annotations

import io
import time

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import Trajectory
from ase.optimize.optimize import Optimizer

from ..constraints import atoms_fixed_mask
from ..errors import InputError
from ..modes import initial_mode
from .acceptance import Acceptance, fmax_of
from .call_record import CallRecord, search_header
from .oracle import Oracle
from .result import NoProgress, SearchResult, Stop, StopReason
from .settings import check_run_settings


def all_finite(*arrays):
    """Whether every entry of every array is finite: what a C++ step returned is usable."""
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


class Coordinates:
    """The moving coordinates of a search (fixed atoms left out) and back."""

    def __init__(self, fixed):
        self.fixed = fixed
        self._anchor = np.zeros((len(fixed), 3))

    def anchor(self, positions):
        """Where the fixed atoms stay (their positions in `positions`)."""
        self._anchor = np.zeros((len(self.fixed), 3))
        self._anchor[self.fixed] = np.asarray(positions)[self.fixed]

    def moving(self, arr):
        return np.asarray(arr)[~self.fixed].ravel()

    def full(self, vec):
        """(N, 3) with `vec` on the moving atoms and zeros on the fixed ones."""
        out = np.zeros((len(self.fixed), 3))
        out[~self.fixed] = np.asarray(vec).reshape(-1, 3)
        return out

    def positions(self, x):
        """All positions for the moving coordinates x."""
        return self.full(x) + self._anchor


class SaddleSearch(Acceptance, Optimizer):
    """Shared outer loop: true evaluations, trajectory, convergence with curvature, result."""

    settings_class = None  # the method's settings (search/settings.py)

    def __init__(self, atoms, restart, logfile, trajectory, mode, settings):
        """ASE's order (atoms, restart, logfile, trajectory); everything else by keyword."""
        if atoms.calc is None:
            raise InputError("atoms have no calculator attached")
        self.settings = settings
        self._mode_spec = mode
        self._trajectory_path = trajectory
        Optimizer.__init__(self, atoms, restart=None, logfile=logfile, trajectory=None)
        self.coords = Coordinates(atoms_fixed_mask(atoms))
        self.result = SearchResult()
        self.oracle = Oracle(atoms, self.result, self._observe)
        self._record_file = None if restart is None else CallRecord(restart)
        self._path = None  # the trajectory's writer once the search runs
        self._written = None  # the forces of the point the trajectory's last frame shows
        self._guess = None
        self._started = False
        self._t0 = None
        self._note = ""

    @classmethod
    def settings_from(cls, settings=None, **keywords):
        """The method's settings: `settings` (or the defaults) with `keywords` changed."""
        settings = settings or cls.settings_class()
        if not isinstance(settings, cls.settings_class):
            raise InputError(f"settings must be a {cls.settings_class.__name__}, "
                             f"got {type(settings).__name__}")
        return settings.from_keywords(**{**settings.as_keywords(), **keywords})

    @property
    def fixed(self):
        return self.coords.fixed

    def _observe(self, positions, energy, forces):
        """A new true evaluation: the GP learns it; the plain dimer keeps it for its check."""

    def _add_note(self, text):
        self._note = (self._note + "; " if self._note else "") + text

    def _force_measure(self, forces):
        return fmax_of(forces) if self.settings.search.metric == "fmax" \
            else float(np.linalg.norm(forces))

    def _record(self, positions, energy, forces, curvature, mode):
        r = self.result
        r.positions, r.energy = np.array(positions), energy
        r.fmax, r.force_norm = fmax_of(forces), float(np.linalg.norm(forces))
        r.curvature, r.mode, r.forces = curvature, np.array(mode), np.array(forces)

    # --- ASE optimizer protocol -------------------------------------------------------------
    def todict(self):
        d = super().todict()
        d.update(self.settings.as_keywords())
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
        self._open_files()
        self._note = "start"
        try:
            if not self._started:
                self._started = True
                self._start()
            yield self._after_step()
            while not self.result.converged and self.nsteps < self.max_steps:
                self._note = ""
                self.step()
                self.nsteps += 1
                self.result.outer_iterations = self.nsteps
                self._check_energy()
                yield self._after_step()
            self.result.end(StopReason.CONVERGED if self.result.converged
                            else StopReason.MAX_ITERATIONS)
        except Stop as stop:
            self.result.converged = False
            self.result.end(stop.reason, stop.detail)
            self._finish_time()
            self._note = str(stop)
            self.log()
            self._write_path()
            yield False
        except KeyboardInterrupt:  # the restart file holds every call: `restart=` resumes
            self.result.converged = False
            self.result.end(StopReason.INTERRUPTED, f"after {self.result.calls} calls")
            self._finish_time()
            raise

    def _after_step(self):
        self._finish_time()
        self.log()
        self._write_path()
        self.call_observers()
        return self.result.converged

    def _open_files(self):
        if self._record_file is not None and self.oracle.record is None:
            self.closelater(self._record_file.open(search_header(self, self.fmax)))
            self.oracle.record = self._record_file
        if self._trajectory_path is not None and self._path is None:
            self._path = self.closelater(Trajectory(self._trajectory_path, "w"))

    def _write_path(self):
        """The point the search stands at, as a trajectory frame: the saddle path, whose last
        frame is the result (image and check calls are in the restart file only)."""
        r = self.result
        # every recorded point has its own forces array; none before the first call of a start
        if self._path is None or r.forces is None or r.forces is self._written:
            return
        self._written = r.forces
        snap = self.atoms.copy()
        snap.positions = r.positions
        snap.info.update(step=self.nsteps, calls=r.calls, curvature=r.curvature,
                         mode=np.array(r.mode))
        snap.calc = SinglePointCalculator(snap, energy=r.energy, forces=r.forces)
        self._path.write(snap)

    def run(self, fmax=0.01, steps=300):
        """Runs the search; returns True only at a verified first-order saddle."""
        converged = False
        for converged in self.irun(fmax=fmax, steps=steps):
            pass
        return converged

    def _finish_time(self):
        self.result.wall_time = time.time() - self._t0

    def _check_energy(self):
        rise = self.result.energy - self._e_start
        if rise > self.settings.search.max_energy_rise:
            raise NoProgress(StopReason.ENERGY_RISE, f"{rise:.2f} eV above the start")

    def _initial_mode(self, spec=None, seed=None):
        """Start point and orientation from the guess (the atoms as the search first found them),
        by `spec` or else by the mode the search was given, with `seed`."""
        if self._guess is None:
            self._guess = self.atoms.copy()
        displacement, mode = initial_mode(self._guess, self._mode_spec if spec is None else spec,
                                          fixed=self.fixed, seed=seed)
        x_start = self._guess.positions + displacement
        self.coords.anchor(x_start)
        # Until the first call succeeds the result holds the start, so that a search whose first
        # call fails still reports (N, 3) positions (a batch row needs them) and no energy.
        self.result.positions = x_start.copy()
        self.result.mode = np.zeros_like(x_start)
        self.result.forces = None
        return x_start, mode
