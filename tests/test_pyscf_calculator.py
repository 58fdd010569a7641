import numpy as np
import pytest
from ase import Atoms
from ase.units import Bohr, Hartree
from pyscf import dft, gto, lib, scf

from gprdimer.calculators import PySCFCalculator, SCFConvergenceError
from gprdimer.data import load_sella500, read_reference
from gprdimer.errors import InputError


def water():
    return Atoms('OH2', positions=[(0.0, 0.0, 0.1), (0.0, 0.78, -0.5), (0.05, -0.74, -0.45)])


def formyl():
    # A bent radical: a non-degenerate singly occupied orbital, so the UHF/UKS state is unique.
    return Atoms('CHO', positions=[(0.0, 0.0, 0.0), (0.02, 1.08, -0.5), (0.0, 0.0, 1.2)])


def formaldehyde():
    return Atoms('COH2', positions=[(0.0, 0.0, 0.0), (0.0, 0.0, 1.21),
                                    (0.0, 0.94, -0.58), (0.02, -0.93, -0.6)])


@pytest.fixture(scope='module')
def smallest(sella500):
    """The three smallest singlets and doublets, with their published initial energies."""
    reference = read_reference(sella500, 'sella')
    by_size = sorted(load_sella500(sella500), key=lambda r: (len(r.atoms), r.name))
    picked = {}
    for spin in ('singlets', 'doublets'):
        picked[spin] = [(r, reference[r.name]['init_energy'])
                        for r in by_size if r.name.startswith(spin)][:3]
    return picked


@pytest.mark.parametrize('spin', ['singlets', 'doublets'])
@pytest.mark.parametrize('rank', [0, 1, 2])
def test_matches_published_initial_energy(smallest, spin, rank):
    reaction, init_energy = smallest[spin][rank]
    calc = PySCFCalculator(method='HF', basis='3-21G', charge=reaction.charge,
                           multiplicity=reaction.multiplicity, label=reaction.name, threads=1)
    energy = calc.get_potential_energy(reaction.atoms)
    assert energy == pytest.approx(init_energy, abs=1e-3), reaction.name


def test_smallest_doublets_include_the_one_plain_diis_cannot_converge(smallest):
    # doublets/000 is the case the first-point survey exists for; the test above must cover it.
    assert 'doublets/000' in [r.name for r, _ in smallest['doublets']]


@pytest.mark.parametrize('atoms, multiplicity', [(water(), 1), (formyl(), 2)],
                         ids=['RHF-H2O', 'UHF-HCO'])
def test_forces_match_central_differences(atoms, multiplicity):
    calc = PySCFCalculator(basis='sto-3g', multiplicity=multiplicity, conv_tol=1e-11)
    atoms.calc = calc
    forces = atoms.get_forces()
    step = 1e-3
    numeric = np.zeros_like(forces)
    for i in range(len(atoms)):
        for k in range(3):
            energies = []
            for sign in (1, -1):
                displaced = atoms.copy()
                displaced.positions[i, k] += sign * step
                energies.append(calc.get_potential_energy(displaced))
            numeric[i, k] = -(energies[0] - energies[1]) / (2 * step)
    assert np.abs(forces).max() > 0.1  # not an equilibrium geometry, so the check has teeth
    np.testing.assert_allclose(forces, numeric, atol=1e-4)


def _pyscf_energy(atoms, build, basis, charge, spin):
    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions / Bohr)],
                unit='Bohr', basis=basis, charge=charge, spin=spin, verbose=0)
    # Newton, because plain DIIS does not converge HCO/STO-3G at this geometry.
    mf = build(mol).newton()
    mf.conv_tol = 1e-10
    energy = mf.kernel() * Hartree
    assert mf.converged
    return energy


@pytest.mark.parametrize('atoms, kwargs, build', [
    (water(), dict(), scf.RHF),
    (formyl(), dict(multiplicity=2), scf.UHF),
    (formyl(), dict(multiplicity=2, method='ROHF'), scf.ROHF),
    (water(), dict(xc='lda,vwn'), lambda mol: dft.RKS(mol, xc='lda,vwn')),
    # The water cation: a cheaper radical for the grid-bound UKS survey, and a charged system.
    (water(), dict(charge=1, multiplicity=2, xc='lda,vwn'), lambda mol: dft.UKS(mol, xc='lda,vwn')),
    (water(), dict(density_fit=True), lambda mol: scf.RHF(mol).density_fit()),
], ids=['RHF', 'UHF', 'ROHF', 'RKS', 'UKS', 'DF-RHF'])
def test_method_selection_matches_pyscf(atoms, kwargs, build):
    calc = PySCFCalculator(basis='sto-3g', conv_tol=1e-10, **kwargs)
    p = calc.parameters
    expected = _pyscf_energy(atoms, build, 'sto-3g', p.charge, p.multiplicity - 1)
    assert calc.get_potential_energy(atoms) == pytest.approx(expected, abs=1e-6)


def test_density_reuse_cuts_scf_cycles():
    # A 0.01 Å step along a random direction of the whole molecule: the dimer's image separation.
    start = formaldehyde()
    rng = np.random.default_rng(0)
    cold_cycles = reused_cycles = 0
    for _ in range(3):
        direction = rng.normal(size=start.positions.shape)
        moved = start.copy()
        moved.positions += 0.01 * direction / np.linalg.norm(direction)

        cold = PySCFCalculator(basis='3-21G')
        cold_energy = cold.get_potential_energy(moved)
        reused = PySCFCalculator(basis='3-21G')
        reused.get_potential_energy(start)
        assert reused.get_potential_energy(moved) == pytest.approx(cold_energy, abs=1e-6)
        cold_cycles += cold.scf_cycles
        reused_cycles += reused.scf_cycles
    assert 0 < reused_cycles < cold_cycles


def test_threads_apply_only_during_the_call():
    before = lib.num_threads()
    PySCFCalculator(basis='sto-3g', threads=1).get_potential_energy(water())
    assert lib.num_threads() == before


@pytest.mark.parametrize('multiplicity, words', [(2, 'multiplicity 2'), (13, 'multiplicity 13')])
def test_impossible_multiplicity(multiplicity, words):
    calc = PySCFCalculator(basis='sto-3g', multiplicity=multiplicity)
    with pytest.raises(InputError, match=f'H2O: {words} is impossible for 10 electrons'):
        calc.get_potential_energy(water())


def test_element_missing_from_basis():
    atoms = Atoms('UH', positions=[(0, 0, 0), (0, 0, 2.0)])
    message = r"HU: basis '3-21G' has no functions for element U \(atom 0\)"
    with pytest.raises(InputError, match=message):
        PySCFCalculator(basis='3-21G').get_potential_energy(atoms)


def test_atoms_too_close():
    atoms = water()
    atoms.positions[2] = atoms.positions[0] + (0.0, 0.0, 0.2)
    with pytest.raises(InputError, match=r'atoms 0 \(O\) and 2 \(H\) are 0.200 Å apart'):
        PySCFCalculator(basis='sto-3g', label='squashed').get_potential_energy(atoms)


@pytest.mark.parametrize('kwargs, field', [
    (dict(method='MP2'), 'method'),
    (dict(method='RHF', multiplicity=2), 'multiplicity'),
    (dict(xc='not-a-functional'), 'xc'),
    (dict(threads=0), 'threads'),
])
def test_bad_settings(kwargs, field):
    with pytest.raises(InputError, match=field):
        PySCFCalculator(**kwargs)


def test_unconverged_scf_names_the_system():
    # One cycle per stage cannot reach 1e-9 Ha from the minao guess, so every fallback fails.
    calc = PySCFCalculator(basis='3-21G', max_cycle=1, label='formaldehyde-test')
    with pytest.raises(SCFConvergenceError,
                       match=r'formaldehyde-test: RHF .* last energy change -?\d\.\d+e[-+]\d+ Ha'):
        calc.get_potential_energy(formaldehyde())
    assert 'energy' not in calc.results
