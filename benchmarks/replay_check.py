"""Why did the saddle check take a point that the verifier rejects? Replays rows of a results database.

For each named GPR-dimer row it reruns the search from the row's start with the row's seed and
calculator, keeps the inputs of the search's last saddle check (the point, the GP's Hessian
there, the dimer's image, the true-force oracle), and prints, where the rerun converged there:

- whether the rerun reproduces the row (calls, largest change of the final positions, Å);
- the softest frequencies of the model (the GP's mass-weighted Hessian), of the check (its
  Ritz values) and of a central-difference true Hessian, cm⁻¹;
- for the true Hessian's two lowest modes, the model modes holding most of each (overlap²);
- the check run again on the same point with the true Hessian as its model: whether the
  probes find the modes when the model is right.

    OMP_NUM_THREADS=1 python benchmarks/replay_check.py data/results/xtb500_backoff.db \
        doublets/164,doublets/167,doublets/177

A search reproduces bit for bit only on a machine of the row's own type: the core is built with
-march=native, and two machines with the same `cpu` key took different paths on xTB
singlets/000 (111 and 59 calls; the second has AVX512-FP16, the first's extensions were not
recorded).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.db import connect  # noqa: E402

import gprdimer.search.acceptance as acceptance  # noqa: E402
from gprdimer.calculators.factory import make_calculator  # noqa: E402
from gprdimer.hessian import true_hessian  # noqa: E402
from gprdimer.runner import run_search  # noqa: E402
from gprdimer.saddle_check import subspace_check  # noqa: E402
from gprdimer.vibrations import to_wavenumber  # noqa: E402

SHOWN = 6  # softest frequencies printed


def capture_last_check():
    """Makes every search's saddle check record its arguments and its outcome; returns the
    list they go to."""
    captured = []

    def recording(*args, **kwargs):
        check = subspace_check(*args, **kwargs)
        captured.append((args, kwargs, check))
        return check

    acceptance.subspace_check = recording
    return captured


def replay(row, captured):
    atoms = Atoms(numbers=row.numbers, positions=row.data["initial_positions"])
    atoms.calc = make_calculator(row.calc, charge=row.total_charge,
                                 multiplicity=row.multiplicity)
    captured.clear()
    result = run_search(atoms, "gprd", seed=row.seed, fmax=row.fmax_target,
                        params=json.loads(row.get("parameters") or "{}"))
    moved = float(np.abs(np.asarray(result.positions) - row.positions).max())
    print(f"{row.system}: rerun {'converged' if result.converged else result.stop_reason}, "
          f"{result.calls} calls (row {row.calls}), final positions differ by {moved:.2g} Å")
    if not result.converged:  # the last check was not at the final point
        print("  not converged: nothing to compare")
        return
    args, kwargs, check = captured[-1]
    weighting, model = args[0], args[2]
    point = atoms.copy()
    point.calc = atoms.calc
    point.positions = result.positions
    hessian, _ = true_hessian(point)
    model_values, model_vectors = np.linalg.eigh(weighting.weigh(model))
    true_values, true_vectors = np.linalg.eigh(weighting.weigh(hessian))
    print("  model  ", np.round(to_wavenumber(model_values[:SHOWN])))
    print("  check  ", np.round(check.wavenumbers[:SHOWN]), f"({check.calls} calls)")
    print("  true   ", np.round(to_wavenumber(true_values[:SHOWN])))
    for k in range(2):
        overlap = (model_vectors.T @ true_vectors[:, k])**2
        top = np.argsort(overlap)[::-1][:4]
        shares = ", ".join(f"{to_wavenumber(model_values[i]):.0f} ({overlap[i]:.2f})" for i in top)
        print(f"  true {to_wavenumber(true_values[k]):.0f} cm⁻¹ lies along model modes {shares}")
    right = subspace_check(*args[:2], hessian, *args[3:], **kwargs)
    print("  check with the true Hessian as model:", np.round(right.wavenumbers[:3]),
          f"{right.n_imaginary} imaginary")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", help="results database (gprdimer batch)")
    parser.add_argument("systems", help="comma-separated system names of GPR-dimer rows")
    args = parser.parse_args(argv)
    captured = capture_last_check()
    db = connect(args.db)
    for name in args.systems.split(","):
        replay(db.get(system=name, method="gprd"), captured)


if __name__ == "__main__":
    main()
