"""Harmonic frequencies from a Hessian: mass weighting, rigid motions projected out, cm⁻¹.

The one place where curvatures become wavenumbers and where "imaginary" is decided, for the
searches' own saddle check, for `verify='hessian'` and for `gprdimer verify` alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ase import units

from . import _core
from .constraints import fixed_mask

# sqrt(eV / (Å² amu)) in cm⁻¹ (521.47): a mass-weighted eigenvalue λ is ν = 521.47·sqrt(λ).
WAVENUMBER = math.sqrt(units._e / (1e-20 * units._amu)) / (2 * math.pi * units._c * 100)
# A mode counts as imaginary only below -50 cm⁻¹: a geometry converged to fmax 0.01 eV/Å leaves
# residual curvatures of that size along flat directions (torsions, distant fragments), which are
# not reaction coordinates. In curvature terms: 0.0092 eV/Å² for a hydrogen, 0.11 for carbon,
# 0.15 for oxygen moving alone.
IMAGINARY_CM = 50.0


def to_wavenumber(eigenvalue):
    """Mass-weighted eigenvalue(s) (eV/(Å² amu)) as cm⁻¹, imaginary ones negative."""
    lam = np.asarray(eigenvalue, dtype=float)
    return np.sign(lam) * WAVENUMBER * np.sqrt(np.abs(lam))


def count_imaginary(wavenumbers, threshold=IMAGINARY_CM) -> int:
    """How many of `wavenumbers` (cm⁻¹) are imaginary beyond `threshold` in magnitude."""
    return int(np.sum(np.asarray(wavenumbers, dtype=float) < -threshold))


class MassWeighting:
    """Mass-weighted coordinates of the moving atoms of `atoms`, and their internal subspace.

    `sqrt_mass` scales a Cartesian displacement of the moving coordinates into mass-weighted
    ones; `internal` has orthonormal columns spanning the mass-weighted internal motions (the
    complement of the rigid translations and rotations that leave the energy unchanged: none
    with fixed atoms, translations only with a periodic cell, fewer rotations when linear).
    """

    def __init__(self, atoms, positions=None, fixed=None):
        mask = fixed_mask(len(atoms), fixed)
        self.sqrt_mass = np.repeat(np.sqrt(atoms.get_masses()[~mask]), 3)
        self.internal = internal_basis(atoms, positions, mask, self.sqrt_mass)

    def weigh(self, hessian):
        """Cartesian Hessian of the moving coordinates (eV/Å²) → mass-weighted internal block."""
        inv = 1.0 / self.sqrt_mass
        weighted = inv[:, None] * np.asarray(hessian, dtype=float) * inv[None, :]
        block = self.internal.T @ weighted @ self.internal
        return 0.5 * (block + block.T)

    def to_cartesian(self, internal_vectors):
        """Columns in the internal basis → unit Cartesian directions of the moving coordinates,
        and the factor |M^(-1/2) s|² that turns a mass-weighted eigenvalue into a curvature
        along that direction (eV/Å²)."""
        weighted = self.internal @ np.atleast_2d(np.asarray(internal_vectors).T).T
        cartesian = weighted / self.sqrt_mass[:, None]
        norms = np.linalg.norm(cartesian, axis=0)
        return cartesian / norms, norms**2

    def to_internal(self, cartesian):
        """A Cartesian direction of the moving coordinates → its internal mass-weighted part."""
        return self.internal.T @ (self.sqrt_mass * np.asarray(cartesian, dtype=float))


def internal_basis(atoms, positions=None, fixed=None, scale=None):
    """Orthonormal columns spanning the internal motions of the moving coordinates: the
    complement of the rigid motions of the C++ core (`_core.rigid_motions`: none with fixed
    atoms, translations only with a periodic cell, one rotation fewer when linear), in the
    coordinates scaled by `scale` (the square roots of the masses: mass-weighted) if given."""
    mask = fixed_mask(len(atoms), fixed)
    positions = atoms.positions if positions is None else np.asarray(positions, dtype=float)
    dims = 3 * int((~mask).sum())
    rigid = np.asarray(_core.rigid_motions(atoms.get_chemical_symbols(), list(mask),
                                           atoms.cell.array, list(atoms.pbc),
                                           np.ascontiguousarray(positions)))
    if not rigid.size:
        return np.eye(dims)
    if scale is not None:
        rigid = np.asarray(scale)[:, None] * rigid
    u, s, _ = np.linalg.svd(rigid, full_matrices=True)
    return u[:, int(np.sum(s > 1e-8 * s[0])):]


@dataclass(frozen=True)
class Frequencies:
    """Harmonic analysis of a full Hessian: wavenumbers ascending (cm⁻¹, imaginary negative,
    rigid motions removed), the Cartesian unit modes of the moving coordinates (columns), and
    the curvature along each (eV/Å²)."""

    wavenumbers: np.ndarray
    modes: np.ndarray
    curvatures: np.ndarray


def harmonic_analysis(hessian, atoms, positions=None, fixed=None) -> Frequencies:
    """Frequencies of the Cartesian Hessian (moving coordinates, eV/Å²) at `positions`."""
    weighting = MassWeighting(atoms, positions, fixed)
    values, vectors = np.linalg.eigh(weighting.weigh(hessian))
    modes, factors = weighting.to_cartesian(vectors)
    return Frequencies(to_wavenumber(values), modes, values / factors)
