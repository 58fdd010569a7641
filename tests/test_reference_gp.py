"""The NumPy reference GP (tests/reference_gp.py) and the gpytorch backend (gprdimer.gp_torch),
two independent implementations of docs/model.md, against each other and against finite
differences, on small random C/H/O molecules with Morse-sum energies and forces."""

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import reference_gp as ref

SYMBOLS = ["C", "H", "O", "H", "H"]


def _load_gp_torch():
    """gprdimer.gp_torch, also when the package __init__ cannot be imported (C++ core not built):
    the package is then stood in for by a bare namespace just long enough to import the module."""
    try:
        return importlib.import_module("gprdimer.gp_torch")
    except ImportError as exc:
        if (exc.name or "").split(".")[0] in ("torch", "gpytorch", "linear_operator"):
            raise
    names = ("gprdimer", "gprdimer.errors", "gprdimer.gp_torch")
    saved = {name: sys.modules.pop(name, None) for name in names}
    package = types.ModuleType("gprdimer")
    package.__path__ = [str(Path(__file__).resolve().parents[1] / "gprdimer")]
    sys.modules["gprdimer"] = package
    try:
        return importlib.import_module("gprdimer.gp_torch")
    finally:
        for name in names:
            sys.modules.pop(name, None)
            if saved[name] is not None:
                sys.modules[name] = saved[name]


@pytest.fixture(scope="module")
def gp_torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("gpytorch")
    # Matrices this small gain nothing from threads, and on a busy machine threads spin.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _load_gp_torch()
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- test data


def _molecule(rng, n_atoms, min_distance=0.9, scale=1.0):
    """Random positions with every pair more than min_distance apart."""
    while True:
        x = rng.normal(scale=scale, size=(n_atoms, 3))
        r = np.linalg.norm(x[:, None] - x[None], axis=-1)
        if np.all(r[np.triu_indices(n_atoms, 1)] > min_distance):
            return x


def _morse(x, symbols, fixed=None, cell=None, pbc=None):
    """Energy and forces of a Morse sum over the GP's own pairs (minimum image where periodic).

    Written through the features so that periodic and fixed-atom cases come for free: with
    r_p = 1/f_p, dE/dx = J^T (dV/dr * dr/df), dr/df = -r^2. Forces on fixed atoms are left at
    zero: the GP must ignore them.
    """
    f, J = ref.features(x, symbols, fixed, cell, pbc)
    r = 1.0 / f
    e = np.exp(-1.6 * (r - 1.3))
    energy = float(np.sum((1.0 - e) ** 2 - 1.0))
    dV_dr = 2.0 * 1.6 * e * (1.0 - e)
    gradient = J.T @ (dV_dr * -(r**2))
    forces = np.zeros_like(x)
    forces[~ref._fixed_mask(len(symbols), fixed)] = -gradient.reshape(-1, 3)
    return energy, forces


def _data(rng, symbols, M, fixed=None, cell=None, pbc=None, base=None, spread=0.12):
    """M configurations around one molecule (fixed atoms never move), with Morse E and F."""
    base = _molecule(rng, len(symbols)) if base is None else base
    moving = ~ref._fixed_mask(len(symbols), fixed)
    X = np.repeat(base[None], M, axis=0)
    X[:, moving] += rng.normal(scale=spread, size=(M, int(moving.sum()), 3))
    EF = [_morse(x, symbols, fixed, cell, pbc) for x in X]
    E = np.array([e for e, _ in EF]) - 40.0  # an absolute offset, as with real energies
    F = np.array([f for _, f in EF])
    return X, E, F


def _periodic_case(rng):
    """A molecule straddling the faces of a skewed cell, periodic along a and b only."""
    cell = np.array([[10.0, 0.0, 0.0], [1.0, 10.5, 0.0], [0.0, 0.5, 20.0]])
    pbc = (True, True, False)
    base = _molecule(rng, len(SYMBOLS))
    X, E, F = _data(rng, SYMBOLS, 3, cell=cell, pbc=pbc, base=base)
    # Wrap every atom into the cell along the periodic directions: bonds now cross the faces.
    frac = X @ np.linalg.inv(cell)
    frac[..., :2] %= 1.0
    return X, frac @ cell, E, F, cell, pbc


def _cases(rng):
    """(name, symbols, X, E, F, geometry keywords) for an open molecule, fixed atoms and a cell."""
    out = []
    X, E, F = _data(rng, SYMBOLS, 4)
    out.append(("open", SYMBOLS, X, E, F, {}))
    symbols = ["O", "C", "H", "H", "C", "H"]
    fixed = [4, 5]
    X, E, F = _data(rng, symbols, 3, fixed=fixed)
    F[:, fixed] = rng.normal(size=(3, 2, 3))  # forces on fixed atoms must be ignored
    out.append(("fixed", symbols, X, E, F, {"fixed": fixed}))
    _, X, E, F, cell, pbc = _periodic_case(rng)
    out.append(("periodic", SYMBOLS, X, E, F, {"cell": cell, "pbc": pbc}))
    X, E, F = _data(rng, ["C", "O", "H", "H"], 2)
    E[1] += 3.0  # a mean referenced energy above 1 eV, so that sigma_c2 = mean^2 > 1
    out.append(("two points", ["C", "O", "H", "H"], X, E, F, {}))
    return out


CASES = _cases(np.random.default_rng(20240611))
CASE_IDS = [c[0] for c in CASES]


def _hyperparameters(rng, X, E, symbols, **geometry):
    """The model.md initial values, perturbed so that the tests do not sit on a special point."""
    w0 = ref.initial_log_hyperparameters(X, E, symbols, **geometry)
    return w0 + rng.normal(scale=0.3, size=w0.shape)


def _torch_gp(gp_torch, symbols, X, E, F, **kwargs):
    gp = gp_torch.TorchGaussianProcess(symbols, **kwargs)
    for x, e, f in zip(X, E, F):
        gp.add(x, e, f)
    return gp


def _query(rng, X, symbols, fixed=None):
    moving = ~ref._fixed_mask(len(symbols), fixed)
    x = X[-1].copy()
    x[moving] += rng.normal(scale=0.08, size=(int(moving.sum()), 3))
    return x


# ----------------------------------------------------------------------- geometry, kernel


def test_pair_types_order_and_naming():
    pairs, type_index, type_names = ref.pair_types(["O", "H", "C", "H"], fixed=[2, 3])
    assert pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]  # (2, 3): both fixed, left out
    assert type_names == [("H", "O"), ("C", "O"), ("C", "H"), ("H", "H")]
    assert type_index.tolist() == [0, 1, 0, 2, 3]
    mask = np.array([False, False, True, True])
    assert ref.pair_types(["O", "H", "C", "H"], fixed=mask)[0] == pairs


@pytest.mark.parametrize("name, symbols, X, E, F, geometry", CASES, ids=CASE_IDS)
def test_feature_jacobian_matches_finite_differences(name, symbols, X, E, F, geometry):
    x = X[0]
    f, J = ref.features(x, symbols, **geometry)
    moving = np.flatnonzero(~ref._fixed_mask(len(symbols), geometry.get("fixed")))
    assert J.shape == (len(f), 3 * len(moving))
    h = 1e-6
    for col, (atom, c) in enumerate((a, c) for a in moving for c in range(3)):
        plus, minus = x.copy(), x.copy()
        plus[atom, c] += h
        minus[atom, c] -= h
        f_plus = ref.features(plus, symbols, **geometry)[0]
        f_minus = ref.features(minus, symbols, **geometry)[0]
        fd = (f_plus - f_minus) / (2 * h)
        np.testing.assert_allclose(J[:, col], fd, rtol=1e-6, atol=1e-9)


def test_covariance_blocks_are_derivatives_of_the_energy_kernel():
    rng = np.random.default_rng(1)
    X, E, _ = _data(rng, SYMBOLS, 2)
    w = _hyperparameters(rng, X, E, SYMBOLS)
    D = 3 * len(SYMBOLS)
    m = D + 1

    def K(xa):
        return ref.covariance(np.array([xa, X[1]]), SYMBOLS, w, 1.7, 0.0)

    K0 = K(X[0])
    np.testing.assert_allclose(K0, K0.T, rtol=0, atol=1e-14 * np.abs(K0).max())
    h = 1e-6
    for d in range(D):
        plus, minus = X[0].copy(), X[0].copy()
        plus.flat[d] += h
        minus.flat[d] -= h
        dK = (K(plus) - K(minus)) / (2 * h)
        # Row E_a differentiated by x_a is row g_a,d; that holds for the E_b and g_b columns alike.
        expected = K0[1 + d, m:]
        atol = 1e-8 * np.abs(expected).max()
        np.testing.assert_allclose(dK[0, m:], expected, rtol=1e-6, atol=atol)


def test_initial_hyperparameters_and_prior_scales():
    rng = np.random.default_rng(2)
    X, E, _ = _data(rng, SYMBOLS, 3)
    E = E[0] + np.array([0.0, 6.0, -3.0])  # range 9 eV: s_E = 3
    s_E2, s_x2 = ref.prior_scales(X, E, SYMBOLS)
    assert s_E2 == pytest.approx(9.0)
    feats = [ref.features(x, SYMBOLS)[0] for x in X]
    range_x = max(np.sqrt(2 * np.sum((fa - fb) ** 2)) for fa in feats for fb in feats)
    assert s_x2 == pytest.approx(max(1.0, (range_x / 3) ** 2))
    w0 = ref.initial_log_hyperparameters(X, E, SYMBOLS)
    q = 0.6744897501960817
    assert len(w0) == 1 + 4  # C-H, C-O, H-O, H-H
    np.testing.assert_allclose(w0, [np.log((q * 3.0) ** 2)] + [np.log(q * np.sqrt(s_x2))] * 4)
    # One observation: every range is zero and the floors of 1 apply.
    w_single = ref.initial_log_hyperparameters(X[:1], E[:1], SYMBOLS)
    np.testing.assert_allclose(w_single, [2 * np.log(q)] + [np.log(q)] * 4)


# --------------------------------------------------------------------- reference objective


@pytest.mark.parametrize("barrier", [False, True], ids=["plain", "barrier"])
@pytest.mark.parametrize("name, symbols, X, E, F, geometry", CASES[:3], ids=CASE_IDS[:3])
def test_reference_gradient_matches_finite_differences(name, symbols, X, E, F, geometry, barrier):
    rng = np.random.default_rng(3)
    w = _hyperparameters(rng, X, E, symbols, **geometry)
    w[0] = min(w[0], 0.3)  # below the barrier at log 2
    value, grad = ref.objective(X, E, F, symbols, w, variance_barrier=barrier, **geometry)
    assert np.isfinite(value)
    h = 1e-5
    fd = np.zeros_like(w)
    for i in range(len(w)):
        plus, minus = w.copy(), w.copy()
        plus[i] += h
        minus[i] -= h
        L_plus = ref.objective(X, E, F, symbols, plus, variance_barrier=barrier, **geometry)[0]
        L_minus = ref.objective(X, E, F, symbols, minus, variance_barrier=barrier, **geometry)[0]
        fd[i] = (L_plus - L_minus) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * np.abs(grad).max())


def test_variance_barrier_is_infinite_beyond_log2():
    X, E, F = CASES[0][2:5]
    w = ref.initial_log_hyperparameters(X, E, SYMBOLS)
    w[0] = np.log(2.0)
    value, grad = ref.objective(X, E, F, SYMBOLS, w, variance_barrier=True)
    assert value == np.inf and not grad.any()
    assert np.isfinite(ref.objective(X, E, F, SYMBOLS, w)[0])


def test_fixed_atom_forces_are_ignored():
    name, symbols, X, E, F, geometry = CASES[1]
    w = ref.initial_log_hyperparameters(X, E, symbols, **geometry)
    F2 = F.copy()
    F2[:, geometry["fixed"]] += 5.0
    value = ref.objective(X, E, F, symbols, w, **geometry)[0]
    assert ref.objective(X, E, F2, symbols, w, **geometry)[0] == value
    _, forces, _ = ref.predict(X, E, F2, symbols, w, X[0], **geometry)
    assert not forces[geometry["fixed"]].any()
    assert np.abs(forces).max() > 0


# ----------------------------------------------------------------- reference predictions


@pytest.mark.parametrize("name, symbols, X, E, F, geometry", CASES[:3], ids=CASE_IDS[:3])
def test_reference_forces_are_minus_gradient_of_energy(name, symbols, X, E, F, geometry):
    rng = np.random.default_rng(4)
    w = _hyperparameters(rng, X, E, symbols, **geometry)
    x = _query(rng, X, symbols, geometry.get("fixed"))
    _, forces, _ = ref.predict(X, E, F, symbols, w, x, **geometry)
    moving = np.flatnonzero(~ref._fixed_mask(len(symbols), geometry.get("fixed")))
    h = 1e-5
    for atom in moving:
        for c in range(3):
            plus, minus = x.copy(), x.copy()
            plus[atom, c] += h
            minus[atom, c] -= h
            fd = (ref.predict(X, E, F, symbols, w, plus, **geometry)[0]
                  - ref.predict(X, E, F, symbols, w, minus, **geometry)[0]) / (2 * h)
            assert -forces[atom, c] == pytest.approx(fd, rel=1e-6, abs=1e-7 * np.abs(forces).max())


def test_reference_prediction_at_training_point_is_data_minus_noise_times_weights():
    # With k* a column block of K - noise*I, the mean there is y_m - noise * alpha_m exactly.
    X, E, F = CASES[0][2:5]
    w = ref.initial_log_hyperparameters(X, E, SYMBOLS)
    noise = 1e-5
    m = 3 * len(SYMBOLS) + 1
    y = np.concatenate([np.concatenate([[e - E[0]], -f.ravel()]) for e, f in zip(E, F)])
    alpha = np.linalg.solve(ref.covariance(X, SYMBOLS, w, ref.sigma_c2_from_energies(E), noise), y)
    energy, forces, variance = ref.predict(X, E, F, SYMBOLS, w, X[2], noise=noise)
    a = alpha[2 * m : 3 * m]
    assert energy == pytest.approx(E[2] - noise * a[0], abs=1e-10)
    np.testing.assert_allclose(forces.ravel(), F[2].ravel() + noise * a[1:], atol=1e-10)
    assert 0 < variance < 2 * noise


def test_reference_predictions_are_rotation_and_translation_invariant():
    rng = np.random.default_rng(5)
    X, E, F = CASES[0][2:5]
    w = _hyperparameters(rng, X, E, SYMBOLS)
    x = _query(rng, X, SYMBOLS)
    R, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    R *= np.sign(np.linalg.det(R))
    shift = rng.normal(size=3) * 5.0
    e0, f0, v0 = ref.predict(X, E, F, SYMBOLS, w, x)
    e1, f1, v1 = ref.predict(X, E, F, SYMBOLS, w, x @ R.T + shift)
    assert e1 - E[0] == pytest.approx(e0 - E[0], rel=1e-9)
    np.testing.assert_allclose(f1, f0 @ R.T, rtol=1e-8, atol=1e-10 * np.abs(f0).max())
    assert v1 == pytest.approx(v0, rel=1e-8)
    # Moving the training data rigidly instead changes nothing either.
    e2, f2, v2 = ref.predict(X @ R.T + shift, E, F @ R.T, SYMBOLS, w, x @ R.T + shift)
    assert e2 - E[0] == pytest.approx(e0 - E[0], rel=1e-9)
    np.testing.assert_allclose(f2, f0 @ R.T, rtol=1e-8, atol=1e-10 * np.abs(f0).max())


def test_periodic_features_use_the_minimum_image():
    X_open, X_wrapped, E, F, cell, pbc = _periodic_case(np.random.default_rng(6))
    # The wrapped molecule in the cell has the features of the unwrapped one in open space ...
    for xo, xw in zip(X_open, X_wrapped):
        f_cell = ref.features(xw, SYMBOLS, cell=cell, pbc=pbc)[0]
        np.testing.assert_allclose(f_cell, ref.features(xo, SYMBOLS)[0], rtol=1e-12)
    f_wrapped_open = ref.features(X_wrapped[0], SYMBOLS)[0]
    assert not np.allclose(f_wrapped_open, ref.features(X_open[0], SYMBOLS)[0])
    # ... so the periodic model on wrapped data is the open model on unwrapped data, and moving an
    # atom by a lattice vector along a periodic direction changes no prediction.
    w = ref.initial_log_hyperparameters(X_open, E, SYMBOLS)
    x = X_wrapped[0].copy()
    e0, f0, v0 = ref.predict(X_open, E, F, SYMBOLS, w, X_open[0])
    e1, f1, v1 = ref.predict(X_wrapped, E, F, SYMBOLS, w, x, cell=cell, pbc=pbc)
    x[1] += cell[0] - 2 * cell[1]
    e2, f2, v2 = ref.predict(X_wrapped, E, F, SYMBOLS, w, x, cell=cell, pbc=pbc)
    for e, f, v in [(e1, f1, v1), (e2, f2, v2)]:
        assert e - E[0] == pytest.approx(e0 - E[0], rel=1e-9)
        np.testing.assert_allclose(f, f0, rtol=1e-8, atol=1e-10 * np.abs(f0).max())
        assert v == pytest.approx(v0, rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------- subset selection


def test_transport_distance():
    rng = np.random.default_rng(7)
    x = _molecule(rng, len(SYMBOLS))
    perm = [0, 3, 2, 4, 1]  # the three H atoms permuted
    assert ref.transport_distance(x, x[perm], SYMBOLS) == pytest.approx(0.0, abs=1e-12)
    t = np.array([0.3, -0.4, 0.0])
    assert ref.transport_distance(x, x + t, SYMBOLS) == pytest.approx(0.5)
    y = x.copy()
    y[2] += [0.0, 0.0, 1.2]  # the only O moves 1.2 Angstrom: the largest mean of any element
    y[1] += [0.6, 0.0, 0.0]
    assert ref.transport_distance(x, y, SYMBOLS) == pytest.approx(1.2)


def test_fps_subset():
    symbols = ["H"]
    # Configurations on a line: x = 0, 10, 1, 9, 5, 4.6 (the last two are the most recent).
    X = np.array([[[v, 0.0, 0.0]] for v in [0.0, 10.0, 1.0, 9.0, 5.0, 4.6]])
    assert ref.fps_subset(X, symbols, 6) == [0, 1, 2, 3, 4, 5]
    assert ref.fps_subset(X, symbols, 3) == [1, 4, 5]  # 10 is farthest from {5, 4.6}
    assert ref.fps_subset(X, symbols, 4) == [0, 1, 4, 5]
    assert ref.fps_subset(X, symbols, 1) == [5]
    # Ties go to the lowest index: 0 and 10 are equally far from 5.
    X_tie = np.array([[[v, 0.0, 0.0]] for v in [0.0, 10.0, 5.0]])
    assert ref.fps_subset(X_tie, symbols, 2, latest=1) == [0, 2]


# ------------------------------------------------------------------ torch backend vs reference


@pytest.mark.parametrize("barrier", [False, True], ids=["plain", "barrier"])
@pytest.mark.parametrize("name, symbols, X, E, F, geometry", CASES, ids=CASE_IDS)
def test_torch_objective_agrees_with_reference(gp_torch, name, symbols, X, E, F, geometry, barrier):
    rng = np.random.default_rng(8)
    w = _hyperparameters(rng, X, E, symbols, **geometry)
    w[0] = min(w[0], 0.3)
    gp = _torch_gp(gp_torch, symbols, X, E, F, variance_barrier=barrier, **geometry)
    value, grad = gp.objective(w)
    ref_value, ref_grad = ref.objective(X, E, F, symbols, w, variance_barrier=barrier, **geometry)
    assert value == pytest.approx(ref_value, rel=1e-8)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-8 * np.abs(ref_grad).max())


@pytest.mark.parametrize("name, symbols, X, E, F, geometry", CASES, ids=CASE_IDS)
def test_torch_predictions_agree_with_reference(gp_torch, name, symbols, X, E, F, geometry):
    rng = np.random.default_rng(9)
    w = _hyperparameters(rng, X, E, symbols, **geometry)
    # The last observation comes after a first prediction, which must not leave a stale factor.
    gp = _torch_gp(gp_torch, symbols, X[:-1], E[:-1], F[:-1], **geometry)
    gp.log_hyperparameters = w
    gp.predict(X[0])
    gp.add(X[-1], E[-1], F[-1])
    assert gp.sigma_c2 == ref.sigma_c2_from_energies(E)
    for x in [_query(rng, X, symbols, geometry.get("fixed")), X[0]]:
        energy, forces, variance = gp.predict(x)
        ref_energy, ref_forces, ref_variance = ref.predict(X, E, F, symbols, w, x, **geometry)
        assert energy - E[0] == pytest.approx(ref_energy - E[0], rel=1e-8, abs=1e-12)
        np.testing.assert_allclose(forces, ref_forces, rtol=1e-8,
                                   atol=1e-8 * np.abs(ref_forces).max())
        prior_variance = gp.sigma_c2 + np.exp(w[0])
        assert variance == pytest.approx(ref_variance, rel=1e-8, abs=1e-8 * prior_variance)


def test_torch_training(gp_torch):
    name, symbols, X, E, F, geometry = CASES[0]
    gp = _torch_gp(gp_torch, symbols, X[:3], E[:3], F[:3])
    assert gp.n_observations == 3 and gp.log_hyperparameters.size == 0
    assert gp.type_names == ["C-H", "C-O", "H-O", "H-H"]
    w0 = ref.initial_log_hyperparameters(X[:3], E[:3], symbols)
    start_value = ref.objective(X[:3], E[:3], F[:3], symbols, w0)[0]
    assert gp.objective()[0] == pytest.approx(start_value, rel=1e-8)
    result = gp.train(max_iterations=100)
    assert result.converged and not result.failed and not result.reinitialised
    assert result.subset == (0, 1, 2) and result.evaluations >= result.iterations > 0
    w = gp.log_hyperparameters
    ref_value, ref_grad = ref.objective(X[:3], E[:3], F[:3], symbols, w)
    assert result.objective == pytest.approx(ref_value, rel=1e-8)
    assert result.objective < start_value
    assert np.abs(ref_grad).max() < 1e-3  # a MAP optimum
    # Appending keeps sigma_c2 until the next training, which warm-starts from the optimum.
    sigma_c2 = gp.sigma_c2
    gp.add(X[3], E[3], F[3])
    assert gp.n_observations == 4 and gp.sigma_c2 == sigma_c2
    gp.train(max_iterations=100)
    assert gp.sigma_c2 == ref.sigma_c2_from_energies(E)
    assert np.abs(ref.objective(X, E, F, symbols, gp.log_hyperparameters)[1]).max() < 1e-3


def test_torch_import_error_names_the_extra(gp_torch, monkeypatch):
    import gprdimer.gp_torch_kernel

    monkeypatch.setattr(gprdimer.gp_torch_kernel, "_backend", None)
    monkeypatch.setitem(sys.modules, "gpytorch", None)
    with pytest.raises(ImportError, match=r"pip install gprdimer\[torch\]"):
        gp_torch.TorchGaussianProcess(SYMBOLS)
