import shutil
import warnings
import zipfile

import pytest

from gprdimer.data import Reaction, load_sella500, read_reference
from gprdimer.errors import InputError

XYZ = "3\n\nO 0.0 0.0 0.0\nH 0.0 0.76 0.59\nH 0.0 -0.76 0.59\n"


@pytest.fixture(scope='module')
def reactions(sella500):
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the published zip must load without a checksum warning
        return list(load_sella500(sella500))


def _same(a, b):
    return [(r.name, r.atoms.get_chemical_symbols(), r.atoms.positions.tolist()) for r in a] == \
           [(r.name, r.atoms.get_chemical_symbols(), r.atoms.positions.tolist()) for r in b]


def test_set_has_500_guesses_of_the_published_shape(reactions):
    assert len(reactions) == 500
    singlets = [r for r in reactions if r.multiplicity == 1]
    doublets = [r for r in reactions if r.multiplicity == 2]
    assert (len(singlets), len(doublets)) == (265, 235)
    assert all(r.name.startswith('singlets/') for r in singlets)
    assert all(r.name.startswith('doublets/') for r in doublets)
    assert all(r.charge == 0 for r in reactions)
    assert min(len(r.atoms) for r in reactions) == 7
    assert max(len(r.atoms) for r in reactions) == 25
    assert {s for r in reactions for s in r.atoms.get_chemical_symbols()} == {'C', 'H', 'O'}


def test_order_is_singlets_then_doublets_by_number(reactions):
    assert [r.name for r in reactions[:2]] == ['singlets/000', 'singlets/001']
    assert reactions[264].name == 'singlets/264'
    assert reactions[265].name == 'doublets/000'
    assert reactions[-1].name == 'doublets/234'


def test_accepts_the_zip_itself(sella500, reactions):
    assert _same(load_sella500(sella500 / 'sella_si_data.zip'), reactions)


def test_unpacked_folder_loads_the_same(sella500, reactions, tmp_path):
    with zipfile.ZipFile(sella500 / 'sella_si_data.zip') as archive:
        archive.extractall(tmp_path)
    assert _same(load_sella500(tmp_path), reactions)  # finds sella_si/ inside
    assert _same(load_sella500(tmp_path / 'sella_si'), reactions)


def test_changed_zip_warns_and_still_loads(sella500, tmp_path):
    copy = tmp_path / 'sella_si_data.zip'
    shutil.copyfile(sella500 / 'sella_si_data.zip', copy)
    with open(copy, 'ab') as handle:
        handle.write(b'\0')
    with pytest.warns(UserWarning, match='checksum .* differs'):
        loaded = list(load_sella500(tmp_path))
    assert len(loaded) == 500


def test_reference_tables_cover_the_set(sella500, reactions):
    names = {r.name for r in reactions}
    for method in ('sella', 'gprd', 'idimer'):
        table = read_reference(sella500, method)
        assert set(table) == names, method
    row = read_reference(sella500, 'sella')['doublets/000']
    assert (row['mol_id'], row['spin']) == ('000', 'doublets')
    assert isinstance(row['init_energy'], float) and isinstance(row['pes_calls'], int)
    assert row['success'] is True


def test_small_folder_without_the_real_set(tmp_path):
    for name in ('singlets/010', 'singlets/002', 'doublets/001'):
        path = tmp_path / f'{name}.xyz'
        path.parent.mkdir(exist_ok=True)
        path.write_text(XYZ)
    loaded = list(load_sella500(tmp_path))
    assert [r.name for r in loaded] == ['singlets/002', 'singlets/010', 'doublets/001']
    assert [r.multiplicity for r in loaded] == [1, 1, 2]
    assert isinstance(loaded[0], Reaction)
    with pytest.raises(AttributeError):
        loaded[0].name = 'other'


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match='nowhere: no such file or directory'):
        load_sella500(tmp_path / 'nowhere')


def test_folder_without_the_set(tmp_path):
    with pytest.raises(InputError, match='neither sella_si_data.zip nor singlets/ and doublets/'):
        load_sella500(tmp_path)


def test_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / 'sella_si_data.zip'
    path.write_text('not a zip')
    with pytest.raises(InputError, match='not a zip archive'):
        load_sella500(path)


def test_broken_xyz_names_the_file(tmp_path):
    for spin in ('singlets', 'doublets'):
        (tmp_path / spin).mkdir()
    (tmp_path / 'singlets' / '000.xyz').write_text('2\n\nC 0 0\n')
    with pytest.raises(InputError, match=r'singlets/000\.xyz: truncated: line 1 announces 2 atoms'):
        list(load_sella500(tmp_path))


def _write_reference(tmp_path, text):
    folder = tmp_path / 'reference'
    folder.mkdir()
    (folder / 'data_sella.csv').write_text(text)


def test_reference_reads_a_small_table(tmp_path):
    _write_reference(tmp_path, 'mol_id,spin,init_energy,success,scf\n007,doublets,-1.5,False,\n')
    row = read_reference(tmp_path, 'sella')['doublets/007']
    assert row == {'mol_id': '007', 'spin': 'doublets', 'init_energy': -1.5, 'success': False,
                   'scf': None}


@pytest.mark.parametrize('text, message', [
    ('pes_calls,spin\n1,singlets\n', 'missing column.*mol_id'),
    ('mol_id,spin\n000,triplets\n', r"line 2: spin 'triplets' is not singlets or doublets"),
    ('mol_id,spin\nabc,singlets\n', "line 2: mol_id 'abc' is not a number"),
    ('mol_id,spin\n000,singlets\n000,singlets\n', 'line 3: duplicate row for singlets/000'),
    ('mol_id,spin\n000,singlets,extra\n', 'line 2: 2 fields expected'),
    ('mol_id,spin\n', 'no data rows'),
])
def test_bad_reference_table(tmp_path, text, message):
    _write_reference(tmp_path, text)
    with pytest.raises(InputError, match=f'data_sella.csv.*{message}'):
        read_reference(tmp_path, 'sella')


def test_missing_reference_file(tmp_path):
    with pytest.raises(InputError, match='data_gprd.csv not found'):
        read_reference(tmp_path, 'gprd')


def test_unknown_reference_method(tmp_path):
    with pytest.raises(InputError, match="method 'neb' is not one of sella, gprd, idimer"):
        read_reference(tmp_path, 'neb')
