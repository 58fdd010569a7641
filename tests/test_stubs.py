"""The typed stubs of the extension name exactly what the built extension exports."""

import ast
import inspect
from pathlib import Path

import gprdimer
from gprdimer import _core

STUB = Path(gprdimer.__file__).with_name("_core.pyi")


def stub_names():
    """Top-level names of the stub, and each class's member names."""
    tree = ast.parse(STUB.read_text())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            top.add(node.name)
        if isinstance(node, ast.ClassDef):
            names = set()
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.add(item.target.id)
            members[node.name] = names
    return top, members


def public(names):
    return {n for n in names if not n.startswith("_")}


def test_stub_ships_beside_the_extension_with_a_typed_marker():
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_stub_names_every_export_and_nothing_else():
    top, _ = stub_names()
    assert public(top) == public(dir(_core))


def test_stub_classes_name_every_public_member():
    _, members = stub_names()
    for name, obj in inspect.getmembers(_core, inspect.isclass):
        exported = public(dir(obj)) - public(dir(object))
        assert exported == public(members[name]), name
