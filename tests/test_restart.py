"""Restart from the file of every call: a stopped or interrupted search, continued, ends where
the uninterrupted one does, calling the calculator only for what the first one had not."""

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.io import read, write

import gprdimer.cli.search_command as search_command
from cli_support import run
from gprdimer import Dimer, GPRDimer, InputError
from gprdimer.runner import CountingCalculator
from gprdimer.search import StopReason
from test_search import FMAX, HEAVY, morse_cluster

METHODS = {"gprd": GPRDimer, "dimer": Dimer}


def search(method, record=None, calc=None, **keywords):
    atoms, surface, mode = morse_cluster()
    atoms.calc = calc or CountingCalculator(surface())
    return METHODS[method](atoms, restart=None if record is None else str(record), logfile=None,
                           mode=mode, **{**HEAVY, **keywords})


class InterruptAt(CountingCalculator):
    """Ctrl-C during call `k`."""

    def __init__(self, calc, k):
        super().__init__(calc)
        self.k = k

    def calculate(self, *args, **kwargs):
        if self.calls + 1 == self.k:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


@pytest.mark.parametrize("method", list(METHODS))
def test_a_search_stopped_at_its_step_limit_continues_to_the_same_saddle(tmp_path, method):
    whole = search(method)
    assert whole.run(fmax=FMAX, steps=200), whole.result.stop_reason
    record = tmp_path / "calls.traj"
    first = search(method, record)
    assert not first.run(fmax=FMAX, steps=4)
    assert len(read(record, ":")) == first.result.calls
    again = search(method, record)
    assert again.run(fmax=FMAX, steps=200)
    # the replay made no call for what the first part had evaluated: the same saddle, bit for
    # bit, for the rest of the calls alone
    np.testing.assert_array_equal(again.result.positions, whole.result.positions)
    assert again.result.reused_calls == first.result.calls
    assert again.result.calls == again.atoms.calc.calls == whole.result.calls - first.result.calls
    assert again.result.outer_iterations == whole.result.outer_iterations
    assert len(read(record, ":")) == whole.result.calls


def test_an_interrupted_search_keeps_every_call_and_resumes(tmp_path):
    whole = search("gprd")
    assert whole.run(fmax=FMAX, steps=200)
    record = tmp_path / "calls.traj"
    atoms, surface, _ = morse_cluster()
    broken = search("gprd", record, calc=InterruptAt(surface(), 7))
    with pytest.raises(KeyboardInterrupt):
        broken.run(fmax=FMAX, steps=200)
    assert broken.result.stop is StopReason.INTERRUPTED
    assert len(read(record, ":")) == 6
    again = search("gprd", record)
    assert again.run(fmax=FMAX, steps=200)
    np.testing.assert_array_equal(again.result.positions, whole.result.positions)
    assert again.result.reused_calls == 6
    assert again.result.calls == whole.result.calls - 6


@pytest.mark.parametrize("change, message", [
    (dict(keywords=dict(patience=5)), "another settings"),
    (dict(fmax=0.02), "another fmax"),
    (dict(method="dimer"), r"another method \(GPRDimer, this one Dimer\)"),
    (dict(shift=0.01), "another guess"),
])
def test_a_restart_that_would_replay_another_search_is_refused(tmp_path, change, message):
    record = tmp_path / "calls.traj"
    first = search("gprd", record)
    first.run(fmax=FMAX, steps=2)
    other = search(change.get("method", "gprd"), record, **change.get("keywords", {}))
    other.atoms.positions[0, 0] += change.get("shift", 0.0)
    with pytest.raises(InputError, match=rf"restart: .*calls\.traj holds a search with "
                                         rf"{message}"):
        other.run(fmax=change.get("fmax", FMAX), steps=5)
    assert other.atoms.calc.calls == 0


def test_a_restart_file_that_is_no_search_record_is_refused(tmp_path):
    bad = tmp_path / "calls.traj"
    bad.write_bytes(b"not a trajectory")
    with pytest.raises(InputError, match=r"restart: .*calls\.traj cannot be read as a trajectory"):
        search("gprd", bad).run(fmax=FMAX, steps=2)
    atoms, surface, _ = morse_cluster()
    atoms.calc = surface()
    atoms.get_potential_energy()
    write(bad, atoms)  # a trajectory, but not one a search wrote
    with pytest.raises(InputError, match="was not written by a gprdimer search"):
        search("gprd", bad).run(fmax=FMAX, steps=2)


def test_ctrl_c_on_the_command_line_leaves_the_record_and_restart_continues(tmp_path,
                                                                            monkeypatch):
    guess = tmp_path / "hcn.xyz"
    guess.write_text("3\nbent HCN\nC 0 0 0\nN 1.17 0 0\nH 0.5 1.1 0\n")
    argv = ["search", guess, "--calc", "emt", "--fmax", "0.05"]
    monkeypatch.setattr(search_command, "make_calculator",
                        lambda *args, **kwargs: InterruptAt(EMT(), 6))
    assert run(argv) == 130
    record = json.loads((tmp_path / "hcn.gprd.json").read_text())
    assert record["stop"] == "interrupted" and record["calls"] == 6
    assert len(read(tmp_path / "hcn.gprd.calls.traj", ":")) == 5
    assert run(argv) == 2  # a fresh search would overwrite the calls of an unfinished one
    monkeypatch.setattr(search_command, "make_calculator", lambda *args, **kwargs: EMT())
    assert run(argv + ["--restart"]) == 0
    again = json.loads((tmp_path / "hcn.gprd.json").read_text())
    assert again["converged"] and again["reused_calls"] == 5
