"""The grid's imports point down: each module of threephase/grid/ imports (at the top or inside a function) only
grid modules on a lower floor, and no library module imports the command line, which stands on top."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "threephase"
GRID = PACKAGE / "grid"
# Each grid module and its floor (see threephase/grid/__init__.py); a new module must be placed here.
FLOORS = {
    "__init__": 0,
    "cells": 0, "settings": 0,
    "jobs": 1, "tables": 1, "forest": 1,
    "reproduce": 2, "search": 2, "report": 2, "compare_report": 2,
    "experiment": 3, "compare": 3,
}
# The entry points may import the command line; nothing else in the library may.
ENTRY_POINTS = ("threephase/cli.py", "threephase/__main__.py")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, top-level or inside a function, with relative imports resolved;
    ``from X import name`` yields both ``X`` and ``X.name`` (the name may be a module)."""
    name = module_name(path, package).split(".")
    here = name if path.name == "__init__.py" else name[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(node.lineno, module)] + [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def is_cli(module: str) -> bool:
    return module == "threephase.cli" or module.startswith("threephase.cli.")


def grid_module(module: str) -> str | None:
    """``threephase.grid.jobs.run_tasks`` -> ``jobs``; None outside the grid and for the package itself (which
    Python imports before any of its modules anyway)."""
    parts = module.split(".")
    return parts[2] if parts[:2] == ["threephase", "grid"] and len(parts) > 2 else None


def upward_imports(path: Path, package: Path = PACKAGE) -> list[str]:
    """The imports of a grid module that break the floors: a grid module on its own floor or above, or the CLI."""
    own = path.stem
    wrong = set()
    for line, module in imported_modules(path, package):
        target = grid_module(module)
        if is_cli(module):
            wrong.add(f"{path.name}:{line} imports threephase.cli (the command line stands on top)")
        elif target is not None and target != own and target in FLOORS and FLOORS[target] >= FLOORS[own]:
            wrong.add(f"{path.name}:{line} (floor {FLOORS[own]}) imports threephase.grid.{target} "
                      f"(floor {FLOORS[target]})")
    return sorted(wrong)


def cli_imports(package: Path = PACKAGE) -> list[str]:
    """The imports of the command line anywhere in the package but its entry points."""
    return [f"{path.relative_to(package.parent).as_posix()}:{line} imports {module}"
            for path in sorted(package.rglob("*.py"))
            if path.relative_to(package.parent).as_posix() not in ENTRY_POINTS
            for line, module in imported_modules(path, package) if is_cli(module)]


def test_every_grid_module_has_a_floor():
    assert {p.stem for p in GRID.glob("*.py")} == set(FLOORS), \
        "place each module of threephase/grid/ on a floor in FLOORS (and drop the ones that are gone)"



def test_the_package_docstring_lists_the_floors():
    """threephase/grid/__init__.py names each module on its floor ("1. :mod:`~threephase.grid.jobs` ...")."""
    docstring = ast.get_docstring(ast.parse((GRID / "__init__.py").read_text()))
    listed = {}
    for floor, text in re.findall(r"^(\d+)\. (.*?)(?=^\d+\. |\Z)", docstring, flags=re.M | re.S):
        listed.update({name: int(floor) for name in re.findall(r":mod:`~threephase\.grid\.(\w+)`", text)})
    assert listed == {name: floor for name, floor in FLOORS.items() if name != "__init__"}

@pytest.mark.parametrize("name", sorted(FLOORS))
def test_grid_module_imports_only_lower_floors(name):
    assert upward_imports(GRID / f"{name}.py") == []


def test_only_the_entry_points_import_the_command_line():
    assert cli_imports() == []
    assert any(is_cli(m) for _, m in imported_modules(PACKAGE / "__main__.py"))  # the check reads what it should


@pytest.mark.parametrize("source, wrong", [
    ("from .reproduce import failure\n", "jobs.py:1 (floor 1) imports threephase.grid.reproduce (floor 2)"),
    ("def f():\n    from .tables import aggregate\n", "jobs.py:2 (floor 1) imports threephase.grid.tables (floor 1)"),
    ("from . import search\n", "jobs.py:1 (floor 1) imports threephase.grid.search (floor 2)"),
    ("import threephase.grid.experiment\n", "jobs.py:1 (floor 1) imports threephase.grid.experiment (floor 3)"),
    ("from threephase.grid.report import plot\n", "jobs.py:1 (floor 1) imports threephase.grid.report (floor 2)"),
    ("def f():\n    from ..cli import main\n", "jobs.py:2 imports threephase.cli (the command line stands on top)"),
    ("from .. import cli\n", "jobs.py:1 imports threephase.cli (the command line stands on top)"),
])
def test_an_upward_import_is_caught(tmp_path, source, wrong):
    """The checks on a copy of the package in which jobs.py (floor 1) makes one bad import."""
    package = tmp_path / "threephase"
    jobs = package / "grid" / "jobs.py"
    jobs.parent.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "pipeline.py").write_text("from .grid import cells\nfrom . import config\n")
    jobs.write_text("from .cells import run_cell\nfrom ..errors import ThreePhaseError\nfrom . import settings\n")
    assert upward_imports(jobs, package) == [] and cli_imports(package) == []  # down, or outside the grid: fine
    jobs.write_text(source)
    assert wrong in upward_imports(jobs, package)
    assert bool(cli_imports(package)) == ("cli" in source)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the library modules it imports (at the top or inside a function). Packages (``__init__``) are left
    out: Python imports a package before any of its modules, so an edge to one says nothing about the order."""
    paths = {module_name(p, package): p for p in package.rglob("*.py") if p.name != "__init__.py"}
    return {name: {m for _, m in imported_modules(path, package) if m in paths and m != name}
            for name, path in paths.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each as a sorted list: a group is a set of
    modules that import each other, directly or through others."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_library_modules_import_each_other():
    # An import on use inside a function hides a circle from Python but not from a reader: the modules still
    # cannot be understood, tested or moved one without the other.
    assert import_cycles(import_graph()) == []


def test_import_cycles_finds_a_circle_through_a_function_level_import(tmp_path):
    package = tmp_path / "threephase"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def thing():\n    from . import c\n")
    (package / "c.py").write_text("import threephase.a\n")
    (package / "d.py").write_text("from .a import thing\n")
    assert import_cycles(import_graph(package)) == [["threephase.a", "threephase.b", "threephase.c"]]
