"""A batch on a real Slurm scheduler: dask-jobqueue submits the workers with sbatch, four xTB
searches run in Slurm jobs, their rows land in the database, and a rerun resumes.

CI starts a one-node Slurm (.ci/slurm-local) before the tests; without `sbatch` this test
fails in CI and is skipped elsewhere.
"""

import os
import shutil
import subprocess
import sys

import pytest

from gprdimer.batch import read_rows

SYSTEMS = ["singlets/001", "singlets/002", "doublets/001", "doublets/002"]


def batch(set_path, db, only, cwd):
    command = [sys.executable, "-m", "gprdimer", "batch", str(set_path), "--methods", "gprd",
               "--calc", "xtb", "--db", str(db), "--only", ",".join(only), "--cluster", "slurm",
               "--cores", "1", "--memory", "2GB", "--jobs", "2", "--walltime", "00:10:00"]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=cwd)


@pytest.fixture
def slurm():
    if shutil.which("sbatch") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs the Slurm test: .ci/run starts a one-node Slurm (no sbatch)")
        pytest.skip("no sbatch: start a local Slurm with .ci/slurm-local start")
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split(), f"Slurm is not up: {done.stderr}"


def test_four_xtb_searches_on_slurm_write_their_rows_and_resume(slurm, sella500, tmp_path):
    db = tmp_path / "slurm.db"
    first = batch(sella500, db, SYSTEMS[:2], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(r["system"] for r in read_rows(db)) == sorted(SYSTEMS[:2])
    again = batch(sella500, db, SYSTEMS, tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 tasks, 2 already in" in again.stdout and "2 rows written" in again.stdout
    rows = read_rows(db)
    assert sorted(r["system"] for r in rows) == sorted(SYSTEMS)
    assert all(r["calls"] > 0 and r["calc"] == "xtb" for r in rows)
    assert sum(r["converged"] for r in rows) >= 3  # xTB GPR-dimer converges on these
