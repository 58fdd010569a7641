"""Bad input files and impossible settings: one clear message naming the file and the fault,
exit code 2 on the command line, and no calculation started.

tests/test_cli.py already checks the messages of a missing file, a truncated XYZ, a 5-value mode
and the bad-option cases; here every kind of broken file goes through both `read_structure` /
`read_mode` and `gprdimer search`, and the settings checks are shown to run before any call.
"""

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.morse import MorsePotential
from cli_support import WATER, run

import gprdimer.cli.search_command
from gprdimer import Dimer, GPRDimer, InputError
from gprdimer.inputs import read_mode
from gprdimer.structures import read_structure
from gprdimer.runner import CountingCalculator, run_search



def one_error_line(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gprdimer: error: ")
    return lines[0]


# --- structure files ---------------------------------------------------------------------------

BAD_XYZ = {
    "empty": ("", "empty.xyz: empty file"),
    "blank": ("\n  \n\n", "blank.xyz: empty file"),
    "no-count": ("O 0 0 0\nH 0 0 1\n", "no-count.xyz, line 1: expected the number of atoms"),
    "zero-count": ("0\nnothing\n", "the number of atoms must be positive, got 0"),
    "truncated": ("3\nw\nO 0 0 0\nH 0 0.76 0.58\n",
                  "truncated.xyz: truncated: line 1 announces 3 atoms, the file holds 2"),
    "cut-line": ("3\nw\nO 0 0 0\nH 0 0.76 0.58\nH 0 -0.76\n",
                 "cut-line.xyz, line 5 (atom 2): expected 'Symbol x y z', got 'H 0 -0.76'"),
    "too-many": (WATER + "H 1 1 1\n", "too-many.xyz, line 6: after the 3 atoms announced on line 1, expected the atom count "
                 "of a next frame, got 'H 1 1 1'"),
    "not-numbers": ("3\nw\nO 0 0 0\nH 0 a 0.58\nH 0 -0.76 0.58\n",
                    "not-numbers.xyz, line 4 (atom 1, H): coordinates are not numbers: '0 a 0.58'"),
    "unknown-element": ("3\nw\nO 0 0 0\nQq 0 0.76 0.58\nH 0 -0.76 0.58\n",
                        "unknown-element.xyz, line 4 (atom 1): unknown element 'Qq'"),
    "dummy-element": ("2\nw\nX 0 0 0\nH 0 0 1\n", "dummy-element.xyz, line 3 (atom 0): unknown element 'X'"),
    "duplicate": ("3\nw\nO 0 0 0\nH 0 0.76 0.58\nH 0 0.76 0.58\n",
                  "duplicate.xyz: duplicate atoms: atoms 1 (H) and 2 (H) are 0.000 Å apart"),
    "overlap": ("3\nw\nO 0 0 0\nH 0 0.76 0.58\nH 0 0.76 0.78\n",
                "overlap.xyz: overlapping atoms: atoms 1 (H) and 2 (H) are 0.200 Å apart (minimum 0.3 Å)"),
    "nan": ("3\nw\nO 0 0 0\nH 0 nan 0.58\nH 0 -0.76 0.58\n",
            "nan.xyz, line 4 (atom 1, H): coordinates contain NaN or infinity"),
    "inf": ("3\nw\nO 0 0 0\nH 0 0.76 0.58\nH -inf 0 0\n",
            "inf.xyz, line 5 (atom 2, H): coordinates contain NaN or infinity"),
}


def write_xyz(tmp_path, name):
    path = tmp_path / f"{name}.xyz"
    path.write_text(BAD_XYZ[name][0])
    return path


@pytest.mark.parametrize("name", BAD_XYZ)
def test_bad_structure_file_is_named(tmp_path, name):
    path = write_xyz(tmp_path, name)
    with pytest.raises(InputError) as info:
        read_structure(path)
    assert str(info.value).startswith(str(path))
    assert BAD_XYZ[name][1] in str(info.value)


@pytest.mark.parametrize("name", BAD_XYZ)
def test_bad_structure_file_on_the_command_line(tmp_path, capsys, name):
    path = write_xyz(tmp_path, name)
    assert run(["search", path, "--calc", "emt"]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and BAD_XYZ[name][1] in line
    assert not list(tmp_path.glob("*.traj")) and not list(tmp_path.glob("*.json"))


def test_binary_file_is_not_text(tmp_path, capsys):
    path = tmp_path / "binary.xyz"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(InputError, match=r"binary\.xyz: cannot be read as text"):
        read_structure(path)
    assert run(["search", path, "--calc", "emt"]) == 2
    assert "binary.xyz: cannot be read as text" in one_error_line(capsys)


# --- mode files --------------------------------------------------------------------------------

def _npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


BAD_MODES = {  # file name -> (bytes, message); water has 3 atoms, so a mode needs 9 numbers
    "wrong-shape.npy": (_npy_bytes(np.ones((3, 4))),
                        "the mode has 12 values (shape (3, 4)); the structure needs 9 (3 atoms x 3)"),
    "wrong-shape.txt": (b"1 0 0\n0 1 0\n", "the mode has 6 values (shape (2, 3)); the structure needs 9"),
    "zero-length.npy": (b"", "empty file; expected a mode vector of 9 numbers (3 atoms x 3)"),
    "zero-length.txt": (b"", "empty file; expected a mode vector of 9 numbers (3 atoms x 3)"),
    "comments-only.txt": (b"# nothing here\n", "the mode vector is empty"),
    "empty-array.npy": (_npy_bytes(np.zeros(0)), "the mode vector is empty"),
    "cut-short.npy": (_npy_bytes(np.ones((3, 3)))[:-20], "not a mode vector (ValueError: Failed to read"),
    "header-only.npy": (_npy_bytes(np.ones((3, 3)))[:30], "not a mode vector (ValueError: EOF"),
    "nan.npy": (_npy_bytes(np.array([[1.0, 0, 0], [0, np.nan, 0], [0, 0, 1]])),
                "the mode contains NaN or infinite values"),
    "nan.txt": (b"1 0 0\n0 nan 0\n0 0 1\n", "the mode contains NaN or infinite values"),
    "inf.txt": (b"1 0 0 0 inf 0 0 0 1\n", "the mode contains NaN or infinite values"),
    "letters.txt": (b"1 0 x\n0 1 0\n0 0 1\n", "not a mode vector (ValueError: could not convert"),
    "ragged.txt": (b"1 0 0\n0 1\n0 0 1\n", "not a mode vector (ValueError: the number of columns"),
    "strings.npy": (_npy_bytes(np.array(["a"] * 9)), "not a mode vector (ValueError: could not convert"),
    "all-zero.npy": (_npy_bytes(np.zeros((3, 3))), "the mode is all zeros"),
}


@pytest.mark.parametrize("name", BAD_MODES)
def test_bad_mode_file_is_named(tmp_path, capsys, name):
    data, message = BAD_MODES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_mode(path, 3)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    guess = tmp_path / "water.xyz"
    guess.write_text(WATER)
    assert run(["search", guess, "--calc", "emt", "--mode", path]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and message in line
    assert not list(tmp_path.glob("*.traj"))


@pytest.mark.parametrize("name, data", [
    ("rows.txt", b"1 0 0\n0 1 0\n0 0 1\n"), ("line.txt", b"1 0 0 0 1 0 0 0 1\n"),
    ("flat.npy", _npy_bytes(np.eye(3).ravel())), ("square.npy", _npy_bytes(np.eye(3)))])
def test_good_mode_files_in_every_layout(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    np.testing.assert_array_equal(read_mode(path, 3), np.eye(3))


def test_installed_command_on_a_zero_length_mode_file(tmp_path):
    # np.load raised EOFError here, which escaped as a traceback before read_mode caught it
    (tmp_path / "water.xyz").write_text(WATER)
    (tmp_path / "mode.npy").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "gprdimer", "search", "water.xyz", "--calc", "emt",
                           "--mode", "mode.npy"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)  # outside the checkout: the installed package
    assert done.returncode == 2
    assert done.stderr == ("gprdimer: error: mode.npy: empty file; expected a mode vector of 9 "
                           "numbers (3 atoms x 3)\n")


# --- impossible settings: refused before any calculation ---------------------------------------

def counted_morse():
    atoms = Atoms("Cu3", positions=[[0, 0, 0], [2.5, 0, 0], [1.2, 2.0, 0]])
    counter = CountingCalculator(MorsePotential(epsilon=0.8, r0=2.5, rho0=6.0))
    atoms.calc = counter
    return atoms, counter


@pytest.mark.parametrize("method", ["gprd", "dimer"])
@pytest.mark.parametrize("settings, message", [
    (dict(fmax=-0.05), "fmax must be a positive number, got -0.05"),
    (dict(fmax=0.0), "fmax must be a positive number"),
    (dict(fmax=float("nan")), "fmax must be a positive number, got nan"),
    (dict(fmax=float("inf")), "fmax must be a positive number, got inf"),
    (dict(fmax="tight"), "fmax must be a positive number, got tight"),
    (dict(steps=0), "steps must be at least 1, got 0"),
    (dict(steps=-3), "steps must be at least 1, got -3"),
    (dict(steps="many"), "steps must be a whole number, got 'many'"),
    (dict(method="newton"), "unknown method 'newton'; choose one of gprd, dimer, sella"),
    (dict(mode="softest"), "unknown mode 'softest'"),
    (dict(mode=np.zeros((3, 3))), "mode is zero on the moving atoms"),
    (dict(params=dict(separation=0.0)), "separation must be a finite number above 0, got 0.0"),
    (dict(params=dict(separation=float("nan"))), "separation must be a finite number above 0"),
    (dict(params=dict(metric="rms")), "metric must be one of"),
    (dict(params=dict(max_step=-0.1)), "max_step must be a finite number above 0, got -0.1"),
    (dict(params=dict(convex_step=0)), "convex_step must be a finite number above 0"),
    (dict(params=dict(max_rotations=-1)), "max_rotations must be a finite number at least 0"),
    (dict(params=dict(trial_angle=0)), "trial_angle must be a finite number above 0"),
    (dict(params=dict(max_energy_rise=-1)), "max_energy_rise must be a number above 0, got -1"),
    (dict(params=dict(rotation_method="newton")), "rotation_method must be one of 'lbfgs', 'cg'"),
    (dict(params=dict(max_stepp=0.1)), "params: 'max_stepp' is not a keyword of"),
    (dict(params=dict(mode="hessian")), "params: 'mode' is set by the search itself"),
    (dict(params=[("max_step", 0.1)]), "params must map keywords to values, got list"),
])
def test_impossible_search_settings_make_no_call(method, settings, message):
    atoms, counter = counted_morse()
    settings = {"method": method, "steps": 3, **settings}
    with pytest.raises(InputError, match=re.escape(message)):
        run_search(atoms, **settings)
    assert counter.calls == 0


@pytest.mark.parametrize("params, message", [
    (dict(divisor=0), "divisor must be a finite number above 0, got 0"),  # was ZeroDivisionError
    (dict(max_inner_iterations=0), "max_inner_iterations must be a finite number above 0"),
    (dict(ratio_at_limit=1.5), "ratio_at_limit must be in (0, 1], got 1.5"),
    (dict(noise=-1e-5), "noise must be a finite number above 0"),
    (dict(training_subset=0), "training_subset must be a finite number at least 1"),
    (dict(training_tolerance=0), "training_tolerance must be a finite number above 0, got 0"),
    (dict(trust="global"), "trust must be one of 'ratio', 'transport', 'both'"),
    (dict(max_variance=-1), "max_variance must be a finite number at least 0"),
])
def test_impossible_gprd_settings_make_no_call(params, message):
    atoms, counter = counted_morse()
    with pytest.raises(InputError, match=re.escape(message)):
        GPRDimer(atoms, logfile=None, **params).run(fmax=0.01, steps=3)
    assert counter.calls == 0


def test_dimer_memory_must_be_positive():
    atoms, counter = counted_morse()
    with pytest.raises(InputError, match="memory must be a finite number above 0"):
        Dimer(atoms, logfile=None, memory=0)
    assert counter.calls == 0


@pytest.mark.parametrize("argv, message", [
    (["--multiplicity", "2"], "multiplicity 2 is impossible with 10 electrons"),
    (["--multiplicity", "0"], "multiplicity 0 is impossible with 10 electrons"),
    (["--charge", "11"], "charge 11 removes more electrons than the 10 the atoms have"),
    (["--fmax", "-1"], "fmax must be a positive number, got -1.0"),
    (["--fmax", "nan"], "fmax must be a positive number, got nan"),
    (["--steps", "0"], "steps must be at least 1, got 0"),
    (["--method", "newton"], "unknown method 'newton'"),
    (["--calc", "dft-magic"], "unknown calculator 'dft-magic'"),
    (["--calc", "hf/"], "calculator 'hf/': expected METHOD/BASIS"),
])
def test_impossible_command_line_settings_make_no_call(tmp_path, capsys, monkeypatch, argv, message):
    made = []
    real = gprdimer.cli.search_command.make_calculator

    def counted(spec, *args, **kwargs):
        real(spec, *args, **kwargs)  # raises for a name it does not know
        made.append(CountingCalculator(EMT()))
        return made[-1]

    monkeypatch.setattr(gprdimer.cli.search_command, "make_calculator", counted)
    guess = tmp_path / "water.xyz"
    guess.write_text(WATER)
    assert run(["search", guess, "--calc", "emt", *argv]) == 2
    assert message in one_error_line(capsys)
    assert sum(calc.calls for calc in made) == 0
    assert not list(tmp_path.glob("*.traj"))
