"""The C++ GP core against finite differences, invariances, and the NumPy reference (docs/model.md)."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import reference_gp as ref
from gprdimer import GaussianProcess, GPError, InputError, _core
from gprdimer.gp import GPSettings

# The model fitted to all data, to the SCG's own tolerance, every training adopted: what the
# reference GP computes (the GPR-dimer's defaults bound that training's cost instead).
EXACT = GPSettings(training_subset=None, retrain_tolerance=0.0, training_tolerance=0.01)

SYMBOLS = ["C", "O", "H", "H", "C", "H"]


def morse(x, symbols=None):
    """Smooth pair-potential energy and forces: a cheap analytic surface for the GP to learn."""
    e, f = 0.0, np.zeros_like(x)
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            d = x[i] - x[j]
            r = np.linalg.norm(d)
            a = np.exp(-1.4 * (r - 1.3))
            e += (1 - a) ** 2
            dedr = 2 * (1 - a) * 1.4 * a
            f[i] -= dedr * d / r
            f[j] += dedr * d / r
    return e, f


def random_molecule(rng, n, min_dist=0.9):
    while True:
        x = rng.uniform(-1.6, 1.6, size=(n, 3))
        d = np.linalg.norm(x[:, None] - x[None], axis=-1) + 10 * np.eye(n)
        if d.min() > min_dist:
            return x


def dataset(rng, symbols=SYMBOLS, m=5, scale=0.08):
    x0 = random_molecule(rng, len(symbols))
    X = np.array([x0 + scale * rng.standard_normal(x0.shape) for _ in range(m)])
    EF = [morse(x) for x in X]
    return X, np.array([e for e, _ in EF]), np.array([f for _, f in EF])


def build(X, E, F, symbols=SYMBOLS, **kw):
    gp = GaussianProcess(symbols, settings=EXACT, **kw)
    for x, e, f in zip(X, E, F):
        gp.add(x, e, f)
    return gp


def relerr(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.fixture
def data():
    return dataset(np.random.default_rng(11))


def test_features_and_jacobian_match_finite_differences():
    rng = np.random.default_rng(1)
    x = random_molecule(rng, 5)
    f, J = _core.features(SYMBOLS[:5], [False] * 5, np.zeros((3, 3)), (False,) * 3, x)
    fr, Jr = ref.features(x, SYMBOLS[:5])
    assert relerr(f, fr) < 1e-14 and relerr(J, Jr) < 1e-14
    h = 1e-6
    for d in range(15):
        e = np.zeros(15)
        e[d] = h
        fp = _core.features(SYMBOLS[:5], [False] * 5, np.zeros((3, 3)), (False,) * 3, x + e.reshape(5, 3))[0]
        fm = _core.features(SYMBOLS[:5], [False] * 5, np.zeros((3, 3)), (False,) * 3, x - e.reshape(5, 3))[0]
        assert relerr(J[:, d], (fp - fm) / (2 * h)) < 1e-6


def test_kernel_blocks_are_derivatives_of_the_energy_kernel():
    rng = np.random.default_rng(2)
    n = 4
    sym = SYMBOLS[:n]
    xa, xb = random_molecule(rng, n), random_molecule(rng, n)
    xb = xa + 0.2 * rng.standard_normal(xa.shape)
    w = np.array([0.3, -0.7, -0.2, 0.1, -0.4])[: 1 + len(set(ref.pair_types(sym)[2]))]
    args = (sym, [False] * n, np.zeros((3, 3)), (False,) * 3, w, 1.3)
    B = _core.covariance_block(*args, xa, xb)
    h = 1e-5

    def col(xa_, xb_):
        return _core.covariance_block(*args, xa_, xb_)

    for d in range(3 * n):
        e = np.zeros(3 * n)
        e[d] = h
        e = e.reshape(n, 3)
        # d/dx'_d of row 0 (energy) -> cov(E, g'_d); d/dx_d of column 0 -> cov(g_d, E')
        fd_eg = (col(xa, xb + e)[0, 0] - col(xa, xb - e)[0, 0]) / (2 * h)
        fd_ge = (col(xa + e, xb)[0, 0] - col(xa - e, xb)[0, 0]) / (2 * h)
        assert abs(B[0, 1 + d] - fd_eg) <= 1e-6 * max(abs(fd_eg), 1e-3)
        assert abs(B[1 + d, 0] - fd_ge) <= 1e-6 * max(abs(fd_ge), 1e-3)
        # d/dx_d of cov(E, g') -> cov(g_d, g')
        fd_gg = (col(xa + e, xb)[0, 1:] - col(xa - e, xb)[0, 1:]) / (2 * h)
        assert relerr(B[1 + d, 1:], fd_gg) < 1e-6


def test_objective_and_gradient_match_reference_and_finite_differences(data):
    X, E, F = data
    gp = build(X, E, F)
    gp.sigma_c2 = ref.sigma_c2_from_energies(E)
    rng = np.random.default_rng(3)
    for _ in range(3):
        w = ref.initial_log_hyperparameters(X, E, SYMBOLS) + 0.5 * rng.standard_normal(1 + len(gp.type_names))
        value, grad = gp.objective(w)
        rv, rg = ref.objective(X, E, F, SYMBOLS, w)
        assert relerr(value, rv) < 1e-8
        assert relerr(grad, rg) < 1e-8
        h = 1e-4
        fd = np.array([(gp.objective(w + h * e)[0] - gp.objective(w - h * e)[0]) / (2 * h)
                       for e in np.eye(len(w))])
        assert relerr(grad, fd) < 1e-6


def test_variance_barrier_objective_matches_reference(data):
    X, E, F = data
    gp = build(X, E, F, variance_barrier=True)
    gp.sigma_c2 = ref.sigma_c2_from_energies(E)
    w = ref.initial_log_hyperparameters(X, E, SYMBOLS) - 0.3
    value, grad = gp.objective(w)
    rv, rg = ref.objective(X, E, F, SYMBOLS, w, variance_barrier=True)
    assert relerr(value, rv) < 1e-8 and relerr(grad, rg) < 1e-8
    w[0] = np.log(2.0) + 0.1
    assert gp.objective(w)[0] == np.inf


def test_predictions_match_reference(data):
    X, E, F = data
    gp = build(X, E, F)
    gp.train()
    w = gp.log_hyperparameters
    assert gp.sigma_c2 == pytest.approx(ref.sigma_c2_from_energies(E), rel=1e-15)
    rng = np.random.default_rng(4)
    for _ in range(3):
        xs = X[0] + 0.1 * rng.standard_normal(X[0].shape)
        e, f, v = gp.predict(xs)
        re, rf, rv = ref.predict(X, E, F, SYMBOLS, w, xs)
        assert relerr(e, re) < 1e-8
        assert relerr(f, rf) < 1e-8
        assert relerr(v, rv) < 1e-6  # a difference of nearly equal numbers


def test_predicted_forces_are_minus_the_gradient_of_predicted_energy(data):
    X, E, F = data
    gp = build(X, E, F)
    gp.train()
    xs = X[1] + 0.05
    _, f, _ = gp.predict(xs)
    h = 1e-5
    fd = np.zeros_like(xs)
    for a in range(len(xs)):
        for k in range(3):
            xp, xm = xs.copy(), xs.copy()
            xp[a, k] += h
            xm[a, k] -= h
            fd[a, k] = -(gp.predict(xp, variance=False)[0] - gp.predict(xm, variance=False)[0]) / (2 * h)
    assert relerr(f, fd) < 1e-6


def test_predictions_invariant_to_rigid_motion(data):
    X, E, F = data
    gp = build(X, E, F)
    gp.train()
    xs = X[2] + 0.03
    e, f, v = gp.predict(xs)
    R = Rotation.from_euler("xyz", [0.4, -1.1, 2.3]).as_matrix()
    e2, f2, v2 = gp.predict(xs @ R.T + np.array([3.0, -2.0, 0.5]))
    assert abs(e2 - e) < 1e-10
    assert np.max(np.abs(f2 - f @ R.T)) < 1e-10
    assert abs(v2 - v) < 1e-10


def test_posterior_reproduces_training_data(data):
    X, E, F = data
    gp = build(X, E, F)
    gp.train()
    for x, e, f in zip(X, E, F):
        pe, pf, pv = gp.predict(x)
        # noise variance 1e-5: residuals of a few noise standard deviations at most
        assert abs(pe - e) < 0.02
        assert np.max(np.abs(pf - f)) < 0.02
        assert pv < 1e-3


def test_training_lowers_objective_and_warm_start_is_cheap(data):
    X, E, F = data
    gp = build(X, E, F)
    w0 = ref.initial_log_hyperparameters(X, E, SYMBOLS)
    gp.sigma_c2 = ref.sigma_c2_from_energies(E)
    start = gp.objective(w0)[0]
    report = gp.train()
    assert report.converged and not report.failed
    assert report.objective < start
    again = gp.train()
    assert again.iterations <= 3


def test_training_leaves_a_warm_start_stuck_on_a_plateau(data):
    # log hyperparameters of -50: sigma_m^2 and every length scale vanish, the objective is flat
    # there, and a warm-started fit with a loose tolerance stopped at its first step
    X, E, F = data
    gp = build(X, E, F, training_tolerance=0.1)
    fitted = gp.train()
    assert not fitted.reinitialised
    gp.log_hyperparameters = np.full(1 + len(gp.type_names), -50.0)
    again = gp.train()
    assert again.reinitialised and not again.failed
    assert again.objective == pytest.approx(fitted.objective, abs=0.05 * abs(fitted.objective))
    assert np.all(gp.log_hyperparameters > -10.0)


def test_a_training_depends_on_its_data_and_warm_start_only():
    """A training reuses the factor of its last objective evaluation (the warm start's, for the
    optimiser's first step): after new data, a GP that trained before must fit exactly as a
    fresh GP with the same data and the same warm start does."""
    X, E, F = dataset(np.random.default_rng(5), m=7)
    for subset in (None, 4):  # all data, and a farthest-point subset that changes with the data
        settings = dict(training_subset=subset, retrain_tolerance=0.0)
        trained = build(X[:5], E[:5], F[:5], **settings)
        trained.train()
        warm = trained.log_hyperparameters
        for x, e, f in zip(X[5:], E[5:], F[5:]):
            trained.add(x, e, f)
        again = trained.train()
        fresh = build(X, E, F, **settings)
        fresh.log_hyperparameters = warm
        first = fresh.train()
        assert not again.reinitialised and again.evaluations == first.evaluations
        assert np.array_equal(trained.log_hyperparameters, fresh.log_hyperparameters)
        assert again.objective == first.objective


def test_a_training_keeps_its_hyperparameters_exactly_where_the_full_fit_stays_near():
    """From the current hyperparameters a training may stop after its first step's curvature
    probe, when that step is too short to leave retrain_tolerance (scg.h). Its verdict must be
    the full fit's: kept exactly where the fit run to its end (every result adopted) from the
    same start ends within the tolerance."""
    tol = 0.2
    rng = np.random.default_rng(3)
    verdicts = []
    for _ in range(8):
        X, E, F = dataset(rng, m=6)
        fit = build(X, E, F, training_tolerance=0.1)
        fit.train()
        fitted = fit.log_hyperparameters
        for shift in (0.0, 0.02, 0.3, 1.0):
            w0 = fitted + shift * rng.standard_normal(fitted.shape)
            keeper = build(X, E, F, retrain_tolerance=tol, training_tolerance=0.1)
            full = build(X, E, F, retrain_tolerance=0.0, training_tolerance=0.1)
            for gp in (keeper, full):
                gp.log_hyperparameters = w0
                gp.sigma_c2 = ref.sigma_c2_from_energies(E)
                gp.predict(X[0])  # the model is built: a training may keep it
            kept, adopted = keeper.train(), full.train()
            assert kept.reinitialised == adopted.reinitialised
            if kept.reinitialised:  # the data-driven start: nothing to keep
                continue
            near = np.max(np.abs(full.log_hyperparameters - w0)) < tol
            assert kept.kept == near
            if kept.kept:
                assert np.array_equal(keeper.log_hyperparameters, w0)
            else:
                assert np.array_equal(keeper.log_hyperparameters, full.log_hyperparameters)
            verdicts.append((kept.kept, kept.evaluations < adopted.evaluations))
    # both verdicts occur, and some kept trainings stopped early
    assert (False, False) in verdicts and (True, True) in verdicts


def test_appending_extends_the_factor_exactly(data):
    X, E, F = data
    gp = build(X[:4], E[:4], F[:4])
    gp.train()
    w, c2 = gp.log_hyperparameters, gp.sigma_c2
    gp.add(X[4], E[4], F[4])  # hyperparameters fixed: factor extended
    xs = X[0] + 0.07
    fresh = build(X, E, F)
    fresh.log_hyperparameters = w
    fresh.sigma_c2 = c2
    a, b = gp.predict(xs), fresh.predict(xs)
    assert relerr(a[0], b[0]) < 1e-10 and relerr(a[1], b[1]) < 1e-8 and abs(a[2] - b[2]) < 1e-10


def test_fixed_atoms_and_periodic_cell_match_reference():
    rng = np.random.default_rng(5)
    sym = ["C", "O", "H", "H", "C"]
    cell = np.diag([4.0, 4.5, 20.0])
    pbc = (True, True, False)
    fixed = [3, 4]
    X, E, F = dataset(rng, sym, m=4)
    X = X + np.array([1.5, 1.5, 5.0])
    gp = build(X, E, F, symbols=sym, fixed=fixed, cell=cell, pbc=pbc)
    gp.sigma_c2 = ref.sigma_c2_from_energies(E)
    w = ref.initial_log_hyperparameters(X, E, sym, fixed=fixed, cell=cell, pbc=pbc) - 0.4
    v, g = gp.objective(w)
    rv, rg = ref.objective(X, E, F, sym, w, fixed=fixed, cell=cell, pbc=pbc)
    assert relerr(v, rv) < 1e-8 and relerr(g, rg) < 1e-8
    gp.log_hyperparameters = w
    xs = X[0] + 0.05 * rng.standard_normal(X[0].shape)
    xs[fixed] = X[0][fixed]
    e, f, var = gp.predict(xs)
    re, rf, rvar = ref.predict(X, E, F, sym, w, xs, fixed=fixed, cell=cell, pbc=pbc)
    assert relerr(e, re) < 1e-8 and relerr(f, rf) < 1e-8
    assert np.all(f[fixed] == 0.0)
    # minimum image: moving the whole system by a lattice vector changes nothing
    e2, f2, _ = gp.predict(xs + cell[0])
    assert abs(e2 - e) < 1e-10 and np.max(np.abs(f2 - f)) < 1e-10


def test_transport_distance_and_fps_subset_match_reference():
    rng = np.random.default_rng(6)
    X, E, F = dataset(rng, m=14, scale=0.3)
    for a, b in [(0, 1), (3, 9)]:
        assert _core.transport_distance(X[a], X[b], SYMBOLS) == pytest.approx(
            ref.transport_distance(X[a], X[b], SYMBOLS), rel=1e-12)
    # a permutation of like atoms costs nothing
    perm = X[0][[0, 1, 3, 2, 4, 5]]
    assert _core.transport_distance(X[0], perm, SYMBOLS) == pytest.approx(0.0, abs=1e-14)
    assert list(_core.farthest_point_subset(list(X), SYMBOLS, 6, 2)) == ref.fps_subset(X, SYMBOLS, 6, latest=2)
    gp = build(X, E, F, training_subset=6)
    report = gp.train()
    assert list(report.subset) == ref.fps_subset(X, SYMBOLS, 6, latest=2)
    assert gp.n_observations == 14  # the model keeps all data after training on the subset


def test_transport_radius_check_sees_every_observation():
    """The trust region's scan ends early, yet finds an old observation as well as the newest."""
    rng = np.random.default_rng(7)
    X, E, F = dataset(rng, m=8, scale=0.3)
    gp = build(X, E, F)
    for trial in (X[0] + 0.01, X[-1] + 0.01, X[3] + 0.2 * rng.standard_normal(X[3].shape)):
        nearest = min(ref.transport_distance(trial, x, SYMBOLS) for x in X)
        for radius in (0.999 * nearest, 1.001 * nearest):
            assert _core.within_transport_radius(gp.surrogate(), trial, radius) == (nearest <= radius)


def test_duplicate_observations_factorise_with_jitter_not_nan(data):
    X, E, F = data
    gp = build(np.repeat(X[:2], 3, axis=0), np.repeat(E[:2], 3), np.repeat(F[:2], 3, axis=0),
               noise=1e-14)
    gp.train()
    e, f, v = gp.predict(X[0] + 0.01)
    assert np.isfinite(e) and np.all(np.isfinite(f)) and np.isfinite(v)


def test_unfactorisable_covariance_is_an_error_not_nan(data):
    X, E, F = data
    gp = build(X, E, F)
    gp.log_hyperparameters = np.full(1 + len(gp.type_names), 800.0)  # exp overflows
    with pytest.raises(GPError):
        gp.predict(X[0])


def test_bad_input_is_named():
    with pytest.raises(InputError, match="shape"):
        GaussianProcess(SYMBOLS).add(np.zeros((3, 3)), 0.0, np.zeros((6, 3)))
    with pytest.raises(InputError, match="NaN"):
        GaussianProcess(SYMBOLS).add(np.full((6, 3), np.nan), 0.0, np.zeros((6, 3)))
    with pytest.raises(InputError, match="backend"):
        GaussianProcess(SYMBOLS, backend="tensorflow")
    with pytest.raises(InputError, match="at least 2 atoms"):
        GaussianProcess(["H"])


def test_gpytorch_backend_matches_core(data):
    pytest.importorskip("gpytorch", reason="gpytorch backend not installed (extra gprdimer[torch])")
    X, E, F = data
    core = build(X, E, F)
    core.train()
    torch_gp = build(X, E, F, backend="gpytorch")
    torch_gp.log_hyperparameters = core.log_hyperparameters
    torch_gp.sigma_c2 = core.sigma_c2
    xs = X[0] + 0.04
    a, b = core.predict(xs), torch_gp.predict(xs)
    assert relerr(a[0], b[0]) < 1e-8 and relerr(a[1], b[1]) < 1e-8
    assert relerr(core.objective(core.log_hyperparameters)[0],
                  torch_gp.objective(core.log_hyperparameters)[0]) < 1e-8


def test_memory_limit_keeps_the_latest_observations_exactly():
    # 6 atoms: 19 rows an observation; 0.1849 MB holds 152 rows = 8 observations, and past them
    # the oldest go down to three quarters of the bound, 6 observations
    X, E, F = dataset(np.random.default_rng(3), m=12)
    settings = replace(EXACT, memory_limit=0.1849)
    assert settings.max_rows == 152
    gp = GaussianProcess(SYMBOLS, settings=settings)
    held = []
    for x, e, f in zip(X, E, F):
        gp.add(x, e, f)
        held.append(gp.n_observations)
        if gp.n_observations == 3:
            gp.train()  # hyperparameters from here on, the factor extended observation by one
    assert held == [1, 2, 3, 4, 5, 6, 7, 8, 6, 7, 8, 6]
    np.testing.assert_array_equal(np.array(gp.configurations), X[6:])
    fresh = build(X[6:], E[6:], F[6:])
    fresh.log_hyperparameters, fresh.sigma_c2 = gp.log_hyperparameters, gp.sigma_c2
    xs = X[8] + 0.05
    a, b = gp.predict(xs), fresh.predict(xs)
    assert relerr(a[0], b[0]) < 1e-10 and relerr(a[1], b[1]) < 1e-8 and abs(a[2] - b[2]) < 1e-10
    with pytest.raises(InputError, match="memory_limit must be a finite number above 0"):
        replace(EXACT, memory_limit=0)


def test_a_bounded_model_stays_within_its_memory_limit():
    """The whole model, not only its factor: 90 observations of benzene (37 rows each) under a
    30 MB limit (1936 rows, 52 observations) raise the process's peak by at most the limit, the
    training subset's three matrices, a page of rounding per factor column and 2 MB of vectors.
    Before the factor was assembled and kept in one storage of the bound's size, the peak rose
    by about twice the limit (a covariance beside its factor, an old beside a grown storage)."""
    probe = Path(__file__).with_name("memory_probe.py")
    done = subprocess.run([sys.executable, str(probe), "30", "90"], capture_output=True,
                          text=True, check=True)
    growth, most, max_rows = (int(word) for word in done.stdout.split())
    assert max_rows == 1936 and most == 52
    training = 3 * (GPSettings().training_subset * 37) ** 2 * 8
    assert growth <= 30e6 + training + 4096 * max_rows + 2e6, done.stdout


def test_gpytorch_backend_keeps_the_same_observations():
    pytest.importorskip("gpytorch", reason="gpytorch backend not installed (extra gprdimer[torch])")
    X, E, F = dataset(np.random.default_rng(3), m=12)
    gp = build(X, E, F, backend="gpytorch", memory_limit=0.1849)
    assert gp.n_observations == 6
    np.testing.assert_allclose(np.array(gp.configurations), X[6:])
