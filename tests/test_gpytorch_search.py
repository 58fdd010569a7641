"""The gpytorch backend drives a whole GPR-dimer search through the same C++ inner loop."""

import numpy as np
import pytest

from gprdimer import GPRDimer, InputError

from test_search import morse_cluster

pytest.importorskip("gpytorch", reason="gpytorch backend not installed (extra gprdimer[torch])")


def search(**keywords):
    atoms, calc, mode = morse_cluster()
    atoms.calc = calc()
    # the Morse cluster's saddle is 29i cm⁻¹: below the default threshold (test_saddle_check)
    opt = GPRDimer(atoms, mode=mode, logfile=None, training_subset=None, imaginary_threshold=20,
                   **keywords)
    opt.run(fmax=0.01, steps=60)
    return opt


def distances(positions):
    return np.sort(np.linalg.norm(positions[:, None] - positions[None], axis=-1).ravel())


@pytest.mark.slow
def test_the_gpytorch_backend_reaches_the_core_backends_saddle():
    core, torch = search(), search(backend="gpytorch")
    assert torch.gp.backend == "gpytorch" and core.gp.backend == "cpp"
    assert core.result.converged and torch.result.converged, torch.result.stop_reason
    assert torch.result.energy == pytest.approx(core.result.energy, abs=1e-3)
    # the same saddle up to a rigid motion and a permutation of the free cluster's identical
    # atoms: the same interatomic distances
    assert np.abs(distances(torch.result.positions) - distances(core.result.positions)).max() < 0.01
    # one true call per outer iteration on either backend, and every call observed; the two fit
    # their hyperparameters with different optimisers, so that their paths differ by a few calls,
    # by how many with the machine's floating point (27 against 23 on one AVX-512 machine)
    assert abs(torch.result.calls - core.result.calls) <= max(3, 0.2 * core.result.calls)
    assert torch.gp.n_observations == torch.result.calls


def test_the_gpytorch_backend_trains_on_all_data():
    atoms, calc, mode = morse_cluster()
    atoms.calc = calc()
    with pytest.raises(InputError, match="training_subset=None with backend='gpytorch'"):
        GPRDimer(atoms, mode=mode, logfile=None, backend="gpytorch")
