"""P-RFO on the GP (search/prfo.h): the finite-difference Hessian, the step on analytic
quadratics, and the rigid motions it leaves out."""

import numpy as np
import pytest
from ase.build import molecule

from gprdimer import _core

NO_CELL = np.zeros((3, 3))


def quartic(a):
    """x -> (energy, gradient) of 0.5 x.A.x + 0.1 sum x^4, and its analytic Hessian."""
    def surface(x):
        return 0.5 * x @ a @ x + 0.1 * np.sum(x**4), a @ x + 0.4 * x**3
    return surface, lambda x: a + np.diag(1.2 * x**2)


def rotated(eigenvalues, seed=3):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return q @ np.diag(eigenvalues) @ q.T, q


def test_finite_difference_hessian_matches_the_analytic_one():
    a, _ = rotated([-1.0, 0.5, 2.0, 3.0])
    surface, hessian = quartic(a)
    x = np.array([0.3, -0.2, 0.7, 0.1])
    h = np.asarray(_core.finite_difference_hessian(surface, x, 1e-3))
    np.testing.assert_allclose(h, hessian(x), atol=1e-6)
    np.testing.assert_array_equal(h, h.T)


def test_prfo_steps_reach_the_saddle_of_a_quadratic_along_its_negative_mode():
    a, q = rotated([-1.0, 0.5, 2.0, 3.0])
    saddle = np.array([0.2, -0.4, 0.1, 0.3])
    x, mode = saddle + np.array([0.5, 0.3, -0.4, 0.2]), np.zeros(0)
    rigid = np.zeros((4, 0))
    for _ in range(40):
        p = _core.prfo_step(a, a @ (x - saddle), rigid, mode)
        x, mode = x + np.asarray(p.step), np.asarray(p.mode)
    np.testing.assert_allclose(x, saddle, atol=1e-10)
    assert p.curvature == pytest.approx(-1.0)
    assert abs(mode @ q[:, 0]) == pytest.approx(1.0)


def test_at_positive_curvature_the_step_climbs_the_lowest_mode_and_descends_the_rest():
    h = np.diag([0.1, 1.0, 2.0])
    g = np.array([0.05, 0.3, -0.2])
    step = np.asarray(_core.prfo_step(h, g, np.zeros((3, 0)), np.zeros(0)).step)
    assert step[0] * g[0] > 0
    assert step[1] * g[1] < 0 and step[2] * g[2] < 0


def test_the_mode_keeps_the_sign_of_the_previous_one():
    h = np.diag([-1.0, 1.0])
    for previous in ([1.0, 0.1], [-1.0, 0.1]):
        mode = np.asarray(_core.prfo_step(h, np.array([0.1, 0.1]), np.zeros((2, 0)),
                                          np.array(previous)).mode)
        assert mode @ previous > 0


@pytest.mark.parametrize("name, pbc, fixed, count", [
    ("H2O", False, None, 6), ("CO2", False, None, 5), ("H2O", True, None, 3), ("H2O", False, 0, 0)])
def test_rigid_motions_are_the_null_space_of_the_inverse_distances(name, pbc, fixed, count):
    atoms = molecule(name)
    flags = [i == fixed for i in range(len(atoms))]
    cell = 10.0 * np.eye(3) if pbc else NO_CELL
    r = np.asarray(_core.rigid_motions(atoms.get_chemical_symbols(), flags, cell, [pbc] * 3,
                                       atoms.positions))
    moving = 3 * (len(atoms) - (fixed is not None))
    assert r.shape == (moving, count)
    np.testing.assert_allclose(r.T @ r, np.eye(count), atol=1e-12)
    _, jacobian = _core.features(atoms.get_chemical_symbols(), flags, cell, [pbc] * 3,
                                 atoms.positions)
    np.testing.assert_allclose(np.asarray(jacobian) @ r, 0.0, atol=1e-12)


def test_rigid_motions_take_no_part_in_the_step_or_the_mode():
    """At a minimum of a pair potential the six rigid eigenvalues (zero) lie below every internal
    one: the mode must still be internal, and the step must not move the molecule rigidly."""
    atoms = molecule("H2O")
    r = np.asarray(_core.rigid_motions(["H"] * 3, [False] * 3, NO_CELL, [False] * 3,
                                       atoms.positions))
    internal = np.eye(9) - r @ r.T
    rng = np.random.default_rng(5)
    b = rng.standard_normal((9, 9))
    h = internal @ (b @ b.T + np.eye(9)) @ internal  # positive on internal motions, zero on rigid
    g = internal @ rng.standard_normal(9) + r @ rng.standard_normal(6)
    p = _core.prfo_step(h, g, r, np.zeros(0))
    np.testing.assert_allclose(r.T @ np.asarray(p.mode), 0.0, atol=1e-10)
    np.testing.assert_allclose(r.T @ np.asarray(p.step), 0.0, atol=1e-10)
    assert p.curvature > 0.5
