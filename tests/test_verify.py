"""`gprdimer verify`: a true Hessian at every converged row, written into the row, resumable;
`gprdimer report` then counts only verified first-order saddles."""

import ase.db
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes
from ase.optimize import BFGS

from gprdimer import GPRDimer
from gprdimer.batch import Store, failed_row, make_task, read_rows
from gprdimer.cli import main
from gprdimer.hessian import true_hessian
from gprdimer.search import StopReason
from gprdimer.report_tables import summary_table

pytest.importorskip("tblite.ase", reason="tblite not installed (extra gprdimer[xtb])")
from gprdimer.calculators.xtb import XTBCalculator  # noqa: E402


def row_at(name, atoms, converged, reason, energy):
    task = make_task(name, atoms, method="gprd", calc="xtb")
    row = failed_row(task, StopReason(reason))
    row.update(converged=converged, calls=10, wall_time=1.0, gp_time=0.1,
               saddle_energy=energy, positions=atoms.positions.tolist())
    return row


@pytest.fixture
def db(tmp_path):
    """An HCN <-> HNC saddle found by a search, a water minimum wrongly marked converged, and a
    search that did not converge."""
    hcn = Atoms("CNH", positions=[[0, 0, 0], [1.18, 0, 0], [0.55, 1.15, 0]])
    hcn.calc = XTBCalculator(method="GFN2-xTB", verbosity=0)
    opt = GPRDimer(hcn, mode=np.array([[0, 0, 0], [0, 0, 0], [1.0, 0.2, 0]]), logfile=None)
    assert opt.run(fmax=0.01, steps=100)
    saddle = Atoms("CNH", positions=opt.result.positions)
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    water.calc = XTBCalculator(method="GFN2-xTB", verbosity=0)
    BFGS(water, logfile=None).run(fmax=1e-4)
    store = Store(tmp_path / "results.db")
    store.write(row_at("hcn", saddle, True, "converged", opt.result.energy))
    store.write(row_at("water", Atoms("OH2", positions=water.positions), True, "converged",
                       water.get_potential_energy()))
    store.write(row_at("failed", saddle, False, "max iterations", opt.result.energy))
    return tmp_path / "results.db"


def test_verify_writes_the_hessian_into_converged_rows_and_resumes(db, capsys):
    assert main(["verify", str(db), "--workers", "1"]) == 0
    assert "2 rows verified, 1 first-order saddles, 1 rejected" in capsys.readouterr().out
    rows = {r["system"]: r for r in read_rows(db)}
    assert rows["hcn"]["verified_imaginary"] == 1 and rows["hcn"]["verified_lowest_cm"] < -1000
    assert rows["water"]["verified_imaginary"] == 0 and rows["water"]["verified_lowest_cm"] > 1000
    assert rows["hcn"]["verify_calls"] == 19  # the point, then central differences: 6N calls
    assert "verified_imaginary" not in rows["failed"]
    with ase.db.connect(str(db)) as handle:
        frequencies = handle.get(system="hcn").data["verified_frequencies"]
    assert len(frequencies) == 3 and frequencies[0] < -1000 < 0 < frequencies[1]
    # every converged row is done: a second run has nothing to do and changes nothing
    assert main(["verify", str(db), "--workers", "1"]) == 0
    assert "0 converged rows" in capsys.readouterr().out
    assert {r["system"]: r for r in read_rows(db)}["hcn"] == rows["hcn"]
    summary = summary_table(read_rows(db))[0]
    assert (summary["reported"], summary["verified"], summary["rejected"]) == (2, 1, 1)


def test_verify_refuses_a_missing_database(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "none.db")]) == 2
    assert "no such results database" in capsys.readouterr().err


def test_finite_differences_start_from_the_point_verified():
    """A calculator that starts each SCF from its last solution and fails from its own guess
    away from the point verified, as xTB did at the first displaced point of singlets/016: the
    point itself goes first, so that every displaced SCF starts from a converged neighbour."""
    center = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    stiffness = np.arange(1.0, 10.0)

    class FromLastSolution(Calculator):
        implemented_properties = ["energy", "forces"]
        solution = None

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            shift = (self.atoms.positions - center).ravel()
            if self.solution is None and np.any(shift):
                raise CalculationFailed("SCF not converged in 250 cycles")
            self.solution = shift
            self.results = {"energy": 0.5 * float(stiffness @ shift**2),
                            "forces": -(stiffness * shift).reshape(-1, 3)}

    atoms = Atoms("OH2", positions=center)
    atoms.calc = FromLastSolution()
    hessian, calls = true_hessian(atoms)
    assert calls == 1 + 6 * len(atoms)
    assert hessian == pytest.approx(np.diag(stiffness), abs=1e-8)


class TwoStates(Calculator):
    """Two electronic states of three atoms: A, a minimum at `SADDLE`, lies 0.5 eV below B
    there, and B, a first-order saddle at `SADDLE`, lies below A at `GUESS`. Like an SCF, a new
    calculator takes the lower state at its first point and then follows the one it has."""

    implemented_properties = ["energy", "forces"]
    SADDLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    GUESS = SADDLE + 0.3
    A = np.full(9, 2.0)
    B = np.array([-1.0] + [0.1] * 8)

    state = None

    @classmethod
    def energy_forces(cls, state, positions):
        shift = (positions - cls.SADDLE).ravel()
        k, offset = (cls.A, -1.0) if state == "A" else (cls.B, -0.5)
        return offset + 0.5 * float(k @ shift**2), -(k * shift).reshape(-1, 3)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        x = self.atoms.positions
        if self.state is None:
            self.state = min("AB", key=lambda s: self.energy_forces(s, x)[0])
        energy, forces = self.energy_forces(self.state, x)
        self.results = {"energy": energy, "forces": forces}


def test_the_verifier_checks_the_state_the_search_walked(monkeypatch):
    """A row on state B at its saddle: a fresh calculator there takes A (a minimum, 0.5 eV lower),
    so the verifier follows the state from the row's guess, as the search's calculator did."""
    import gprdimer.verify as verify

    assert TwoStates.energy_forces("B", TwoStates.GUESS)[0] < TwoStates.energy_forces("A", TwoStates.GUESS)[0]
    monkeypatch.setattr(verify, "make_calculator", lambda *args, **kwargs: TwoStates())
    row = {"calc": "two-states", "saddle_energy": -0.5, "system": "two-states"}
    task = verify.verification_task(1, row, TwoStates.SADDLE, [1, 1, 1],
                                    start=TwoStates.GUESS)
    pairs = verify.verify_task(task)["pairs"]
    assert pairs["verified_imaginary"] == 1
    assert pairs["verify_lower_state"] == pytest.approx(-0.5)
    steps = int(np.ceil(np.linalg.norm(0.3 * np.ones(3)) / verify.FOLLOW_STEP))
    assert pairs["verify_calls"] == 1 + steps + 1 + 6 * 3  # fresh, path, then the point and 6N
    # a row on the fresh calculator's state is verified there, at no extra call
    row_a = dict(row, saddle_energy=-1.0)
    task = verify.verification_task(1, row_a, TwoStates.SADDLE, [1, 1, 1], start=TwoStates.GUESS)
    pairs = verify.verify_task(task)["pairs"]
    assert pairs["verified_imaginary"] == 0 and pairs["verify_lower_state"] == 0.0
    assert pairs["verify_calls"] == 1 + 6 * 3
    # a state that neither start reaches is no verification
    task = verify.verification_task(1, dict(row, saddle_energy=-0.2), TwoStates.SADDLE,
                                    [1, 1, 1], start=TwoStates.GUESS)
    assert "not found" in verify.verify_task(task)["pairs"]["verify_error"]
