"""The GPR-dimer's GP as a search uses it: every call timed into the result, and a numerical
failure retried once on hyperparameters reset to their data-driven start."""

from __future__ import annotations

import time

from ..errors import GPError, InputError
from ..gp import GaussianProcess
from .result import Stop, StopReason

# Errors of the GP and of the compiled surrogate searches (C++ invalid_argument -> ValueError,
# runtime_error -> RuntimeError); a calculator's faults never get here, the oracle turns them
# into a Stop first.
NUMERICAL_ERRORS = (GPError, InputError, ValueError, RuntimeError, ArithmeticError)


class SurrogateModel:
    """A GaussianProcess (GPSettings `settings`) for one search; `note(text)` tells the log of a
    reset."""

    def __init__(self, atoms, settings, result, note):
        self.gp = GaussianProcess.from_atoms(atoms, settings=settings)
        self._result = result
        self._note = note

    def call(self, fn, *args):
        """Runs one GP or surrogate-search call, timed.

        A failure (a covariance that will not factorise even with jitter, runaway
        hyperparameters, a surrogate step that is not finite) gets one retry on hyperparameters
        reset to their data-driven start and retrained; a second failure ends the search.
        """
        t = time.perf_counter()
        try:
            try:
                return fn(*args)
            except NUMERICAL_ERRORS as exc:
                self.reset(exc)
            try:
                return fn(*args)
            except NUMERICAL_ERRORS as exc:
                raise Stop(StopReason.GP_FAILURE,
                           f"{exc} (after resetting the hyperparameters)") from exc
        finally:
            self._result.gp_time += time.perf_counter() - t

    def reset(self, exc):
        """Back to data-driven hyperparameters, retrained; Stop when that fails too."""
        reset = getattr(self.gp._impl, "reset_hyperparameters", None)
        if reset is None:  # a backend without the reset: nothing to retry with
            raise Stop(StopReason.GP_FAILURE, str(exc)) from exc
        try:
            reset()
            self.gp.train()
        except NUMERICAL_ERRORS as again:
            raise Stop(StopReason.GP_FAILURE,
                       f"{exc}; retraining from reset hyperparameters: {again}") from again
        self._note("GP hyperparameters reset")

    def add(self, positions, energy, forces):
        t = time.perf_counter()
        try:
            self.gp.add(positions, energy, forces)
        except GPError as exc:  # stored, but the extended factor failed: rebuild it on a reset
            self.reset(exc)
        except (InputError, ValueError) as exc:  # not stored: the observation itself is unusable
            raise Stop(StopReason.GP_FAILURE, str(exc)) from exc
        finally:
            self._result.gp_time += time.perf_counter() - t

    def train(self):
        return self.call(self.gp.train)
