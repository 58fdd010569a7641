"""Where a result came from: the software versions, the processor and the threads it ran with.

A batch row and a search's JSON record these, so that a figure can be traced to the code and the
machine that made it; the thread limit is applied here too, so that what a row says is what ran.
"""

from __future__ import annotations

import os
import platform
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def software_versions(method: str, calc: str) -> dict:
    """Versions of the packages that shaped a result: ours, ASE, and the method's and
    calculator's own."""
    names = ["gprdimer", "ase", "numpy"]
    spec = calc.lower()
    if "/" in spec:
        names.append("pyscf")
    elif "xtb" in spec:
        names.append("tblite")
    if method == "sella":
        names.append("sella")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@lru_cache(maxsize=1)
def processor() -> str:
    """The CPU model and its widest vector extension. The core is compiled for the machine that
    builds it (-march=native) and BLAS picks kernels by CPU, so the same search can round
    differently on another processor and, being chaotic, end elsewhere; a row says where it ran."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:  # not Linux: the platform's own name
        pass
    vector = next((f for f in ("avx512f", "avx2", "avx", "neon", "asimd") if f in flags), "")
    return f"{model} ({vector})" if vector else model


@contextmanager
def thread_limit(threads):
    """At most `threads` BLAS/OpenMP threads for the duration of one task.

    Environment variables reach libraries loaded later and child processes; threadpoolctl
    reaches the ones already loaded, whose thread pools ignore the environment by now.
    """
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES})
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
        else:
            with threadpool_limits(limits=int(threads)):
                yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
