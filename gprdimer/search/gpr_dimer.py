"""GPRDimer: the dimer on a Gaussian-process surrogate, one true call per outer iteration.

Each outer iteration trains the GP (unless the last training kept the hyperparameters), runs
the inner loop on it (C++ `relax_on_surrogate`: dimer rotations and translations, or P-RFO
steps, inside the trust region), and evaluates the point it ends at; the acceptance test decides
there. The starts from the guess follow the plan of search/starts.py.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _core
from ..errors import GPError
from .acceptance import fmax_of
from .outer_loop import SaddleSearch, all_finite
from .result import NoProgress, StopReason
from .settings import GPRDimerSettings, parameter_table
from .starts import plan_starts
from .surrogate_model import SurrogateModel


class GPRDimer(SaddleSearch):
    """Dimer saddle search on a Gaussian-process surrogate: one true call per outer iteration.

    atoms : ase.Atoms with a calculator; FixAtoms atoms stay put and enter the kernel as fixed
        reference points; with a periodic cell distances use the minimum image.
    restart, logfile, trajectory : ASE's Optimizer arguments, in ASE's order. `restart`: a file
        that keeps every true call (search/call_record.py); where it already holds this
        search's calls, the search replays them without calling and continues. `trajectory`:
        the saddle path, one frame per outer iteration, the result last.
    mode : initial orientation (keyword): an (N, 3) array, 'random' (the paper's seeded displacement of the
        least-coordinated atom and its neighbours) or 'hessian' (lowest mode of a model Hessian).
    settings : a GPRDimerSettings; keywords change single settings (the table below,
        docs/parameters.md gives the reasons).
    """

    settings_class = GPRDimerSettings

    def __init__(self, atoms, restart=None, logfile="-", trajectory=None, *, mode="random",
                 settings=None, **keywords):
        settings = self.settings_from(settings, **keywords)
        super().__init__(atoms, restart, logfile, trajectory, mode, settings)
        self.plan = plan_starts(settings, mode)
        self._untrained = 0  # outer iterations left to run on the kept hyperparameters
        self._kept_in_a_row = 0  # trainings in a row that kept the hyperparameters
        self.model = self._new_model()
        self._initial_rotation = settings.initial_rotation_to_core()

    def _new_model(self):
        return SurrogateModel(self.atoms, self.settings.gp, self.result,
                              self._add_note)

    @property
    def gp(self):
        return self.model.gp

    def _observe(self, positions, energy, forces):
        self.model.add(positions, energy, forces)

    def _curvature_model(self, x):
        return self.model.call(self._gp_hessian, self.gp, x)

    def _rotate(self, x, tau):
        rot = _core.rotate_on_surrogate(self.gp.surrogate(), x, tau, self._initial_rotation)
        if not all_finite(rot.tau):
            raise GPError("the rotation on the GP returned a non-finite mode")
        return rot

    def _relax(self, x, tau, settings):
        inner = _core.relax_on_surrogate(self.gp.surrogate(), x, tau, settings)
        if not all_finite(inner.positions, inner.tau):
            raise GPError("the search on the GP returned non-finite positions")
        return inner

    # --- starts ------------------------------------------------------------------------------
    def _start(self):
        self._take_starts(self.plan[0])

    def _take_starts(self, start, stop=None):
        """Takes `start` (after `stop`), then the next one of the plan while each ends without
        progress; the last stop stands when none is left."""
        while True:
            if start is None:
                raise stop
            if stop is not None:
                self._note = f"{stop}; {start.note}"
            try:
                return self._start_from(start)
            except NoProgress as again:
                stop, start = again, self._following(start.number)

    def _following(self, number):
        return self.plan[number] if number < len(self.plan) else None

    def _start_from(self, start):
        """Evaluates the start from the guess and turns the dimer there on true image calls."""
        if start.empty_gp:
            self.model = self._new_model()
        self.inner = self.settings.inner_to_core(start.second_order, start.convex_relax)
        x_start, tau = self._initial_mode(start.orientation, start.seed)
        self._start_number = start.number
        self._higher_order_points = 0
        c, separation = self.coords, self.settings.search.separation
        e0, f0 = self.oracle.evaluate(x_start)
        self.result.starts += 1
        if self.result.starts == 1:  # the energy-rise guard stays relative to the first start
            self._e_start = e0
        self._record(x_start, e0, f0, math.nan, tau)  # what a fault in the next call leaves
        tau = c.moving(tau)
        x0, g0 = c.moving(x_start), -c.moving(f0)
        image = x_start + c.full(separation * tau)
        e1, f1 = self.oracle.evaluate(image)
        g1 = -c.moving(f1)
        initial_angle = self.settings.starts.initial_angle
        for _ in range(int(self.settings.starts.initial_rotations)):
            angle = _core.estimated_rotation_angle(g0, g1, tau, separation)
            if angle < initial_angle:
                break
            self.model.train()
            rot = self.model.call(self._rotate, x_start, tau)
            if rot.rotations == 0:
                break
            change = math.acos(min(1.0, abs(float(np.dot(rot.tau, tau)))))
            tau = np.array(rot.tau)
            image = x_start + c.full(separation * tau)
            e1, f1 = self.oracle.evaluate(image)
            g1 = -c.moving(f1)
            if change < initial_angle:
                break
        curvature = float(np.dot(g1 - g0, tau) / separation)
        self._initial = (x_start, tau, fmax_of(c.full(-g0)))
        self._best = (math.inf, self.nsteps)  # lowest true fmax, and the outer iteration it came at
        self._last_point = (np.array(x_start), np.array(tau))
        self._latest_converged = None
        self._untrained = 0
        self._kept_in_a_row = 0
        self._last_g = g0
        self._record(x_start, e0, f0, curvature, c.full(tau))
        self._conclude(x0, g0, tau, x_start, e0, f0, self._initial[2], (image, e1, f1))

    def _conclude(self, x, g0, tau, positions, energy, forces, fmax_here, image=None):
        """The acceptance test at the new point; the atoms are left at it (not at the image)."""
        check, _ = self._accept(x, g0, tau, image)
        self.result.converged = check is not None and self._take(check)
        self.oracle.leave_at(positions, energy, forces)
        if check is not None and not self.result.converged:
            self._latest_converged = (positions, self._next_mode(check), fmax_here)

    # --- outer iterations --------------------------------------------------------------------
    def step(self, *args, **kwargs):
        try:
            self._translate()
            # A start that ran far uphill went astray; the next one begins at the guess again.
            self._check_energy()
        except NoProgress as stop:
            self._take_starts(self._following(self._start_number), stop)

    def _translate(self):
        # Once the hyperparameters hold still, a training mostly confirms them (37 of 42 kept on
        # xTB singlets/000), yet it is most of an outer iteration's GP time: the longer they
        # have held, the longer the pause before the next confirmation.
        if self._untrained > 0:
            self._untrained -= 1
        elif self.model.train().kept:
            self._kept_in_a_row += 1
            self._untrained = self._kept_in_a_row * self.settings.inner.skip_after_kept
        else:
            self._kept_in_a_row = 0
        s, c = self.inner, self.coords
        start_x, start_tau, start_fmax = self._latest_converged or self._initial
        # The paper scales the GP tolerance by the last true point alone. After a step that went
        # wrong that tolerance is loose, the inner loop accepts its own start at once, and the
        # next call repeats a known point: the start's own true forces bound it as well.
        last_fmax = fmax_of(c.full(-self._last_g))
        s.force_tolerance = max(min(last_fmax, start_fmax) / self.settings.inner.divisor,
                                self.fmax / 10.0)
        s.trust.radius = self.settings.trust.adaptive_radius(self.gp.n_observations,
                                                             len(self.atoms))
        inner = self.model.call(self._relax, start_x, start_tau, s)
        if self._repeats_last(inner):
            # Both true calls would repeat the last ones exactly: hyperparameters stuck where the
            # surrogate is flat, or a start at a minimum or on a flat surface. One retry from
            # reset hyperparameters; if the GP still has nowhere to go, this start can learn
            # nothing more.
            self.model.reset(GPError("the GP search returned the point evaluated last"))
            inner = self.model.call(self._relax, start_x, start_tau, s)
            if self._repeats_last(inner):
                raise NoProgress(StopReason.STALLED, "the GP search returned the point and mode "
                                 f"evaluated last (true fmax {self.result.fmax:.3g}, "
                                 f"curvature {self.result.curvature:.3g})")
        self._add_note(f"GP: {inner.stop}, {inner.iterations} steps")
        x, tau = np.array(inner.positions), np.array(inner.tau)
        self._last_point = (x, tau)
        energy, forces = self.oracle.evaluate(x)
        g0 = -c.moving(forces)
        self._last_g = g0
        fmax_here = fmax_of(forces)
        if inner.stop == "converged":
            self._latest_converged = (x, tau, fmax_here)
        self._record(x, energy, forces, float(inner.curvature), c.full(tau))
        self._conclude(c.moving(x), g0, tau, x, energy, forces, fmax_here)
        self._check_progress(fmax_here)

    def _repeats_last(self, inner):
        """Whether the GP search came back to the last point and mode (to 1e-12)."""
        last_x, last_tau = self._last_point
        return bool(np.allclose(inner.positions, last_x, rtol=0.0, atol=1e-12)
                    and np.allclose(inner.tau, last_tau, rtol=0.0, atol=1e-12))

    def _check_progress(self, fmax):
        """NoProgress once `patience` outer iterations in a row found no lower true fmax: past
        that point a search circles or drifts, and every further call adds to a GP whose cost
        grows with the cube of its data."""
        best, at = self._best
        patience = self.settings.starts.patience
        if fmax < best:
            self._best = (fmax, self.nsteps + 1)
        elif patience and self.nsteps + 1 - at >= patience and not self.result.converged:
            which = f"start {self.result.starts}, " if self.result.starts > 1 else ""
            raise NoProgress(StopReason.NO_PROGRESS, f"{which}lowest true fmax {best:.3g} eV/Å, "
                             f"{patience} outer iterations ago")


GPRDimer.__doc__ += "\n" + parameter_table(GPRDimerSettings)
