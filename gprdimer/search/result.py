"""What a search ends with: a SearchResult, whose stop is a StopReason and a free detail."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np


class StopReason(enum.Enum):
    """Why a search ended; the value is the text that starts `SearchResult.stop_reason`."""

    NOT_STARTED = "not started"
    CONVERGED = "converged"
    MAX_ITERATIONS = "max iterations"
    NO_PROGRESS = "no progress"
    STALLED = "stalled"
    ENERGY_RISE = "energy rise"
    NOT_FIRST_ORDER = "not a first-order saddle"
    POSITIVE_CURVATURE = "positive curvature"
    CALCULATOR_FAILURE = "calculator failure"
    GP_FAILURE = "GP failure"
    DIMER_FAILURE = "dimer failure"
    CHECK_FAILURE = "saddle check failed"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"
    ERROR = "error"

    def text(self, detail: str = "") -> str:
        return f"{self.value}: {detail}" if detail else self.value


@dataclass
class SearchResult:
    """What a saddle search ended with. `calls` counts every electronic-structure evaluation."""

    converged: bool = False
    stop: StopReason = StopReason.NOT_STARTED
    detail: str = ""  # what the stop found, in words
    calls: int = 0
    outer_iterations: int = 0
    energy: float = math.nan
    fmax: float = math.nan
    force_norm: float = math.nan
    curvature: float = math.nan
    mode: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    positions: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    forces: np.ndarray | None = None  # the true forces at `positions`, eV/Å (None before any)
    wall_time: float = 0.0
    gp_time: float = 0.0
    starts: int = 0
    # The last saddle check: imaginary modes beyond vibrations.IMAGINARY_CM (None before any),
    # and every internal frequency (cm⁻¹, imaginary negative) where a true Hessian was computed.
    n_imaginary: int | None = None
    frequencies: np.ndarray | None = None
    check_calls: int = 0  # the part of `calls` that the saddle checks made
    reused_calls: int = 0  # evaluations a restart took from its file instead of calling

    @property
    def stop_reason(self) -> str:
        """The stop and its detail as one line, e.g. 'no progress: lowest true fmax ...'."""
        return self.stop.text(self.detail)

    def end(self, stop: StopReason, detail: str = "") -> None:
        self.stop, self.detail = stop, detail


class Stop(Exception):
    """Ends a search with a stop reason; what was evaluated so far is kept."""

    def __init__(self, reason: StopReason, detail: str = ""):
        super().__init__(reason.text(detail))
        self.reason, self.detail = reason, detail


class NoProgress(Stop):
    """A stop that another start from the guess may get past: no new lowest true fmax for
    `patience` outer iterations, a GP search with nowhere to go, an energy rise, or a point that
    is no first-order saddle."""
