"""The settings of a search: one frozen dataclass per concept, nested per method.

Every default is defined here and nowhere else, and every value is checked here once, when its
dataclass is built (an InputError naming the keyword). A method's keywords are the fields of its
groups (`GPRDimerSettings.keywords()`), the same names as `--params` keys; docs/parameters.md's
table of defaults is generated from these definitions (`parameter_table`, test_settings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

from .. import _core
from ..errors import InputError
from ..gp import GPSettings
from ..setting import check_choice, check_fields, check_number, setting, why_text
from ..modes import MODE_CHOICES, SEED
from ..vibrations import IMAGINARY_CM

METRICS = ("fmax", "norm")
VERIFY_CHOICES = (None, "hessian")
ROTATION_METHODS = ("lbfgs", "cg")
TRUST_CHOICES = ("ratio", "transport", "both")
PER_START = (True, False, "fresh")  # a rule in every start, in none, or in the fresh starts


def check_run_settings(fmax, steps):
    """InputError unless fmax is a positive finite number and steps a whole number >= 1."""
    try:
        ok = math.isfinite(float(fmax)) and float(fmax) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"fmax must be a positive number, got {fmax}")
    try:
        too_few = int(steps) < 1
    except (TypeError, ValueError):
        raise InputError(f"steps must be a whole number, got {steps!r}") from None
    if too_few:
        raise InputError(f"steps must be at least 1, got {steps}")


@dataclass(frozen=True)
class SearchSettings:
    """Both methods: the outer loop and its acceptance test."""

    metric: str = setting("fmax", "force measure of the criterion: 'fmax' (largest per-atom "
                          "force) or 'norm' (2-norm of all)", "what ASE and Sella report", "'norm'")
    separation: float = setting(0.01, "midpoint to image-1 distance, Å", paper=0.01)
    max_energy_rise: float = setting(10.0, "a start ends where the energy rises this far above "
                                     "the first start's, eV", "paper; a rise ends the start, "
                                     "not the search", 10, history=True)
    imaginary_threshold: float = setting(IMAGINARY_CM, "a first-order saddle has exactly one "
                                         "imaginary frequency beyond this, cm⁻¹",
                                         "the convention of frequency calculations "
                                         "([Acceptance](#acceptance))", "—")
    verify: str | None = setting(None, "'hessian': a true Hessian confirms the saddle check",
                                 "costs 6N calls without an analytic Hessian "
                                 "([Acceptance](#acceptance))", "—")
    seed: int | None = setting(SEED, "seed of the 'random' initial mode", "paper",
                               SEED)

    def __post_init__(self):
        check_choice("metric", self.metric, METRICS)
        check_choice("verify", self.verify, VERIFY_CHOICES)
        check_fields(self, positive=("separation", "imaginary_threshold"))
        check_number("max_energy_rise", self.max_energy_rise, finite=False)


@dataclass(frozen=True)
class RotationSettings:
    """Dimer rotations: on the GP in GPRDimer, on true calls in Dimer."""

    rotation_method: str = setting("lbfgs", "'lbfgs' or 'cg'", paper="lbfgs")
    max_rotations: int = setting(10, "rotations per translation", paper=10)
    rotation_angle: float = setting(0.01, "rotations stop below this angle, rad",
                                    "paper; OT-GP's 0.1 not better",
                                    "0.01", history=True)
    trial_angle: float = setting(0.05, "angle of the trial rotation, rad", paper=0.05)

    def __post_init__(self):
        check_choice("rotation_method", self.rotation_method, ROTATION_METHODS)
        check_fields(self, positive=("trial_angle",),
                      non_negative=("max_rotations", "rotation_angle"))

    def to_core(self, separation, core=None) -> _core.RotationSettings:
        """These values in `core` (a new C++ struct by default), whose other fields stay."""
        r = core or _core.RotationSettings()
        r.max_rotations = int(self.max_rotations)
        r.converged_angle = float(self.rotation_angle)
        r.separation = float(separation)
        r.trial_angle = float(self.trial_angle)
        r.method = getattr(_core.RotationMethod, self.rotation_method)
        return r


@dataclass(frozen=True)
class DimerRotationSettings(RotationSettings):
    """The true-surface dimer's rotations: CG, 5° (each rotation costs a call)."""

    rotation_method: str = setting("cg", "'lbfgs' or 'cg'", "the classical dimer's", "cg")
    rotation_angle: float = setting(0.0873, "rotations stop below this angle, rad",
                                    "5°: each rotation is a true call", "0.0873")


@dataclass(frozen=True)
class TranslationSettings:
    """Dimer translations (L-BFGS on the modified force)."""

    max_step: float = setting(0.05, "translation cap, Å", paper=0.05)
    convex_step: float = setting(0.1, "uphill step at positive curvature, Å",
                                 "paper; 0.05 not better", 0.1, history=True)

    def __post_init__(self):
        check_fields(self, positive=("max_step", "convex_step"))

    def to_core(self, core=None) -> _core.TranslationSettings:
        t = core or _core.TranslationSettings()
        t.max_step = float(self.max_step)
        t.convex_step = float(self.convex_step)
        return t


@dataclass(frozen=True)
class DimerTranslationSettings(TranslationSettings):
    memory: int = setting(25, "L-BFGS memory of the translations", "ASE's dimer", "—")

    def __post_init__(self):
        super().__post_init__()
        check_number("memory", self.memory)

    def to_core(self, core=None) -> _core.TranslationSettings:
        t = super().to_core(core)
        t.memory = int(self.memory)
        return t


@dataclass(frozen=True)
class TrustSettings:
    """Where the GP is trusted: the inner loop stays inside this region of the data."""

    trust: str = setting("both", "'ratio' (distance-ratio window), 'transport' (OT-GP's "
                         "adaptive radius) or 'both'",
                         "the ratio window alone wandered on the EMT adatom",
                         "'ratio'", history=True)
    ratio_at_limit: float = setting(0.8, "distances stay within ratio..1/ratio of an "
                                    "observation's; per-atom step limiter",
                                    "2/3 compressed a bond by a third in one step",
                                    "2/3", history=True)

    max_variance: float = setting(0.0, "the inner loop stops where the GP energy variance "
                                  "exceeds this, eV²; 0 = off", "off, as in the paper", "—")
    def __post_init__(self):
        check_choice("trust", self.trust, TRUST_CHOICES)
        check_number("ratio_at_limit", self.ratio_at_limit)
        if self.ratio_at_limit > 1:
            raise InputError(f"ratio_at_limit must be in (0, 1], got {self.ratio_at_limit}")
        check_number("max_variance", self.max_variance, strict=False)

    def to_core(self, core) -> _core.TrustSettings:
        """These values in `core`; its transport radius follows the data (adaptive_radius)."""
        core.ratio_window = self.trust in ("ratio", "both")
        core.ratio_at_limit = float(self.ratio_at_limit)
        core.max_variance = float(self.max_variance)
        return core

    def adaptive_radius(self, n_observations, n_atoms) -> float:
        """OT-GP's transport radius for this much data, or 0 (off) without transport trust."""
        if self.trust not in ("transport", "both"):
            return 0.0
        return _core.adaptive_trust_radius(int(n_observations), int(n_atoms))


@dataclass(frozen=True)
class InnerSettings:
    """Each outer iteration's work on the GP: its training schedule and the inner loop."""

    max_inner_iterations: int = setting(200, "GP steps per outer iteration", paper=200)
    divisor: float = setting(10.0, "the inner loop stops at max(min(last, start true fmax) / "
                             "divisor, fmax / 10)", "the last fmax alone let a search cycle",
                             10, history=True)
    convex_relax: bool | str = setting(False, "at positive curvature translate on the modified "
                                       "force instead of the uphill step: True, False, 'fresh'",
                                       "settles in minima",
                                       "False", history=True)
    skip_after_kept: int = setting(2, "outer iterations without training after a training that "
                                   "kept the hyperparameters, k times as many after the k-th "
                                   "such training in a row",
                                   "xTB: 0.63x the wall time a search, 2 more median calls; "
                                   "growing pauses 0.85x the GP time",
                                   "—", history=True)
    second_order: bool | str = setting("fresh", "P-RFO steps on the GP Hessian instead of the "
                                       "dimer: True, False, or 'fresh' (the fresh starts)",
                                       "33 of 61 verified against 18 without (xTB fresh starts)",
                                       "—", history=True)

    def __post_init__(self):
        check_fields(self, positive=("max_inner_iterations", "divisor"),
                      non_negative=("skip_after_kept",))
        check_choice("convex_relax", self.convex_relax, PER_START)
        check_choice("second_order", self.second_order, PER_START)


@dataclass(frozen=True)
class StartSettings:
    """The starts from the guess (search/starts.py) and what ends one."""

    initial_rotations: int = setting(6, "passes of GP rotation plus a true image call at a start",
                                     "87 against 77 converged for 1",
                                     "1 (OT-GP 6)", history=True)
    initial_angle: float = setting(0.0873, "the initial rotations stop below this true angle, rad",
                                   paper=0.0873)
    patience: int = setting(30, "a start ends after this many outer iterations without a new "
                            "lowest true fmax; 0 = off", "bounds failures' cost", "—",
                            history=True)
    fallback_mode: str | None = setting("other", "orientation of the second start (GP data "
                                        "kept): 'other', 'random', 'hessian' or None",
                                        "5 of 91 verified saddles on xTB", "—", history=True)
    fresh_starts: int = setting(2, "further starts on an empty GP, random orientations",
                                "7 of 91 verified saddles on xTB", "—", history=True)

    def __post_init__(self):
        check_fields(self, non_negative=("initial_rotations", "initial_angle", "patience",
                                          "fresh_starts"))
        if self.fallback_mode != "other" and self.fallback_mode is not None:
            check_choice("fallback_mode", self.fallback_mode, MODE_CHOICES)


class _Settings:
    """A method's settings: frozen groups, built from flat keywords."""

    @classmethod
    def groups(cls):
        return [(f.name, f.default_factory) for f in fields(cls)]

    @classmethod
    def keywords(cls) -> dict:
        """Every keyword of the method: name -> default."""
        return {f.name: getattr(make(), f.name)
                for _, make in cls.groups() for f in fields(make())}

    @classmethod
    def from_keywords(cls, **keywords):
        """The settings with these keywords changed; InputError naming an unknown one."""
        known = cls.keywords()
        for name in sorted(keywords):
            if name not in known:
                raise InputError(f"unknown keyword {name!r}; known: {', '.join(sorted(known))}")
        built = {}
        for group, make in cls.groups():
            default = make()
            own = {f.name: keywords[f.name] for f in fields(default) if f.name in keywords}
            built[group] = replace(default, **own) if own else default
        return cls(**built)

    def as_keywords(self) -> dict:
        return {f.name: getattr(getattr(self, group), f.name)
                for group, _ in self.groups() for f in fields(getattr(self, group))}


@dataclass(frozen=True)
class GPRDimerSettings(_Settings):
    search: SearchSettings = field(default_factory=SearchSettings)
    starts: StartSettings = field(default_factory=StartSettings)
    rotation: RotationSettings = field(default_factory=RotationSettings)
    translation: TranslationSettings = field(default_factory=TranslationSettings)
    trust: TrustSettings = field(default_factory=TrustSettings)
    inner: InnerSettings = field(default_factory=InnerSettings)
    gp: GPSettings = field(default_factory=GPSettings)

    def inner_to_core(self, second_order: bool, convex_relax: bool) -> _core.InnerSettings:
        """The C++ inner-loop settings of one start (the per-start rules resolved)."""
        s = _core.InnerSettings()
        s.max_iterations = int(self.inner.max_inner_iterations)
        self.rotation.to_core(self.search.separation, s.rotation)  # exact images stay on
        self.translation.to_core(s.translation)
        s.translation.convex_relax = bool(convex_relax)
        self.trust.to_core(s.trust)
        s.second_order = bool(second_order)
        return s

    def initial_rotation_to_core(self) -> _core.RotationSettings:
        """The rotations of a start: to convergence on the GP, each image exact."""
        r = self.rotation.to_core(self.search.separation)
        r.max_rotations = int(self.inner.max_inner_iterations)
        r.converged_angle = min(0.01, 0.1 * float(self.starts.initial_angle))
        r.exact_image = True
        return r


@dataclass(frozen=True)
class DimerSettings(_Settings):
    search: SearchSettings = field(default_factory=SearchSettings)
    rotation: DimerRotationSettings = field(default_factory=DimerRotationSettings)
    translation: DimerTranslationSettings = field(default_factory=DimerTranslationSettings)


def parameter_table(settings_class) -> str:
    """The markdown table of a method's keywords: default, the paper's value, what, why."""
    lines = ["| parameter | default | paper | what | why |", "|---|---|---|---|---|"]
    for _, make in settings_class.groups():
        group = make()
        for f in fields(group):
            paper = f.metadata["paper"]
            paper = f.default if paper is None else paper
            lines.append(f"| `{f.name}` | `{getattr(group, f.name)!r}` | {paper} | "
                         f"{f.metadata['what']} | {why_text(f)} |")
    return "\n".join(lines) + "\n"
