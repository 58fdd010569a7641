"""Settings fields that document themselves and values checked once, where they are built."""

from __future__ import annotations

import math
from dataclasses import field

from .errors import InputError


def setting(default, what, why="paper", paper=None, history=False):
    """A field with its documentation: what it does, and why this default (one line each);
    `history`: docs/history.md has the measurements under the field's name."""
    return field(default=default, metadata={"what": what, "why": why, "paper": paper,
                                            "history": history})


def check_number(name, value, *, low=0.0, strict=True, finite=True):
    """`value` as a float; InputError unless it is above `low` (at least `low` when not strict)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    above = v > low if strict else v >= low
    if not above or math.isnan(v) or (finite and not math.isfinite(v)):
        bound = f"{'above' if strict else 'at least'} {low:g}"
        raise InputError(f"{name} must be {'a finite number' if finite else 'a number'} {bound}, "
                         f"got {value!r}")
    return v


def check_choice(name, value, choices):
    if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_fields(group, positive=(), non_negative=()):
    for name in positive:
        check_number(name, getattr(group, name))
    for name in non_negative:
        check_number(name, getattr(group, name), strict=False)


# Where docs/parameters.md's table links a measurement.
HISTORY = "history.md"


def why_text(f) -> str:
    """A field's reason for its default, with the link to its measurements where it has one."""
    why = f.metadata["why"]
    return f"{why} ([history]({HISTORY}#{f.name}))" if f.metadata.get("history") else why
