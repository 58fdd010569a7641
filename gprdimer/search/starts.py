"""The GPR-dimer's plan of starts from the guess: which orientation, which seed, which GP and
which inner-loop rules each start takes, decided before the search begins.

A start ends with a NoProgress stop (patience, a stall, an energy rise, a point that is no
first-order saddle); the search then takes the next start of its plan, and the stop stands when
none is left. The second start (`fallback_mode`) keeps the GP's data: a patience stop mostly
comes from a dimer that lost its mode and slid towards a minimum, and another orientation with
the first start's data converted 7 of 12 xTB patience stops against 3 of 12 on a fresh GP. The
fresh starts begin on an empty GP (the failed starts' data make it slow, its cost growing with
the cube of the data, and hold the fits that failed), from a new random orientation, with the
rules set to 'fresh' (docs/parameters.md, second_order).
"""

from __future__ import annotations

from dataclasses import dataclass

from .settings import GPRDimerSettings


@dataclass(frozen=True)
class Start:
    number: int  # 1, 2, ...
    orientation: object  # a mode spec for modes.initial_mode; None: the search's own `mode`
    seed: int | None
    empty_gp: bool  # the GP starts empty (the first start's is empty anyway)
    second_order: bool
    convex_relax: bool
    note: str  # what the log says when the start begins


def plan_starts(settings: GPRDimerSettings, mode) -> tuple[Start, ...]:
    """Every start a search with these settings and this initial `mode` may take, in order."""
    inner, starts, seed = settings.inner, settings.starts, settings.search.seed
    plan = [Start(1, None, seed, False, inner.second_order is True, inner.convex_relax is True,
                  "start")]
    fallback = starts.fallback_mode
    if fallback == "other":
        fallback = "random" if isinstance(mode, str) and mode == "hessian" else "hessian"
    if fallback is not None:
        plan.append(Start(2, fallback, seed, False, plan[0].second_order, plan[0].convex_relax,
                          f"second start from the guess, {fallback} mode"))
    for _ in range(int(starts.fresh_starts)):
        n = len(plan) + 1
        plan.append(Start(n, "random", None if seed is None else seed + n - 1, True,
                          inner.second_order in (True, "fresh"),
                          inner.convex_relax in (True, "fresh"),
                          "fresh start from the guess, random mode, empty GP"))
    return tuple(plan)
