"""Property: whatever small molecule, start mode and method, a short search ends with a valid
SearchResult and claims a saddle only where it verified one."""

import math

import numpy as np
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gprdimer import Dimer, GPRDimer, SearchResult
from gprdimer.runner import CountingCalculator

FMAX = 0.01
SPACING = 1.1  # Å between grid sites; with jitter below, atoms stay more than 0.8 Å apart
JITTER = 0.08
SITES = [(i, j, k) for i in range(3) for j in range(3) for k in range(2)]


@st.composite
def molecules(draw):
    n = draw(st.integers(2, 5))
    symbols = draw(st.lists(st.sampled_from(["H", "C", "O", "Cu"]), min_size=n, max_size=n))
    sites = draw(st.lists(st.sampled_from(SITES), min_size=n, max_size=n, unique=True))
    jitter = draw(st.lists(st.floats(-JITTER, JITTER), min_size=3 * n, max_size=3 * n))
    positions = SPACING * np.array(sites, float) + np.reshape(jitter, (n, 3))
    return Atoms(symbols, positions=positions)


@st.composite
def modes(draw, n):
    """'random', 'hessian', or an array with some atoms' rows zero (never all of them)."""
    kind = draw(st.sampled_from(["random", "hessian", "array"]))
    if kind != "array":
        return kind
    values = draw(st.lists(st.floats(-1, 1), min_size=3 * n, max_size=3 * n))
    mode = np.reshape(values, (n, 3))
    zero = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    keep = draw(st.integers(0, n - 1))  # this atom keeps a nonzero row
    mode[keep] = [1.0, 0.3, -0.2] if not np.any(mode[keep]) else mode[keep]
    zero[keep] = False
    mode[np.array(zero)] = 0.0
    return mode


@st.composite
def searches(draw):
    atoms = draw(molecules())
    return (atoms, draw(modes(len(atoms))), draw(st.sampled_from(["gprd", "dimer"])),
            draw(st.sampled_from(["morse", "emt"])), draw(st.integers(1, 15)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(searches())
def test_every_search_ends_with_a_valid_result(search):
    atoms, mode, method, calc, steps = search
    d = atoms.get_all_distances() + 10 * np.eye(len(atoms))
    assert d.min() > 0.8
    inner = MorsePotential(epsilon=0.8, r0=2.5, rho0=6.0) if calc == "morse" else EMT()
    atoms.calc = counter = CountingCalculator(inner)
    cls = GPRDimer if method == "gprd" else Dimer
    opt = cls(atoms, mode=mode, logfile=None)
    converged = opt.run(fmax=FMAX, steps=steps)
    r = opt.result
    assert isinstance(r, SearchResult)
    assert isinstance(r.stop_reason, str) and r.stop_reason
    assert converged == r.converged == (r.stop_reason == "converged")
    assert r.calls >= 1 and r.calls == counter.calls
    assert 0 <= r.outer_iterations <= steps
    assert math.isfinite(r.energy) and math.isfinite(r.fmax) and math.isfinite(r.force_norm)
    assert np.shape(r.positions) == (len(atoms), 3) and np.all(np.isfinite(r.positions))
    assert np.shape(r.mode) == (len(atoms), 3)
    if r.converged:
        assert r.fmax < FMAX and r.curvature < 0 and r.n_imaginary == 1
    elif r.fmax < FMAX and not r.stop_reason.startswith(("calculator failure", "GP failure")):
        # the force test passed on the last true evaluation: the true curvature along the
        # mode said no, or the saddle check found no single imaginary mode
        assert r.curvature >= 0 or r.n_imaginary != 1, r
