"""The plots of a report (gprdimer/report.py); matplotlib draws them into files only."""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .report_tables import REFERENCE_CALC, SAME_SADDLE_EV, _group, _success


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise InputError("gprdimer report's plots need matplotlib: "
                         "pip install 'gprdimer[report]'") from None

    matplotlib.use("Agg")  # files only; works without a display
    import matplotlib.pyplot as plt

    return plt


def _plot_converged_vs_calls(rows, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for (calc, method), group in sorted(_group(rows, "calc", "method").items()):
        calls = sorted(r["calls"] for r in group if _success(r))
        share = np.arange(1, len(calls) + 1) / len(group)
        ax.step([0, *calls], [0, *share], where="post", label=f"{method} ({calc})")
    ax.set_xlabel("electronic-structure calls")
    ax.set_ylabel("share of systems at a verified saddle")
    ax.set_ylim(0, 1)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_parity(pairs, path):
    """Calls against the published calls and, at the published level only, each system's saddle
    energy minus the published one (on a -5000 eV scale a 0.01 eV disagreement would not show
    as distance from a diagonal). A panel without points is left out; None without any."""
    both = [p for p in pairs if p["converged"] and p["published_converged"]]
    gaps = [p for p in both if math.isfinite(p["energy_gap"])]
    if not both:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2 if gaps else 1, figsize=(10 if gaps else 5.5, 4.5),
                             squeeze=False)
    calls_ax = axes[0, 0]
    systems = sorted({p["system"] for p in gaps})
    for (calc, method), group in sorted(_group(both, "calc", "method").items()):
        label = f"{method} ({calc})"
        calls_ax.scatter([p["published_calls"] for p in group], [p["calls"] for p in group],
                         s=12, label=label)
        if gaps:
            mine = [p for p in group if math.isfinite(p["energy_gap"])]
            axes[0, 1].scatter([systems.index(p["system"]) for p in mine],
                               [p["energy_gap"] for p in mine], s=12, label=label)
    from matplotlib.ticker import NullFormatter

    calls_ax.set_xscale("log")
    calls_ax.set_yscale("log")
    for axis in (calls_ax.xaxis, calls_ax.yaxis):
        axis.set_minor_formatter(NullFormatter())  # labelled minor ticks collide within a decade
    low, high = calls_ax.get_xlim()
    calls_ax.plot([low, high], [low, high], color="grey", lw=0.8)
    calls_ax.set_xlabel(f"published calls ({REFERENCE_CALC})")
    calls_ax.set_ylabel("calls in this run")
    calls_ax.set_title("Calls per system, both converged", fontsize="medium")
    calls_ax.legend(fontsize="small")
    if gaps:
        energy_ax = axes[0, 1]
        energy_ax.axhspan(-SAME_SADDLE_EV, SAME_SADDLE_EV, color="grey", alpha=0.2,
                          label=f"same saddle (±{SAME_SADDLE_EV} eV)")
        energy_ax.set_yscale("symlog", linthresh=SAME_SADDLE_EV)
        energy_ax.set_xlabel("system (ordered by name)")
        energy_ax.set_ylabel("saddle energy: this run − published (eV)")
        energy_ax.set_title(f"Saddle energy against the published saddle ({REFERENCE_CALC})",
                            fontsize="medium")
        energy_ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


