"""The IRC from a saddle to the two minima it joins (xTB, HCN -> HNC)."""

import json
from importlib import resources

import numpy as np
import pytest
from ase.io import read

from cli_support import run
from gprdimer.batch import read_rows
from gprdimer.calculators.factory import make_calculator
from gprdimer.cli import main
from gprdimer.irc import _aligned_rmsd, _bond_graph, follow_irc
from gprdimer.runner import CountingCalculator, run_search
from gprdimer.structures import read_structure

EXAMPLE = resources.files("gprdimer") / "examples" / "hcn_to_hnc.xyz"


@pytest.fixture(scope="module")
def hcn_saddle():
    atoms = read_structure(EXAMPLE)
    atoms.calc = make_calculator("xtb")
    result = run_search(atoms, "gprd")
    assert result.converged, result.stop_reason
    atoms.positions = result.positions
    return atoms


def test_the_hcn_saddle_joins_hcn_and_hnc(hcn_saddle):
    atoms = hcn_saddle.copy()
    atoms.calc = counter = CountingCalculator(make_calculator("xtb"))
    irc = follow_irc(atoms)
    assert irc.distinct and not irc.same_bonds
    assert irc.calls == counter.calls == sum(end.calls for end in irc.ends) + 1
    assert all(end.converged and end.fmax < 0.01 for end in irc.ends)
    assert min(irc.barriers) > 1.0  # both ends are minima well below the saddle
    # one end has H on C, the other H on N (atoms C, N, H)
    bonded = sorted(int(np.flatnonzero(_bond_graph(atoms, end.positions)[2])[0])
                    for end in irc.ends)
    assert bonded == [0, 1]


def test_one_arrangement_moved_and_turned_is_one_minimum():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    assert _aligned_rmsd(a, a @ q.T + [1.0, -2.0, 0.5]) < 1e-10
    assert _aligned_rmsd(a, a + rng.normal(scale=0.3, size=a.shape)) > 0.1


def test_search_with_irc_writes_both_minima_and_records_them(tmp_path, capsys):
    guess = tmp_path / "hcn.xyz"
    guess.write_text(EXAMPLE.read_text())
    assert run(["search", guess, "--calc", "xtb", "--irc"]) == 0
    record = json.loads((tmp_path / "hcn.gprd.json").read_text())
    assert record["irc"]["irc_distinct"] is True and record["irc"]["irc_converged"] is True
    ends = [read(tmp_path / f"hcn.gprd.{d}.xyz") for d in ("forward", "reverse")]
    assert sorted(e.get_potential_energy() for e in ends) == pytest.approx(
        sorted([record["irc"]["irc_forward_energy"], record["irc"]["irc_reverse_energy"]]))
    assert all(e.get_potential_energy() < record["energy"] - 1.0 for e in ends)
    assert len(read(tmp_path / "hcn.gprd.irc.forward.traj", ":")) > 1
    assert "two distinct minima" in capsys.readouterr().out


def test_batch_with_irc_stores_it_in_the_row(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "hcn.xyz").write_text(EXAMPLE.read_text())
    db = tmp_path / "r.db"
    assert main(["batch", str(folder), "--calc", "xtb", "--db", str(db), "--workers", "1",
                 "--irc"]) == 0
    row, = read_rows(db)
    assert row["converged"] and row["irc_distinct"] and row["irc_calls"] > 0
    assert row["irc_forward_energy"] < row["saddle_energy"]
