import re

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import molecule
from ase.constraints import FixAtoms
from ase.data import covalent_radii
from scipy.spatial.transform import Rotation

from gprdimer.errors import InputError
from gprdimer.modes import (K_STRETCH, SEED, _bend_gradient, _torsion_gradient, initial_mode,
                            lowest_model_mode, model_hessian, random_displacement)


def _grid(n, spacing):
    """n³ atoms on a cubic grid; the corner atom 0 is least coordinated (ties go to it)."""
    points = np.array(np.meshgrid(*[np.arange(n)] * 3, indexing='ij')).reshape(3, -1).T
    return Atoms(f'Ar{n**3}', positions=spacing * points)


def _rigid(atoms):
    """Three translations and three rotations about the origin, rows of length 3N."""
    eye = np.eye(3)
    moves = [np.tile(eye[k], len(atoms)) for k in range(3)]
    moves += [np.cross(eye[k], atoms.positions).ravel() for k in range(3)]
    return np.array(moves)


def _finite_difference(function, positions, step=1e-6):
    gradient = np.zeros_like(positions)
    for index in np.ndindex(positions.shape):
        shifted = positions.copy()
        shifted[index] += step
        ahead = function(shifted)
        shifted[index] -= 2 * step
        gradient[index] = (ahead - function(shifted)) / (2 * step)
    return gradient


# --- random displacement (eOn's least-coordinated recipe) ---

def test_random_displacement_is_reproducible_and_seeded():
    atoms = molecule('CH3CH2OH')
    first, mode = random_displacement(atoms)
    again, _ = random_displacement(atoms, seed=SEED)
    other, _ = random_displacement(atoms, seed=SEED + 1)
    assert SEED == 706253457
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    np.testing.assert_allclose(mode, first / np.linalg.norm(first))


def test_random_displacement_has_the_requested_spread():
    atoms = _grid(8, 0.6)
    displacement, _ = random_displacement(atoms, magnitude=0.02)
    moved = displacement[np.any(displacement != 0, axis=1)]
    assert moved.size > 300
    assert abs(moved.mean()) < 0.2 * 0.02
    assert moved.std() == pytest.approx(0.02, rel=0.1)


def test_only_the_least_coordinated_atom_and_its_neighbours_move():
    atoms = _grid(6, 1.0)
    distances = atoms.get_all_distances()
    displacement, _ = random_displacement(atoms, radius=2.5)
    moved = np.any(displacement != 0, axis=1)
    np.testing.assert_array_equal(moved, distances[0] <= 2.5)

    # A fixed corner is neither the epicentre nor moved; the next corner (index 5) takes over.
    displacement, _ = random_displacement(atoms, radius=2.5, fixed=[0, 1])
    moved = np.any(displacement != 0, axis=1)
    expected = distances[5] <= 2.5
    expected[[0, 1]] = False
    np.testing.assert_array_equal(moved, expected)


def test_random_displacement_picks_an_isolated_adatom():
    atoms = _grid(4, 1.0)
    atoms.append('Ar')
    atoms.positions[-1] = [-3.0, 1.5, 1.5]  # 3 Å from the face: no neighbour within 2.9 Å
    displacement, _ = random_displacement(atoms, radius=2.9)
    assert np.flatnonzero(np.any(displacement != 0, axis=1)).tolist() == [len(atoms) - 1]


def test_random_displacement_reads_fixatoms_and_rejects_all_fixed():
    atoms = molecule('CH3OH')
    atoms.set_constraint(FixAtoms(indices=[0, 1]))
    displacement, mode = random_displacement(atoms, radius=10.0)
    assert not displacement[[0, 1]].any() and not mode[[0, 1]].any()
    assert np.all(np.any(displacement[2:] != 0, axis=1))
    with pytest.raises(InputError, match='every atom is fixed'):
        random_displacement(atoms, fixed=np.ones(len(atoms), dtype=bool))


# --- model Hessian ---

def test_stretch_constant_matches_lindh_table_and_units():
    # H–H at Lindh's r_ref (1.35 Bohr) gives k_r exactly; elsewhere k_r exp(α (r_ref² − r²)).
    for bohr, factor in [(1.35, 1.0), (1.40, np.exp(1.35**2 - 1.40**2))]:
        h2 = Atoms('H2', positions=[[0, 0, 0], [0, 0, bohr * units.Bohr]])
        hessian = model_hessian(h2)
        k = 0.45 * units.Hartree / units.Bohr**2 * factor
        assert K_STRETCH == pytest.approx(0.45 * units.Hartree / units.Bohr**2)
        assert hessian[2, 2] == pytest.approx(k) and hessian[2, 5] == pytest.approx(-k)
        assert np.count_nonzero(np.abs(hessian) > 1e-12) == 4  # a diatomic has only the stretch


@pytest.mark.parametrize('name', ['H2O', 'CH3OH'])
def test_model_hessian_is_symmetric_psd_with_rigid_null_space(name):
    atoms = molecule(name)
    hessian = model_hessian(atoms)
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)
    eigenvalues = np.linalg.eigvalsh(hessian)
    scale = eigenvalues[-1]
    assert eigenvalues[0] > -1e-10 * scale
    assert np.all(np.abs(eigenvalues[:6]) < 1e-10 * scale)
    assert eigenvalues[6] > 0.5  # eV/Å²: every internal motion has some stiffness
    np.testing.assert_allclose(hessian @ _rigid(atoms).T, 0.0, atol=1e-10 * scale)


@pytest.mark.parametrize('name', ['CO2', 'C2H2'])
def test_linear_molecules_keep_their_bends(name):
    eigenvalues = np.linalg.eigvalsh(model_hessian(molecule(name)))
    assert np.all(np.abs(eigenvalues[:5]) < 1e-10 * eigenvalues[-1])
    assert eigenvalues[5] > 1.0


def test_model_hessian_follows_rigid_rotation_and_translation():
    atoms = molecule('CH3OH')
    hessian = model_hessian(atoms)
    rotation = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()
    moved = atoms.copy()
    moved.positions = atoms.positions @ rotation.T + [1.0, -2.0, 0.5]
    blocks = np.kron(np.eye(len(atoms)), rotation)
    np.testing.assert_allclose(model_hessian(moved), blocks @ hessian @ blocks.T, atol=1e-10)


def test_other_elements_fall_back_to_covalent_radii():
    bond = covalent_radii[16] + covalent_radii[1]  # S–H at its reference distance gives k_r
    hessian = model_hessian(Atoms('SH', positions=[[0, 0, 0], [0, 0, bond]]))
    assert hessian[2, 2] == pytest.approx(K_STRETCH)

    atoms = molecule('CH3SH')
    hessian = model_hessian(atoms)
    eigenvalues = np.linalg.eigvalsh(hessian)
    assert np.all(np.isfinite(hessian))
    assert np.all(np.abs(eigenvalues[:6]) < 1e-10 * eigenvalues[-1]) and eigenvalues[6] > 0.1


def test_fixed_rows_and_columns_are_zero():
    atoms = molecule('CH3OH')
    full = model_hessian(atoms)
    hessian = model_hessian(atoms, fixed=[1])
    moving = np.repeat(np.arange(len(atoms)) != 1, 3)
    assert not hessian[~moving].any() and not hessian[:, ~moving].any()
    np.testing.assert_array_equal(hessian[np.ix_(moving, moving)], full[np.ix_(moving, moving)])


def test_bend_and_torsion_gradients_match_finite_differences():
    positions = np.array([[0.1, 1.0, 0.2], [0.0, 0.0, 0.0], [1.4, 0.1, -0.1], [1.6, -0.8, 0.7]])

    def angle(p):
        return np.deg2rad(Atoms('H4', p).get_angle(0, 1, 2))

    def dihedral(p):
        return np.deg2rad(Atoms('H4', p).get_dihedral(0, 1, 2, 3))

    p = positions
    bend = _bend_gradient((p[0] - p[1])[None], (p[2] - p[1])[None])[0]
    np.testing.assert_allclose(bend, _finite_difference(angle, p)[:3], atol=1e-8)
    torsion = _torsion_gradient((p[0] - p[1])[None], (p[1] - p[2])[None], (p[3] - p[2])[None])[0]
    np.testing.assert_allclose(torsion, _finite_difference(dihedral, p), atol=1e-8)


def test_coincident_atoms_are_rejected():
    with pytest.raises(InputError, match='atoms 0 and 1 sit on the same point'):
        model_hessian(Atoms('H3', positions=[[0, 0, 0], [0, 0, 0], [0, 0, 1]]))


# --- lowest model mode ---

def test_lowest_model_mode_is_an_internal_eigenvector():
    atoms = molecule('CH3OH')
    mode = lowest_model_mode(atoms)
    hessian = model_hessian(atoms)
    flat = mode.ravel()
    assert np.linalg.norm(flat) == pytest.approx(1.0)
    np.testing.assert_allclose(_rigid(atoms) @ flat, 0.0, atol=1e-10)
    curvature = flat @ hessian @ flat
    np.testing.assert_allclose(hessian @ flat, curvature * flat, atol=1e-8)
    assert curvature == pytest.approx(np.linalg.eigvalsh(hessian)[6])
    assert flat[np.argmax(np.abs(flat))] > 0
    np.testing.assert_array_equal(lowest_model_mode(atoms), mode)


def test_lowest_model_mode_with_fixed_atoms_stays_in_moving_space():
    atoms = molecule('CH3OH')
    mode = lowest_model_mode(atoms, fixed=[0, 1]).ravel()
    moving = np.repeat(np.arange(len(atoms)) >= 2, 3)
    assert not mode[~moving].any()
    block = model_hessian(atoms)[np.ix_(moving, moving)]
    assert mode[moving] @ block @ mode[moving] == pytest.approx(np.linalg.eigvalsh(block)[0])


def test_periodic_cell_projects_translations_only():
    atoms = molecule('CH3OH', vacuum=4.0)
    atoms.pbc = True
    flat = lowest_model_mode(atoms).ravel()
    np.testing.assert_allclose(_rigid(atoms)[:3] @ flat, 0.0, atol=1e-10)


@pytest.mark.parametrize('hydrogen', [2, 3, 4, 5])
def test_stretched_bond_dominates_the_lowest_mode(hydrogen):
    # Methanol: atoms C0 O1 H2 H3(on O) H4 H5. Stretching one X–H bond by 0.5 Å weakens its
    # stretch, bends and torsions, so the softest mode moves that bond's atoms most.
    atoms = molecule('CH3OH')
    partner = 1 if hydrogen == 3 else 0
    bond = atoms.positions[hydrogen] - atoms.positions[partner]
    atoms.positions[hydrogen] += 0.5 * bond / np.linalg.norm(bond)
    largest = np.argmax(np.linalg.norm(lowest_model_mode(atoms), axis=1))
    assert largest in (hydrogen, partner)


# --- dispatcher ---

def test_initial_mode_dispatches():
    atoms = molecule('CH3OH')
    for choice in (None, 'random'):
        displacement, mode = initial_mode(atoms, choice, seed=7)
        expected = random_displacement(atoms, seed=7)
        np.testing.assert_array_equal(displacement, expected[0])
        np.testing.assert_array_equal(mode, expected[1])
    displacement, mode = initial_mode(atoms, 'hessian')
    assert not displacement.any()
    np.testing.assert_array_equal(mode, lowest_model_mode(atoms))


def test_initial_mode_takes_a_given_direction():
    atoms = molecule('CH3OH')
    atoms.set_constraint(FixAtoms(indices=[0]))
    direction = np.arange(3.0 * len(atoms)) + 1
    displacement, mode = initial_mode(atoms, direction)
    assert mode.shape == (len(atoms), 3) and not displacement.any()
    assert not mode[0].any()
    assert np.linalg.norm(mode) == pytest.approx(1.0)
    expected = direction.reshape(-1, 3).copy()
    expected[0] = 0
    np.testing.assert_allclose(mode, expected / np.linalg.norm(expected))
    _, same = initial_mode(atoms, direction.reshape(-1, 3), fixed=np.arange(6) == 0)
    np.testing.assert_array_equal(same, mode)


@pytest.mark.parametrize('mode, message', [
    (np.ones((4, 3)), 'mode has shape (4, 3), expected (5, 3)'),
    (np.ones(14), 'mode has shape (14,), expected (5, 3)'),
    (np.full((5, 3), np.nan), 'mode has non-finite entries'),
    (np.eye(5, 3), 'mode is zero on the moving atoms'),
    ('softest', "unknown mode 'softest'; choose one of random, hessian"),
    ([['x'] * 3] * 5, 'mode is neither one of random, hessian nor an array of numbers'),
])
def test_initial_mode_rejects_bad_modes(mode, message):
    atoms = molecule('CH4')
    with pytest.raises(InputError, match=re.escape(message)):
        initial_mode(atoms, mode, fixed=[0, 1, 2])


def test_bad_fixed_is_rejected():
    atoms = molecule('CH4')
    with pytest.raises(InputError, match=re.escape('fixed mask has shape (3,), expected (5,)')):
        initial_mode(atoms, 'hessian', fixed=np.zeros(3, dtype=bool))
    with pytest.raises(InputError, match='outside 0..4'):
        initial_mode(atoms, 'hessian', fixed=[7])
