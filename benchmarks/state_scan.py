"""Is each verified row's verification on the row's own electronic state? Energies of a fresh SCF.

For every converged row of a results database (of one spin, if asked) it computes the energy of
a new calculator at the row's final geometry, as `gprdimer verify` starts, and prints it against
the row's saddle energy. Where they differ by more than `verify.SAME_STATE`, a fresh SCF lands on
another solution there (UHF doublets have several): a verification made before the verifier
followed the row's state (2026-12-07) was of that other state, and the row is to be verified
again (delete its verification keys, then `gprdimer verify`).

    OMP_NUM_THREADS=1 python benchmarks/state_scan.py DB [--spin doublet] [--reverse]
"""

from __future__ import annotations

import argparse

from ase.db import connect

from gprdimer.verify import SAME_STATE, fresh_energy, verification_task


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db")
    parser.add_argument("--spin", choices=("singlet", "doublet"), help="only rows of this spin")
    parser.add_argument("--reverse", action="store_true",
                        help="last row first (a second process from the other end)")
    args = parser.parse_args(argv)
    rows = [r for r in connect(args.db).select(converged=True)
            if args.spin is None or (r.multiplicity == 1) == (args.spin == "singlet")]
    for row in rows[::-1] if args.reverse else rows:
        task = verification_task(row.id, row.key_value_pairs, row.positions, row.numbers)
        try:
            offset = fresh_energy(task) - row.saddle_energy
        except Exception as exc:  # an SCF that fails here fails the verifier too
            print(f"{row.system} {row.method} error: {type(exc).__name__}: {exc}", flush=True)
            continue
        state = "same" if abs(offset) <= SAME_STATE else "OTHER"
        print(f"{row.system} {row.method} verified_imaginary={row.get('verified_imaginary')} "
              f"fresh-row={offset:+.6f} eV {state}", flush=True)


if __name__ == "__main__":
    main()
