"""PySCF HF/3-21G energies of the 500 transition-state guesses against the published init_energy.

Every saddle search of the set starts from these geometries, so a wrong SCF state here (an excited
UHF solution, usually) would make every later comparison meaningless. Results are appended to a CSV
as they come, and a rerun with the same --out skips the systems already there.

    python benchmarks/init_energies.py [DATA] [--only singlets/000 ...] [--limit N] [--workers N]
"""

import os

# One BLAS/OpenMP thread per process, set before NumPy loads: two workers beat two threads here.
for _var in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[_var] = '1'

import argparse  # noqa: E402
import csv  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gprdimer.calculators.pyscf import PySCFCalculator  # noqa: E402
from gprdimer.data import load_sella500, read_reference  # noqa: E402
from gprdimer.errors import InputError, SCFConvergenceError  # noqa: E402
from set_location import default_set  # noqa: E402

FIELDS = ['name', 'atoms', 'multiplicity', 'energy_eV', 'reference_eV', 'delta_eV', 'scf_cycles',
          'seconds', 'error']


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('data', nargs='?', type=Path, default=default_set(),
                        help='set directory with sella_si_data.zip and reference/ '
                             '(default: $GPRDIMER_SELLA500 or ../shared/data/sella500)')
    parser.add_argument('--only', nargs='+', metavar='NAME', help='systems such as singlets/000')
    parser.add_argument('--limit', type=int, help='run at most this many (smallest first)')
    parser.add_argument('--workers', type=int, default=1, help='processes, one thread each')
    parser.add_argument('--out', type=Path, default=Path('init_energies.csv'),
                        help='CSV of results, appended to and resumed from')
    parser.add_argument('--tol', type=float, default=1e-3, help='agreement threshold in eV')
    return parser.parse_args(argv)


def select(reactions, only, limit):
    if only:
        known = {r.name: r for r in reactions}
        unknown = [name for name in only if name not in known]
        if unknown:
            raise InputError(f"--only: unknown system(s) {', '.join(unknown)}")
        reactions = [known[name] for name in only]
    # Smallest first, so that a partial run still covers many systems.
    reactions = sorted(reactions, key=lambda r: len(r.atoms))
    return reactions[:limit] if limit is not None else reactions


def compute(task):
    reaction, reference = task
    calc = PySCFCalculator(method='HF', basis='3-21G', charge=reaction.charge,
                           multiplicity=reaction.multiplicity, label=reaction.name, threads=1)
    row = dict(name=reaction.name, atoms=len(reaction.atoms), multiplicity=reaction.multiplicity,
               reference_eV=reference, energy_eV='', delta_eV='', scf_cycles='', error='')
    start = time.perf_counter()
    try:
        energy = calc.get_potential_energy(reaction.atoms)
        row.update(energy_eV=f'{energy:.6f}', delta_eV=f'{energy - reference:+.6f}',
                   scf_cycles=calc.scf_cycles)
    except (SCFConvergenceError, InputError) as err:
        row['error'] = str(err)
    row['seconds'] = f'{time.perf_counter() - start:.2f}'
    return row


def read_done(path):
    if not path.exists():
        return {}
    with open(path, newline='') as handle:
        return {row['name']: row for row in csv.DictReader(handle)}


def run(tasks, workers, out):
    new_file = not out.exists()
    with open(out, 'a', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        # A fresh process per system: memory and PySCF state of one system cannot slow the next.
        pool = multiprocessing.Pool(workers, maxtasksperchild=1)
        for i, row in enumerate(pool.imap_unordered(compute, tasks), 1):
            writer.writerow(row)
            handle.flush()
            status = row['error'] or f"dE {row['delta_eV']} eV, {row['scf_cycles']} cycles"
            print(f"[{i}/{len(tasks)}] {row['name']} ({row['atoms']} atoms): {status}, "
                  f"{row['seconds']} s", flush=True)
        pool.close()
        pool.join()


def report(names, done, tol):
    rows = [done[name] for name in names if name in done]
    agree = [r for r in rows if not r['error'] and abs(float(r['delta_eV'])) <= tol]
    print(f"\n{len(agree)} of {len(rows)} run agree with init_energy within {tol:g} eV "
          f"({len(names) - len(rows)} of the selection not run)")
    for r in rows:
        if r in agree:
            continue
        what = f"error: {r['error']}" if r['error'] else f"dE = {float(r['delta_eV']):+.4f} eV"
        print(f"  {r['name']} ({r['atoms']} atoms): {what}")
    print(f"sum of per-system times: {sum(float(r['seconds']) for r in rows):.0f} s")


def main(argv=None):
    args = parse_args(argv)
    reactions = select(list(load_sella500(args.data)), args.only, args.limit)
    published = read_reference(args.data, 'sella')
    reference = {name: row['init_energy'] for name, row in published.items()}
    done = read_done(args.out)
    tasks = [(r, reference[r.name]) for r in reactions if r.name not in done]
    print(f"{len(reactions)} selected, {len(reactions) - len(tasks)} already in {args.out}, "
          f"{len(tasks)} to run with {args.workers} worker(s)", flush=True)
    start = time.perf_counter()
    run(tasks, args.workers, args.out)
    wall = time.perf_counter() - start
    report([r.name for r in reactions], read_done(args.out), args.tol)
    print(f"wall time of this run: {wall:.0f} s ({wall / 60:.1f} min)")


if __name__ == '__main__':
    main()
