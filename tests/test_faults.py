"""Faults during a search: a calculator that fails, a GP in numerical trouble, a batch task that
fails, and starts where there is no saddle to find. Every search ends with its own stop reason,
finite positions, and never claims a saddle it has not verified.

Covered elsewhere and not repeated here (docs/robustness.md lists them): a task past its timeout
and a task that cannot start (tests/test_batch.py), a start at the Cu2 equilibrium
(tests/test_search.py), duplicate and unfactorisable GP data on the GP itself (tests/test_gp.py).
"""

import math
import types

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from ase.io import read
from ase.optimize import BFGS

import gprdimer.search.gpr_dimer
from gprdimer import Dimer, GPRDimer
from gprdimer.batch import Store, connect, make_cluster, make_task, read_rows, run_batch, run_task
from gprdimer.errors import GPError, SCFConvergenceError
from gprdimer.gp import TrainingReport
from gprdimer.runner import CountingCalculator

FMAX = 0.01
METHODS = {"gprd": GPRDimer, "dimer": Dimer}


def morse():
    return MorsePotential(epsilon=0.8, r0=2.5, rho0=6.0)


def morse_cluster():
    """The 7-atom Morse cluster of tests/test_search.py: both methods converge on it."""
    x = np.array([[0, 0, 0], [2.5, 0, 0], [1.25, 2.165, 0], [1.25, 0.72, 2.04],
                  [-1.25, 2.165, 0], [3.75, 2.165, 0], [1.25, -1.6, 1.2]], float)
    mode = np.zeros((7, 3))
    mode[6] = [0.3, -0.6, 0.7]
    return Atoms("Cu7", positions=x), mode


class FaultyMorse(MorsePotential):
    """The Morse potential, except that calculation number `k` fails in the way `kind` says.

    `good` keeps the energy of every call that succeeded, in order.
    """

    def __init__(self, k, kind):
        super().__init__(epsilon=0.8, r0=2.5, rho0=6.0)
        self.k, self.kind, self.calls, self.good = k, kind, 0, []

    def calculate(self, atoms=None, properties=("energy",), system_changes=("positions",)):
        self.calls += 1
        super().calculate(atoms, properties, system_changes)
        if self.calls == self.k:
            if self.kind == "raise":
                raise RuntimeError(f"segfault-like crash at call {self.calls}")
            if self.kind == "scf":
                raise SCFConvergenceError("Cu7: SCF did not converge within 1 cycles")
            if self.kind == "nan-forces":
                self.results["forces"] = np.full_like(self.results["forces"], np.nan)
            if self.kind == "inf-forces":
                self.results["forces"][3, 1] = np.inf
            if self.kind == "nan-energy":
                self.results["energy"] = math.nan
            if self.kind == "wrong-shape":
                self.results["forces"] = self.results["forces"][:-1]
            if self.kind == "none-forces":
                self.results["forces"] = None
            if self.kind == "text-energy":
                self.results["energy"] = "-11.3 eV"
            return
        self.good.append(self.results["energy"])


def check_result(result, n_atoms):
    """What every finished search must satisfy, whatever stopped it."""
    assert isinstance(result.stop_reason, str) and result.stop_reason
    assert result.calls >= 1
    assert np.shape(result.positions) == (n_atoms, 3)
    assert np.all(np.isfinite(result.positions))
    assert result.converged == (result.stop_reason == "converged")
    if result.converged:
        assert result.fmax < FMAX and result.curvature < 0


# --- calculator faults -------------------------------------------------------------------------

REASONS = {
    "raise": "calculator failure: RuntimeError: segfault-like crash at call",
    "scf": "calculator failure: SCFConvergenceError: Cu7: SCF did not converge within 1 cycles",
    "nan-forces": "calculator failure: non-finite energy or forces",
    "inf-forces": "calculator failure: non-finite energy or forces",
    "nan-energy": "calculator failure: non-finite energy or forces",
    "wrong-shape": "calculator failure: forces of shape (6, 3), expected (7, 3)",
    "none-forces": "calculator failure: it returned no forces (None)",
    "text-energy": "calculator failure: the energy is not a number ('-11.3 eV')",
}


# k = 1: the start; 2: its image; 3-4: initial rotation or first steps; 9: mid-search
@pytest.mark.parametrize("k", [1, 2, 4, 9])
@pytest.mark.parametrize("kind", list(REASONS))
@pytest.mark.parametrize("method", list(METHODS))
def test_calculator_fault_at_call_k_stops_the_search(tmp_path, method, kind, k):
    atoms, mode = morse_cluster()
    atoms.calc = calc = FaultyMorse(k, kind)
    traj, record = tmp_path / "search.traj", tmp_path / "calls.traj"
    with METHODS[method](atoms, restart=str(record), trajectory=str(traj), mode=mode,
                         logfile=None) as opt:
        assert opt.run(fmax=FMAX, steps=50) is False
    result = opt.result
    assert result.stop_reason.startswith(REASONS[kind])
    assert not result.converged
    assert result.calls == calc.calls == k  # the failed call is counted
    images = read(record, ":") if k > 1 else []
    assert len(images) == k - 1  # exactly the good evaluations before it
    assert [im.get_potential_energy() for im in images] == pytest.approx(calc.good)
    assert all(np.all(np.isfinite(im.get_forces())) for im in images)
    assert np.shape(result.positions) == (7, 3) and np.all(np.isfinite(result.positions))
    if k > 1:
        assert math.isfinite(result.energy) and math.isfinite(result.fmax)
        # the path's last frame is the point the result reports, with its true energy
        last = read(traj, -1)
        np.testing.assert_array_equal(last.positions, result.positions)
        assert last.get_potential_energy() == result.energy
    else:
        assert not traj.exists() or not read(traj, ":")


def test_unconverged_pyscf_scf_stops_the_search(tmp_path):
    pytest.importorskip("pyscf")
    from gprdimer.calculators import PySCFCalculator

    atoms = molecule("H2CO")
    atoms.calc = PySCFCalculator(basis="3-21G", max_cycle=1, label="formaldehyde-test")
    traj = tmp_path / "scf.traj"
    with GPRDimer(atoms, trajectory=str(traj), logfile=None) as opt:
        opt.run(fmax=FMAX, steps=3)
    assert opt.result.stop_reason.startswith(
        "calculator failure: SCFConvergenceError: formaldehyde-test: RHF SCF")
    assert opt.result.calls == 1 and not opt.result.converged
    assert read(traj, ":") == []


def emt_on_iron(method):
    """A runtime fault from a real calculator: EMT has no parameters for Fe."""
    return make_task("FeH", Atoms("FeH", positions=[[0, 0, 0], [1.6, 0, 0]]), method=method,
                     calc="emt", steps=5)


@pytest.mark.parametrize("method", list(METHODS))
def test_task_whose_calculator_fails_is_a_row_the_store_takes(tmp_path, method):
    row = run_task(emt_on_iron(method))
    assert row["converged"] is False and row["calls"] == 1
    assert row["stop_reason"] == "calculator failure: NotImplementedError: No EMT-potential for Fe"
    # the positions of the failed first call: before, the row had none and the store raised
    assert np.shape(row["positions"]) == (2, 3) and row["forces"] is None
    store = Store(tmp_path / "r.db")
    assert store.write(row)
    (stored,) = read_rows(tmp_path / "r.db")
    assert stored["stop_reason"] == row["stop_reason"] and math.isnan(stored["saddle_energy"])


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_batch_records_failures_and_carries_on(tmp_path):
    tasks = [emt_on_iron("gprd"),
             make_task("H2O", molecule("H2O"), method="dimer", calc="emt", steps=3),
             make_task("bad", molecule("H2O"), method="dimer", calc="no-such-calculator")]
    store = Store(tmp_path / "r.db")
    with make_cluster("local", workers=1) as cluster, connect(cluster.scheduler_address) as client:
        counts = run_batch(client, tasks, store)
    assert counts["written"] == 3
    rows = {r["system"]: r for r in read_rows(tmp_path / "r.db")}
    assert rows["FeH"]["stop_reason"].startswith("calculator failure: NotImplementedError")
    assert rows["H2O"]["stop_reason"] == "max iterations" and rows["H2O"]["calls"] > 0
    assert rows["bad"]["stop_reason"].startswith("error: InputError: unknown calculator")


# --- GP numerical trouble ----------------------------------------------------------------------

# The cluster's saddle is at 29i cm⁻¹ (heavy atoms on a soft surface), below the threshold made
# for molecules: searches that must converge on it take a lower one.
HEAVY = dict(imaginary_threshold=20.0)


def gprd_on_cluster(**params):
    atoms, mode = morse_cluster()
    atoms.calc = morse()
    return GPRDimer(atoms, mode=mode, logfile=None, **HEAVY, **params)


def run_after_start(opt, change, steps=30):
    """Runs the start, applies `change(opt)`, then runs the outer iterations."""
    it = opt.irun(fmax=FMAX, steps=steps)
    next(it)
    change(opt)
    for _ in it:
        pass
    return opt.result


def test_near_duplicate_observations(tmp_path):
    # steps of at most 1e-9 Å: every outer iteration observes almost the same point again
    opt = gprd_on_cluster(max_step=1e-9, noise=1e-10)
    opt.run(fmax=FMAX, steps=15)
    check_result(opt.result, 7)
    assert opt.result.stop_reason == "max iterations" and opt.result.outer_iterations == 15
    assert opt.gp.n_observations == opt.result.calls  # every call observed, none dropped


def test_exact_duplicate_observations():
    opt = gprd_on_cluster(noise=1e-12)
    add = opt.model.add
    opt.model.add = lambda *args: [add(*args) for _ in range(3)]  # every observation three times
    opt.run(fmax=FMAX, steps=30)
    check_result(opt.result, 7)
    assert opt.result.converged and opt.gp.n_observations == 3 * opt.result.calls


@pytest.mark.parametrize("value", [800.0, -800.0, 50.0, -50.0])
def test_runaway_hyperparameters_are_recovered(value):
    # 800: exp overflows and the covariance cannot be factorised; -800: every length scale is
    # zero and the surrogate is flat, so the GP search did not move and each iteration repeated
    # the same two calls until the step budget ran out (now: reset and retrained)
    opt = gprd_on_cluster()

    def runaway(opt):
        opt.gp.log_hyperparameters = np.full(len(opt.gp.log_hyperparameters), value)

    result = run_after_start(opt, runaway)
    check_result(result, 7)
    assert result.converged, result.stop_reason


def freeze_training(opt):
    opt.gp.train = lambda: TrainingReport(0, 0, False, True, False, math.nan, ())


def test_unfactorisable_covariance_is_reset_not_fatal(tmp_path):
    # training frozen, so only the reset can repair hyperparameters that overflow the kernel;
    # before the reset this stopped at once with 'GP failure: covariance matrix is not positive
    # definite even with jitter'
    log = tmp_path / "log.txt"
    atoms, mode = morse_cluster()
    atoms.calc = morse()
    opt = GPRDimer(atoms, mode=mode, logfile=str(log))

    def overflow(opt):
        freeze_training(opt)
        opt.gp.log_hyperparameters = np.full(len(opt.gp.log_hyperparameters), 800.0)

    result = run_after_start(opt, overflow, steps=10)
    opt.close()
    check_result(result, 7)
    assert not result.stop_reason.startswith("GP failure")
    assert result.calls > 4
    assert "GP hyperparameters reset" in log.read_text()


def test_gp_that_keeps_failing_stops_with_gp_failure():
    opt = gprd_on_cluster()

    def broken(opt):
        def train():
            raise GPError("covariance matrix is not positive definite even with jitter")
        opt.gp.train = train

    result = run_after_start(opt, broken)
    check_result(result, 7)
    assert result.stop_reason == ("GP failure: covariance matrix is not positive definite even with "
                                  "jitter; retraining from reset hyperparameters: covariance matrix "
                                  "is not positive definite even with jitter")
    assert not result.converged and result.calls == 3  # start, its image, no further call


def nan_surrogate(monkeypatch, failures):
    """relax_on_surrogate returns NaN positions for its first `failures` calls."""
    real = gprdimer.search.gpr_dimer._core.relax_on_surrogate
    count = {"n": 0}

    def relax(gp, x, tau, settings):
        count["n"] += 1
        if count["n"] <= failures:
            return types.SimpleNamespace(positions=np.full_like(x, np.nan), tau=np.asarray(tau),
                                         stop="converged", iterations=1, curvature=math.nan)
        return real(gp, x, tau, settings)

    monkeypatch.setattr(gprdimer.search.gpr_dimer._core, "relax_on_surrogate", relax)


def test_nan_from_the_surrogate_search_is_retried(monkeypatch):
    nan_surrogate(monkeypatch, failures=1)
    opt = gprd_on_cluster()
    opt.run(fmax=FMAX, steps=30)
    check_result(opt.result, 7)
    assert opt.result.converged


def test_nan_from_the_surrogate_search_is_never_evaluated(monkeypatch):
    nan_surrogate(monkeypatch, failures=10**6)
    atoms, mode = morse_cluster()
    atoms.calc = counter = CountingCalculator(morse())
    opt = GPRDimer(atoms, mode=mode, logfile=None)
    opt.run(fmax=FMAX, steps=30)
    check_result(opt.result, 7)
    assert opt.result.stop_reason == ("GP failure: the search on the GP returned non-finite "
                                      "positions (after resetting the hyperparameters)")
    assert opt.result.calls == counter.calls == 3  # the NaN point never reached the calculator


def test_dimer_step_that_is_not_finite_stops_the_search():
    atoms, mode = morse_cluster()
    atoms.calc = counter = CountingCalculator(morse())
    opt = Dimer(atoms, mode=mode, logfile=None)

    def broken(opt):
        opt._translator = types.SimpleNamespace(step=lambda x, g, tau, c: np.full_like(x, np.nan))

    result = run_after_start(opt, broken)
    check_result(result, 7)
    assert result.stop_reason == "dimer failure: the rotation or translation is not finite"
    assert result.calls == counter.calls


# --- honest results: no saddle to find ---------------------------------------------------------

def relaxed(atoms, calc):
    atoms.calc = calc
    BFGS(atoms, logfile=None).run(fmax=1e-4, steps=500)
    return atoms


@pytest.mark.parametrize("mode", ["random", "hessian"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("system", ["morse-cu7", "emt-cu4"])
def test_start_at_a_polyatomic_minimum_is_never_a_saddle(system, method, mode):
    if system == "morse-cu7":
        atoms = relaxed(morse_cluster()[0], morse())
    else:
        atoms = relaxed(Atoms("Cu4", positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.1, 0],
                                                 [1.25, 0.7, 2.0]]), EMT())
    start = atoms.get_potential_energy()
    atoms.calc = counter = CountingCalculator(atoms.calc)
    opt = METHODS[method](atoms, mode=mode, logfile=None)
    assert opt.run(fmax=FMAX, steps=15) is False
    result = opt.result
    check_result(result, len(atoms))
    assert not result.converged
    if result.fmax < FMAX:  # the force test passed: the true curvature stopped it
        assert result.curvature >= 0
    assert result.calls == counter.calls  # only calls that were made are counted
    assert result.energy >= start - 1e-9


@pytest.mark.parametrize("mode", [np.array([[1.0, 0, 0], [-1.0, 0, 0]]),
                                  np.array([[0.0, 1.0, 0], [0, 0, 0]]), "random", "hessian"])
@pytest.mark.parametrize("method", list(METHODS))
def test_start_on_a_flat_surface_is_never_a_saddle(method, mode):
    # 12 Å apart the Morse forces underflow to exactly zero: the force test passes everywhere
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [12.0, 0, 0]])
    atoms.calc = counter = CountingCalculator(morse())
    opt = METHODS[method](atoms, mode=mode, logfile=None)
    assert opt.run(fmax=FMAX, steps=15) is False
    result = opt.result
    check_result(result, 2)
    assert result.fmax < FMAX and result.curvature >= 0 and not result.converged
    assert result.calls == counter.calls
    if method == "gprd":
        # the GP search cannot move: each start stops instead of repeating the same two calls
        assert result.stop_reason.startswith("stalled: the GP search returned the point")
        assert result.starts == 2 + opt.settings.starts.fresh_starts and result.calls <= 2 * result.starts


@pytest.mark.parametrize("second_order, convex_relax", [(False, "fresh"), ("fresh", False)])
def test_gprd_at_the_cu2_minimum_counts_only_real_calls(second_order, convex_relax):
    # Before: the GP search returned the cached midpoint every iteration, so 15 iterations
    # reported 32 calls while the calculator ran 17 times.
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    atoms.calc = counter = CountingCalculator(morse())
    opt = GPRDimer(atoms, mode=np.array([[-1.0, 0, 0], [1.0, 0, 0]]), logfile=None,
                   second_order=second_order, convex_relax=convex_relax)
    opt.run(fmax=FMAX, steps=15)
    assert opt.result.calls == counter.calls and not opt.result.converged
    if second_order:
        # the dimer starts stall at the minimum; P-RFO climbs its one mode, the stretch, which
        # has no maximum, until the energy guard ends the fresh start, and the next begins
        assert opt.result.starts == 2 + opt.settings.starts.fresh_starts
        assert opt.result.stop_reason.startswith("energy rise")
    else:  # the fresh dimer starts relax into the minimum as well
        assert opt.result.starts == 2 + opt.settings.starts.fresh_starts
        assert opt.result.stop_reason.startswith("stalled")


def test_results_held_before_the_search_are_still_its_first_call(tmp_path):
    # Only the point the search itself left in the calculator is reused without a call; an
    # energy the user computed before starting is not taken as the search's own.
    atoms, mode = morse_cluster()
    atoms.calc = morse()
    atoms.get_potential_energy()
    record = tmp_path / "calls.traj"
    with GPRDimer(atoms, restart=str(record), mode=mode, logfile=None) as opt:
        opt.run(fmax=FMAX, steps=3)
    images = read(record, ":")
    assert len(images) == opt.result.calls >= 2
    assert np.allclose(images[0].positions, morse_cluster()[0].positions)


def test_gp_search_that_cannot_leave_the_start_stops_as_stalled():
    # Found by the property test: H2 squashed to 1.1 Å on a Morse surface (r0 2.5 Å,
    # fmax 2990 eV/Å). The GP search ends 1e-16 Å from the start, where the calculator answers
    # from its cache; the search then reported 53 calls for 50 steps while 3 were made.
    atoms = Atoms("H2", positions=[[0, 0, 1.1], [0, 0, 0]])
    atoms.calc = counter = CountingCalculator(morse())
    # The settings under which the property test found it (one initial rotation pass, training
    # tolerance 0.01): with the looser defaults the GP search does leave the start, uphill, and
    # the search ends on the energy-rise guard instead.
    opt = GPRDimer(atoms, mode="random", logfile=None, initial_rotations=1, training_tolerance=0.01,
                   fallback_mode=None, fresh_starts=0)
    opt.run(fmax=FMAX, steps=50)
    check_result(opt.result, 2)
    assert opt.result.calls == counter.calls == 3
    assert opt.result.stop_reason.startswith("stalled: the GP search returned the point")
