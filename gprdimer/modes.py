"""Initial dimer orientations: the published random recipe and a Lindh model Hessian.

The GPR-dimer paper starts each search from eOn's least-coordinated random displacement
(:func:`random_displacement`). :func:`lowest_model_mode` is a deterministic alternative: the
softest mode of the Lindh et al. (1995) model Hessian, Chem. Phys. Lett. 241, 423.
"""

import numpy as np
from ase import units
from ase.data import covalent_radii

from .constraints import atoms_fixed_mask
from .errors import InputError
from .vibrations import internal_basis

SEED = 706253457

# Lindh's force constants (Hartree/Bohr², Hartree/rad², Hartree/rad²) in eV/Å² and eV/rad².
K_STRETCH = 0.45 * units.Hartree / units.Bohr**2
K_BEND = 0.15 * units.Hartree
K_TORSION = 0.005 * units.Hartree

# Lindh's table by period (0: H, 1: C, N, O), converted from Bohr⁻² and Bohr to Å.
_LINDH_PERIOD = {1: 0, 6: 1, 7: 1, 8: 1}
_LINDH_ALPHA = np.array([[1.0000, 0.3949], [0.3949, 0.2800]]) / units.Bohr**2
_LINDH_R_REF = np.array([[1.35, 2.10], [2.10, 2.87]]) * units.Bohr
# Other elements: Lindh's heavy-atom α (0.28 Bohr⁻² is 1.0 Å⁻²) and covalent-radius distances.
_FALLBACK_ALPHA = 1.0

# Bends and torsions whose product of Lindh weights ρ is below this are left out: they are
# under 1e-8 of a bonded term, and dropping them keeps the number of terms linear in N.
_NEGLIGIBLE = 1e-8
# Within 5° of a straight line (0° or 180°) a bend is treated as linear and no torsion runs
# through it, because the angle and dihedral gradients diverge there.
_SIN_LINEAR = np.sin(np.deg2rad(5.0))

MODE_CHOICES = ("random", "hessian")


def _pair_vectors(atoms):
    """D[i, j] = r_j − r_i, by the minimum image when the cell is periodic."""
    return atoms.get_all_distances(mic=bool(atoms.pbc.any()), vector=True)


def random_displacement(atoms, seed=SEED, magnitude=0.01, radius=3.3, fixed=None):
    """eOn's least-coordinated random displacement, as used by the GPR-dimer paper.

    The epicentre is the moving atom with the fewest other atoms within ``radius`` (ties go to
    the lowest index). It and every moving atom within ``radius`` of it are displaced by i.i.d.
    Gaussian components of standard deviation ``magnitude``. eOn's 20 % "void bias" is left out.

    Parameters
    ----------
    atoms : ase.Atoms
    seed : int
        Seed for ``numpy.random.default_rng``; the same seed gives the same displacement.
    magnitude : float
        Standard deviation of each displacement component, Å.
    radius : float
        Coordination cutoff and displacement radius, Å.
    fixed : array_like, optional
        Mask or indices of fixed atoms; None reads FixAtoms constraints.

    Returns
    -------
    displacement, mode : ndarray, shape (N, 3)
        The displacement to add to the positions, and its normalised direction.
    """
    mask = atoms_fixed_mask(atoms, fixed)
    if mask.all():
        raise InputError("every atom is fixed, so there is nothing to displace")
    distances = np.linalg.norm(_pair_vectors(atoms), axis=-1)
    near = distances <= radius
    np.fill_diagonal(near, False)
    coordination = near.sum(axis=1)
    # Fixed atoms get an impossible coordination so argmin (first minimum) never picks them.
    epicentre = int(np.argmin(np.where(mask, len(atoms), coordination)))
    displaced = (near[epicentre] | (np.arange(len(atoms)) == epicentre)) & ~mask
    rng = np.random.default_rng(seed)
    displacement = np.zeros((len(atoms), 3))
    displacement[displaced] = rng.normal(scale=magnitude, size=(int(displaced.sum()), 3))
    return displacement, displacement / np.linalg.norm(displacement)


def _lindh_weights(atoms, distances):
    """Lindh's ρ_ij = exp(α_ij (r_ref,ij² − r_ij²)), zero on the diagonal."""
    numbers = atoms.numbers
    tabulated = np.array([z in _LINDH_PERIOD for z in numbers])
    period = np.array([_LINDH_PERIOD.get(z, 0) for z in numbers])
    both = tabulated[:, None] & tabulated[None, :]
    alpha = np.where(both, _LINDH_ALPHA[period[:, None], period[None, :]], _FALLBACK_ALPHA)
    radii = covalent_radii[numbers]
    r_ref = np.where(both, _LINDH_R_REF[period[:, None], period[None, :]],
                     radii[:, None] + radii[None, :])
    rho = np.exp(alpha * (r_ref**2 - distances**2))
    np.fill_diagonal(rho, 0.0)
    return rho


def _bend_gradient(a, c):
    """Gradient of the angle between a = r_i − r_j and c = r_k − r_j at atoms (i, j, k).

    Parameters
    ----------
    a, c : ndarray, shape (M, 3)

    Returns
    -------
    ndarray, shape (M, 3, 3)
        ∂θ/∂r for atoms i, j, k, in rad/Å.
    """
    la = np.linalg.norm(a, axis=1)[:, None]
    lc = np.linalg.norm(c, axis=1)[:, None]
    ua, uc = a / la, c / lc
    cos = np.sum(ua * uc, axis=1, keepdims=True)
    sin = np.sqrt(np.maximum(1.0 - cos**2, 0.0))
    gi = (cos * ua - uc) / (la * sin)
    gk = (cos * uc - ua) / (lc * sin)
    return np.stack([gi, -gi - gk, gk], axis=1)


def _torsion_gradient(f, g, h):
    """Gradient of the dihedral i-j-k-l (Blondel and Karplus 1996).

    Parameters
    ----------
    f, g, h : ndarray, shape (M, 3)
        r_i − r_j, r_j − r_k and r_l − r_k.

    Returns
    -------
    ndarray, shape (M, 4, 3)
        ∂φ/∂r for atoms i, j, k, l, in rad/Å.
    """
    a = np.cross(f, g)
    b = np.cross(h, g)
    lg = np.linalg.norm(g, axis=1)[:, None]
    a2 = np.sum(a * a, axis=1)[:, None]
    b2 = np.sum(b * b, axis=1)[:, None]
    fg = np.sum(f * g, axis=1)[:, None]
    hg = np.sum(h * g, axis=1)[:, None]
    gi = -lg / a2 * a
    gl = lg / b2 * b
    shift = fg / (a2 * lg) * a - hg / (b2 * lg) * b
    return np.stack([gi, -gi + shift, -gl - shift, gl], axis=1)


def _add_terms(blocks, atoms_of_term, weights, gradients):
    """Add Σ_q w_q b_q b_qᵀ into the (N, N, 3, 3) Hessian blocks."""
    for p in range(atoms_of_term.shape[1]):
        for q in range(atoms_of_term.shape[1]):
            outer = weights[:, None, None] * gradients[:, p, :, None] * gradients[:, q, None, :]
            np.add.at(blocks, (atoms_of_term[:, p], atoms_of_term[:, q]), outer)


def _add_linear_bends(blocks, bends, weights, a, c):
    """Near-linear bends: both perpendicular bends, k c_p c_q (I − e eᵀ) with e the line.

    Moving atom i by δ ⟂ e turns the angle by |δ|/|a|; atom k turns it by s|δ|/|c|, with s = +1
    when i and k lie on opposite sides of j and −1 when on the same side; the centre makes up
    the rest, since a translation changes nothing. Hence c = (1/|a|, −1/|a| − s/|c|, s/|c|).
    """
    la = np.linalg.norm(a, axis=1)[:, None]
    lc = np.linalg.norm(c, axis=1)[:, None]
    side = -np.sign(np.sum(a * c, axis=1, keepdims=True))
    line = a / la - side * c / lc
    line /= np.linalg.norm(line, axis=1, keepdims=True)
    projector = np.eye(3) - line[:, :, None] * line[:, None, :]
    coefficient = np.concatenate([1 / la, -1 / la - side / lc, side / lc], axis=1)
    for p in range(3):
        for q in range(3):
            outer = (weights * coefficient[:, p] * coefficient[:, q])[:, None, None] * projector
            np.add.at(blocks, (bends[:, p], bends[:, q]), outer)


def _sine(a, c):
    """Sine of the angle between rows of a and c."""
    cross = np.linalg.norm(np.cross(a, c), axis=1)
    return cross / (np.linalg.norm(a, axis=1) * np.linalg.norm(c, axis=1))


def model_hessian(atoms, fixed=None):
    """Lindh (1995) model Hessian in Cartesian coordinates, eV/Å².

    H = Σ_q k_q b_q b_qᵀ over internal coordinates q with gradient b_q = ∂q/∂x:
    stretches of every atom pair (k = k_r ρ_ij), bends (k_f ρ_ij ρ_jk) and torsions
    (k_t ρ_ij ρ_jk ρ_kl). H, C, N and O use Lindh's α and r_ref table; pairs with any other
    element use α = 1 Å⁻² and the sum of covalent radii. Bends within 5° of a straight line
    bend both ways about the line and carry no torsions; such bends that are not exactly
    straight are the one place where rigid rotations leave a small residual.

    Parameters
    ----------
    atoms : ase.Atoms
    fixed : array_like, optional
        Mask or indices of fixed atoms, whose rows and columns are zeroed; None reads FixAtoms.

    Returns
    -------
    ndarray, shape (3N, 3N)
        Symmetric and positive semi-definite; rigid motions are in its null space.
    """
    mask = atoms_fixed_mask(atoms, fixed)
    n = len(atoms)
    vectors = _pair_vectors(atoms)
    distances = np.linalg.norm(vectors, axis=-1)
    close = np.argwhere(np.triu(distances < 1e-6, 1))
    if len(close):
        raise InputError(f"atoms {close[0][0]} and {close[0][1]} sit on the same point")
    rho = _lindh_weights(atoms, distances)
    blocks = np.zeros((n, n, 3, 3))

    left, right = np.triu_indices(n, 1)
    unit = vectors[left, right] / distances[left, right, None]
    _add_terms(blocks, np.stack([left, right], axis=1), K_STRETCH * rho[left, right],
               np.stack([-unit, unit], axis=1))

    # Bends i-j-k with i < k around each centre j.
    ends_i, ends_k = np.triu_indices(n, 1)
    bends = [np.empty((0, 3), dtype=int)]
    for centre in range(n):
        weight = rho[ends_i, centre] * rho[centre, ends_k]
        keep = (weight > _NEGLIGIBLE) & (ends_i != centre) & (ends_k != centre)
        bends.append(np.stack([ends_i[keep], np.full(keep.sum(), centre), ends_k[keep]], axis=1))
    bends = np.concatenate(bends)
    a = vectors[bends[:, 1], bends[:, 0]]
    c = vectors[bends[:, 1], bends[:, 2]]
    weight = K_BEND * rho[bends[:, 0], bends[:, 1]] * rho[bends[:, 1], bends[:, 2]]
    bent = _sine(a, c) >= _SIN_LINEAR
    _add_terms(blocks, bends[bent], weight[bent], _bend_gradient(a[bent], c[bent]))
    _add_linear_bends(blocks, bends[~bent], weight[~bent], a[~bent], c[~bent])

    # Torsions i-j-k-l, each counted once (j < k), none through a near-linear angle.
    torsions = [np.empty((0, 4), dtype=int)]
    for j, k in zip(*np.nonzero(np.triu(rho > _NEGLIGIBLE, 1))):
        keep = rho[:, j, None] * rho[j, k] * rho[None, k, :] > _NEGLIGIBLE
        keep[[j, k], :] = False
        keep[:, [j, k]] = False
        np.fill_diagonal(keep, False)
        first, last = np.nonzero(keep)
        torsions.append(np.stack([first, np.full_like(first, j), np.full_like(first, k), last],
                                 axis=1))
    ti, tj, tk, tl = np.concatenate(torsions).T
    f, g, h = vectors[tj, ti], vectors[tk, tj], vectors[tk, tl]
    keep = (_sine(f, g) >= _SIN_LINEAR) & (_sine(h, g) >= _SIN_LINEAR)
    ti, tj, tk, tl, f, g, h = (x[keep] for x in (ti, tj, tk, tl, f, g, h))
    _add_terms(blocks, np.stack([ti, tj, tk, tl], axis=1),
               K_TORSION * rho[ti, tj] * rho[tj, tk] * rho[tk, tl], _torsion_gradient(f, g, h))

    blocks[mask] = 0.0
    blocks[:, mask] = 0.0
    return blocks.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n)


def lowest_model_mode(atoms, fixed=None):
    """Softest mode of the model Hessian, a deterministic initial dimer orientation.

    With no fixed atoms, rigid translations (and rotations, without a periodic cell) are
    projected out first; otherwise the search is restricted to the moving coordinates.

    Parameters
    ----------
    atoms : ase.Atoms
    fixed : array_like, optional
        Mask or indices of fixed atoms; None reads FixAtoms.

    Returns
    -------
    ndarray, shape (N, 3)
        Unit vector, zero on fixed atoms, with its largest-magnitude component positive.
    """
    mask = atoms_fixed_mask(atoms, fixed)
    if mask.all():
        raise InputError("every atom is fixed, so there is no mode")
    if len(atoms) == 1:
        raise InputError("a single free atom has no internal motion")
    hessian = model_hessian(atoms, mask)
    basis = np.eye(3 * len(atoms))[:, np.repeat(~mask, 3)] @ internal_basis(atoms, fixed=mask)
    _, vectors = np.linalg.eigh(basis.T @ hessian @ basis)
    mode = basis @ vectors[:, 0]
    mode /= np.linalg.norm(mode)
    if mode[np.argmax(np.abs(mode))] < 0:
        mode = -mode
    return mode.reshape(-1, 3)


def initial_mode(atoms, mode=None, fixed=None, seed=SEED):
    """Initial dimer orientation and the displacement that goes with it.

    Parameters
    ----------
    atoms : ase.Atoms
    mode : None, str or array_like
        'random' (or None): the paper's least-coordinated random displacement, which the caller
        adds to the starting point. 'hessian': the lowest model-Hessian mode, no displacement.
        An array of shape (N, 3) or (3N,): that direction, no displacement.
    fixed : array_like, optional
        Mask or indices of fixed atoms; None reads FixAtoms.
    seed : int
        Seed for 'random'.

    Returns
    -------
    displacement, mode : ndarray, shape (N, 3)
        The mode is a unit vector and zero on fixed atoms.
    """
    mask = atoms_fixed_mask(atoms, fixed)
    n = len(atoms)
    if mode is None or isinstance(mode, str):
        choice = "random" if mode is None else mode
        if choice == "random":
            return random_displacement(atoms, seed=seed, fixed=mask)
        if choice == "hessian":
            return np.zeros((n, 3)), lowest_model_mode(atoms, mask)
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODE_CHOICES)} "
                         f"or give an array of shape ({n}, 3)")
    try:
        direction = np.array(mode, dtype=float)
    except (TypeError, ValueError) as error:
        raise InputError(f"mode is neither one of {', '.join(MODE_CHOICES)} "
                         f"nor an array of numbers: {error}") from None
    if direction.shape == (3 * n,):
        direction = direction.reshape(n, 3)
    if direction.shape != (n, 3):
        raise InputError(f"mode has shape {direction.shape}, expected ({n}, 3) or ({3 * n},)")
    if not np.isfinite(direction).all():
        raise InputError("mode has non-finite entries")
    direction[mask] = 0.0
    norm = np.linalg.norm(direction)
    if norm == 0.0:
        raise InputError("mode is zero on the moving atoms")
    return np.zeros((n, 3)), direction / norm
