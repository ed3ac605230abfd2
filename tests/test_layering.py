"""The package's layering: ``recaffe`` never imports ``caffe`` (pycaffe is a client of recaffe),
and recaffe's modules import each other without a cycle (counting imports inside functions and
under ``TYPE_CHECKING`` too: a cycle there is still two modules that need each other)."""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

import recaffe

ROOT = pathlib.Path(recaffe.__file__).resolve().parent.parent


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imported(path: pathlib.Path, name: str, known: set[str]) -> set[str]:
    """The modules ``path`` (module ``name``) imports, anywhere in the file; within ``known`` a
    ``from package import x`` names the submodule ``package.x`` when there is one."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names)
    return found


@functools.cache
def graph(package: str) -> dict[str, set[str]]:
    files = modules(package)
    return {name: imported(path, name, set(files)) for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in edges or state.get(nxt) == 2:
                continue
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_recaffe_never_imports_caffe() -> None:
    offenders = {name: sorted(m for m in deps if m == "caffe" or m.startswith("caffe."))
                 for name, deps in graph("recaffe").items()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_recaffe_has_no_import_cycle() -> None:
    edges = graph("recaffe")
    # the package's __init__ is its public surface: it imports everything, and nothing may import it
    importers = sorted(name for name, deps in edges.items() if "recaffe" in deps and name != "recaffe")
    assert importers == [], "modules importing the recaffe package itself (import its modules instead)"
    cycle = find_cycle({name: deps for name, deps in edges.items() if name != "recaffe"})
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(("edges", "cyclic"), [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, False),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, True),
    ({"a": {"a"}}, True),
])
def test_find_cycle(edges: dict[str, set[str]], cyclic: bool) -> None:
    assert (find_cycle(edges) is not None) == cyclic


def test_imports_are_resolved_to_modules(tmp_path: pathlib.Path) -> None:
    names = {"recaffe.layers", "recaffe.layers.utility", "recaffe.layers.utility.python", "recaffe.net"}
    source = tmp_path / "python.py"
    source.write_text("from recaffe import net\nfrom . import python\nfrom .. import utility\n"
                      "def f():\n    import caffe._caffe\n")
    assert imported(source, "recaffe.layers.utility.python", names | {"recaffe"}) == {
        "recaffe.net", "recaffe.layers.utility.python", "recaffe.layers.utility", "caffe._caffe"}
