"""The xTB calculator's retry from a fresh guess, on a step where tblite's reuse of the previous
wavefunction does not converge."""

import numpy as np
import pytest
from ase import Atoms

pytest.importorskip("tblite.ase", reason="tblite not installed (extra gprdimer[xtb])")
from ase.calculators.calculator import CalculationFailed  # noqa: E402
from tblite.ase import TBLite  # noqa: E402

from gprdimer.calculators.factory import make_calculator  # noqa: E402

# Two consecutive calls of a GPR-dimer search on doublets/031 of the 500-reaction set (C4H7O,
# GFN2-xTB): from the first point's wavefunction the SCF at the second fails in 250 cycles.
NUMBERS = [8, 6, 6, 6, 6, 1, 1, 1, 1, 1, 1, 1]
BEFORE = [[1.4060561539015053, 0.8177728557819625, 2.207305599992379],
          [1.089447207732302, 1.0018672469475018, -0.919061142031856],
          [1.4429611399083517, -0.12413026743840119, -0.6988973103764854],
          [1.8195832950017141, -1.495638545468776, -0.42603062225845456],
          [1.2653153701296158, -2.013097024999078, 0.8894450276378317],
          [0.7782898135876798, 2.0117975240637707, -1.0434283241987128],
          [1.90153425840229, 1.229199383713027, 1.4978455203832584],
          [1.443235980424942, -2.1003203880420207, -1.246531504243256],
          [2.91278104078705, -1.6022212673198353, -0.40781421547806906],
          [0.1829150298532893, -1.9252974154064524, 0.8776747957237835],
          [1.4908211395852138, -3.058081963913537, 1.1114048864968893],
          [1.7002570823486742, -1.3964864263509555, 1.6797488731536352]]
AFTER = [[1.628297431335784, 1.25019270340553, 2.1380395943402117],
         [0.9863611547300721, 0.9983044382580099, -0.7182166700749207],
         [1.4106509639322706, -0.13165097772934842, -0.630148967335207],
         [1.8149999410297821, -1.5105086569782078, -0.4714790310890213],
         [1.250460856061669, -2.0407875299445073, 0.8556316947523046],
         [0.6560986668566522, 1.9868574180981524, -0.7041983532541004],
         [1.9559160848922932, 0.9672881567010807, 1.2438442078211271],
         [1.4570308579770754, -2.113457693979669, -1.3242746406252657],
         [2.906217695598412, -1.5696086073267428, -0.44697311696714737],
         [0.19196172289787922, -1.8068983800503011, 0.9483177723206395],
         [1.388951368577482, -3.1162423255767395, 0.9502399458396817],
         [1.7862507677728774, -1.5681248333100426, 1.6808791490727062]]


def energy_after_before(calc, max_iterations=None):
    atoms = Atoms(NUMBERS, positions=BEFORE)
    atoms.calc = calc
    atoms.get_potential_energy()
    if max_iterations:
        calc.set(max_iterations=max_iterations)
    atoms.positions = AFTER
    return atoms.get_potential_energy(), atoms.get_forces()


def test_tblite_alone_fails_on_this_step():
    # what the retry is for: if tblite ever converges here the test below proves nothing
    with pytest.raises(CalculationFailed, match="SCF not converged"):
        energy_after_before(TBLite(method="GFN2-xTB", multiplicity=2, verbosity=0))


def test_retry_from_a_fresh_guess_gives_the_fresh_result():
    energy, forces = energy_after_before(make_calculator("xtb", multiplicity=2))
    fresh = Atoms(NUMBERS, positions=AFTER)
    fresh.calc = TBLite(method="GFN2-xTB", multiplicity=2, verbosity=0)
    assert energy == pytest.approx(fresh.get_potential_energy(), abs=1e-6)
    assert np.allclose(forces, fresh.get_forces(), atol=1e-5)


def test_a_fresh_guess_that_fails_too_is_reported():
    with pytest.raises(CalculationFailed, match="SCF not converged in 5 cycles"):
        energy_after_before(make_calculator("xtb", multiplicity=2), max_iterations=5)
