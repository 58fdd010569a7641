"""The README's script runs as written, on a guess of its kind (a doublet: H + H2 -> H2 + H)."""

import re
import runpy
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"
H3 = "3\nH + H2 exchange, doublet\nH 0 0 0\nH 0 0 0.86\nH 0 0 1.85\n"


def test_the_readme_script_runs_as_written(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    (tmp_path / "guess.xyz").write_text(H3)
    (tmp_path / "example.py").write_text(blocks[0])
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(tmp_path / "example.py"))
    result = namespace["opt"].result
    assert result.converged, result.stop_reason
    # the collinear exchange saddle: symmetric, the two bonds equal
    z = np.sort(result.positions[:, 2])
    assert abs((z[1] - z[0]) - (z[2] - z[1])) < 0.01
    assert (tmp_path / "calls.traj").is_file() and (tmp_path / "path.traj").is_file()
    assert "converged=True" in capsys.readouterr().out
