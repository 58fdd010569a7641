"""From a saddle to the two minima it joins: Sella's intrinsic reaction coordinate (mass-weighted
steepest descent from the saddle, both ways), each end then relaxed to a minimum.

Whether the saddle is the transition state the chemist meant is decided here, not by the
search: the two ends must be different minima (another bond graph, or the same graph in another
arrangement), below the saddle. Every call is counted.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np
from ase.neighborlist import natural_cutoffs, neighbor_list
from ase.optimize import BFGS

from .errors import InputError
from .search.acceptance import fmax_of

DIRECTIONS = ("forward", "reverse")
IRC_STEP = 0.1  # Å·amu^½: Sella's default step along the path
IRC_FMAX = 0.05  # eV/Å: where the path is handed to the minimizer
BOND_SCALE = 1.2  # bonds: distances below 1.2 × the sum of the covalent radii
SAME_ARRANGEMENT = 0.1  # Å: two ends of one bond graph closer than this are one minimum


@dataclass
class IRCEnd:
    direction: str
    positions: np.ndarray
    energy: float
    fmax: float
    converged: bool  # the relaxation met its force criterion
    calls: int


@dataclass
class IRCResult:
    saddle_energy: float
    ends: tuple  # (forward IRCEnd, reverse IRCEnd)
    distinct: bool  # the two ends are different minima
    same_bonds: bool  # the two ends have one bond graph (a conformer change at most)
    calls: int

    @property
    def barriers(self):
        """Saddle energy above each end, eV (forward, reverse)."""
        return tuple(self.saddle_energy - end.energy for end in self.ends)

    def summary(self) -> dict:
        """Scalars, as a batch row stores them."""
        forward, reverse = self.ends
        return {"irc_calls": self.calls, "irc_distinct": self.distinct,
                "irc_same_bonds": self.same_bonds, "irc_forward_energy": forward.energy,
                "irc_reverse_energy": reverse.energy,
                "irc_converged": forward.converged and reverse.converged}


def follow_irc(atoms, fmax=0.01, irc_steps=100, relax_steps=300, trajectory=None) -> IRCResult:
    """The two minima joined by the saddle at `atoms` (calculator attached). `trajectory`: a
    file prefix; the path of each direction goes to PREFIX.forward.traj / .reverse.traj."""
    try:
        from sella import IRC
    except ImportError:
        raise InputError("the IRC uses Sella's: pip install 'gprdimer[sella]'") from None
    from .runner import CountingCalculator

    saddle = atoms.copy()
    counter = CountingCalculator(atoms.calc)
    saddle.calc = counter
    saddle_energy = float(saddle.get_potential_energy())
    ends = []
    for direction in DIRECTIONS:
        start = counter.calls
        path = saddle.copy()
        path.calc = counter
        traj = None if trajectory is None else f"{trajectory}.{direction}.traj"
        with _quiet(), IRC(path, trajectory=traj, logfile=None, dx=IRC_STEP,
                           keep_going=True) as irc:
            irc.run(fmax=IRC_FMAX, steps=irc_steps, direction=direction)
        with _quiet(), BFGS(path, logfile=None) as relax:
            converged = bool(relax.run(fmax=fmax, steps=relax_steps))
        ends.append(IRCEnd(direction, path.positions.copy(), float(path.get_potential_energy()),
                           fmax_of(path.get_forces()), converged, counter.calls - start))
    same_bonds = bool(np.array_equal(_bond_graph(saddle, ends[0].positions),
                                     _bond_graph(saddle, ends[1].positions)))
    distinct = not same_bonds or _aligned_rmsd(ends[0].positions, ends[1].positions) > \
        SAME_ARRANGEMENT
    return IRCResult(saddle_energy, tuple(ends), bool(distinct), same_bonds, counter.calls)


@contextlib.contextmanager
def _quiet():
    """Sella's IRC prints its inner-loop warnings; the result says what the path did."""
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _bond_graph(atoms, positions):
    image = atoms.copy()
    image.positions = positions
    i, j = neighbor_list("ij", image, [BOND_SCALE * r for r in natural_cutoffs(image)])
    graph = np.zeros((len(image), len(image)), dtype=bool)
    graph[i, j] = True
    return graph


def _aligned_rmsd(a, b):
    """RMSD of b on a after the best rotation and translation (Kabsch), Å."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    return float(np.sqrt(((b @ rotation - a) ** 2).sum(axis=1).mean()))
