"""The settings dataclasses: one home per default, checked once, documented from the definition."""

import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read

from gprdimer import Dimer, GPRDimer, InputError
from gprdimer.search.settings import DimerSettings, GPRDimerSettings, parameter_table

DOCS = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"
HISTORY_DOC = DOCS.with_name("history.md")


@pytest.mark.parametrize("settings_class", [GPRDimerSettings, DimerSettings])
def test_the_parameter_tables_are_generated_from_the_settings(settings_class):
    text = DOCS.read_text()
    block = re.search(rf"<!-- generated: parameter_table\({settings_class.__name__}\) -->\n"
                      r"(.*?)<!-- end generated -->", text, re.S)
    assert block, f"docs/parameters.md has no generated table of {settings_class.__name__}"
    assert block.group(1) == parameter_table(settings_class)


@pytest.mark.parametrize("settings_class", [GPRDimerSettings, DimerSettings])
def test_every_keyword_belongs_to_exactly_one_group(settings_class):
    names = [name for group, make in settings_class.groups()
             for name in make().__dataclass_fields__]
    assert len(names) == len(set(names)) == len(settings_class.keywords())


def test_keywords_and_settings_build_the_same_search():
    settings = GPRDimerSettings.from_keywords(patience=12, noise=1e-4, trust="ratio")
    assert settings.starts.patience == 12 and settings.gp.noise == 1e-4
    assert settings.trust.trust == "ratio"
    assert settings.from_keywords(**settings.as_keywords()) == settings
    # a keyword on top of given settings changes only itself
    again = GPRDimerSettings.from_keywords(**{**settings.as_keywords(), "patience": 5})
    assert again.starts.patience == 5 and again.gp.noise == 1e-4


def test_an_unknown_keyword_names_the_known_ones(h2):
    with pytest.raises(InputError, match="unknown keyword 'patient'; known: .*patience"):
        GPRDimer(h2, logfile=None, patient=3)
    with pytest.raises(InputError, match="unknown keyword 'patience'"):
        Dimer(h2, logfile=None, patience=3)  # the plain dimer has a single start


def test_given_settings_of_the_wrong_method_are_refused(h2):
    with pytest.raises(InputError, match="settings must be a GPRDimerSettings"):
        GPRDimer(h2, logfile=None, settings=DimerSettings())


def test_the_inner_settings_of_a_start_carry_every_value():
    settings = GPRDimerSettings.from_keywords(max_rotations=4, rotation_angle=0.02,
                                              trial_angle=0.03, max_step=0.07, convex_step=0.2,
                                              ratio_at_limit=0.7, max_variance=0.5,
                                              max_inner_iterations=50, trust="transport")
    core = settings.inner_to_core(second_order=True, convex_relax=False)
    assert (core.max_iterations, core.rotation.max_rotations) == (50, 4)
    assert (core.rotation.converged_angle, core.rotation.trial_angle) == (0.02, 0.03)
    assert core.rotation.separation == settings.search.separation
    assert core.rotation.exact_image  # the inner loop's rotations evaluate image 1 on the GP
    assert (core.translation.max_step, core.translation.convex_step) == (0.07, 0.2)
    assert core.trust.ratio_at_limit == 0.7 and core.trust.max_variance == 0.5
    assert core.second_order and not core.translation.convex_relax and not core.trust.ratio_window
    assert settings.trust.adaptive_radius(0, 9) == pytest.approx(0.15)
    assert settings.trust.adaptive_radius(50, 9) == pytest.approx(0.15 + 0.35 / 2)
    assert settings.trust.adaptive_radius(10**6, 100) == pytest.approx(0.25)  # the ceiling
    assert GPRDimerSettings.from_keywords(trust="ratio").trust.adaptive_radius(50, 9) == 0.0


@pytest.fixture
def h2():
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((2, 3)))
    return atoms


def test_ase_optimizer_argument_order(h2, tmp_path):
    """GPRDimer(atoms, restart, logfile, trajectory) as ASE's Optimizer and Sella: written in
    that order, the log stays text and the trajectory binary."""
    log, traj = tmp_path / "search.log", tmp_path / "search.traj"
    h2.calc = EMT()
    with GPRDimer(h2, None, str(log), str(traj), mode=np.array([[0, 0, -1.0], [0, 0, 1.0]])) as opt:
        opt.run(fmax=0.01, steps=2)
    assert log.read_text().split()[0] == "step"
    assert len(read(traj, ":")) == opt.result.outer_iterations + 1


def test_every_history_link_has_its_section():
    """A field marked history=True links docs/history.md#name: that heading must exist."""
    from dataclasses import fields as dataclass_fields

    headings = set(re.findall(r"^#+ (\S+)\s*$", HISTORY_DOC.read_text(), flags=re.M))
    linked = {f.name for cls in (GPRDimerSettings, DimerSettings) for _, make in cls.groups()
              for f in dataclass_fields(make()) if f.metadata.get("history")}
    assert linked and linked <= headings, linked - headings
