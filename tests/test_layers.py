"""Layers import downward only: every import of every module, checked against docs/architecture.md.

The layer table in ``docs/architecture.md`` is the source of truth: its rows, lowest first, name
the modules and packages of each layer.  Every import counts, at module level or inside a function
(an import inside a function is still an arrow), except the thin delegates named in ``DELEGATES``.
Imports under ``if TYPE_CHECKING:`` count as well: a type from a higher layer is a dependency too.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mps_analgesia"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: The only upward imports allowed: (importing module, enclosing function, imported top-level
#: name).  Each is a delegate of a few lines that imports its upper layer on first use; the
#: architecture page lists them with the reason.
DELEGATES = frozenset(
    {
        ("mps_analgesia.report", "Report.to_fhir", "fhir"),
        ("mps_analgesia.report", "Report.to_text", "render"),
        ("mps_analgesia._repr", "Renderable._repr_html_", "render"),
        ("mps_analgesia._repr", "Renderable._repr_markdown_", "render"),
    }
)


def allowed(a: Arrow) -> bool:
    return (a.module, a.function, top(a.target)) in DELEGATES


def read_layers() -> dict[str, int]:
    """Top-level module or package name → layer number, from the architecture page's table."""
    layers: dict[str, int] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].isdigit():
            continue
        for name in re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", cells[2]):
            layers[name] = int(cells[0])
    return layers


@attrs.define(frozen=True)
class Arrow:
    """One import: ``module`` (inside ``function``, or at module level) imports ``target``."""

    module: str
    function: str
    target: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The absolute module names an ``import from`` names (its module and, for ``from . import
    x``, each ``x``)."""
    if node.level == 0:
        base = node.module or ""
    else:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, node.module] if node.module else package)
    if node.module is None:
        return [f"{base}.{alias.name}" for alias in node.names]
    return [base]


def arrows(path: Path) -> Iterator[Arrow]:
    source = path.read_text(encoding="utf-8")
    yield from source_arrows(module_name(path), path.name == "__init__.py", source)


def source_arrows(module: str, is_package: bool, source: str) -> Iterator[Arrow]:
    tree = ast.parse(source)

    def visit(node: ast.AST, scope: list[str]) -> Iterator[Arrow]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from visit(child, [*scope, child.name])
                continue
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                targets = resolve(module, is_package, child)
            for target in targets:
                if target == "mps_analgesia" or target.startswith("mps_analgesia."):
                    yield Arrow(module, ".".join(scope), target, child.lineno)
            yield from visit(child, scope)

    yield from visit(tree, [])


def top(name: str) -> str:
    """``mps_analgesia.rules._engine`` → ``rules``; the package itself → ``""``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


@functools.cache
def all_arrows() -> tuple[Arrow, ...]:
    return tuple(a for path in sorted(PACKAGE.rglob("*.py")) for a in arrows(path))


def layer_of(name: str, layers: dict[str, int]) -> int | None:
    if top(name) == "":
        return max(layers.values()) + 1  # the package's __init__: above every layer
    return layers.get(top(name))


class TestLayerTable:
    def test_the_table_names_every_module(self) -> None:
        """Every top-level module and package of mps_analgesia has a row in the layer table."""
        layers = read_layers()
        names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
        names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
        missing = sorted(names - set(layers))
        assert not missing, f"add {missing} to the layer table in docs/architecture.md"

    def test_the_table_names_only_modules_that_exist(self) -> None:
        """A row naming a module that does not exist is a stale table."""
        layers = read_layers()
        existing = {p.stem for p in PACKAGE.glob("*.py")}
        existing |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
        stale = sorted(set(layers) - existing)
        assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"


class TestImportsPointDown:
    def test_no_module_imports_a_higher_layer(self) -> None:
        """No import, at module level or inside a function, climbs to a higher layer; the named
        delegates are the only exceptions."""
        layers = read_layers()
        climbs = []
        for a in all_arrows():
            here, there = layer_of(a.module, layers), layer_of(a.target, layers)
            if here is None or there is None or there <= here:
                continue
            if allowed(a):
                continue
            where = f"{a.module}:{a.line}" + (f" (in {a.function})" if a.function else "")
            climbs.append(
                f"{where} imports {a.target}: layer {there} ({top(a.target)}) is above "
                f"layer {here} ({top(a.module)})"
            )
        assert not climbs, "upward imports:\n" + "\n".join(climbs)

    def test_every_delegate_is_still_used(self) -> None:
        """A delegate that no longer exists is removed from the list, so the list stays short."""
        used = {(a.module, a.function, top(a.target)) for a in all_arrows()}
        assert used >= DELEGATES, f"unused delegates: {sorted(DELEGATES - used)}"


class TestTheCheckerItself:
    @pytest.mark.parametrize(
        ("source", "module", "expected"),
        [
            ("from ..render import render", "mps_analgesia.rules.x", "mps_analgesia.render"),
            ("from . import _units", "mps_analgesia.report", "mps_analgesia._units"),
            ("from .fhir import report_to_fhir", "mps_analgesia.report", "mps_analgesia.fhir"),
            ("import mps_analgesia.cli", "mps_analgesia.report", "mps_analgesia.cli"),
        ],
    )
    def test_it_resolves_relative_imports(self, source: str, module: str, expected: str) -> None:
        """Relative and absolute imports resolve to the module they name."""
        node = ast.parse(source).body[0]
        if isinstance(node, ast.ImportFrom):
            names = resolve(module, False, node)
        else:
            assert isinstance(node, ast.Import)
            names = [alias.name for alias in node.names]
        assert any(n == expected or n.startswith(expected + ".") for n in names)

    def test_it_sees_an_import_inside_a_function(self) -> None:
        """An import inside a method is an arrow, named by its class and method."""
        source = "class Report:\n    def to_cds(self):\n        from .cds_hooks import cards\n"
        found = list(source_arrows("mps_analgesia.report", False, source))
        assert found == [
            Arrow("mps_analgesia.report", "Report.to_cds", "mps_analgesia.cds_hooks", 3)
        ]

    def test_an_upward_import_is_caught(self) -> None:
        """A rule importing the renderers is a climb from layer 5 to layer 7."""
        layers = read_layers()
        (arrow,) = source_arrows("mps_analgesia.rules.dose", False, "from ..render import render")
        assert layer_of(arrow.target, layers) > layer_of(arrow.module, layers)  # type: ignore[operator]


class TestNoCircles:
    def test_no_import_circle_between_modules(self) -> None:
        """No two top-level modules or packages import each other, directly or through others
        (same-layer arrows included); the named delegates are left out."""
        graph: dict[str, set[str]] = {}
        for a in all_arrows():
            if allowed(a):
                continue
            here, there = top(a.module), top(a.target)
            if here and there and here != there:
                graph.setdefault(here, set()).add(there)
        circles = []
        for start in sorted(graph):
            seen: set[str] = set()
            stack = [(start, [start])]
            while stack:
                node, path = stack.pop()
                for nxt in sorted(graph.get(node, ())):
                    if nxt == start:
                        circles.append(" -> ".join([*path, start]))
                    elif nxt not in seen:
                        seen.add(nxt)
                        stack.append((nxt, [*path, nxt]))
        assert not circles, "import circles:\n" + "\n".join(sorted(set(circles)))
