"""Calculator names used on the command line and in batches -> ASE calculators.

'hf/3-21g', 'uhf/6-31g*', 'b3lyp/def2-svp' (PySCF), 'xtb' or 'gfn2-xtb' (tblite), 'emt' (ASE).
The optional packages are imported only when their calculator is asked for.
"""

from __future__ import annotations

from ..errors import InputError

_HF = {"hf", "rhf", "uhf", "rohf"}
_XTB = {"xtb": "GFN2-xTB", "gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB", "ipea1-xtb": "IPEA1-xTB"}


def calculator_names():
    return "hf/BASIS, uhf/BASIS, rhf/BASIS, XC/BASIS (PySCF DFT), xtb, gfn1-xtb, emt"


def make_calculator(spec: str, charge: int = 0, multiplicity: int = 1, threads: int | None = None,
                    label: str | None = None):
    """An ASE calculator for `spec`; InputError for a name it does not know."""
    name = spec.strip().lower()
    if name in _XTB:
        try:
            from .xtb import XTBCalculator
        except ImportError:
            raise InputError(f"calculator {spec!r} needs tblite: pip install 'gprdimer[xtb]'") from None
        return XTBCalculator(method=_XTB[name], charge=charge, multiplicity=multiplicity,
                             verbosity=0)
    if name == "emt":
        from ase.calculators.emt import EMT

        return EMT()
    if "/" in name:
        method, basis = name.split("/", 1)
        if not method or not basis:
            raise InputError(f"calculator {spec!r}: expected METHOD/BASIS, e.g. hf/3-21g")
        try:
            from .pyscf import PySCFCalculator
        except ImportError:
            raise InputError(f"calculator {spec!r} needs PySCF: pip install 'gprdimer[pyscf]'") from None
        if method in _HF:
            return PySCFCalculator(method="HF" if method == "hf" else method.upper(), basis=basis,
                                   charge=charge, multiplicity=multiplicity, threads=threads,
                                   label=label)
        return PySCFCalculator(method="HF", xc=method, basis=basis, charge=charge,
                               multiplicity=multiplicity, threads=threads, label=label)
    raise InputError(f"unknown calculator {spec!r}; known: {calculator_names()}")
