"""The gprdimer command: searches that write their files, and user errors as one-line messages."""

import json
import subprocess
import sys

import numpy as np
import pytest
from ase.io import read

from cli_support import WATER, run
from gprdimer.cli import main

HCN = "3\nbent HCN\nC 0 0 0\nN 1.17 0 0\nH 0.5 1.1 0\n"


@pytest.fixture
def water(tmp_path):
    path = tmp_path / "water.xyz"
    path.write_text(WATER)
    return path


def test_search_writes_trajectory_and_result_beside_the_input(tmp_path, capsys):
    guess = tmp_path / "hcn.xyz"
    guess.write_text(HCN)
    # eight outer iterations do not reach the saddle: exit status 1, every file written
    assert run(["search", guess, "--calc", "emt", "--method", "gprd", "--steps", "8"]) == 1
    result = json.loads((tmp_path / "hcn.gprd.json").read_text())
    assert result["converged"] is False and result["stop"] == "max iterations"
    assert result["method"] == "gprd" and result["calc"] == "emt"
    assert result["settings"]["steps"] == 8 and "ase" in result["versions"]
    assert result["calls"] > 0 and np.shape(result["positions"]) == (3, 3)
    assert len(read(tmp_path / "hcn.gprd.calls.traj", ":")) == result["calls"]
    path = read(tmp_path / "hcn.gprd.traj", ":")
    assert len(path) == result["outer_iterations"] + 1
    np.testing.assert_allclose(path[-1].positions, result["positions"])
    assert not (tmp_path / "hcn.gprd.ts.xyz").exists()  # no saddle, no saddle file
    out = capsys.readouterr().out
    assert "GPRDimer" in out and f"calls        {result['calls']}" in out
    assert result["starts"] >= 1 and f"{result['starts']} start" in out


def test_search_params_are_used_and_recorded(tmp_path):
    guess = tmp_path / "hcn.xyz"
    guess.write_text(HCN)
    argv = ["search", guess, "--calc", "emt", "--method", "dimer", "--steps", "6"]
    assert run(argv) == 1  # not converged in six iterations
    plain = json.loads((tmp_path / "hcn.dimer.json").read_text())
    assert run(argv + ["--params", '{"max_rotations": 0}']) == 1
    fixed = json.loads((tmp_path / "hcn.dimer.json").read_text())
    assert plain["settings"]["params"] == {} and fixed["settings"]["params"] == {"max_rotations": 0}
    # without rotations a dimer step costs one call less per rotation it would have made
    assert fixed["calls"] < plain["calls"]


def test_search_without_a_guess_runs_the_built_in_example(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run(["search"]) == 0
    result = json.loads((tmp_path / "hcn_to_hnc.gprd.json").read_text())
    assert result["converged"] and result["calc"] == "hf/3-21g"
    assert result["curvature"] < 0
    assert (tmp_path / "hcn_to_hnc.gprd.traj").is_file()
    assert "converged    yes" in capsys.readouterr().out
    # the saddle file is a guess for the next calculation: geometry, true energy and forces,
    # the mode, and the spin it was found in
    saddle = read(tmp_path / "hcn_to_hnc.gprd.ts.xyz")
    np.testing.assert_allclose(saddle.positions, result["positions"], atol=1e-8)
    assert saddle.get_potential_energy() == pytest.approx(result["energy"], abs=1e-6)
    assert np.abs(saddle.get_forces()).max() < 0.01
    np.testing.assert_allclose(saddle.arrays["mode"], result["mode"], atol=1e-8)
    assert saddle.info["charge"] == 0 and saddle.info["multiplicity"] == 1
    assert saddle.info["n_imaginary"] == 1
    frames = read(tmp_path / "hcn_to_hnc.gprd.mode.xyz", ":")
    assert len(frames) == 20
    moved = [np.linalg.norm(f.positions - saddle.positions, axis=1).max() for f in frames]
    assert max(moved) == pytest.approx(0.3, abs=0.02) and moved[0] == pytest.approx(0, abs=1e-6)


def test_a_search_stopped_early_continues_with_restart(tmp_path, capsys):
    guess = tmp_path / "hcn.xyz"
    guess.write_text(HCN)
    argv = ["search", guess, "--calc", "emt", "--method", "gprd", "--fmax", "0.05"]
    assert run(argv) == 0
    whole = json.loads((tmp_path / "hcn.gprd.json").read_text())
    assert run(argv + ["--steps", "3"]) == 1  # a finished search's files are replaced
    first = json.loads((tmp_path / "hcn.gprd.json").read_text())
    (tmp_path / "hcn.gprd.json").unlink()  # as a search killed before it wrote its record
    assert run(argv) == 2
    assert "holds the calls of a search that did not finish: add --restart" in \
        capsys.readouterr().err
    assert run(argv + ["--restart"]) == 0
    again = json.loads((tmp_path / "hcn.gprd.json").read_text())
    assert again["reused_calls"] == first["calls"]
    assert again["calls"] + again["reused_calls"] == whole["calls"]
    np.testing.assert_allclose(again["positions"], whole["positions"], atol=1e-12)
    assert f"({first['calls']} more read from the restart file)" in capsys.readouterr().out
    assert run(argv + ["--restart", "--fmax", "0.04"]) == 2
    assert "holds a search with another fmax" in capsys.readouterr().err
    assert (tmp_path / "hcn.gprd.ts.xyz").is_file()  # a refused restart removes nothing


def test_search_verify_adds_a_true_hessian_and_prints_the_frequencies(tmp_path, monkeypatch,
                                                                      capsys):
    pytest.importorskip("tblite.ase", reason="tblite not installed (extra gprdimer[xtb])")
    monkeypatch.chdir(tmp_path)
    assert run(["search", "--calc", "xtb", "--verify"]) == 0
    result = json.loads((tmp_path / "hcn_to_hnc.gprd.json").read_text())
    assert result["converged"] and result["n_imaginary"] == 1
    assert result["settings"]["params"] == {"verify": "hessian"}
    assert len(result["frequencies"]) == 3 and result["frequencies"][0] < -1000
    assert result["check_calls"] >= 18
    out = capsys.readouterr().out
    assert "saddle check 1 imaginary mode; true Hessian: -14" in out
    assert run(["search", "--calc", "xtb", "--method", "sella", "--verify"]) == 2
    assert "--verify" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["search", "missing.xyz"], "missing.xyz: no such file"),
    (["search", "TRUNCATED"], "truncated: line 1 announces 3 atoms, the file holds 2"),
    (["search", "WATER", "--method", "newton"], "unknown method 'newton'"),
    (["search", "WATER", "--calc", "dft-magic"], "unknown calculator 'dft-magic'"),
    (["search", "WATER", "--fmax", "-0.1"], "fmax must be a positive number, got -0.1"),
    (["search", "WATER", "--steps", "0"], "steps must be at least 1, got 0"),
    (["search", "WATER", "--multiplicity", "2"], "multiplicity 2 is impossible with 10 electrons"),
    (["search", "WATER", "--charge", "1"], "multiplicity 1 is impossible with 9 electrons"),
    (["search", "WATER", "--mode", "MODE"], "mode.npy: the mode has 5 values (shape (5,))"),
    (["search", "WATER", "--fmax", "abc"], "argument --fmax: invalid float value: 'abc'"),
    (["search", "WATER", "--threads", "0"], "--threads must be at least 1"),
    (["search", "WATER", "--params", "{convex_step: 1}"], "argument --params: not JSON"),
    (["search", "WATER", "--params", "[1]"], "a JSON object of keyword: value is needed"),
    (["search", "WATER", "--params", '{"convex_stp": 0.05}'],
     "params: 'convex_stp' is not a keyword of gprd; known: "),
    (["search", "WATER", "--params", '{"convex_step": 0}'], "convex_step must be a finite"),
    (["search", "WATER", "--params", '{"seed": 1}'], "params: 'seed' is set by the search"),
    (["batch", "SETDIR", "--calc", "emt", "--methods", "gprd,dimer", "--params",
      '{"fresh_starts": 0}'], "params: 'fresh_starts' is not a keyword of dimer"),
    (["batch", "missing-set", "--calc", "emt"], "missing-set: no such file or directory"),
    (["batch", "SETDIR", "--calc", "emt", "--methods", "gprd,newton"], "unknown method 'newton'"),
    (["batch", "SETDIR", "--calc", "emt", "--only", "nothere"], "--only: nothere not in"),
    (["batch", "SETDIR", "--calc", "emt", "--timeout", "0"], "--timeout must be a positive"),
    (["batch", "SETDIR", "--calc", "emt", "--db", "no/such/r.db"], "folder no/such does not exist"),
    (["report", "missing.db"], "missing.db: no such results database"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, water, capsys, argv, message):
    (tmp_path / "truncated.xyz").write_text(WATER.rsplit("H", 1)[0])
    np.save(tmp_path / "mode.npy", np.ones(5))
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "water.xyz").write_text(WATER)
    names = {"WATER": water, "TRUNCATED": tmp_path / "truncated.xyz", "MODE": tmp_path / "mode.npy",
             "SETDIR": tmp_path / "set"}
    assert run([names.get(a, a) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gprdimer: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err and not list(tmp_path.glob("*.traj"))


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path):
    # cwd outside the checkout: `-m` would otherwise import the uncompiled source tree
    done = subprocess.run([sys.executable, "-m", "gprdimer", "search", tmp_path / "nothing.xyz"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == f"gprdimer: error: {tmp_path / 'nothing.xyz'}: no such file\n"


def test_batch_stride_takes_every_kth_system_by_name():
    from argparse import Namespace

    from gprdimer.cli.batch_commands import _select

    systems = [(name, None, 0, 1) for name in ("singlets/001", "doublets/000", "singlets/000",
                                               "doublets/001", "doublets/002")]
    args = Namespace(only=None, stride=2, smallest=None, limit=None, set="set")
    # by name: doublets/000, 001, 002, singlets/000, 001 -> the first, third and fifth
    assert [s[0] for s in _select(systems, args)] == ["singlets/001", "doublets/000",
                                                      "doublets/002"]
    # the help says --stride samples what --only leaves
    args.only = "doublets/001,singlets/000,singlets/001"
    assert [s[0] for s in _select(systems, args)] == ["singlets/001", "doublets/001"]


def test_version_and_exit_statuses_are_documented(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("gprdimer 0.")
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "1 search not converged, 2 bad input" in " ".join(capsys.readouterr().out.split())


def test_batch_without_dask_names_the_extra_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    db = tmp_path / "results.db"
    assert main(["batch", str(tmp_path), "--db", str(db)]) == 2
    assert "pip install 'gprdimer[hpc]'" in capsys.readouterr().err
    assert not db.exists()


def test_report_without_matplotlib_names_the_extra_and_writes_nothing(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "results.db"), "--out", str(out)]) == 2
    assert "pip install 'gprdimer[report]'" in capsys.readouterr().err
    assert not out.exists()


def test_dry_run_prints_the_slurm_job_script_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "water.xyz").write_text(WATER)
    db = tmp_path / "results.db"
    argv = ["batch", str(folder), "--calc", "emt", "--db", str(db), "--cluster", "slurm",
            "--cores", "2", "--memory", "2GB", "--walltime", "01:00:00"]
    assert main(argv + ["--dry-run"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH" in script and "-t 01:00:00" in script and "OMP_NUM_THREADS=1" in script
    assert not db.exists()


def test_slurm_without_sbatch_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import gprdimer.batch.cluster

    monkeypatch.setattr(gprdimer.batch.cluster.shutil, "which", lambda command: None)
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "water.xyz").write_text(WATER)
    argv = ["batch", str(folder), "--calc", "emt", "--db", str(tmp_path / "results.db"),
            "--cluster", "slurm", "--cores", "2", "--memory", "2GB"]
    assert main(argv) == 2
    assert "no sbatch on this machine" in capsys.readouterr().err
