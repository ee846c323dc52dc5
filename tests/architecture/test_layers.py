"""The package's import graph, read with ``ast`` (every import, also inside functions).

- nothing outside ``deepatoms.cli`` imports the command line;
- sub-packages import only from their own layer or the layers below (docs/architecture.md);
- there is no import cycle between sub-packages, nor between modules.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import deepatoms

ROOT = Path(deepatoms.__file__).resolve().parent

#: Layers, bottom first. A sub-package may import its own layer and the layers below it.
LAYERS: list[set[str]] = [
    {"deepatoms", "moved", "core", "config", "presets", "distribute"},
    {"nn", "grammar"},
    {"data"},
    {"models"},
    {"analysis"},
    {"simulate", "datagen", "screen", "generate", "design", "density"},
    {"train"},
    {"workflows"},
    {"cli"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every import statement in ``path`` (relative ones resolved)."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # ``from deepatoms.x import y`` may import the module deepatoms.x.y
            found += [(f"{target}.{a.name}", node.lineno) for a in node.names]
    return [(t, line) for t, line in found if t == "deepatoms" or t.startswith("deepatoms.")]


def sub_package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "deepatoms"


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
EDGES = {
    mod: [(t, line) for t, line in imports_of(path) if t in MODULES and t != mod]
    for mod, path in MODULES.items()
}


def where(mod: str, line: int) -> str:
    return f"{MODULES[mod].relative_to(ROOT.parent)}:{line}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` (a list of nodes, first == last) or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_every_sub_package_has_a_layer():
    missing = {sub_package(m) for m in MODULES} - set(LAYER_OF)
    assert not missing, f"add {sorted(missing)} to LAYERS (and to docs/architecture.md)"


def test_only_the_command_line_imports_the_command_line():
    bad = [
        f"{where(mod, line)} imports {t}"
        for mod, edges in EDGES.items()
        if sub_package(mod) != "cli"
        for t, line in edges
        if sub_package(t) == "cli"
    ]
    assert not bad, "library code must not import deepatoms.cli:\n" + "\n".join(bad)


def test_imports_point_down_the_layers():
    bad = []
    for mod, edges in EDGES.items():
        src = sub_package(mod)
        for t, line in edges:
            dst = sub_package(t)
            if dst != src and LAYER_OF[dst] > LAYER_OF[src]:
                bad.append(f"{where(mod, line)}: {src} (layer {LAYER_OF[src]}) imports {t} "
                           f"(layer {LAYER_OF[dst]})")  # fmt: skip
    assert not bad, "imports that point up:\n" + "\n".join(bad)


def test_no_import_cycle_between_sub_packages():
    graph: dict[str, set[str]] = defaultdict(set)
    for mod, edges in EDGES.items():
        for t, _ in edges:
            if sub_package(t) != sub_package(mod):
                graph[sub_package(mod)].add(sub_package(t))
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between sub-packages: " + " -> ".join(cycle)


def test_no_import_cycle_between_modules():
    graph = {mod: {t for t, _ in edges} for mod, edges in EDGES.items()}
    for mod in graph:  # a package's __init__ re-exporting its own modules is not a cycle
        if MODULES[mod].name == "__init__.py":
            graph[mod] = {t for t in graph[mod] if not t.startswith(mod + ".")}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between modules: " + " -> ".join(cycle)


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"x": {"y"}, "y": {"y"}}, ["y", "y"]),
    ],
)
def test_cycle_finder_on_hand_made_graphs(graph, cycle):
    assert find_cycle(graph) == cycle


def test_relative_imports_are_resolved(tmp_path, monkeypatch):
    pkg = tmp_path / "deepatoms" / "models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .heads import x\n")
    (pkg / "heads.py").write_text("def f():\n    from ..cli import common\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path / "deepatoms")
    assert ("deepatoms.cli.common", 2) in imports_of(pkg / "heads.py")
    assert ("deepatoms.models.heads", 1) in imports_of(pkg / "__init__.py")
