"""Electronic-structure calculators for saddle searches."""

from ..errors import SCFConvergenceError
from .pyscf import PySCFCalculator

__all__ = ['PySCFCalculator', 'SCFConvergenceError']
