"""Child process of `test_gp.py::test_a_bounded_model_stays_within_its_memory_limit`.

Adds observations of benzene on a harmonic surface to a GP with the `memory_limit` given (MB),
training every tenth and predicting after each (so that the factor is extended, and rebuilt
after each pass over the bound), and prints the growth of the process's peak resident memory
over the run in bytes, the most observations held and the GP's covariance rows.
"""

import sys

import numpy as np
from ase.build import molecule

from gprdimer import GaussianProcess
from gprdimer.gp import GPSettings


def resident_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main(limit, count):
    atoms = molecule("C6H6")
    settings = GPSettings(memory_limit=limit)
    gp = GaussianProcess(atoms.get_chemical_symbols(), settings=settings)
    rng = np.random.default_rng(0)

    def add_one():
        x = atoms.positions + 0.05 * rng.standard_normal(atoms.positions.shape)
        d = x - atoms.positions
        gp.add(x, 0.5 * float((d**2).sum()), -d)
        return x

    gp.predict(add_one())  # the library's code and first buffers are resident from here on
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets the peak to the current resident size
    base = resident_kib("VmRSS:")
    most = 0
    for i in range(count):
        x = add_one()
        if i % 10 == 0:
            gp.train()
        gp.predict(x)
        most = max(most, gp.n_observations)
    print(1024 * (resident_kib("VmHWM:") - base), most, settings.max_rows)


if __name__ == "__main__":
    main(float(sys.argv[1]), int(sys.argv[2]))
