"""Plain NumPy reference of the GP model in docs/model.md, for tests and benchmarks only.

Written for clarity rather than speed: the Jacobian J of the features is a dense P x D matrix,
every (D+1) x (D+1) covariance block is built from the formulas of model.md with a dense
H = 2 k (Theta - 2 u u^T), and the hyperparameter derivatives dK/dw_i are assembled densely,
so that nothing here shares code or shortcuts with the C++ core or the torch backend.
"""

import numpy as np
import scipy.linalg
from scipy.optimize import linear_sum_assignment

from gprdimer.constraints import fixed_mask as _fixed_mask

# Phi^-1(0.75): the GPstuff quartile convention for the initial hyperparameters.
QUARTILE = 0.6744897501960817
LOG_2PI = np.log(2.0 * np.pi)


def _periodicity(cell, pbc):
    """(cell, periodic directions) or (None, None) for a molecule in open space.

    A cell without pbc means periodic in all three directions; pbc without a cell is an error.
    """
    if cell is None:
        if pbc is not None and np.any(pbc):
            raise ValueError("periodic boundary conditions need a cell")
        return None, None
    cell = np.asarray(cell, dtype=float)
    if cell.shape == (3,):
        cell = np.diag(cell)
    if pbc is None:
        pbc = np.ones(3, dtype=bool)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    if not pbc.any():
        return None, None
    if abs(np.linalg.det(cell)) < 1e-12:
        raise ValueError("periodic boundary conditions need a cell of non-zero volume")
    return cell, pbc


def _displacement(xi, xj, cell, pbc):
    """x_i - x_j, wrapped to the nearest image along the periodic directions.

    The wrap rounds the fractional coordinates, as the core does: the exact minimum image for
    displacements shorter than half the cell, which is all a molecule in a cell needs.
    """
    d = xi - xj
    if cell is None:
        return d
    s = np.linalg.solve(cell.T, d)  # fractional coordinates: d = s @ cell
    s[pbc] -= np.round(s[pbc])
    return s @ cell


def pair_types(symbols, fixed=None):
    """Feature pairs (i < j, at least one moving), their type index and the type names.

    Types are unordered element pairs, written in sorted order, numbered by first occurrence in
    the pair list (i ascending, then j ascending).
    """
    n = len(symbols)
    is_fixed = _fixed_mask(n, fixed)
    pairs, type_index, type_names = [], [], []
    for i in range(n):
        for j in range(i + 1, n):
            if is_fixed[i] and is_fixed[j]:
                continue
            name = tuple(sorted((symbols[i], symbols[j])))
            if name not in type_names:
                type_names.append(name)
            pairs.append((i, j))
            type_index.append(type_names.index(name))
    return pairs, np.array(type_index, dtype=int), type_names


def features(positions, symbols, fixed=None, cell=None, pbc=None):
    """Inverse distances f (P,) and their dense Jacobian J (P, D) over the moving coordinates."""
    positions = np.asarray(positions, dtype=float)
    n = len(symbols)
    is_fixed = _fixed_mask(n, fixed)
    moving_index = -np.ones(n, dtype=int)
    moving_index[~is_fixed] = np.arange(int((~is_fixed).sum()))
    cell, pbc = _periodicity(cell, pbc)
    pairs, _, _ = pair_types(symbols, is_fixed)
    f = np.zeros(len(pairs))
    J = np.zeros((len(pairs), 3 * int((~is_fixed).sum())))
    for p, (i, j) in enumerate(pairs):
        d = _displacement(positions[i], positions[j], cell, pbc)
        r = np.linalg.norm(d)
        f[p] = 1.0 / r
        q = d / r**3
        if moving_index[i] >= 0:
            J[p, 3 * moving_index[i] : 3 * moving_index[i] + 3] = -q
        if moving_index[j] >= 0:
            J[p, 3 * moving_index[j] : 3 * moving_index[j] + 3] = q
    return f, J


def _theta2_per_pair(w, type_index):
    """theta_t(p)^2 = 1 / l_t(p)^2 for every pair."""
    log_l = np.asarray(w, dtype=float)[1:]
    return np.exp(-2.0 * log_l[type_index])


def _block(fa, Ja, fb, Jb, w, type_index, sigma_c2, with_derivatives=False):
    """cov([E_a, g_a], [E_b, g_b]) as a (D+1) x (D+1) block, and optionally d block / d w_i.

    Term by term from model.md: with k the squared-exponential part,
      EE = sigma_c2 + k,  EG = 2k Jb^T u,  GE = -2k Ja^T u,  GG = Ja^T [2k (Theta - 2 u u^T)] Jb.
    The derivatives use dk/dw_0 = k, and for a length scale w_t = log l_t (mask m_t of its pairs)
    dTheta/dw_t = -2 Theta m_t, du/dw_t = -2 u m_t, dk/dw_t = 2k sum_p m_t,p u_p Delta_p.
    """
    theta2 = _theta2_per_pair(w, type_index)
    sigma_m2 = np.exp(w[0])
    delta = fa - fb
    u = theta2 * delta
    k = sigma_m2 * np.exp(-np.sum(theta2 * delta**2))
    Theta = np.diag(theta2)

    def assemble(k_, u_, Theta_, uuT_, constant):
        D = Ja.shape[1]
        B = np.zeros((D + 1, D + 1))
        B[0, 0] = constant + k_
        B[0, 1:] = Jb.T @ (2.0 * u_)
        B[1:, 0] = -(Ja.T @ (2.0 * u_))
        B[1:, 1:] = Ja.T @ (2.0 * (Theta_ - 2.0 * uuT_)) @ Jb
        return B

    # The products k*u etc. are passed pre-multiplied so that one assembly serves the
    # covariance and, by the product rule, each of its derivatives.
    block = assemble(k, k * u, k * Theta, k * np.outer(u, u), sigma_c2)
    if not with_derivatives:
        return block
    derivatives = [assemble(k, k * u, k * Theta, k * np.outer(u, u), 0.0)]
    n_types = len(w) - 1
    for t in range(n_types):
        m = (type_index == t).astype(float)
        dk = 2.0 * k * np.sum(m * u * delta)
        du = -2.0 * u * m
        dTheta = -2.0 * Theta * np.diag(m)
        d_ku = dk * u + k * du
        d_kTheta = dk * Theta + k * dTheta
        d_kuuT = dk * np.outer(u, u) + k * (np.outer(du, u) + np.outer(u, du))
        derivatives.append(assemble(dk, d_ku, d_kTheta, d_kuuT, 0.0))
    return block, derivatives


def _all_features(X, symbols, fixed, cell, pbc):
    return [features(x, symbols, fixed, cell, pbc) for x in np.asarray(X, dtype=float)]


def _covariance_from_features(feats, type_index, w, sigma_c2, noise, with_derivatives=False):
    M = len(feats)
    m = feats[0][1].shape[1] + 1
    K = np.zeros((M * m, M * m))
    dK = [np.zeros((M * m, M * m)) for _ in range(len(w))] if with_derivatives else None
    for a in range(M):
        for b in range(M):
            fa, Ja = feats[a]
            fb, Jb = feats[b]
            out = _block(fa, Ja, fb, Jb, w, type_index, sigma_c2, with_derivatives)
            rows, cols = slice(a * m, (a + 1) * m), slice(b * m, (b + 1) * m)
            if with_derivatives:
                K[rows, cols] = out[0]
                for i, d in enumerate(out[1]):
                    dK[i][rows, cols] = d
            else:
                K[rows, cols] = out
    K[np.diag_indices_from(K)] += noise
    return (K, dK) if with_derivatives else K


def covariance(X, symbols, w, sigma_c2, noise, fixed=None, cell=None, pbc=None):
    """K + noise*I over the observations X (M, N, 3), point-major [E_1, g_1, E_2, g_2, ...]."""
    w = np.asarray(w, dtype=float)
    _, type_index, _ = pair_types(symbols, _fixed_mask(len(symbols), fixed))
    feats = _all_features(X, symbols, fixed, cell, pbc)
    return _covariance_from_features(feats, type_index, w, sigma_c2, noise)


def _cholesky(K):
    """Lower Cholesky factor; 8 tries: none, then jitter 1e-8*max(1, mean diag K), x10 per retry.

    Returns the cho_factor tuple, or None when every try failed.
    """
    if not np.all(np.isfinite(K)):
        return None
    base = 1e-8 * max(1.0, float(np.mean(np.diag(K))))
    for attempt in range(8):
        jitter = 0.0 if attempt == 0 else base * 10.0 ** (attempt - 1)
        try:
            return scipy.linalg.cho_factor(K + jitter * np.eye(len(K)), lower=True)
        except np.linalg.LinAlgError:
            continue
    return None


def _targets(E, F, fixed_mask):
    """Point-major targets [E_1 - E_1, g_1, E_2 - E_1, g_2, ...], g_m = -F_m on the moving atoms."""
    E = np.asarray(E, dtype=float)
    F = np.asarray(F, dtype=float)
    rows = [np.concatenate([[E[m] - E[0]], -F[m][~fixed_mask].ravel()]) for m in range(len(E))]
    return np.concatenate(rows)


def sigma_c2_from_energies(E):
    """sigma_c^2 = max(1, mean(E - E_1)^2)."""
    y_E = np.asarray(E, dtype=float) - E[0]
    return max(1.0, float(np.mean(y_E)) ** 2)


def prior_scales(X, E, symbols, fixed=None, cell=None, pbc=None):
    """(s_E^2, s_x^2) of model.md from the observations."""
    y_E = np.asarray(E, dtype=float) - E[0]
    s_E2 = max(1.0, (float(np.ptp(y_E)) / 3.0) ** 2)
    feats = [f for f, _ in _all_features(X, symbols, fixed, cell, pbc)]
    range_x = 0.0
    for a in range(len(feats)):
        for b in range(a + 1, len(feats)):
            range_x = max(range_x, np.sqrt(2.0 * np.sum((feats[a] - feats[b]) ** 2)))
    s_x2 = max(1.0, (range_x / 3.0) ** 2)
    return s_E2, s_x2


def initial_log_hyperparameters(X, E, symbols, fixed=None, cell=None, pbc=None):
    """w0 = [log (q s_E)^2, log q s_x, ...] with q = Phi^-1(0.75), one length scale per type."""
    s_E2, s_x2 = prior_scales(X, E, symbols, fixed, cell, pbc)
    _, _, type_names = pair_types(symbols, fixed)
    log_l = np.log(QUARTILE * np.sqrt(s_x2))
    return np.concatenate([[np.log(QUARTILE**2 * s_E2)], np.full(len(type_names), log_l)])


def _log_prior(w, s_E2, s_x2, nu):
    """log p(w) (constants dropped) and its gradient."""
    ratio = np.exp(w[0]) / (nu * s_E2)
    value = -0.5 * (nu + 1.0) * np.log1p(ratio) + 0.5 * w[0]
    grad = np.zeros_like(w)
    grad[0] = -0.5 * (nu + 1.0) * ratio / (1.0 + ratio) + 0.5
    for t in range(1, len(w)):
        value += -np.exp(2.0 * w[t]) / (2.0 * s_x2) + w[t]
        grad[t] = -np.exp(2.0 * w[t]) / s_x2 + 1.0
    return value, grad


def objective(X, E, F, symbols, w, noise=1e-5, prior_dof=28.0, variance_barrier=False, fixed=None,
              cell=None, pbc=None):
    """MAP objective L(w) of model.md and its analytic gradient; (inf, zeros) where undefined."""
    w = np.asarray(w, dtype=float)
    X = np.asarray(X, dtype=float)
    M = len(X)
    fixed_mask = _fixed_mask(X.shape[1], fixed)
    inf_result = (np.inf, np.zeros_like(w))
    log2 = np.log(2.0)
    if variance_barrier and w[0] >= log2:
        return inf_result

    y = _targets(E, F, fixed_mask)
    sigma_c2 = sigma_c2_from_energies(E)
    s_E2, s_x2 = prior_scales(X, E, symbols, fixed_mask, cell, pbc)
    _, type_index, _ = pair_types(symbols, fixed_mask)
    feats = _all_features(X, symbols, fixed_mask, cell, pbc)
    K, dK = _covariance_from_features(feats, type_index, w, sigma_c2, noise, with_derivatives=True)
    factor = _cholesky(K)
    if factor is None:
        return inf_result
    c, lower = factor
    alpha = scipy.linalg.cho_solve((c, lower), y)
    log_det = 2.0 * np.sum(np.log(np.diag(c)))
    n = len(y)
    log_p, grad_log_p = _log_prior(w, s_E2, s_x2, prior_dof)
    value = 0.5 * y @ alpha + 0.5 * log_det + 0.5 * n * LOG_2PI - log_p

    K_inv = scipy.linalg.cho_solve((c, lower), np.eye(n))
    W = K_inv - np.outer(alpha, alpha)
    grad = np.array([0.5 * np.sum(W * dK_i) for dK_i in dK]) - grad_log_p

    if variance_barrier:
        s = min(0.5, 1e-4 + 1e-3 * M)
        value -= s * np.log(log2 - w[0])
        grad[0] += s / (log2 - w[0])
    if not np.isfinite(value) or not np.all(np.isfinite(grad)):
        return inf_result
    return float(value), grad


def predict(X, E, F, symbols, w, x_star, noise=1e-5, fixed=None, cell=None, pbc=None):
    """Posterior energy (absolute), forces (N, 3; zero on fixed atoms), latent energy variance."""
    w = np.asarray(w, dtype=float)
    X = np.asarray(X, dtype=float)
    x_star = np.asarray(x_star, dtype=float)
    fixed_mask = _fixed_mask(X.shape[1], fixed)
    y = _targets(E, F, fixed_mask)
    sigma_c2 = sigma_c2_from_energies(E)
    _, type_index, _ = pair_types(symbols, fixed_mask)
    feats = _all_features(X, symbols, fixed_mask, cell, pbc)
    K = _covariance_from_features(feats, type_index, w, sigma_c2, noise)
    factor = _cholesky(K)
    if factor is None:
        raise np.linalg.LinAlgError("the covariance matrix could not be factorised")
    c, lower = factor
    alpha = scipy.linalg.cho_solve((c, lower), y)

    f_star, J_star = features(x_star, symbols, fixed_mask, cell, pbc)
    # Column 0: cov(training outputs, E*); columns 1..D: cov(training outputs, g*).
    k_star = np.vstack([_block(f, J, f_star, J_star, w, type_index, sigma_c2) for f, J in feats])
    mean = k_star.T @ alpha
    v = scipy.linalg.solve_triangular(c, k_star[:, 0], lower=True)
    variance = sigma_c2 + np.exp(w[0]) - v @ v

    forces = np.zeros_like(x_star)
    forces[~fixed_mask] = -mean[1:].reshape(-1, 3)
    return float(E[0] + mean[0]), forces, float(variance)


def transport_distance(xa, xb, symbols):
    """Max over elements of the mean atom displacement under the best assignment of like atoms."""
    xa = np.asarray(xa, dtype=float)
    xb = np.asarray(xb, dtype=float)
    symbols = np.asarray(symbols)
    worst = 0.0
    for element in np.unique(symbols):
        idx = np.flatnonzero(symbols == element)
        cost = np.linalg.norm(xa[idx][:, None, :] - xb[idx][None, :, :], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        worst = max(worst, float(cost[rows, cols].sum()) / len(idx))
    return worst


def fps_subset(X, symbols, k, latest=2):
    """The `latest` most recent observations plus farthest-point sampling, k indices, sorted."""
    M = len(X)
    if k >= M:
        return list(range(M))
    distance = np.array([[transport_distance(xa, xb, symbols) for xb in X] for xa in X])
    chosen = list(range(M - min(latest, k), M))
    while len(chosen) < k:
        nearest = distance[:, chosen].min(axis=1) if chosen else np.full(M, np.inf)
        nearest[chosen] = -np.inf
        chosen.append(int(np.argmax(nearest)))  # the first maximum: ties go to the lowest index
    return sorted(chosen)
