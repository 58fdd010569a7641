"""Checking what users hand us: geometries, mode vectors, charge and multiplicity.

Every problem becomes one InputError that names the file, the line or atom, and the fault, so
that the command line can print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

from .errors import InputError

MIN_DISTANCE = 0.3  # Å: closer atoms are a broken file, not chemistry


def check_geometry(atoms: Atoms, where: str) -> None:
    """No NaN, no two atoms closer than MIN_DISTANCE."""
    x = atoms.positions
    if not np.all(np.isfinite(x)):
        bad = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise InputError(f"{where}: atom {bad} ({atoms[bad].symbol}) has NaN or infinite coordinates")
    if len(atoms) > 1:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(len(atoms)) * 1e9
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < MIN_DISTANCE:
            i, j = sorted((int(i), int(j)))
            what = "duplicate atoms" if d[i, j] < 1e-8 else "overlapping atoms"
            raise InputError(f"{where}: {what}: atoms {i} ({atoms[i].symbol}) and {j} ({atoms[j].symbol}) "
                             f"are {d[i, j]:.3f} Å apart (minimum {MIN_DISTANCE} Å)")


def read_mode(path, n_atoms: int) -> np.ndarray:
    """An initial mode from a .npy file or a text file of 3N numbers; shape (n_atoms, 3)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file; expected a mode vector of {3 * n_atoms} numbers "
                         f"({n_atoms} atoms x 3)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns on a file without numbers
            if path.suffix == ".npy":
                v = np.load(path, allow_pickle=False)
            else:
                v = np.loadtxt(path, ndmin=1)
        v = np.asarray(v, dtype=float)
    except (ValueError, TypeError, OSError, EOFError) as exc:
        # EOFError: a .npy file cut short; TypeError: an array of non-numbers
        raise InputError(f"{path}: not a mode vector ({type(exc).__name__}: {exc})") from None
    if v.size == 0:
        raise InputError(f"{path}: the mode vector is empty")
    if v.size != 3 * n_atoms:
        raise InputError(f"{path}: the mode has {v.size} values (shape {v.shape}); "
                         f"the structure needs {3 * n_atoms} ({n_atoms} atoms x 3)")
    if not np.all(np.isfinite(v)):
        raise InputError(f"{path}: the mode contains NaN or infinite values")
    if not np.any(v):
        raise InputError(f"{path}: the mode is all zeros")
    return v.reshape(n_atoms, 3)


def check_multiplicity(atoms, charge, multiplicity, where):
    """The spin state must fit the electron count: 2S = multiplicity - 1 unpaired electrons,
    as many as there are electrons at most and of the same parity."""
    electrons = int(atoms.numbers.sum()) - int(charge)
    if electrons < 0:
        raise InputError(f"{where}: charge {charge} removes more electrons than the "
                         f"{int(atoms.numbers.sum())} the atoms have")
    unpaired = multiplicity - 1
    if multiplicity < 1 or unpaired > electrons or unpaired % 2 != electrons % 2:
        parity = "odd" if electrons % 2 else "even"
        raise InputError(f"{where}: multiplicity {multiplicity} is impossible with {electrons} "
                         f"electrons (charge {charge}); an {parity} electron count needs an "
                         f"{'even' if electrons % 2 else 'odd'} multiplicity "
                         f"≤ {electrons + 1}")
