"""Tables and plots from a batch database: what docs/benchmarks.md shows.

A success is a verified one, for every method alike: a row reported converged whose true
Hessian (`gprdimer verify`) has exactly one imaginary mode. Rows reported converged that the
verifier rejects, or that it has not seen, are counted apart and are no successes. Costs (calls,
wall time, GP time) are taken over successes only, so that a method is not made to look cheap by
giving up early; the success rate says how many those are.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .batch.store import read_rows
from .errors import InputError
from .report_plots import _plot_converged_vs_calls, _plot_parity, _pyplot
from .report_tables import (REFERENCE_CALC, SAME_SADDLE_EV, common_systems, other_saddle_table,
                            reference_pairs, reference_summary, same_saddle_table,
                            size_band_table, starts_table, summary_table)


def build_report(db, reference=None, out=None, stride=None) -> list[Path]:
    """Writes report.md, CSVs and PNGs for the results in `db` into `out` (default: the db's
    folder); returns the paths written. `stride` K keeps every K-th system, ordered by name."""
    _pyplot()  # a missing matplotlib stops the report before anything is written
    rows = read_rows(db)
    if not rows:
        raise InputError(f"{db}: the results database holds no rows")
    if stride:
        every = set(sorted({r["system"] for r in rows})[::stride])
        rows = [r for r in rows if r["system"] in every]
    rows, left_out = common_systems(rows)
    out = Path(out) if out is not None else Path(db).resolve().parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the report folder ({exc})") from None
    sections = [("Cost and success per method", "summary.csv", summary_table(rows)),
                ("Verified successes by the start that found them", "starts.csv",
                 starts_table(rows)),
                ("Same saddle found by two methods", "same_saddle.csv", same_saddle_table(rows)),
                ("Per size band (published_*: the published run of the same method on the same "
                 "systems, its own success claims)", "size_bands.csv",
                 size_band_table(rows, reference))]
    written = [_plot_converged_vs_calls(rows, out / "converged_vs_calls.png")]
    if reference is not None:
        pairs = reference_pairs(rows, reference)
        sections.append(("Against the published results (published_calc is their level; "
                         "saddle energies compare only at that level)", "reference.csv",
                         reference_summary(pairs)))
        sections.append((f"Saddles other than the published Sella's ({REFERENCE_CALC}, verified "
                         "successes)", "other_saddles.csv", other_saddle_table(rows, reference)))
        written.append(_write_csv(out / "reference_systems.csv", pairs))
        parity = _plot_parity(pairs, out / "parity.png")
        written += [] if parity is None else [parity]
    for _, name, table in sections:
        written.append(_write_csv(out / name, table))
    written.append(_write_markdown(out / "report.md", Path(db).name, sections,
                                   [p.name for p in written if p.suffix == ".png"], left_out))
    return written


def _write_csv(path, table):
    with open(path, "w", newline="") as handle:
        if table:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    return path


def _write_markdown(path, db_name, sections, images, left_out=None):
    lines = [f"# Results from {db_name}", "",
             "A success is a verified one: reported converged, and exactly one imaginary mode "
             "in the true Hessian of `gprdimer verify`. 'reported' counts the rows the method "
             "called converged, 'rejected' those of them the verifier found no first-order "
             "saddle (or could not compute), 'unverified' those it has not seen; 'upper_state' "
             "counts the successes at whose geometry a fresh SCF finds a solution below the "
             "row's (a saddle of an excited SCF state: the verifier follows the row's state "
             "from its guess). Calls "
             "(the saddle check's included; 'check_calls' alone), wall and GP times are over "
             "successes; 'gp_share' is GP time over wall time; '*_median_vs_sella' divide the "
             "method's median by Sella's on the same calculator; 'wall_vs_sella' is the "
             "method's total wall time over Sella's on the systems where both succeeded. "
             f"Same saddle: energies within {SAME_SADDLE_EV} eV.", ""]
    if left_out:
        counts = ", ".join(f"{n} {method} rows on {calc}" for (calc, method), n
                           in sorted(left_out.items()))
        lines += ["Only systems that every method of a calculator has run are compared; left "
                  f"out: {counts}.", ""]
    for title, name, table in sections:
        lines += [f"## {title}", "", *_markdown_table(table), "", f"CSV: [{name}]({name})", ""]
    lines += [f"![{Path(name).stem}]({name})" for name in images]
    path.write_text("\n".join(lines) + "\n")
    return path


def _markdown_table(table):
    if not table:
        return ["(nothing to compare)"]
    header = list(table[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        lines.append("| " + " | ".join(_cell(k, row[k]) for k in header) + " |")
    return lines


def _cell(key, value):
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if "rate" in key or "share" in key:
            return f"{100 * value:.1f} %"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)
