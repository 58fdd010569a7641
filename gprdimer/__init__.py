"""gprdimer: Gaussian-process accelerated dimer saddle searches with a C++ core.

    from gprdimer import GPRDimer
    opt = GPRDimer(atoms, mode="random", trajectory="ts.traj")
    opt.run(fmax=0.01, steps=300)
    opt.result  # converged, stop_reason, calls, energy, curvature, mode, ...
"""

from .errors import GPError, InputError, SCFConvergenceError
from .gp import GaussianProcess
from .search import Dimer, GPRDimer, SearchResult

__version__ = "0.1.0"
__all__ = ["Dimer", "GaussianProcess", "GPError", "GPRDimer", "InputError", "SCFConvergenceError",
           "SearchResult", "__version__"]
