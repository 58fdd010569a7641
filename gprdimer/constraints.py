"""Which atoms are fixed: one mask for the GP, the searches and the initial modes."""

from __future__ import annotations

import numpy as np
from ase.constraints import FixAtoms

from .errors import InputError


def fixed_atoms(atoms) -> list[int]:
    """Indices held by the FixAtoms constraints of `atoms`."""
    return sorted({int(i) for c in atoms.constraints if isinstance(c, FixAtoms) for i in c.get_indices()})


def fixed_mask(n_atoms: int, fixed=None) -> np.ndarray:
    """Boolean mask of fixed atoms from None, a boolean mask, or a list of atom indices."""
    mask = np.zeros(n_atoms, dtype=bool)
    if fixed is None:
        return mask
    fixed = np.asarray(fixed)
    if fixed.dtype == bool:
        if fixed.shape != (n_atoms,):
            raise InputError(f"fixed mask has shape {fixed.shape}, expected ({n_atoms},)")
        return fixed.copy()
    if fixed.size == 0:
        return mask
    if fixed.ndim != 1 or not np.issubdtype(fixed.dtype, np.integer):
        raise InputError("fixed must be a boolean mask or a list of atom indices")
    if fixed.min() < -n_atoms or fixed.max() >= n_atoms:
        raise InputError(f"fixed holds an index outside 0..{n_atoms - 1}")
    mask[fixed] = True
    return mask


def atoms_fixed_mask(atoms, fixed=None) -> np.ndarray:
    """Boolean mask of fixed atoms: `fixed` (mask or indices), else the FixAtoms of `atoms`."""
    return fixed_mask(len(atoms), fixed_atoms(atoms) if fixed is None else fixed)
