"""What a converged search leaves for the chemist: the saddle as an extended XYZ file and an
animation of its mode.

`GUESS.METHOD.ts.xyz` holds the saddle with its true energy and forces, the dimer mode as a
per-atom `mode` column, the frequencies where a true Hessian was computed, and the charge and
multiplicity, so that the file is a valid guess for the next calculation as it stands.
`GUESS.METHOD.mode.xyz` moves the saddle along the mode, there and back, for a viewer.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from .structures import SPIN_KEYS

MODE_FRAMES = 20  # one period of the animation
MODE_AMPLITUDE = 0.3  # Å: the largest atomic displacement of the animation


def point_atoms(numbers, positions, charge, multiplicity, energy, forces=None,
                constraints=()) -> Atoms:
    """A point of the surface as Atoms that a next calculation can start from: its true energy
    (and forces), its spin state in `info`, and the fixed atoms."""
    atoms = Atoms(numbers=numbers, positions=positions, constraint=list(constraints))
    atoms.info.update(zip(SPIN_KEYS, (int(charge), int(multiplicity))))
    atoms.calc = SinglePointCalculator(
        atoms, energy=float(energy),
        forces=None if forces is None else np.asarray(forces, dtype=float))
    return atoms


def saddle_atoms(numbers, result, charge, multiplicity, constraints=()) -> Atoms:
    """The result's point as Atoms with its energy, forces, mode and what the check found."""
    atoms = point_atoms(numbers, result.positions, charge, multiplicity, result.energy,
                        result.forces, constraints)
    atoms.arrays["mode"] = np.asarray(result.mode, dtype=float)
    atoms.info.update(curvature=float(result.curvature), calls=int(result.calls))
    if result.n_imaginary is not None:
        atoms.info["n_imaginary"] = int(result.n_imaginary)
    if result.frequencies is not None:
        atoms.info["frequencies"] = np.asarray(result.frequencies, dtype=float)
    return atoms


def write_point(path, atoms) -> None:
    """Extended XYZ, which keeps the energy, forces, info and per-atom arrays."""
    write(str(path), atoms, format="extxyz")


def write_mode_animation(path, atoms) -> bool:
    """Frames along `atoms.arrays['mode']`; False (nothing written) where the mode is zero."""
    mode = np.asarray(atoms.arrays["mode"], dtype=float)
    largest = np.linalg.norm(mode, axis=1).max()
    if not largest > 0:
        return False
    frames = []
    for phase in np.sin(2 * np.pi * np.arange(MODE_FRAMES) / MODE_FRAMES):
        frame = Atoms(numbers=atoms.numbers, positions=atoms.positions)
        frame.positions += phase * MODE_AMPLITUDE / largest * mode
        frames.append(frame)
    write(str(path), frames, format="extxyz")
    return True
