"""Command-line options shared by the commands, and their one-line checks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError


def add_cluster_options(parser):
    parser.add_argument("--workers", type=int, metavar="N",
                        help="local worker processes [usable cores / threads per worker]")
    parser.add_argument("--threads-per-worker", type=int, metavar="T",
                        help="BLAS/OpenMP/PySCF threads per task [1]")
    parser.add_argument("--cluster", default="local", help="local | slurm | pbs [local]")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="address or scheduler file of a running Dask cluster")
    parser.add_argument("--cluster-config", type=Path, metavar="FILE",
                        help="YAML file of cluster options; command-line values win")
    parser.add_argument("--queue", metavar="Q", help="slurm/pbs: queue or partition")
    parser.add_argument("--walltime", metavar="HH:MM:SS", help="slurm/pbs: per job")
    parser.add_argument("--cores", type=int, metavar="C", help="slurm/pbs: CPUs per job")
    parser.add_argument("--memory", metavar="SIZE", help="slurm/pbs: per job, e.g. 4GB")
    parser.add_argument("--jobs", type=int, metavar="J", help="slurm/pbs: jobs to start [1]")
    parser.add_argument("--dry-run", action="store_true",
                        help="slurm/pbs: print the job script and exit; nothing is run or written")


def add_system_options(parser, note=""):
    suffix = f" {note}" if note else ""
    parser.add_argument("--charge", type=int,
                        help=f"total charge{suffix} [the file's charge=, else 0]")
    parser.add_argument("--multiplicity", type=int,
                        help=f"spin multiplicity 2S+1{suffix} [the file's multiplicity=, else 1]")


def add_search_options(parser):
    parser.add_argument("--fmax", type=float, default=0.01, help="force tolerance, eV/Å [0.01]")
    parser.add_argument("--steps", type=int,
                        help="outer iterations at most [300; Sella 200, the published settings]")
    parser.add_argument("--params", metavar="JSON", type=params_option,
                        help="keywords of the method, as a JSON object, e.g. "
                             "'{\"convex_step\": 0.05}' (docs/parameters.md) [the defaults]")


def params_option(text):
    """--params as a dict; argparse reports the error in one line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object of keyword: value is needed, got {text}")
    return value


def split_list(text, option):
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"{option}: expected a comma-separated list, got {text!r}")
    return items


def check_positive(value, option):
    if value < 1:
        raise InputError(f"{option} must be at least 1, got {value}")
