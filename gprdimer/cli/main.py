"""The `gprdimer` command: search (one saddle search), batch (many, on Dask), verify (a true
Hessian at every converged row of a batch database), report (tables and plots from it).

Everything a user can get wrong is checked before the first calculation and reported as one line,
`gprdimer: error: <what, naming the file or option>`, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from .. import __version__
from ..errors import InputError, InputNote
from ..modes import MODE_CHOICES, SEED
from ..runner import METHODS
from ..vibrations import IMAGINARY_CM
from . import batch_commands, search_command
from .options import add_cluster_options, add_search_options, add_system_options
from .search_command import EXAMPLE


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as the one-line error every other user error gets."""

    def error(self, message):
        _report_error(message)
        sys.exit(2)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", InputNote)
            warnings.showwarning = _show_note
            return args.command(args)
    except (InputError, OSError) as exc:
        _report_error(str(exc))
        return 2
    except KeyboardInterrupt:
        print("gprdimer: interrupted", file=sys.stderr)
        return 130


def _show_note(message, category, *args, **kwargs):
    if issubclass(category, InputNote):
        print(f"gprdimer: note: {message}", file=sys.stderr, flush=True)
    else:
        _default_showwarning(message, category, *args, **kwargs)


_default_showwarning = warnings.showwarning


def _report_error(message):
    print(f"gprdimer: error: {' '.join(str(message).split())}", file=sys.stderr)


def build_parser():
    parser = _Parser(prog="gprdimer", description=__doc__.split("\n\n")[0],
                     epilog="exit status: 0 done (search: converged), 1 search not converged, "
                            "2 bad input, 130 interrupted")
    parser.add_argument("--version", action="version", version=f"gprdimer {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    search = commands.add_parser("search", help="one saddle search from a guess geometry")
    search.set_defaults(command=search_command.command)
    search.add_argument("guess", nargs="?",
                        help="guess structure, any format ase.io reads (extxyz charge= and "
                             "multiplicity= and FixAtoms are honoured); FILE@INDEX takes one "
                             f"frame of several [the last]; without one, the built-in {EXAMPLE} "
                             "example")
    add_system_options(search)
    search.add_argument("--calc", default="hf/3-21g",
                        help="calculator: hf/3-21g, xtb, emt, ... [hf/3-21g]")
    search.add_argument("--mode", default="random",
                        help=f"initial mode: {' or '.join(MODE_CHOICES)} or a .npy/text file of "
                             f"3N numbers [random]")
    search.add_argument("--method", default="gprd", help=f"{' | '.join(METHODS)} [gprd]")
    add_search_options(search)
    search.add_argument("--verify", action="store_true",
                        help="confirm the saddle with a true Hessian (analytic for PySCF, "
                             "finite differences otherwise), counted in the calls")
    search.add_argument("--seed", type=int, default=SEED, help=f"seed of the random mode [{SEED}]")
    search.add_argument("--irc", action="store_true",
                        help="from a converged saddle, follow the reaction path both ways "
                             "(Sella's IRC) and relax both ends to minima; calls counted")
    search.add_argument("--restart", action="store_true",
                        help="continue the search of this guess and method from its "
                             "GUESS.METHOD.calls.traj (same options): the calls saved there "
                             "are replayed, not repeated")
    search.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP/PySCF threads [1: fastest on a shared machine]")

    batch = commands.add_parser("batch", help="many searches on Dask, results in an ase.db")
    batch.set_defaults(command=batch_commands.batch)
    batch.add_argument("set", type=Path, metavar="SET",
                       help="the 500-reaction set (folder or zip) or a folder of guesses")
    batch.add_argument("--files", default="*.xyz", metavar="PATTERN",
                       help="in a folder of guesses, the files to run (any format ase.io "
                            "reads), e.g. '*.traj' [*.xyz]")
    batch.add_argument("--methods", default="gprd", metavar="LIST",
                       help="comma-separated, e.g. gprd,dimer,sella [gprd]")
    batch.add_argument("--calc", default="hf/3-21g", metavar="LIST",
                       help="calculator(s), comma-separated [hf/3-21g]")
    batch.add_argument("--db", type=Path, default=Path("results.db"),
                       help="results database; a rerun skips its finished tasks [results.db]")
    add_system_options(batch, "for a folder of guesses")
    add_search_options(batch)
    batch.add_argument("--seed", type=int, default=SEED,
                       help="base seed; each system's seed derives from it and its name")
    batch.add_argument("--only", metavar="NAMES",
                       help="comma-separated system names, e.g. singlets/000,doublets/005")
    batch.add_argument("--limit", type=int, metavar="K",
                       help="run only the first K systems of those the other selections leave")
    batch.add_argument("--smallest", type=int, metavar="K",
                       help="run only the K systems with fewest atoms, of those --only and "
                            "--stride leave")
    batch.add_argument("--stride", type=int, metavar="K",
                       help="run only every K-th system, ordered by name, of those --only leaves "
                            "(a sample across the set: 5 gives doublets/000, doublets/005, ...)")
    batch.add_argument("--irc", action="store_true",
                       help="follow each converged saddle's reaction path to both minima; the "
                            "row stores their energies and whether they differ")
    batch.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="stop a task after this long (it then runs in its own process)")
    add_cluster_options(batch)

    verify = commands.add_parser(
        "verify", help="true Hessian at every converged row of a results database")
    verify.set_defaults(command=batch_commands.verify)
    verify.add_argument("db", type=Path, help="results database written by gprdimer batch")
    verify.add_argument("--methods", metavar="LIST", help="only these methods' rows [all]")
    verify.add_argument("--threshold", type=float, default=IMAGINARY_CM, metavar="CM",
                        help=f"imaginary frequencies count beyond this, cm⁻¹ [{IMAGINARY_CM:g}]")
    add_cluster_options(verify)

    report = commands.add_parser("report", help="tables and plots from a results database")
    report.set_defaults(command=batch_commands.report)
    report.add_argument("db", type=Path, help="results database written by gprdimer batch")
    report.add_argument("--reference", type=Path,
                        help="set folder or reference/ folder with the published CSVs")
    report.add_argument("--out", type=Path, help="output folder [the database's folder]")
    report.add_argument("--stride", type=int, metavar="K",
                        help="only every K-th system of the database, ordered by name (the "
                             "sample `batch --stride K` runs) [all]")
    return parser
