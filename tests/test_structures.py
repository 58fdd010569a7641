"""Guesses in any format ase.io reads: charge, multiplicity and fixed atoms from the file, one
frame of several, and a clear error for what cannot be used."""

import json

import numpy as np
import pytest
from ase.build import molecule
from ase.constraints import FixAtoms, FixCartesian
from ase.io import write

from cli_support import run
from gprdimer import InputError
from gprdimer.errors import InputNote
from gprdimer.structures import read_structure, system_spin

CATION = "3\ncharge=1 multiplicity=2\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76 0.58\n"


def water_frames(n):
    frames = []
    for k in range(n):
        atoms = molecule("H2O")
        atoms.positions[1, 2] += 0.05 * k  # every frame its own geometry
        frames.append(atoms)
    return frames


def test_charge_and_multiplicity_come_from_the_extxyz_comment_line(tmp_path, capsys):
    path = tmp_path / "cation.xyz"
    path.write_text(CATION)
    atoms = read_structure(path)
    assert system_spin(atoms, None, None, str(path)) == (1, 2)
    assert run(["search", path, "--calc", "emt", "--steps", "1"]) == 1
    record = json.loads((tmp_path / "cation.gprd.json").read_text())
    assert (record["charge"], record["multiplicity"]) == (1, 2)
    assert "charge 1, multiplicity 2" in capsys.readouterr().out


def test_the_command_line_wins_over_the_file_with_a_note(tmp_path, capsys):
    path = tmp_path / "cation.xyz"
    path.write_text(CATION)
    with pytest.warns(InputNote, match="says multiplicity=2; --multiplicity 4 wins"):
        assert system_spin(read_structure(path), None, 4, str(path)) == (1, 4)
    assert run(["search", path, "--calc", "emt", "--steps", "1", "--charge", "-1"]) == 1
    err = capsys.readouterr().err
    assert "gprdimer: note: " in err and "says charge=1; --charge -1 wins" in err
    record = json.loads((tmp_path / "cation.gprd.json").read_text())
    assert (record["charge"], record["multiplicity"]) == (-1, 2)


def test_a_spin_the_file_states_is_checked_like_one_given(tmp_path, capsys):
    path = tmp_path / "bad.xyz"
    path.write_text(CATION.replace("multiplicity=2", "multiplicity=1"))
    assert run(["search", path, "--calc", "emt"]) == 2
    assert "multiplicity 1 is impossible with 9 electrons (charge 1)" in capsys.readouterr().err
    path.write_text(CATION.replace("charge=1", "charge=0.5"))
    with pytest.raises(InputError, match=r"bad\.xyz: charge=0\.5 in the file is not an integer"):
        system_spin(read_structure(path), None, None, str(path))


def test_fixed_atoms_of_an_extxyz_move_mask_stay_put(tmp_path):
    atoms = molecule("H2O")
    atoms.positions[1] += [0.0, 0.15, -0.1]  # a distorted water: the search moves the hydrogens
    atoms.set_constraint(FixAtoms([1]))
    path = tmp_path / "fixed.xyz"
    write(path, atoms, format="extxyz")
    assert "move_mask" in path.read_text()
    assert [c.get_indices().tolist() for c in read_structure(path).constraints] == [[1]]
    run(["search", path, "--calc", "emt", "--steps", "4"])
    final = np.array(json.loads((tmp_path / "fixed.gprd.json").read_text())["positions"])
    assert np.linalg.norm(final[2] - atoms.positions[2]) > 1e-3  # the search did move
    np.testing.assert_allclose(final[1], atoms.positions[1], atol=1e-12)


def test_a_trajectory_guess_is_read_with_its_constraints(tmp_path):
    atoms = molecule("H2O")
    atoms.set_constraint(FixAtoms([0]))
    path = tmp_path / "guess.traj"
    write(path, atoms)
    read_back = read_structure(path)
    np.testing.assert_allclose(read_back.positions, atoms.positions)
    assert read_back.calc is None and len(read_back.constraints) == 1


@pytest.mark.parametrize("suffix", ["xyz", "traj"])
def test_a_multi_frame_file_gives_its_last_frame_or_the_one_named(tmp_path, suffix):
    frames = water_frames(3)
    path = tmp_path / f"path.{suffix}"
    write(path, frames)
    with pytest.warns(InputNote, match=r"holds 3 frames; the search starts from the last "
                                       r"\(frame 2\); name another as .*path\.\w+@0"):
        atoms = read_structure(path)
    np.testing.assert_allclose(atoms.positions, frames[2].positions, atol=1e-6)
    np.testing.assert_allclose(read_structure(f"{path}@0").positions, frames[0].positions,
                               atol=1e-6)
    np.testing.assert_allclose(read_structure(f"{path}@-2").positions, frames[1].positions,
                               atol=1e-6)
    with pytest.raises(InputError, match=r"@3: no frame 3; the file holds 3 \(0 to 2\)"):
        read_structure(f"{path}@3")
    with pytest.raises(InputError, match=r"the frame after '@' must be an integer, got 'last'"):
        read_structure(f"{path}@last")


def test_the_command_line_takes_a_frame_and_names_its_outputs_after_the_file(tmp_path, capsys):
    path = tmp_path / "path.xyz"
    write(path, water_frames(2))
    assert run(["search", f"{path}@0", "--calc", "emt", "--steps", "1"]) == 1
    assert (tmp_path / "path.gprd.json").is_file()
    assert "note" not in capsys.readouterr().err  # a frame named: nothing to say


def test_what_cannot_be_used_is_refused_by_name(tmp_path):
    atoms = molecule("H2O")
    atoms.set_constraint(FixCartesian(0, mask=[True, False, False]))
    path = tmp_path / "cartesian.traj"
    write(path, atoms)
    with pytest.raises(InputError, match=r"cartesian\.traj: the constraint FixCartesian is not "
                                         r"supported; only FixAtoms"):
        read_structure(path)
    odd = tmp_path / "guess.unknownformat"
    odd.write_text("nothing\n")
    with pytest.raises(InputError, match=r"guess\.unknownformat: not a structure format ase\.io"):
        read_structure(odd)
    broken = tmp_path / "broken.traj"
    broken.write_bytes(b"not a trajectory at all")
    with pytest.raises(InputError, match=r"broken\.traj: (ase\.io cannot read|not a structure)"):
        read_structure(broken)
