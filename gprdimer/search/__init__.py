"""Saddle searches as ASE optimizers: GPRDimer (the dimer on a GP surrogate) and the plain
Dimer, their settings and their result (docs/architecture.md)."""

from .dimer import Dimer
from .gpr_dimer import GPRDimer
from .result import SearchResult, StopReason
from .settings import DimerSettings, GPRDimerSettings

__all__ = ["GPRDimer", "Dimer", "SearchResult", "StopReason", "GPRDimerSettings",
           "DimerSettings"]
