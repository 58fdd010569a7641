"""Reports from a results database: tables, CSVs, plots, and the comparison with published CSVs."""

import csv
import math

import pytest
from ase import Atoms

from gprdimer.batch import Store, failed_row, make_task
from gprdimer.cli import main
from gprdimer.search import StopReason
from gprdimer.report import build_report
from gprdimer.report_tables import (common_systems, other_saddle_table, same_saddle_table,
                                    size_band_table, starts_table, summary_table)

CALC = "hf/3-21g"
# system: (spin, method: (converged, calls, wall s, gp s, saddle energy eV))
RESULTS = {
    "singlets/000": {"gprd": (True, 20, 4.0, 1.0, -100.000), "sella": (True, 40, 8.0, 0, -100.005),
                     "dimer": (True, 150, 30.0, 0, -100.5)},
    "singlets/001": {"gprd": (True, 30, 6.0, 2.0, -200.0), "sella": (False, 300, 60.0, 0, -199.0),
                     "dimer": (False, 900, 90.0, 0, -198.0)},
    "doublets/000": {"gprd": (False, 50, 10.0, 3.0, -50.0), "sella": (True, 25, 5.0, 0, -51.0),
                     "dimer": (True, 80, 16.0, 0, -51.002)},
}
PUBLISHED = {  # method file: rows of (spin, mol_id, pes_calls, saddle_energy, success)
    "data_gprd.csv": [("singlets", "000", 22, -100.001, True),
                      ("singlets", "001", 28, -200.2, True), ("doublets", "000", 40, -51.0, True)],
    "data_sella.csv": [("singlets", "000", 42, -100.005, True),
                       ("singlets", "001", 100, -200.0, True),
                       ("doublets", "000", 24, -51.0, True)],
    "data_idimer_cgrot_lbfgs.csv": [("singlets", "000", 160, -100.5, True),
                                    ("singlets", "001", 300, -200.0, False),
                                    ("doublets", "000", 90, -51.002, True)],
}


def rows():
    out = []
    for system, methods in RESULTS.items():
        spin = system.split("/")[0]
        for method, (converged, calls, wall, gp, energy) in methods.items():
            task = make_task(system, Atoms("H2", positions=[(0, 0, 0), (0, 0, 0.74)]),
                             method=method, calc=CALC, multiplicity=1 if spin == "singlets" else 2)
            row = failed_row(task, StopReason.CONVERGED if converged else StopReason.MAX_ITERATIONS)
            row.update(converged=converged, calls=calls, wall_time=wall, gp_time=gp,
                       saddle_energy=energy)
            if converged:  # what gprdimer verify adds: one imaginary mode
                row["verified_imaginary"] = 1
            out.append(row)
    return out


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "results.db")
    for row in rows():
        store.write(row)
    return tmp_path / "results.db"


@pytest.fixture
def reference(tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    for name, entries in PUBLISHED.items():
        with open(folder / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["pes_calls", "saddle_energy", "success", "mol_id", "spin"])
            for spin, mol_id, calls, energy, success in entries:
                writer.writerow([calls, energy, success, mol_id, spin])
    return folder


def test_summary_counts_verified_searches_only():
    table = {r["method"]: r for r in summary_table(rows())}
    assert table["gprd"]["success_rate"] == pytest.approx(2 / 3)
    assert table["gprd"]["reported"] == table["gprd"]["verified"] == 2
    assert table["gprd"]["calls_median"] == 25 and table["gprd"]["calls_iqr"] == 5
    assert table["gprd"]["gp_share"] == pytest.approx(3 / 10)
    # gprd and sella both converged only on singlets/000: 4 s against 8 s.
    assert table["gprd"]["wall_vs_sella"] == pytest.approx(0.5)
    assert table["sella"]["wall_vs_sella"] == pytest.approx(1.0)
    # Medians over each method's own converged searches: gprd 25 calls and 5 s, Sella 32.5 and 6.5.
    assert table["gprd"]["calls_median_vs_sella"] == pytest.approx(25 / 32.5)
    assert table["gprd"]["wall_median_vs_sella"] == pytest.approx(5 / 6.5)


def test_rows_the_verifier_rejected_or_has_not_seen_are_no_successes():
    table = rows()
    gprd = [r for r in table if r["method"] == "gprd" and r["converged"]]
    gprd[0]["verified_imaginary"] = 0  # a minimum, reported converged
    del gprd[1]["verified_imaginary"]  # not verified yet
    summary = {r["method"]: r for r in summary_table(table)}["gprd"]
    assert summary["reported"] == 2 and summary["verified"] == 0
    assert summary["rejected"] == 1 and summary["unverified"] == 1
    assert summary["success_rate"] == 0
    # a success verified on its own SCF state, with a lower solution at its geometry
    gprd[1]["verified_imaginary"], gprd[1]["verify_lower_state"] = 1, -0.1
    assert {r["method"]: r for r in summary_table(table)}["gprd"]["upper_state"] == 1
    gprd[1]["verify_lower_state"] = 0.0
    assert {r["method"]: r for r in summary_table(table)}["gprd"]["upper_state"] == 0
    sella = [r for r in table if r["method"] == "sella" and r["converged"]]
    sella[0]["verify_error"] = "SCFConvergenceError: no SCF"  # a Hessian that failed: rejected
    del sella[0]["verified_imaginary"]
    assert {r["method"]: r for r in summary_table(table)}["sella"]["rejected"] == 1


def test_only_systems_every_method_has_run_are_compared(tmp_path):
    table = rows()
    extra = dict(next(r for r in table if r["method"] == "sella"), system="singlets/099",
                 task_key="singlets/099|sella|hf/3-21g")
    kept, left_out = common_systems(table + [extra])
    assert kept == table and left_out == {(CALC, "sella"): 1}
    store = Store(tmp_path / "r.db")
    for row in table + [extra]:
        store.write(row)
    build_report(tmp_path / "r.db", out=tmp_path / "out")
    assert "left out: 1 sella rows on hf/3-21g" in (tmp_path / "out" / "report.md").read_text()


def test_stride_keeps_every_kth_system_by_name(db, tmp_path):
    assert main(["report", str(db), "--stride", "2", "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "summary.csv") as handle:
        summary = list(csv.DictReader(handle))
    # doublets/000, singlets/000, singlets/001 by name: the first and the third
    assert {int(r["systems"]) for r in summary} == {2}


def test_successes_by_start_are_cumulative():
    table = rows()
    for row, starts in zip((r for r in table if r["method"] == "gprd"), (1, 3, 2)):
        row["starts"] = starts
    gprd = [r for r in starts_table(table) if r["method"] == "gprd"]
    # singlets/000 in start 1, singlets/001 in start 3 (doublets/000 did not converge)
    assert [(r["start"], r["successes"], r["with_at_most_this_many_starts"]) for r in gprd] == \
        [(1, 1, 1), (2, 0, 1), (3, 1, 2)]


def test_same_saddle_share_by_spin():
    table = {(r["methods"], r["spin"]): r for r in same_saddle_table(rows())}
    assert table["gprd / sella", "singlets"]["share"] == 1.0  # 5 meV apart
    assert table["dimer / gprd", "singlets"]["share"] == 0.0  # 0.5 eV apart
    assert table["dimer / sella", "doublets"]["share"] == 1.0  # 2 meV apart
    assert ("gprd / sella", "doublets") not in table  # gprd did not converge there


def test_report_files(db, reference, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(db), "--reference", str(reference), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "summary.csv", "same_saddle.csv", "reference.csv",
            "reference_systems.csv", "size_bands.csv", "other_saddles.csv",
            "converged_vs_calls.png", "parity.png"} <= names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "report.md").read_text()
    for method in ("gprd", "sella", "dimer"):
        assert f"| {CALC} | {method} |" in markdown
        assert method in (out / "summary.csv").read_text()
    with open(out / "reference.csv") as handle:
        published = {r["method"]: r for r in csv.DictReader(handle)}
    assert float(published["gprd"]["published_calls_median"]) == 25  # 22 and 28
    assert float(published["gprd"]["same_saddle_share"]) == 0.5  # 1 meV and 0.2 eV apart
    assert str(out / "report.md") in capsys.readouterr().out


def test_size_bands_compare_each_method_with_sella_and_its_published_run(reference):
    table = rows()
    for row in table:  # one system per band
        row["natoms"] = {"singlets/000": 10, "singlets/001": 16, "doublets/000": 22}[row["system"]]
    bands = {(r["atoms"], r["method"]): r for r in size_band_table(table, reference)}
    assert [r["atoms"] for r in size_band_table(table)][::3] == ["<=13", "14-19", ">=20"]
    small = bands["<=13", "gprd"]
    assert small["verified"] == 1 and small["calls_median"] == 20
    assert small["calls_median_vs_sella"] == pytest.approx(0.5)  # Sella 40 calls there
    assert small["wall_median_vs_sella"] == pytest.approx(0.5)
    assert small["published_method"] == "gprd" and small["published_calls_median"] == 22
    assert bands["14-19", "sella"]["verified"] == 0  # our Sella failed on singlets/001 ...
    assert bands["14-19", "sella"]["published_reported"] == 1  # ... the published one did not
    assert math.isnan(bands["14-19", "gprd"]["calls_median_vs_sella"])  # no Sella success
    assert bands[">=20", "dimer"]["published_method"] == "idimer"


def test_saddles_other_than_the_published_sellas_name_the_lower(reference):
    other = other_saddle_table([{**r, "natoms": 2} for r in rows()], reference)
    # only our dimer on singlets/000 (-100.5 eV) is 0.01 eV or more from Sella's -100.005 eV
    assert [(r["system"], r["method"], r["lower"]) for r in other] == \
        [("singlets/000", "dimer", "ours")]


def test_report_defaults_to_the_database_folder(db):
    written = build_report(db)
    assert all(path.parent == db.parent for path in written)
    assert (db.parent / "report.md").is_file()


def test_energies_are_compared_only_at_the_published_level(db, reference, tmp_path):
    store = Store(db)
    task = make_task("singlets/000", Atoms("H2", positions=[(0, 0, 0), (0, 0, 0.74)]),
                     method="gprd", calc="xtb")
    row = failed_row(task, StopReason.CONVERGED)
    row.update(converged=True, calls=10, wall_time=1.0, gp_time=0.5, saddle_energy=-5.0,
               verified_imaginary=1)
    store.write(row)
    build_report(db, reference=reference, out=tmp_path / "out")
    with open(tmp_path / "out" / "reference_systems.csv") as handle:
        xtb = [r for r in csv.DictReader(handle) if r["calc"] == "xtb"]
    assert xtb[0]["published_calls"] == "22" and xtb[0]["energy_gap"] == "nan"


def _png_width(path):
    return int.from_bytes(path.read_bytes()[16:20], "big")


def test_parity_plot_has_no_empty_panel(db, reference, tmp_path):
    # at the published level: calls and saddle-energy panels side by side
    build_report(db, reference=reference, out=tmp_path / "hf")
    assert _png_width(tmp_path / "hf" / "parity.png") == 1200
    # on another surface only the calls compare: one panel, no empty energy axes
    store = Store(tmp_path / "xtb.db")
    for row in rows():
        store.write({**row, "calc": "xtb", "task_key": row["task_key"].replace(CALC, "xtb")})
    build_report(tmp_path / "xtb.db", reference=reference, out=tmp_path / "xtb")
    assert _png_width(tmp_path / "xtb" / "parity.png") == 660
    # with no system converged by both us and the published run there is nothing to plot
    store = Store(tmp_path / "none.db")
    for row in rows():
        store.write({**row, "converged": False, "verified_imaginary": None})
    written = build_report(tmp_path / "none.db", reference=reference, out=tmp_path / "none")
    assert not (tmp_path / "none" / "parity.png").exists()
    assert all(p.exists() for p in written)
