"""The restart file of a search: every true evaluation, in order, as an ASE trajectory.

A search given `restart=FILE` appends each call it makes (energy and forces, image and check
calls included) to FILE. Where FILE already holds a search's calls, the new search replays that
search: both methods are deterministic for given settings, guess and force target, so every
evaluation it asks for is served from the file, in order, without calling the calculator, and
the GP learns it as it did the first time. Past the last saved call the search goes on with
calls of its own. That rebuilds the GP, the dimer and the plan of starts exactly where the first
search stopped (an interrupt, a step limit), which loading the data alone would not.

The first frame's `atoms.info` holds what the replay depends on; a restart that differs in any
of it is refused by name rather than replayed into different calls.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import Trajectory, read

from ..errors import InputError

HEADER = "gprdimer_search"  # the key of the first frame's info


def search_header(search, fmax) -> dict:
    """What a replay of `search` with this force target depends on."""
    mode = search._mode_spec
    return {"method": type(search).__name__,
            "settings": json.dumps(search.settings.as_keywords(), sort_keys=True),
            "fmax": float(fmax), "numbers": search.atoms.numbers.tolist(),
            "guess": search.atoms.positions.tolist(),
            "mode": mode if isinstance(mode, str) else np.asarray(mode, dtype=float).tolist()}


class SavedCalls:
    """The evaluations of a restart file, handed out once each, by exact positions."""

    def __init__(self, frames):
        self._by_positions = defaultdict(deque)
        for atoms in frames:
            key = _key(atoms.positions)
            self._by_positions[key].append((float(atoms.get_potential_energy()),
                                            np.array(atoms.get_forces(apply_constraint=False))))

    def take(self, positions):
        """(energy, forces) saved at exactly these positions, else None."""
        saved = self._by_positions.get(_key(positions))
        return saved.popleft() if saved else None


def _key(positions):
    return np.ascontiguousarray(positions, dtype=float).tobytes()


class CallRecord:
    """The restart file of one search: read where it exists, appended to as the search goes."""

    def __init__(self, path):
        self.path = Path(path)
        self.saved = None
        self._header = None
        self._writer = None

    def open(self, header):
        """Reads the saved calls (checking they belong to this search) and opens for writing."""
        if self.path.is_file() and self.path.stat().st_size > 0:
            frames = self._read()
            self._check(frames[0].info.get(HEADER), header)
            self.saved = SavedCalls(frames)
            self._writer = Trajectory(str(self.path), "a")
        else:
            self._header = header
            self._writer = Trajectory(str(self.path), "w")
        return self._writer

    def _read(self):
        try:
            frames = read(str(self.path), index=":")
        except Exception as exc:  # a file that is not a trajectory, or one cut mid-frame
            raise InputError(f"restart: {self.path} cannot be read as a trajectory "
                             f"({type(exc).__name__}: {exc})") from None
        if not frames:
            raise InputError(f"restart: {self.path} holds no evaluations")
        return frames

    def _check(self, saved, header):
        if not isinstance(saved, dict):
            raise InputError(f"restart: {self.path} was not written by a gprdimer search")
        for key, value in header.items():
            if _normal(saved.get(key)) != _normal(value):
                raise InputError(f"restart: {self.path} holds a search with another {key} "
                                 f"({_shown(saved.get(key))}, this one {_shown(value)}); a "
                                 "restart continues the same search")

    def write(self, atoms, energy, forces):
        snap = atoms.copy()
        if self._header is not None:  # the first frame of a new file
            snap.info[HEADER], self._header = self._header, None
        snap.calc = SinglePointCalculator(snap, energy=energy, forces=forces)
        self._writer.write(snap)


def _normal(value):
    """Lists and arrays alike, for the comparison of a header read back."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def _shown(value):
    text = str(_normal(value))
    return text if len(text) < 80 else text[:77] + "..."
