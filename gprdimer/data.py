"""The Sella paper's 500-reaction saddle-search set, and the per-system results published on it.

The geometries are not redistributed with the package: users point these functions at their own
copy of ``sella_si_data.zip`` (or its unpacked folder).
"""

import csv
import hashlib
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ase import Atoms

from .errors import InputError
from .structures import check_structure, xyz_frames

ZIP_NAME = 'sella_si_data.zip'
ZIP_SHA256 = 'ff51e679bc5499dfce73e59e5f90872a7f14dbfa66bf80762bb3efe739a0f00c'
MULTIPLICITY = {'singlets': 1, 'doublets': 2}
REFERENCE_FILES = {
    'sella': 'data_sella.csv',
    'gprd': 'data_gprd.csv',
    'idimer': 'data_idimer_cgrot_lbfgs.csv',
}
_MEMBER = re.compile(r'(?:^|/)(singlets|doublets)/(\d+)\.xyz$')


@dataclass(frozen=True)
class Reaction:
    """One transition-state guess of the set; ``name`` is e.g. 'singlets/000'."""

    name: str
    atoms: Atoms
    charge: int
    multiplicity: int


def load_sella500(path):
    """Iterate over the 500 guesses, singlets then doublets, each in numeric order.

    ``path`` is the set directory holding ``sella_si_data.zip``, the zip itself, or an unpacked
    folder with ``singlets/`` and ``doublets/`` (directly or under ``sella_si/``). A zip whose
    sha256 differs from the published one gives a UserWarning and is still read.
    """
    source = _source(Path(path))
    if source.suffix == '.zip':
        _check_checksum(source)
        entries = _zip_entries(source)
    else:
        entries = _folder_entries(source)
    if not entries:
        raise InputError(f"{source}: no singlets/NNN.xyz or doublets/NNN.xyz files found")
    entries.sort(key=lambda e: (list(MULTIPLICITY).index(e[0]), int(e[1])))
    return _reactions(source, entries)


def _source(path):
    if not path.exists():
        raise InputError(f"{path}: no such file or directory (expected the set directory, "
                         f"{ZIP_NAME}, or an unpacked folder with singlets/ and doublets/)")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InputError(f"{path}: not a zip archive")
        return path
    if (path / ZIP_NAME).is_file():
        return path / ZIP_NAME
    for folder in (path, path / 'sella_si'):
        if all((folder / spin).is_dir() for spin in MULTIPLICITY):
            return folder
    raise InputError(f"{path}: holds neither {ZIP_NAME} nor singlets/ and doublets/ folders")


def _check_checksum(zip_path):
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    if digest != ZIP_SHA256:
        warnings.warn(f"{zip_path}: sha256 checksum {digest} differs from the published "
                      f"{ZIP_SHA256}; reading it anyway", UserWarning, stacklevel=3)


def _zip_entries(zip_path):
    """(spin, number, member) for each XYZ member; the archive is read lazily later."""
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
    return [(m[1], m[2], name) for name in names if (m := _MEMBER.search(name))]


def _folder_entries(folder):
    return [(spin, f.stem, f) for spin in MULTIPLICITY
            for f in (folder / spin).glob('*.xyz') if f.stem.isdigit()]


def _reactions(source, entries):
    archive = zipfile.ZipFile(source) if source.suffix == '.zip' else None
    try:
        for spin, number, member in entries:
            if archive is None:
                text, where = member.read_text(), member
            else:
                text, where = archive.read(member).decode(), f"{source}:{member}"
            yield Reaction(name=f"{spin}/{number}", atoms=_parse_xyz(text, where), charge=0,
                           multiplicity=MULTIPLICITY[spin])
    finally:
        if archive is not None:
            archive.close()


def _parse_xyz(text, where):
    frames = xyz_frames(text, where)
    if len(frames) != 1:
        raise InputError(f"{where}: {len(frames)} frames; a guess of the set is one structure")
    check_structure(frames[0], where)
    return frames[0]


def read_reference(path, method):
    """Published per-system results of ``method`` ('sella', 'gprd' or 'idimer'), keyed by name.

    ``path`` is the set directory (with ``reference/``), the reference folder, or the CSV itself.
    Values are converted to int, float or bool where they parse as such; mol_id and spin stay text.
    """
    if method not in REFERENCE_FILES:
        raise InputError(f"method {method!r} is not one of {', '.join(REFERENCE_FILES)}")
    csv_path = _reference_file(Path(path), REFERENCE_FILES[method])
    try:
        with open(csv_path, newline='') as handle:
            reader = csv.DictReader(handle)
            missing = {'mol_id', 'spin'} - set(reader.fieldnames or ())
            if missing:
                raise InputError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
            rows = {}
            for row in reader:
                if None in row or None in row.values():
                    raise InputError(f"{csv_path}, line {reader.line_num}: "
                                     f"{len(reader.fieldnames)} fields expected")
                name = _row_name(row, csv_path, reader.line_num)
                if name in rows:
                    raise InputError(f"{csv_path}, line {reader.line_num}: "
                                     f"duplicate row for {name}")
                rows[name] = {k: v if k in ('mol_id', 'spin') else _value(v)
                              for k, v in row.items()}
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{csv_path}: cannot be read as CSV ({err})") from None
    if not rows:
        raise InputError(f"{csv_path}: no data rows")
    return rows


def _reference_file(path, filename):
    for candidate in (path, path / filename, path / 'reference' / filename):
        if candidate.is_file():
            return candidate
    raise InputError(f"{path}: {filename} not found there nor in {path / 'reference'}")


def _row_name(row, csv_path, line):
    spin, mol_id = row['spin'], row['mol_id']
    if spin not in MULTIPLICITY:
        raise InputError(f"{csv_path}, line {line}: spin {spin!r} is not singlets or doublets")
    if not (mol_id or '').isdigit():
        raise InputError(f"{csv_path}, line {line}: mol_id {mol_id!r} is not a number")
    return f"{spin}/{mol_id}"


def _value(text):
    if text is None or text == '':
        return None
    if text in ('True', 'False'):
        return text == 'True'
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
