"""What one hyperparameter training did, from either GP backend."""

from __future__ import annotations

from dataclasses import dataclass


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
