"""Time the C++ GP core against the NumPy reference (tests/reference_gp.py) in one run.

For a 17-atom molecule with M = 10, 30, 60 observations: one train() (hyperparameters fitted on
an FPS subset of 10, then the model rebuilt on all M) and predict() calls (energy, forces and
variance). The reference trains the same MAP objective with SciPy's L-BFGS from the same start
on the same subset and predicts from a cached Cholesky factor, block by block.

    OMP_NUM_THREADS=1 python benchmarks/gp_core.py [--data ../shared/data/sella500] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import reference_gp as ref  # noqa: E402

from gprdimer import GaussianProcess  # noqa: E402
from gprdimer.data import load_sella500  # noqa: E402
from set_location import default_set  # noqa: E402


def molecule(data_dir):
    """The first 17-atom system of the set, or a fixed C/H/O stand-in when the set is absent."""
    if data_dir is not None and Path(data_dir).exists():
        for r in load_sella500(data_dir):
            if len(r.atoms) == 17:
                return r.name, r.atoms
    from ase.build import molecule as build

    atoms = build("isobutane") + build("H2O")
    atoms.positions[-3:] += [3.0, 0.0, 0.0]
    atoms += build("H")
    atoms.positions[-1] = [0.0, 0.0, 3.5]
    return "isobutane+H2O+H (stand-in)", atoms


def calculator():
    try:
        from tblite.ase import TBLite

        return "GFN2-xTB", TBLite(method="GFN2-xTB", verbosity=0)
    except ImportError:
        from ase.calculators.morse import MorsePotential

        return "Morse", MorsePotential()


def observations(atoms, calc, m, rng):
    """M configurations along a random walk of 0.03 Å steps, as a search would produce."""
    X, E, F = [], [], []
    a = atoms.copy()
    a.calc = calc
    for _ in range(m):
        a.positions = a.positions + 0.03 * rng.standard_normal(a.positions.shape)
        X.append(a.positions.copy())
        E.append(a.get_potential_energy())
        F.append(a.get_forces().copy())
    return np.array(X), np.array(E), np.array(F)


def time_core(symbols, X, E, F, n_predict, subset):
    gp = GaussianProcess(symbols, training_subset=subset)
    for x, e, f in zip(X, E, F):
        gp.add(x, e, f)
    t = time.perf_counter()
    report = gp.train()
    t_train = time.perf_counter() - t
    probes = X[-1] + 0.01 * np.random.default_rng(0).standard_normal((n_predict,) + X[-1].shape)
    t = time.perf_counter()
    out = [gp.predict(p) for p in probes]
    t_pred = (time.perf_counter() - t) / n_predict
    return t_train, t_pred, gp, report, out[0]


def time_reference(symbols, X, E, F, n_predict, subset):
    idx = ref.fps_subset(X, symbols, subset, latest=2) if len(X) > subset else list(range(len(X)))
    Xs, Es, Fs = X[idx], E[idx], F[idx]
    t = time.perf_counter()
    w0 = ref.initial_log_hyperparameters(Xs, Es, symbols)
    res = scipy.optimize.minimize(lambda w: ref.objective(Xs, Es, Fs, symbols, w), w0, jac=True,
                                  method="L-BFGS-B", options={"maxiter": 400, "ftol": 1e-6})
    w = res.x
    # rebuild on all data, then cache the factor and the weights, as any sane predictor would
    _, type_index, _ = ref.pair_types(symbols)
    feats = [ref.features(x, symbols) for x in X]
    c2 = ref.sigma_c2_from_energies(E)
    K = ref.covariance(X, symbols, w, c2, 1e-5)
    cf = scipy.linalg.cho_factor(K, lower=True)
    y = np.concatenate([np.concatenate([[E[m] - E[0]], -F[m].ravel()]) for m in range(len(X))])
    alpha = scipy.linalg.cho_solve(cf, y)
    t_train = time.perf_counter() - t
    m = feats[0][1].shape[1] + 1

    def predict(x):
        fs, Js = ref.features(x, symbols)
        rows = np.hstack([ref._block(fs, Js, fb, Jb, w, type_index, c2) for fb, Jb in feats])
        mean = rows @ alpha
        v = scipy.linalg.solve_triangular(cf[0], rows[0], lower=True)
        return E[0] + mean[0], -mean[1:].reshape(-1, 3), c2 + np.exp(w[0]) - v @ v

    probes = X[-1] + 0.01 * np.random.default_rng(0).standard_normal((n_predict,) + X[-1].shape)
    t = time.perf_counter()
    out = [predict(p) for p in probes]
    t_pred = (time.perf_counter() - t) / n_predict
    return t_train, t_pred, res.nit, out[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(default_set()))
    p.add_argument("--sizes", default="10,30,60")
    p.add_argument("--subset", type=int, default=10)
    p.add_argument("--predict", type=int, default=1000, help="core predict() calls timed")
    p.add_argument("--ref-predict", type=int, default=50, help="reference predictions timed")
    p.add_argument("--out", default=None, help="append the table to this Markdown file")
    args = p.parse_args(argv)

    load = os.getloadavg()[0]
    name, atoms = molecule(args.data)
    calc_name, calc = calculator()
    symbols = atoms.get_chemical_symbols()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(42)
    X, E, F = observations(atoms, calc, max(sizes), rng)
    print(f"load average {load:.1f}; molecule {name} ({len(atoms)} atoms), energies/forces from {calc_name}, "
          f"training subset {args.subset}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    header = ("| M | core train (s) | reference train (s) | train ratio | core predict (ms) | "
              "reference predict (ms) | predict ratio |")
    rows = [header, "|---|---|---|---|---|---|---|"]
    print(header)
    for m in sizes:
        ct, cp, gp, report, cout = time_core(symbols, X[:m], E[:m], F[:m], args.predict, args.subset)
        rt, rp, rit, rout = time_reference(symbols, X[:m], E[:m], F[:m], args.ref_predict, args.subset)
        row = (f"| {m} | {ct:.4f} ({report.iterations} SCG it.) | {rt:.3f} ({rit} L-BFGS it.) | "
               f"{rt / ct:.0f}x | {1e3 * cp:.4f} | {1e3 * rp:.2f} | {rp / cp:.0f}x |")
        rows.append(row)
        print(row, flush=True)
    table = "\n".join(rows)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(f"\n### GP core vs NumPy reference ({platform.processor() or platform.machine()}, "
                     f"{time.strftime('%Y-%m-%d')})\n\n`OMP_NUM_THREADS=1 python benchmarks/gp_core.py "
                     f"--out docs/benchmarks.md`: {name}, {len(atoms)} atoms, {calc_name} data, "
                     f"train on an FPS subset of {args.subset}; core predict timed over "
                     f"{args.predict} calls, reference over {args.ref_predict}; load average "
                     f"{load:.1f} on 2 cores at the start.\n\n{table}\n")


if __name__ == "__main__":
    main()
