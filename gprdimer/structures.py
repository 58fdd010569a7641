"""Guess structures from any file ase.io reads, with the system's charge and multiplicity.

`read_structure("guess.xyz")` takes the last frame of a multi-frame file and says so;
`"guess.traj@0"` names a frame. XYZ text is checked frame by frame first, so that a broken file
gets the line and atom at fault rather than a parser's traceback; every other format is read by
ase.io as it is. FixAtoms constraints (extxyz `move_mask`, a trajectory's constraints) come with
the atoms; `charge=` and `multiplicity=` of an extxyz comment line (or `atoms.info` of any
format) are the defaults that `system_spin` resolves against the command line.
"""

from __future__ import annotations

import io
import math
import numbers
import warnings
from pathlib import Path

from ase.constraints import FixAtoms
from ase.data import atomic_numbers
from ase.io import read
from ase.io.formats import UnknownFileTypeError, filetype

from .errors import InputError, InputNote
from .inputs import check_geometry

XYZ_FORMATS = ("xyz", "extxyz")
SPIN_KEYS = ("charge", "multiplicity")  # the atoms.info keys of the system's spin state


def read_structure(spec):
    """The guess in `spec` ('file' or 'file@index') as Atoms; which frame of several was
    taken is an InputNote warning."""
    path, index = split_frame(spec)
    where = str(spec)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")
    try:
        fmt = filetype(str(path), guess=False)
    except (UnknownFileTypeError, OSError) as exc:
        raise InputError(f"{path}: not a structure format ase.io knows ({exc})") from None
    if fmt in XYZ_FORMATS:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: cannot be read as text ({exc})") from None
        frames = xyz_frames(text, str(path))
    else:
        frames = _read_frames(str(path), fmt, where)
    n_frames = len(frames)
    if index is None:
        index = n_frames - 1
        if n_frames > 1:
            warnings.warn(InputNote(f"{path} holds {n_frames} frames; the search starts from the "
                                    f"last (frame {index}); name another as {path}@0"))
    elif not -n_frames <= index < n_frames:
        raise InputError(f"{where}: no frame {index}; the file holds {n_frames} "
                         f"(0 to {n_frames - 1})")
    atoms = frames[index]
    check_structure(atoms, where)
    atoms.calc = None  # a trajectory's stored results are not the search's calculator
    return atoms


def split_frame(spec):
    """Path and frame index of 'file' or 'file@index' (a file whose name holds '@' wins)."""
    path = Path(spec)
    text = str(spec)
    if path.is_file() or "@" not in text:
        return path, None
    name, index = text.rsplit("@", 1)
    try:
        return Path(name), int(index)
    except ValueError:
        raise InputError(f"{text}: the frame after '@' must be an integer, got {index!r}") from None


def xyz_frames(text: str, where: str) -> list:
    """Every frame of XYZ or extended-XYZ text, checked line by line first."""
    check_xyz_text(text, where)
    return _read_frames(io.StringIO(text), "extxyz", where)  # plain XYZ: a comment without keys


def _read_frames(source, fmt, where):
    try:
        frames = read(source, index=":", format=fmt)
    except Exception as exc:  # every reader has its own errors; the user needs the file and why
        raise InputError(f"{where}: ase.io cannot read it as {fmt} "
                         f"({type(exc).__name__}: {exc})") from None
    if not frames:
        raise InputError(f"{where}: the file holds no structure")
    return frames


def check_structure(atoms, where):
    """Elements, constraints we honour, and no overlapping atoms."""
    if len(atoms) == 0:
        raise InputError(f"{where}: the structure has no atoms")
    for k, z in enumerate(atoms.numbers):
        if z < 1:
            raise InputError(f"{where}: atom {k} is a dummy atom (X); every atom needs an element")
    for constraint in atoms.constraints:
        if not isinstance(constraint, FixAtoms):
            raise InputError(f"{where}: the constraint {type(constraint).__name__} is not "
                             "supported; only FixAtoms (whole atoms fixed)")
    check_geometry(atoms, where)


def check_xyz_text(text: str, where: str) -> None:
    """InputError naming the line and atom at fault in XYZ text of one or more frames."""
    lines = text.splitlines()
    if not text.strip():
        raise InputError(f"{where}: empty file")
    start, n = 0, 0
    while start < len(lines) and lines[start].strip():
        n = _atom_count(lines, start, n, where)
        body = lines[start + 2:start + 2 + n]
        if len(lines) < start + 2 + n or any(not ln.strip() for ln in body):
            found = sum(1 for ln in lines[start + 2:] if ln.strip())
            raise InputError(f"{where}: truncated: line {start + 1} announces {n} atoms, "
                             f"the file holds {found}")
        if "properties=" not in lines[start + 1].lower():  # extxyz columns: ase.io checks them
            for k, line in enumerate(body):
                _check_atom_line(line, start + k + 3, k, where)
        start += 2 + n
    rest = [k for k in range(start, len(lines)) if lines[k].strip()]
    if rest:
        raise InputError(f"{where}, line {rest[0] + 1}: a blank line inside the file; expected "
                         f"the atom count of a next frame, got {lines[rest[0]].strip()!r}")


def _atom_count(lines, start, before, where):
    """The count line at `start`; `before` atoms in the frame before it (0: the first)."""
    try:
        n = int(lines[start].split()[0])
    except (ValueError, IndexError):
        if start == 0:
            raise InputError(f"{where}, line 1: expected the number of atoms, "
                             f"got {lines[0]!r}") from None
        raise InputError(f"{where}, line {start + 1}: after the {before} atoms announced on "
                         f"line {start - before - 1}, expected the atom count of a next frame, "
                         f"got {lines[start].strip()!r}") from None
    if n < 1:
        raise InputError(f"{where}, line {start + 1}: the number of atoms must be positive, got {n}")
    return n


def _check_atom_line(line, lineno, k, where):
    parts = line.split()
    if len(parts) < 4:
        raise InputError(f"{where}, line {lineno} (atom {k}): expected 'Symbol x y z', "
                         f"got {line.strip()!r}")
    sym = parts[0].capitalize()
    if sym not in atomic_numbers or sym == "X":
        raise InputError(f"{where}, line {lineno} (atom {k}): unknown element {parts[0]!r}")
    try:
        xyz = [float(v) for v in parts[1:4]]
    except ValueError:
        raise InputError(f"{where}, line {lineno} (atom {k}, {sym}): coordinates are not numbers: "
                         f"{' '.join(parts[1:4])!r}") from None
    if not all(math.isfinite(v) for v in xyz):
        raise InputError(f"{where}, line {lineno} (atom {k}, {sym}): coordinates contain NaN "
                         "or infinity")


def system_spin(atoms, charge, multiplicity, where) -> tuple[int, int]:
    """(charge, multiplicity): the command line's where given (None: not given), else the
    file's (`atoms.info`), else 0 and 1; an InputNote where the two disagree."""
    resolved = []
    for key, given, default in zip(SPIN_KEYS, (charge, multiplicity), (0, 1)):
        in_file = atoms.info.get(key)
        if in_file is not None:
            in_file = _integer_in_file(in_file, key, where)
        if given is not None and in_file is not None and given != in_file:
            warnings.warn(InputNote(f"{where} says {key}={in_file}; --{key} {given} wins"))
        resolved.append(given if given is not None else in_file if in_file is not None
                        else default)
    return resolved[0], resolved[1]


def _integer_in_file(value, key, where):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    raise InputError(f"{where}: {key}={value} in the file is not an integer")
