"""The acceptance test: only a first-order saddle is reported converged.

Analytic surfaces with a known answer first (a soft first-order saddle, a second-order saddle,
a flat direction), then real ones on GFN2-xTB (water at its minimum, He2 at 6 Å, two molecules
8 Å apart), the Ritz check against full Hessians, and PySCF's analytic Hessian against finite
differences.
"""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.constraints import FixAtoms
from ase.optimize import BFGS

from gprdimer import Dimer, GPRDimer
from gprdimer.hessian import true_hessian
from gprdimer.saddle_check import MAX_PROBES, subspace_check
from gprdimer.vibrations import IMAGINARY_CM, MassWeighting, harmonic_analysis, to_wavenumber

FMAX = 0.01
METHODS = {"gprd": GPRDimer, "dimer": Dimer}


class OneAtomSurface(Calculator):
    """E(x, y, z) of atom 0 (a hydrogen) alone; the three fixed helium atoms around it only give
    the GP its inverse distances. `kind`: 'soft' (a first-order saddle at 164i cm⁻¹, curvature
    -0.1 eV/Å²), 'second' (a second-order saddle at the origin, a ring of minima around it
    and no first-order saddle anywhere)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x, y, z = self.atoms.positions[0]
        c = 0.5  # eV/Å², stiff directions
        if self.kind == "soft":
            a, b = 0.05, 0.03
            energy = -a * x**2 + b * x**4 + c * (y**2 + z**2)
            gradient = [-2 * a * x + 4 * b * x**3, 2 * c * y, 2 * c * z]
        else:
            a, b = 0.5, 0.2
            r2 = x**2 + y**2
            energy = -a * r2 + b * r2**2 + c * z**2
            gradient = [(-2 * a + 4 * b * r2) * x, (-2 * a + 4 * b * r2) * y, 2 * c * z]
        forces = np.zeros((len(self.atoms), 3))
        forces[0] = -np.array(gradient)
        self.results = {"energy": energy, "forces": forces}


def one_atom(kind, start):
    atoms = Atoms("HHe3", positions=[start, [3, 0, 0], [0, 3, 0], [0, 0, 3]])
    atoms.set_constraint(FixAtoms(indices=[1, 2, 3]))
    atoms.calc = OneAtomSurface(kind)
    return atoms


def search(method, atoms, mode, **keywords):
    opt = METHODS[method](atoms, mode=mode, logfile=None, **keywords)
    opt.run(fmax=FMAX, steps=200)
    return opt.result


def hydrogen_check(model, gradient_at, tau=(1.0, 0.0, 0.0)):
    """The check on one hydrogen's three coordinates (the helium atoms fixed) at the origin, the
    dimer's image 0.01 Å along the unit vector `tau` (x unless given), `gradient_at` the true
    gradient."""
    weighting = MassWeighting(one_atom("soft", [0, 0, 0]), fixed=[1, 2, 3])
    step = 0.01
    tau = np.asarray(tau, dtype=float)
    return subspace_check(weighting, np.zeros(3), model, [(tau, gradient_at(step * tau))],
                          gradient_at, step)


def cubic_reaction_check(quadratic, model):
    """The check on two hydrogens (six coordinates) with E = ½ xᵀQx + cubic/2 x0² (stiff·x):
    forward differences along the reaction mode x0, whose curvature changes along stiff
    directions, leave its Ritz pair a residual that no probe removes."""
    atoms = Atoms("H2He3", positions=[[0, 0, 0], [1, 0, 0], [4, 0, 0], [0, 4, 0], [0, 0, 4]])
    weighting = MassWeighting(atoms, fixed=[2, 3, 4])
    cubic, stiff = 40.0, np.array([0, 0, 0, 1, 1, 1]) / np.sqrt(3)

    def gradient_at(dx):
        cubic_part = 0.5 * cubic * dx[0] ** 2 * stiff
        cubic_part[0] += cubic * dx[0] * (stiff @ dx)
        return quadratic @ dx + cubic_part

    step = 0.01
    tau = np.eye(6)[0]
    return subspace_check(weighting, np.zeros(6), model, [(tau, gradient_at(step * tau))],
                          gradient_at, step)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_soft_first_order_saddle_is_reported_converged(method):
    mode = np.zeros((4, 3))
    mode[0] = [1.0, 0.3, 0.0]
    result = search(method, one_atom("soft", [0.4, 0.2, -0.1]), mode)
    assert result.converged, result.stop_reason
    assert result.n_imaginary == 1
    # forces under fmax reach 0.1 Å out along so soft a mode
    assert np.abs(result.positions[0]).max() < 0.1
    assert result.curvature == pytest.approx(-0.1, abs=0.02)  # along the true mode, x
    assert abs(result.mode[0, 0]) > 0.99


@pytest.mark.parametrize("method", list(METHODS))
def test_a_second_order_saddle_is_never_reported_converged(method):
    mode = np.zeros((4, 3))
    mode[0] = [1.0, 0.0, 0.0]
    atoms = one_atom("second", [0.0, 0.0, 0.0])  # at the second-order saddle, forces zero
    result = search(method, atoms, mode)
    assert not result.converged
    assert result.stop_reason.startswith("not a first-order saddle") or \
        "no progress" in result.stop_reason or "stalled" in result.stop_reason, result.stop_reason
    assert result.n_imaginary != 1


def test_the_dimer_curvature_alone_would_have_taken_a_flat_direction():
    """The old acceptance took any negative curvature along the dimer: here -5e-5 eV/Å²."""
    weighting = MassWeighting(one_atom("soft", [0, 0, 0]), fixed=[1, 2, 3])
    hessian = np.diag([-1e-4, 1.0, 1.0])  # a flat x and two stiff directions
    g0 = np.zeros(3)
    step = 0.01
    tau = np.array([1.0, 0.0, 0.0])
    calls = []

    def gradient_at(dx):
        calls.append(dx)
        return hessian @ dx

    check = subspace_check(weighting, g0, hessian, [(tau, hessian @ (step * tau))],
                           gradient_at, step)
    assert check.n_imaginary == 0 and not check.first_order
    assert check.wavenumbers[0] == pytest.approx(to_wavenumber(-1e-4 / 1.008), rel=1e-6)
    assert check.verdict().startswith("0 imaginary modes")
    # the softest mode beyond the dimer's is measured whatever the model says; nothing more
    assert len(calls) == 1 and abs(calls[0][0]) < 1e-12


@pytest.mark.parametrize("quartic, imaginary", [(10.0, 0), (0.03, 1)])
def test_a_mode_near_the_threshold_counts_only_if_it_stays_negative_over_a_finite_step(
        quartic, imaginary):
    """E = -0.0075 x² + b x⁴ along a hydrogen's x: 61i cm⁻¹ at the origin either way. With
    b = 10 the well is 0.02 Å wide (a floppy libration; positive curvature over 0.05 Å), with
    b = 0.03 the barrier is a real one."""
    stiff = 1.0

    def gradient_at(dx):
        x, y, z = dx
        return np.array([-0.015 * x + 4 * quartic * x**3, stiff * y, stiff * z])

    check = hydrogen_check(np.diag([-0.015, stiff, stiff]), gradient_at)
    assert check.n_imaginary == imaginary
    assert check.calls == 3  # the softest mode beyond the dimer's, then x ± 0.05 Å


def test_a_second_imaginary_mode_near_the_threshold_counts_as_measured():
    """A 164i cm⁻¹ reaction mode along x and the narrow 61i well of the test above along y: a
    frequency calculation counts the second mode, so the check does too, and no finite step
    along it may turn the point into an accepted first-order saddle."""
    stiff = 1.0

    def gradient_at(dx):
        x, y, z = dx
        return np.array([-0.1 * x + 0.12 * x**3, -0.015 * y + 40.0 * y**3, stiff * z])

    check = hydrogen_check(np.diag([-0.1, -0.015, stiff]), gradient_at)
    assert check.n_imaginary == 2
    assert check.calls == 1  # y only: neither mode is measured again over a finite step


def test_a_pair_whose_side_of_the_threshold_is_decided_is_not_refined():
    """The reaction mode's pair keeps a large forward-difference residual (a cubic term along
    stiff directions), but its interval μ ± |r| lies far below the threshold: no probe can
    change the count there, and the check spends no call on it."""
    check = cubic_reaction_check(np.diag([-1.0, 0.5, 1.0, 2.0, 3.0, 4.0]),
                                 np.diag([-0.6, 0.5, 1.0, 2.0, 3.0, 4.0]))
    assert check.n_imaginary == 1
    assert check.calls == 1  # the always-measured softest mode beyond the dimer's, nothing more


def test_a_stiff_pair_whose_residual_the_model_calls_stiff_takes_no_probe():
    """The always-measured mode (0.5 eV/Å², 367 cm⁻¹) couples to a stiff one (3.0) that the
    model leaves out: its residual, 0.6, is larger than its distance to the threshold, but a
    probe along it would find the pair's value on span(s, r) at 0.26 or more even with half the
    model's gap (true: 0.36), far from the threshold. No call is spent on it."""
    true = np.array([[-0.5, 0.0, 0.0], [0.0, 0.5, 0.6], [0.0, 0.6, 3.0]])
    model = np.diag([-0.5, 0.5, 3.0])
    check = hydrogen_check(model, lambda dx: true @ dx)
    assert check.n_imaginary == 1
    assert check.calls == 1


def test_the_softest_mode_beyond_the_dimer_is_measured_even_where_the_model_calls_it_stiff():
    """A GP trained along a search path can swap modes (xTB singlets/059: the dimer on a 77i
    cm⁻¹ mode, the true 244i one at 347 cm⁻¹ in the model): the one always-measured mode
    shows the second-order saddle (and, the model being that wrong, the next mode is measured
    too)."""
    true = np.diag([-0.05, -0.5, 2.0])
    model = np.diag([-0.05, 1.0, 2.0])
    check = hydrogen_check(model, lambda dx: true @ dx)
    assert check.calls == 2 and check.n_imaginary == 2
    assert check.wavenumbers[0] == pytest.approx(to_wavenumber(-0.5 / 1.008), rel=1e-6)


def test_a_probe_that_contradicts_the_model_lets_the_next_stiff_mode_be_probed():
    """The model calls both modes beyond the dimer's stiff (1.0 and 1.5 eV/Å²); the first probe
    finds 0.2 (the model off by about 290 cm⁻¹ along that very direction), so the model's word
    on the stiffer one is not taken either, and its probe finds the second negative mode
    (xTB doublets/167). A model confirmed by its probe is believed: one call."""
    model = np.diag([-0.5, 1.0, 1.5])
    wrong = hydrogen_check(model, lambda dx: np.diag([-0.5, 0.2, -0.3]) @ dx)
    assert wrong.calls == 2 and wrong.n_imaginary == 2
    assert wrong.wavenumbers[:2] == pytest.approx(to_wavenumber(np.array([-0.5, -0.3]) / 1.008),
                                                  rel=1e-6)
    confirmed = hydrogen_check(model, lambda dx: np.diag([-0.5, 0.9, -0.3]) @ dx)
    assert confirmed.calls == 1 and confirmed.n_imaginary == 1


def test_the_reaction_modes_remainder_does_not_spend_the_probe_beyond_it():
    """The dimer sits 40° off the model's lowest mode: the probe of that mode's remainder
    measures the reaction mode, and the softest mode beyond it (the model's 1.0 eV/Å²,
    truly -0.3) is still measured. Had the remainder's probe counted as the one always spent,
    the check would have stopped with one imaginary mode."""
    true = np.diag([-0.5, 0.5, -0.3])
    tau = (np.cos(np.deg2rad(40)), np.sin(np.deg2rad(40)), 0.0)
    check = hydrogen_check(np.diag([-0.5, 0.6, 1.0]), lambda dx: true @ dx, tau)
    assert check.calls == 2 and check.n_imaginary == 2


def test_the_check_measures_the_modes_the_model_cannot_rule_out():
    """A model that puts a negative direction at small positive curvature: the probe finds it."""
    weighting = MassWeighting(one_atom("soft", [0, 0, 0]), fixed=[1, 2, 3])
    true = np.array([[-0.5, 0.0, 0.0], [0.0, -0.3, 0.0], [0.0, 0.0, 2.0]])
    model = np.diag([-0.5, 0.005, 2.0])
    step = 0.01
    tau = np.array([1.0, 0.0, 0.0])
    probed = []

    def gradient_at(dx):
        probed.append(dx / np.linalg.norm(dx))
        return true @ dx

    check = subspace_check(weighting, np.zeros(3), model, [(tau, true @ (step * tau))],
                           gradient_at, step)
    assert len(probed) == 1 and abs(probed[0][1]) == pytest.approx(1.0)
    assert check.n_imaginary == 2 and check.calls == 1
    expected = to_wavenumber(np.array([-0.5, -0.3]) / 1.008)
    assert check.wavenumbers[:2] == pytest.approx(expected, rel=1e-6)
    assert "2 imaginary modes" in check.verdict()


def test_a_mode_the_model_has_turned_is_followed_by_its_residual():
    """The model knows the soft direction, but the true second negative mode is turned 40° out
    of it: on the model's subspace it would look positive (one imaginary mode); the residual of
    that Ritz pair leads to the missing part, and the check finds both."""
    turn = np.deg2rad(40.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(turn), -np.sin(turn)],
                         [0, np.sin(turn), np.cos(turn)]])
    true = rotation @ np.diag([-0.5, -0.3, 2.0]) @ rotation.T
    model = np.diag([-0.5, 0.02, 2.0])
    check = hydrogen_check(model, lambda dx: true @ dx)
    assert check.calls == 2 and check.n_imaginary == 2
    assert check.wavenumbers[:2] == pytest.approx(to_wavenumber(np.array([-0.5, -0.3]) / 1.008),
                                                  rel=1e-6)


def test_a_soft_pair_is_refined_before_the_reaction_modes_forward_difference_residual():
    """Forward differences along a reaction mode whose curvature changes along stiff directions
    (a cubic term) leave its Ritz pair a residual that no probe removes; the second negative
    mode hides behind a soft pair with a smaller residual. The soft pair is refined first and
    the check finds both (refining the largest residual first ended at the first correction
    inside the span, one imaginary mode)."""
    turn = np.arcsin(np.sqrt(7 / 15))  # the soft pair on the model mode: 73 cm⁻¹
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    quadratic = np.diag([-1.0, 0.0, 0.0, 2.0, 3.0, 4.0])
    quadratic[1:3, 1:3] = rotation @ np.diag([-0.05, 0.1]) @ rotation.T
    check = cubic_reaction_check(quadratic, np.diag([-1.0, 0.02, 2.0, 2.0, 3.0, 4.0]))
    assert check.n_imaginary == 2
    assert check.wavenumbers[1] == pytest.approx(to_wavenumber(-0.05 / 1.008), rel=1e-6)


def test_residuals_that_no_probe_removes_stop_the_check_at_its_bound():
    """Eight free hydrogens whose true gradients carry noise (a floppy molecule's soft pairs under
    forward differences): every soft pair keeps a residual spanning the threshold, and the
    check stops after MAX_PROBES calls instead of probing on."""
    rng = np.random.default_rng(7)
    atoms = Atoms("H8", positions=rng.normal(scale=1.5, size=(8, 3)))
    weighting = MassWeighting(atoms, fixed=[])
    true = np.diag(np.full(24, 0.002))

    def gradient_at(dx):
        return true @ dx + rng.normal(scale=1e-4, size=24)

    step = 0.01
    tau = weighting.to_cartesian(np.eye(weighting.internal.shape[1])[:, :1])[0][:, 0]
    check = subspace_check(weighting, np.zeros(24), true, [(tau, gradient_at(step * tau))],
                           gradient_at, step)
    assert MAX_PROBES <= check.calls <= MAX_PROBES + 2  # two more where a mode is measured again


def test_ritz_values_of_a_full_subspace_are_the_harmonic_frequencies():
    """With every direction probed the check's values are the full analysis's, rigid motions
    and mass weighting included (a free bent triatomic, no fixed atoms)."""
    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    rng = np.random.default_rng(1)
    a = rng.normal(size=(9, 9))
    weighting = MassWeighting(atoms)
    # a Hessian with the rigid motions in its null space, like any molecule's
    basis = weighting.internal / weighting.sqrt_mass[:, None]
    hessian = basis @ (a @ a.T)[:3, :3] @ basis.T
    hessian = 0.5 * (hessian + hessian.T) - 0.3 * basis @ basis.T
    directions = [basis[:, i] / np.linalg.norm(basis[:, i]) for i in range(3)]
    step = 1e-3
    probes = [(d, hessian @ (step * d)) for d in directions]
    check = subspace_check(weighting, np.zeros(9), hessian, probes, lambda dx: hessian @ dx, step)
    full = harmonic_analysis(hessian, atoms)
    assert check.calls == 0
    assert check.wavenumbers == pytest.approx(full.wavenumbers, rel=1e-6, abs=1e-6)


def test_internal_basis_excludes_exactly_the_rigid_motions():
    from ase.build import molecule

    atoms = molecule("CH3OH")
    weighting = MassWeighting(atoms)
    assert weighting.internal.shape == (18, 12)
    centred = atoms.positions - atoms.get_center_of_mass()
    for rigid in (np.tile([0.2, -0.5, 1.0], (len(atoms), 1)), np.cross([0.3, 1.0, -0.2], centred)):
        assert np.abs(weighting.to_internal(rigid.ravel())).max() < 1e-10
    stretch = np.zeros_like(centred)
    stretch[0], stretch[1] = centred[0] - centred[1], centred[1] - centred[0]
    assert np.linalg.norm(weighting.to_internal(stretch.ravel())) > 0.5
    # a linear molecule has one rotation fewer, also when it is straight only to rounding
    co2 = Atoms("OCO", positions=[[-1.16, 0, 0], [0, 0, 0], [1.16, 1e-8, 0]])
    assert MassWeighting(co2).internal.shape == (9, 4)
    # and when a converged search left it bent by 2e-4 rad (an O-H-H saddle of xTB water): both
    # bends stay internal, or a second-order saddle would pass for a first-order one
    ohh = Atoms("OHH", positions=[[0, 0, 0], [0.9999, 2e-4, 0], [1.8949, 0, 0]])
    assert MassWeighting(ohh).internal.shape == (9, 4)
    bent = Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    assert MassWeighting(bent).internal.shape == (9, 3)
    # an atom held: nothing is rigid; a periodic cell: translations only
    assert MassWeighting(atoms, fixed=[0]).internal.shape == (15, 15)
    atoms.pbc, atoms.cell = True, np.eye(3) * 20
    assert MassWeighting(atoms).internal.shape == (18, 15)


# --- real molecules on GFN2-xTB ----------------------------------------------------------------

def xtb():
    pytest.importorskip("tblite.ase", reason="tblite not installed (extra gprdimer[xtb])")
    from gprdimer.calculators.xtb import XTBCalculator

    return XTBCalculator(method="GFN2-xTB", verbosity=0)


def relaxed_water(shift=(0.0, 0.0, 0.0)):
    atoms = Atoms("OH2", positions=np.array([[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]) + shift)
    atoms.calc = xtb()
    BFGS(atoms, logfile=None).run(fmax=1e-4, steps=200)
    return atoms


def water_pair():
    first, second = relaxed_water(), relaxed_water((8.0, 0.0, 0.0))
    pair = first + second
    pair.calc = xtb()
    return pair


def helium_pair():
    atoms = Atoms("He2", positions=[[0, 0, 0], [6.0, 0, 0]])
    atoms.calc = xtb()
    return atoms


@pytest.mark.parametrize("mode", ["random", "hessian"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("system", [relaxed_water, helium_pair, water_pair],
                         ids=["water-minimum", "he2-6A", "two-waters-8A"])
def test_minima_and_flat_directions_are_not_saddles(system, method, mode):
    atoms = system()
    result = search(method, atoms, mode)
    assert not result.converged, result
    if result.fmax < FMAX and result.n_imaginary is not None:
        assert result.n_imaginary != 1


def test_verify_hessian_adds_a_true_hessian_and_frequencies():
    atoms = Atoms("CNH", positions=[[0, 0, 0], [1.18, 0, 0], [0.55, 1.15, 0]])
    atoms.calc = xtb()
    mode = np.array([[0, 0, 0], [0, 0, 0], [1.0, 0.2, 0]])
    result = search("gprd", atoms, mode, verify="hessian")
    assert result.converged and result.n_imaginary == 1
    assert result.frequencies is not None and len(result.frequencies) == 3  # 3N - 6 for a bent triatomic
    assert result.frequencies[0] < -IMAGINARY_CM < 0 < result.frequencies[1]
    assert result.check_calls >= 18  # the 6N finite-difference calls, counted
    full = harmonic_analysis(true_hessian(atoms)[0], atoms)
    assert result.frequencies == pytest.approx(full.wavenumbers, abs=1.0)


def test_pyscf_analytic_hessian_agrees_with_finite_differences():
    pytest.importorskip("pyscf")
    from ase.calculators.calculator import Calculator as Base

    from gprdimer.calculators import PySCFCalculator

    atoms = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms.calc = scf = PySCFCalculator(basis="3-21G")
    analytic, calls = true_hessian(atoms)
    assert calls == 1

    class ForcesOnly(Base):  # the same surface, without get_hessian
        implemented_properties = ["energy", "forces"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            probe = self.atoms.copy()
            probe.calc = scf
            self.results = {"energy": probe.get_potential_energy(), "forces": probe.get_forces()}

    atoms.calc = ForcesOnly()
    differences, calls = true_hessian(atoms)
    assert calls == 1 + 18  # the point itself, then 6N displaced points
    assert np.abs(analytic - differences).max() < 0.02  # eV/Å², of entries up to 66
    assert harmonic_analysis(analytic, atoms).wavenumbers == pytest.approx(
        harmonic_analysis(differences, atoms).wavenumbers, abs=2.0)
