"""Reading and checking what users hand us: XYZ guesses and mode vectors.

Every problem becomes one InputError that names the file, the line or atom, and the fault, so
that the command line can print it and exit 2 instead of showing a traceback.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from .errors import InputError

MIN_DISTANCE = 0.3  # Å: closer atoms are a broken file, not chemistry


def parse_xyz(text: str, where: str) -> Atoms:
    """Atoms from the text of a plain XYZ file (count line, comment line, `Symbol x y z`)."""
    lines = text.splitlines()
    if not lines or not text.strip():
        raise InputError(f"{where}: empty file")
    try:
        n = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise InputError(f"{where}, line 1: expected the number of atoms, got {lines[0]!r}") from None
    if n < 1:
        raise InputError(f"{where}, line 1: the number of atoms must be positive, got {n}")
    body = [ln for ln in lines[2:2 + n]]
    if len(lines) < 2 + n or any(not ln.strip() for ln in body):
        found = sum(1 for ln in lines[2:] if ln.strip())
        raise InputError(f"{where}: truncated: line 1 announces {n} atoms, the file holds {found}")
    extra = [ln for ln in lines[2 + n:] if ln.strip()]
    if extra:
        raise InputError(f"{where}: line 1 announces {n} atoms but {n + len(extra)} atom lines follow")
    symbols, positions = [], []
    for k, line in enumerate(body):
        lineno = k + 3
        parts = line.split()
        if len(parts) < 4:
            raise InputError(f"{where}, line {lineno} (atom {k}): expected 'Symbol x y z', got {line.strip()!r}")
        sym = parts[0].capitalize()
        if sym not in atomic_numbers or sym == "X":
            raise InputError(f"{where}, line {lineno} (atom {k}): unknown element {parts[0]!r}")
        try:
            xyz = [float(v) for v in parts[1:4]]
        except ValueError:
            raise InputError(f"{where}, line {lineno} (atom {k}, {sym}): coordinates are not numbers: "
                             f"{' '.join(parts[1:4])!r}") from None
        if not all(math.isfinite(v) for v in xyz):
            raise InputError(f"{where}, line {lineno} (atom {k}, {sym}): coordinates contain NaN or infinity")
        symbols.append(sym)
        positions.append(xyz)
    atoms = Atoms(symbols, positions=positions)
    check_geometry(atoms, where)
    return atoms


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


def read_structure(path) -> Atoms:
    """The guess geometry in an XYZ file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as text ({exc})") from None
    return parse_xyz(text, str(path))


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
        raise InputError(f"{where}: --charge {charge} removes more electrons than the "
                         f"{int(atoms.numbers.sum())} the atoms have")
    unpaired = multiplicity - 1
    if multiplicity < 1 or unpaired > electrons or unpaired % 2 != electrons % 2:
        parity = "odd" if electrons % 2 else "even"
        raise InputError(f"{where}: multiplicity {multiplicity} is impossible with {electrons} "
                         f"electrons (charge {charge}); an {parity} electron count needs an "
                         f"{'even' if electrons % 2 else 'odd'} multiplicity "
                         f"≤ {electrons + 1}")
