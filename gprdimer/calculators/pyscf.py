"""ASE calculator for PySCF HF/DFT energies and forces.

Saddle searches are only comparable with published numbers when every call lands on the same
(lowest) SCF solution, so the first point of a system follows SCF instabilities (and, for open
shells, tries several starting densities), and every later point starts from the previous density.
"""

import math
import warnings
from contextlib import contextmanager

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.units import Bohr, Hartree
from pyscf import dft, gto, lib, scf
from pyscf.lib.exceptions import BasisNotFoundError

from ..errors import InputError, SCFConvergenceError

METHODS = ('HF', 'RHF', 'UHF', 'ROHF')
MIN_DISTANCE = 0.3  # Å; closer atoms are a broken geometry, not chemistry
FIRST_POINT_GUESSES = ('minao', 'atom', 'huckel')
# DIIS from a poor open-shell guess that has not converged in this many cycles rarely does later;
# the Newton candidate covers it, so the first-point survey does not wait for max_cycle.
SURVEY_MAX_CYCLE = 50
LEVEL_SHIFT = 0.5  # Ha; damps the occupied-virtual mixing that makes DIIS oscillate
LEVEL_SHIFT_CONV_TOL = 1e-5  # the shifted pre-run only has to get close; plain DIIS finishes
MAX_STABILITY_STEPS = 4
SAME_SOLUTION_HA = 1e-7  # candidates closer than this are one solution, analysed once


class _SCFLog:
    """State shared by the SCF runs of one call; as SCF callback it counts cycles and keeps the
    last energy change."""

    def __init__(self):
        self.cycles = 0
        self.last_de = math.nan
        self.eri = None  # the call's two-electron integrals, built once for all its SCF objects
        self._last_step = None

    def __call__(self, envs):
        # The Newton kernel reports its last macro-iteration twice; count each step once.
        step = (id(envs['mf']), envs.get('cycle', envs.get('imacro')))
        if step != self._last_step:
            self.cycles += 1
            self._last_step = step
        self.last_de = envs['e_tot'] - envs['last_hf_e']


@contextmanager
def _thread_count(threads):
    if threads is None:
        yield
        return
    previous = lib.num_threads()
    lib.num_threads(threads)
    try:
        yield
    finally:
        lib.num_threads(previous)


class PySCFCalculator(Calculator):
    """PySCF energies (eV) and forces (eV/Å) for molecules.

    method: 'HF' picks RHF for closed shells and UHF for open shells; 'RHF', 'UHF' or 'ROHF' force
    the reference. With ``xc`` the same choice gives RKS, UKS or ROKS. ``threads`` sets PySCF's
    thread count during this calculator's calls only. ``scf_cycles`` holds the SCF cycles spent by
    the last call, all attempts included.
    """

    implemented_properties = ['energy', 'forces']
    default_parameters = dict(method='HF', basis='3-21G', charge=0, multiplicity=1, xc=None,
                              conv_tol=1e-9, conv_tol_grad=None, max_cycle=200, threads=None,
                              density_fit=False)

    def __init__(self, method='HF', basis='3-21G', charge=0, multiplicity=1, xc=None,
                 conv_tol=1e-9, conv_tol_grad=None, max_cycle=200, threads=None, label=None,
                 density_fit=False):
        self._label = label
        self.scf_cycles = 0
        self._mf = None
        self._guess_key = None
        self._guess_dm = None
        super().__init__(method=method, basis=basis, charge=charge,
                         multiplicity=multiplicity, xc=xc, conv_tol=conv_tol,
                         conv_tol_grad=conv_tol_grad, max_cycle=max_cycle, threads=threads,
                         density_fit=density_fit)

    # ASE reads a label as directory/prefix and creates that directory; this calculator writes no
    # files, so its label is only the system name used in error messages.
    @property
    def label(self):
        return self._label

    @label.setter
    def label(self, value):
        self._label = value

    def set(self, **kwargs):
        changed = super().set(**kwargs)
        if changed:
            _check_parameters(self.parameters)
            self.reset()
        return changed

    def reset(self):
        super().reset()
        self._mf = None

    def calculate(self, atoms=None, properties=('energy',), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        with _thread_count(self.parameters.threads):
            if system_changes or self._mf is None:
                self._mf = None  # a failed SCF must not leave the old solution for these atoms
                self._mf = self._solve(self.atoms)
                self.results['energy'] = self._mf.e_tot * Hartree
            if 'forces' in properties:
                gradient = self._mf.nuc_grad_method()
                gradient.verbose = 0
                self.results['forces'] = -gradient.kernel() * Hartree / Bohr

    def get_hessian(self, atoms=None):
        """Analytic Hessian (3N, 3N) in eV/Å² at `atoms`, from PySCF's ``mf.Hessian()`` (RHF,
        UHF, RKS, UKS); NotImplementedError where PySCF has none (ROHF)."""
        atoms = self.atoms if atoms is None else atoms
        if self._mf is None or not np.allclose(self._mf.mol.atom_coords(unit='Angstrom'),
                                               atoms.positions, rtol=0.0, atol=1e-10):
            # the SCF held is another geometry's (a search restores results, not SCF objects)
            self.calculate(atoms, ['energy'], all_changes)
        from pyscf import hessian as _  # noqa: F401  (attaches mf.Hessian to the SCF classes)

        with _thread_count(self.parameters.threads):
            try:
                hessian = self._mf.Hessian()
            except (AttributeError, NotImplementedError) as exc:
                raise NotImplementedError(f"PySCF has no analytic Hessian for "
                                          f"{self._reference()}: {exc}") from None
            hessian.verbose = 0
            blocks = hessian.kernel()  # (N, N, 3, 3), Hartree/Bohr²
        n = len(atoms)
        return blocks.transpose(0, 2, 1, 3).reshape(3 * n, 3 * n) * Hartree / Bohr**2

    # -- SCF ----------------------------------------------------------------------------------

    def _system(self, atoms):
        return self.label or atoms.get_chemical_formula()

    def _reference(self):
        p = self.parameters
        if p.method != 'HF':
            return p.method
        return 'RHF' if p.multiplicity == 1 else 'UHF'

    def _solve(self, atoms):
        p = self.parameters
        mol = _molecule(atoms, p, self._system(atoms))
        reference = self._reference()
        # The previous density is only a valid start for the same atoms in the same basis and state.
        key = (tuple(atoms.numbers), str(p.basis), p.charge, p.multiplicity, reference, p.xc,
               p.density_fit)
        log = _SCFLog()
        if key == self._guess_key:
            mf = self._converge(mol, reference, self._guess_dm, log, atoms)
        else:
            mf = self._lowest_stable(mol, reference, log, atoms)
        self.scf_cycles = log.cycles
        self._guess_key, self._guess_dm = key, mf.make_rdm1()
        # The gradient does not use the integrals and the next geometry needs new ones; holding
        # them would keep up to ~150 MB alive per calculator (ASE calculators sit in reference
        # cycles, so a discarded one is freed only by a full garbage collection).
        mf._eri = log.eri = None
        return mf

    def _new_mf(self, mol, reference, log, max_cycle=None):
        p = self.parameters
        if p.xc is None:
            mf = {'RHF': scf.RHF, 'UHF': scf.UHF, 'ROHF': scf.ROHF}[reference](mol)
        else:
            mf = {'RHF': dft.RKS, 'UHF': dft.UKS, 'ROHF': dft.ROKS}[reference](mol, xc=p.xc)
        if p.density_fit:
            mf = mf.density_fit()
        elif _eri_fits(mol, mf.max_memory):
            if log.eri is None:
                log.eri = mol.intor('int2e', aosym='s8')
            mf._eri = log.eri
        mf.conv_tol = p.conv_tol
        mf.conv_tol_grad = p.conv_tol_grad
        mf.max_cycle = p.max_cycle if max_cycle is None else max_cycle
        mf.verbose = 0
        mf.callback = log
        return mf

    def _converge(self, mol, reference, dm0, log, atoms):
        """DIIS, then a level-shifted pre-run finished by DIIS, then Newton; raise if all fail."""
        mf = self._new_mf(mol, reference, log)
        if dm0 is None:
            dm0 = mf.get_init_guess()
        mf.kernel(dm0=dm0)
        if mf.converged:
            return mf

        shifted = self._new_mf(mol, reference, log)
        shifted.level_shift = LEVEL_SHIFT
        shifted.conv_tol = LEVEL_SHIFT_CONV_TOL
        shifted.conv_tol_grad = None
        shifted.kernel(dm0=dm0)
        mf = self._new_mf(mol, reference, log)
        mf.kernel(dm0=shifted.make_rdm1())
        if mf.converged:
            return mf

        newton = self._new_mf(mol, reference, log).newton()
        newton.kernel(dm0=dm0)
        if newton.converged:
            return newton.undo_soscf()
        p = self.parameters
        raise SCFConvergenceError(
            f"{self._system(atoms)}: {reference} SCF ({p.xc or 'HF'}/{p.basis}, charge {p.charge}, "
            f"multiplicity {p.multiplicity}) did not converge within {p.max_cycle} cycles with "
            f"DIIS, a level-shifted pre-run or Newton; last energy change {log.last_de:.3e} Ha")

    def _lowest_stable(self, mol, reference, log, atoms):
        """First point: the lowest stable solution found.

        Closed shells start from the default guess; some of the set's singlets land on an excited
        RHF solution there, which the stability analysis leaves. Open-shell SCF also has stable
        excited solutions that no stability analysis escapes, so several starts are each converged
        by DIIS and by Newton, which often reach different solutions from the same start.
        """
        if reference == 'RHF':
            candidates = [self._converge(mol, reference, None, log, atoms)]
        else:
            candidates = self._survey(mol, reference, log, atoms)

        best = None
        for mf in _distinct(candidates):
            mf = self._follow_instabilities(mf, mol, reference, log, atoms)
            if best is None or mf.e_tot < best.e_tot:
                best = mf
        return best

    def _survey(self, mol, reference, log, atoms):
        template = self._new_mf(mol, reference, log)
        starts = [template.get_init_guess(key=guess) for guess in FIRST_POINT_GUESSES]
        if reference == 'UHF':
            # A spin-pure start reaches low solutions that the atomic guesses miss (doublets/163).
            try:
                starts.append(self._converge(mol, 'ROHF', None, log, atoms).make_rdm1())
            except SCFConvergenceError:
                pass  # an optional start; the atomic guesses remain

        candidates = []
        for dm0 in starts:
            diis = self._new_mf(mol, reference, log,
                                max_cycle=min(SURVEY_MAX_CYCLE, self.parameters.max_cycle))
            diis.kernel(dm0=dm0)
            if diis.converged:
                candidates.append(diis)
            newton = self._new_mf(mol, reference, log).newton()
            newton.kernel(dm0=dm0)
            if newton.converged:
                candidates.append(newton.undo_soscf())
        if not candidates:
            # Nothing converged cheaply: the full fallback chain raises with the details.
            candidates.append(self._converge(mol, reference, None, log, atoms))
        return candidates

    def _follow_instabilities(self, mf, mol, reference, log, atoms):
        for _ in range(MAX_STABILITY_STEPS):
            mo, _, stable, _ = mf.stability(return_status=True, verbose=0)
            if stable:
                return mf
            try:
                rotated = self._converge(mol, reference, mf.make_rdm1(mo, mf.mo_occ), log, atoms)
            except SCFConvergenceError:
                return mf  # the rotated start led nowhere; the solution in hand is still valid
            if rotated.e_tot > mf.e_tot - SAME_SOLUTION_HA:
                return mf
            mf = rotated
        return mf


def _eri_fits(mol, max_memory):
    """PySCF's own in-core test, without its current-process-memory term.

    A long-running process keeps the high-water mark of earlier large systems as resident memory,
    and PySCF's test then switches every later SCF to integral-direct JK builds, 5-10x slower.
    """
    return mol.nao_nr() ** 4 / 1e6 < max_memory * 0.95


def _distinct(candidates):
    """Candidates sorted by energy, one per solution."""
    kept = []
    for mf in sorted(candidates, key=lambda m: m.e_tot):
        if not kept or mf.e_tot - kept[-1].e_tot > SAME_SOLUTION_HA:
            kept.append(mf)
    return kept


def _check_parameters(p):
    if p.method not in METHODS:
        raise InputError(f"method {p.method!r} is not one of {', '.join(METHODS)}")
    if not isinstance(p.basis, str):
        raise InputError(f"basis must be a basis-set name, got {p.basis!r}")
    if not isinstance(p.multiplicity, (int, np.integer)) or p.multiplicity < 1:
        raise InputError(f"multiplicity must be an integer >= 1, got {p.multiplicity!r}")
    if p.method == 'RHF' and p.multiplicity != 1:
        raise InputError(f"method 'RHF' needs multiplicity 1, got {p.multiplicity}")
    if p.threads is not None and (not isinstance(p.threads, (int, np.integer)) or p.threads < 1):
        raise InputError(f"threads must be a positive integer or None, got {p.threads!r}")
    if p.xc is not None:
        try:
            dft.libxc.parse_xc(p.xc)
        except KeyError as err:
            raise InputError(f"xc {p.xc!r} is not a functional known to libxc: {err}") from None


def _molecule(atoms, p, system):
    """The PySCF molecule, after the checks that would otherwise fail deep inside an SCF."""
    symbols = atoms.get_chemical_symbols()
    for i, (z, symbol) in enumerate(zip(atoms.numbers, symbols)):
        if z == 0:
            raise InputError(f"{system}: atom {i} has no element ({symbol})")
    for symbol in sorted(set(symbols)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # PySCF's advert for basis-set-exchange
                gto.basis.load(p.basis, symbol)
        except BasisNotFoundError:
            first = symbols.index(symbol)
            raise InputError(f"{system}: basis {p.basis!r} has no functions for element {symbol} "
                             f"(atom {first})") from None

    positions = atoms.positions
    distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    close = np.argwhere(np.triu(distances < MIN_DISTANCE, k=1))
    if len(close):
        i, j = close[0]
        raise InputError(f"{system}: atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are "
                         f"{distances[i, j]:.3f} Å apart, closer than {MIN_DISTANCE} Å")

    electrons = int(atoms.numbers.sum()) - p.charge
    unpaired = p.multiplicity - 1
    if electrons < 1 or unpaired > electrons or (electrons - unpaired) % 2:
        raise InputError(f"{system}: multiplicity {p.multiplicity} is impossible for "
                         f"{electrons} electrons (charge {p.charge})")

    # Coordinates in Bohr with ASE's constant, so forces convert back exactly with ase.units.Bohr.
    mol = gto.Mole()
    mol.atom = [(symbol, xyz) for symbol, xyz in zip(symbols, positions / Bohr)]
    mol.unit = 'Bohr'
    mol.basis = p.basis
    mol.charge = p.charge
    mol.spin = unpaired
    mol.verbose = 0
    return mol.build()
