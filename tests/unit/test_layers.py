"""Imports go the way ARCHITECTURE.md says, read from the source (nothing is imported to check it).

Labs speak Kubernetes: the bookstore, the checkers and labkit never import localcluster, so the same
notebook and checker run on a real cluster. localcluster imports none of them, but for one place:
`localcluster.cli`, the `lab` command, attaches the course frame's commands (labkit.cli). And no
module comes back to itself through the modules its imports name.

Inside localcluster the parts (api, store, controllers, kubelet, network, knative, and the modules
beside them) depend one way too, so each can be read knowing only those below it: what two of them
share lives below both (`localcluster.images` for the kubelet and the Knative revision controller).

Every import counts: at the top, inside a function, under `if TYPE_CHECKING:`, in a `__main__` block.
A package counts where an import names it (`from labkit import connect`), not where Python only runs
its `__init__` on the way to a module below it: labkit's imports nothing when it runs (PEP 562).
"""

from __future__ import annotations

import ast
import graphlib
from collections.abc import Collection
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bookstore", "checkers", "labkit", "localcluster")

#: What each package must never import (its subpackages included).
FORBIDDEN = {
    "bookstore": ("checkers", "labkit", "localcluster"),
    "checkers": ("localcluster",),
    "labkit": ("localcluster",),
    "localcluster": ("bookstore", "checkers", "labkit"),
}
#: The composition point: the `lab` command attaches the course frame's commands.
ALLOWED = {("localcluster.cli", "labkit.cli")}

Graph = dict[str, set[str]]


def modules_under(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Every module of `packages` below `root`, by dotted name (a package by its `__init__.py`)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(module: str, path: Path, modules: Collection[str]) -> set[str]:
    """The modules the file's import statements name: `from a import b` names `a.b` if it is one, else `a`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    named: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            named += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            named += [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return {found for name in named if (found := _known_prefix(name, modules)) and found != module}


def _known_prefix(name: str, modules: Collection[str]) -> str | None:
    """The longest leading part of `name` that is one of `modules` (None for other projects' imports)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def named_imports(modules: dict[str, Path]) -> Graph:
    """The modules each module's imports name."""
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def first_cycle(graph: Graph) -> list[str] | None:
    """One import cycle, as the modules along it, each importing the next (first and last the same), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle: list[str] = error.args[1]
        return cycle[::-1]  # graphlib lists a cycle against the edges' direction
    return None


@cache
def project_imports() -> Graph:
    return named_imports(modules_under(ROOT, PACKAGES))


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_what_its_layer_must_not(package: str) -> None:
    named = project_imports()
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in named.items()
        if in_package(module, package)
        for target in targets
        if any(in_package(target, forbidden) for forbidden in FORBIDDEN[package]) and (module, target) not in ALLOWED
    )
    assert not wrong, f"{package} must not import {', '.join(FORBIDDEN[package])}:\n" + "\n".join(wrong)


def test_the_lab_command_is_where_localcluster_meets_the_course_frame() -> None:
    named = project_imports()
    assert all(target in named[module] for module, target in ALLOWED)


def test_no_module_imports_itself_back() -> None:
    cycle = first_cycle(project_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def parts_graph(graph: Graph, package: str) -> Graph:
    """The imports between the parts of `package` (its subpackages and modules, each taken whole)."""

    def part(module: str) -> str:
        return ".".join(module.split(".")[: package.count(".") + 2])

    parts: Graph = {}
    for module, targets in graph.items():
        if in_package(module, package) and module != package:
            parts.setdefault(part(module), set()).update(
                part(target) for target in targets if in_package(target, package) and target != package
            )
    return {name: targets - {name} for name, targets in parts.items()}


def test_the_parts_of_localcluster_depend_one_way() -> None:
    cycle = first_cycle(parts_graph(project_imports(), "localcluster"))
    assert cycle is None, "localcluster's parts import each other: " + " -> ".join(cycle)


def test_the_reading_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A cycle closed lazily, under TYPE_CHECKING or by a relative import is one all the same."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "top.py").write_text("from pkg.sub import lazy\n")
    (package / "sub" / "lazy.py").write_text("def later():\n    from .typed import T\n")
    (package / "sub" / "typed.py").write_text("if TYPE_CHECKING:\n    from ..top import X\n")
    modules = modules_under(tmp_path, ("pkg",))
    graph = named_imports(modules)
    assert graph["pkg.top"] == {"pkg.sub.lazy"}
    cycle = first_cycle(graph)
    assert cycle is not None and set(cycle) == {"pkg.top", "pkg.sub.lazy", "pkg.sub.typed"}
    assert all(after in graph[before] for before, after in pairwise(cycle)), cycle
    assert parts_graph(graph, "pkg") == {"pkg.top": {"pkg.sub"}, "pkg.sub": {"pkg.top"}}
    (package / "sub" / "typed.py").write_text("T = int\n")
    assert first_cycle(named_imports(modules)) is None
    assert first_cycle(parts_graph(named_imports(modules), "pkg")) is None
