"""gprdimer: Gaussian-process accelerated dimer saddle searches."""

from .errors import GPError, InputError, SCFConvergenceError
from .gp import GaussianProcess

__version__ = "0.1.0"
__all__ = ["GaussianProcess", "GPError", "InputError", "SCFConvergenceError", "__version__"]
