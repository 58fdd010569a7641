"""The tables of a report (gprdimer/report.py), from the rows of a batch database.

A success is a verified one (`verify.is_verified_success`); costs are taken over successes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import combinations

import numpy as np

from .data import read_reference
from .errors import InputError
from .verify import VERIFIED, is_verified_success as _success

SAME_SADDLE_EV = 0.01  # saddle energies closer than this are taken as the same saddle
# Our method names -> the published per-system CSVs (read_reference) of the same method.
REFERENCE_METHOD = {"gprd": "gprd", "sella": "sella", "dimer": "idimer"}
REFERENCE_CALC = "hf/3-21g"  # the published energies' level; other surfaces are not compared
# Upper ends (atoms) of the size bands but the last: at most 13 (the 100 smallest systems of
# the set), 14 to 19, 20 and more (the set ends at 25).
SIZE_BANDS = (13, 19)


def common_systems(rows):
    """(rows, left out): per calculator, only the systems that every method in the database
    has a row for, so that every comparison is over the same systems (a batch still running
    for one method would otherwise be compared on its easy first systems); the second item
    counts the rows left out per (calc, method)."""
    methods = defaultdict(set)
    systems = defaultdict(set)
    for r in rows:
        methods[r["calc"]].add(r["method"])
        systems[r["calc"], r["method"]].add(r["system"])
    shared = {calc: set.intersection(*(systems[calc, m] for m in ms))
              for calc, ms in methods.items()}
    kept = [r for r in rows if r["system"] in shared[r["calc"]]]
    left_out = defaultdict(int)
    for r in rows:
        if r["system"] not in shared[r["calc"]]:
            left_out[r["calc"], r["method"]] += 1
    return kept, dict(left_out)


def summary_table(rows):
    """Per calculator and method: success rate and the cost of converged searches."""
    groups = _group(rows, "calc", "method")
    sella_wall = {(r["calc"], r["system"]): r["wall_time"] for r in rows
                  if r["method"] == "sella" and _success(r)}
    sella_median = {calc: (_median([r["calls"] for r in group if _success(r)]),
                           _median([r["wall_time"] for r in group if _success(r)]))
                    for (calc, method), group in groups.items() if method == "sella"}
    table = []
    for (calc, method), group in sorted(groups.items()):
        ok = [r for r in group if _success(r)]
        reported = [r for r in group if r["converged"]]
        unverified = [r for r in reported if VERIFIED not in r and "verify_error" not in r]
        calls = [r["calls"] for r in ok]
        wall = [r["wall_time"] for r in ok]
        gp = [r.get("gp_time", 0.0) for r in ok]
        shared = [r for r in ok if (calc, r["system"]) in sella_wall]
        sella_total = sum(sella_wall[calc, r["system"]] for r in shared)
        sella_calls, sella_wall_median = sella_median.get(calc, (math.nan, math.nan))
        table.append({
            "calc": calc, "method": method, "systems": len(group), "reported": len(reported),
            "verified": len(ok), "rejected": len(reported) - len(ok) - len(unverified),
            "unverified": len(unverified),
            # A saddle of an SCF solution that is not the lowest at its geometry (UHF doublets).
            "upper_state": sum(r.get("verify_lower_state", 0.0) < 0.0 for r in ok),
            "success_rate": len(ok) / len(group),
            **_stats("calls", calls),
            **_stats("check_calls", [r.get("check_calls", 0) for r in ok]),
            **_stats("wall_s", wall), **_stats("gp_s", gp),
            "gp_share": sum(gp) / sum(wall) if sum(wall) > 0 else math.nan,
            # Medians over each method's own converged searches, same calculator: the
            # comparisons issue 6 sets targets on.
            "calls_median_vs_sella": _ratio(_median(calls), sella_calls),
            "wall_median_vs_sella": _ratio(_median(wall), sella_wall_median),
            # Totals over the systems both this method and Sella converged on.
            "wall_vs_sella": _ratio(sum(r["wall_time"] for r in shared), sella_total),
        })
    return table


def starts_table(rows):
    """Per calculator and method, the verified successes of each start (1: the first, 2: the
    fallback orientation, 3 on: fresh starts) and the count with at most that many starts.

    A search that succeeded in start k ran exactly as it would have with only k starts allowed,
    so the cumulative column is what fewer restarts would have given, without a rerun."""
    table = []
    for (calc, method), group in sorted(_group(rows, "calc", "method").items()):
        ok = [r for r in group if _success(r)]
        total = 0
        for start in range(1, max((r.get("starts", 1) for r in ok), default=0) + 1):
            here = sum(r.get("starts", 1) == start for r in ok)
            total += here
            table.append({"calc": calc, "method": method, "start": start, "successes": here,
                          "with_at_most_this_many_starts": total,
                          "calls_median": _median([r["calls"] for r in ok
                                                   if r.get("starts", 1) == start])})
    return table


def _ratio(value, reference):
    return value / reference if reference > 0 else math.nan


def same_saddle_table(rows):
    """Per calculator, pair of methods and spin: of the systems both converged on, the share
    whose saddle energies agree within SAME_SADDLE_EV."""
    energy = {(r["calc"], r["method"], r["system"]): r["saddle_energy"]
              for r in rows if _success(r)}
    spin = {r["system"]: r["spin"] for r in rows}
    table = []
    for calc in sorted({r["calc"] for r in rows}):
        methods = sorted({r["method"] for r in rows if r["calc"] == calc})
        for first, second in combinations(methods, 2):
            both = defaultdict(list)
            for (c, m, system), e in energy.items():
                if c == calc and m == first and (calc, second, system) in energy:
                    both[spin[system]].append(abs(e - energy[calc, second, system]))
            for spin_name, gaps in sorted(both.items()):
                same = sum(g < SAME_SADDLE_EV for g in gaps)
                table.append({"calc": calc, "methods": f"{first} / {second}", "spin": spin_name,
                              "both_converged": len(gaps), "same_saddle": same,
                              "share": same / len(gaps)})
    return table


def reference_pairs(rows, reference):
    """One record per system we ran with a method that has published results."""
    published = _published(reference, {r["method"] for r in rows})
    pairs = []
    for r in rows:
        ref_method = REFERENCE_METHOD.get(r["method"])
        if ref_method is None:
            continue
        ref = published[ref_method].get(r["system"])
        if ref is None:
            continue
        compare = r["calc"].lower() == REFERENCE_CALC
        ours_e = r["saddle_energy"] if compare and _success(r) else math.nan
        theirs_e = ref.get("saddle_energy") if compare and ref.get("success") else None
        theirs_e = math.nan if theirs_e is None else float(theirs_e)
        pairs.append({"calc": r["calc"], "method": r["method"], "system": r["system"],
                      "spin": r["spin"], "converged": _success(r),
                      "published_converged": bool(ref.get("success")), "calls": r["calls"],
                      "published_calls": ref.get("pes_calls"), "saddle_energy": ours_e,
                      "published_saddle_energy": theirs_e, "energy_gap": ours_e - theirs_e})
    if not pairs:
        raise InputError(f"{reference}: no published results match the systems and methods "
                         f"in the database")
    return pairs


def reference_summary(pairs):
    table = []
    for (calc, method), group in sorted(_group(pairs, "calc", "method").items()):
        both = [p for p in group if p["converged"] and p["published_converged"]]
        gaps = [abs(p["energy_gap"]) for p in both if math.isfinite(p["energy_gap"])]
        table.append({
            # the published runs are HF/3-21G: on another surface only success and cost compare
            "calc": calc, "published_calc": REFERENCE_CALC, "method": method,
            "systems": len(group),
            "success_rate": sum(p["converged"] for p in group) / len(group),
            "published_success_rate": sum(p["published_converged"] for p in group) / len(group),
            "both_converged": len(both),
            "calls_median": _median([p["calls"] for p in both]),
            "published_calls_median": _median([p["published_calls"] for p in both]),
            "same_saddle_share": (sum(g < SAME_SADDLE_EV for g in gaps) / len(gaps)
                                  if gaps else math.nan),
        })
    return table


def _stats(name, values):
    if not values:
        return {f"{name}_median": math.nan, f"{name}_mean": math.nan, f"{name}_iqr": math.nan}
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {f"{name}_median": float(median), f"{name}_mean": float(np.mean(values)),
            f"{name}_iqr": float(q3 - q1)}


def _median(values):
    return float(np.median(values)) if values else math.nan


def _group(rows, *keys):
    groups = defaultdict(list)
    for r in rows:
        groups[tuple(r[k] for k in keys)].append(r)
    return groups




def size_band(natoms):
    """The label of the size band of a system of `natoms` atoms."""
    low = 1
    for high in SIZE_BANDS:
        if natoms <= high:
            return f"{low}-{high}" if low > 1 else f"<={high}"
        low = high + 1
    return f">={low}"


def size_band_table(rows, reference=None):
    """Per calculator, size band and method: verified success and the cost of successes, the
    medians against Sella's in the same band, and with `reference` the published run of the
    same method on the same systems (their own success claims and median calls)."""
    bands = [size_band(n) for n in (*SIZE_BANDS, SIZE_BANDS[-1] + 1)]
    groups = defaultdict(list)
    for r in rows:
        groups[r["calc"], size_band(r["natoms"]), r["method"]].append(r)
    published = _published(reference, {m for _, _, m in groups}) if reference is not None else {}
    sella = {(calc, band): ([r["calls"] for r in group if _success(r)],
                            [r["wall_time"] for r in group if _success(r)])
             for (calc, band, method), group in groups.items() if method == "sella"}
    table = []
    order = sorted(groups, key=lambda key: (key[0], bands.index(key[1]), key[2]))
    for calc, band, method in order:
        group = groups[calc, band, method]
        ok = [r for r in group if _success(r)]
        calls, wall = [r["calls"] for r in ok], [r["wall_time"] for r in ok]
        gp = sum(r.get("gp_time", 0.0) for r in ok)
        sella_calls, sella_wall = sella.get((calc, band), ([], []))
        entry = {"calc": calc, "atoms": band, "method": method, "systems": len(group),
                 "verified": len(ok), "success_rate": len(ok) / len(group),
                 "calls_median": _median(calls),
                 "calls_mean": float(np.mean(calls)) if calls else math.nan,
                 "wall_s_median": _median(wall),
                 "gp_share": gp / sum(wall) if sum(wall) > 0 else math.nan,
                 "calls_median_vs_sella": _ratio(_median(calls), _median(sella_calls)),
                 "wall_median_vs_sella": _ratio(_median(wall), _median(sella_wall))}
        theirs = published.get(REFERENCE_METHOD.get(method))
        if theirs is not None:
            mine = [theirs[r["system"]] for r in group if r["system"] in theirs]
            entry.update(published_method=REFERENCE_METHOD[method],
                         published_reported=sum(bool(p.get("success")) for p in mine),
                         published_calls_median=_median([p["pes_calls"] for p in mine
                                                         if p.get("success")]))
        table.append(entry)
    return table


def other_saddle_table(rows, reference):
    """The verified successes at the published level whose saddle is not the published
    Sella's (energies SAME_SADDLE_EV or more apart, where Sella succeeded there), and which of
    the two saddles is lower."""
    sella = _published(reference, {"sella"})["sella"]
    table = []
    for r in sorted(rows, key=lambda r: (r["system"], r["method"])):
        theirs = sella.get(r["system"])
        if (r["calc"].lower() != REFERENCE_CALC or not _success(r) or theirs is None
                or not theirs.get("success") or theirs.get("saddle_energy") is None):
            continue
        gap = r["saddle_energy"] - float(theirs["saddle_energy"])
        if abs(gap) >= SAME_SADDLE_EV:
            table.append({"system": r["system"], "atoms": r["natoms"], "method": r["method"],
                          "saddle_energy": r["saddle_energy"],
                          "published_sella_energy": float(theirs["saddle_energy"]),
                          "energy_gap": gap, "lower": "ours" if gap < 0 else "published Sella"})
    return table


def _published(reference, methods):
    """The published per-system results of the reference methods of our `methods`."""
    wanted = {REFERENCE_METHOD[m] for m in methods if m in REFERENCE_METHOD}
    return {m: read_reference(reference, m) for m in sorted(wanted)}
