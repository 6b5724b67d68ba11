"""The import order of yoso_core: CLI -> training/predict -> model -> attention -> kernels, no circles.

Read from the sources (every import statement, including those inside functions), so the test is
fast and sees imports that only run on some code paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in ("yoso_core", "yoso_cli"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, *, top_level_only: bool) -> set[str]:
    """The yoso modules ``name`` imports (an enclosing package, initialised first anyway, excluded)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names} & MODULES.keys()
            found |= submodules or {module}
            if submodules and len(submodules) < len(node.names):
                found.add(module)
    return {m for m in found if m in MODULES and m != name and not name.startswith(m + ".")}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a path, or None."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_at_module_level_in_yoso_core():
    graph = {m: _imports(m, top_level_only=True) for m in MODULES if m.startswith("yoso_core")}
    assert _cycle(graph) is None


def test_no_import_circle_in_yoso_core_counting_imports_inside_functions():
    """A lazy import hides a circle from Python, not from the next reader."""
    graph = {m: _imports(m, top_level_only=False) for m in MODULES if m.startswith("yoso_core")}
    assert _cycle(graph) is None


def test_the_kernel_cache_imports_nothing_of_yoso_but_the_variant_choice():
    assert _imports("yoso_core.kernels.cache", top_level_only=False) == {"yoso_core.kernels.isa"}
    assert _imports("yoso_core.kernels.isa", top_level_only=False) == set()


def test_kernels_import_only_kernels_and_attention_nothing_above_it():
    for name in (m for m in MODULES if m.startswith("yoso_core.kernels")):
        outside = {m for m in _imports(name, top_level_only=False) if not m.startswith("yoso_core.kernels")}
        assert outside == set(), f"{name} imports {sorted(outside)}"
    above = ("yoso_core.modeling", "yoso_core.training", "yoso_core.predict", "yoso_cli")
    for name in (m for m in MODULES if m.startswith("yoso_core.attention")):
        wrong = {m for m in _imports(name, top_level_only=False) if m.startswith(above)}
        assert wrong == set(), f"{name} imports {sorted(wrong)}"


def test_the_import_reader_sees_an_edge_and_a_circle():
    assert "yoso_core.kernels.cache" in _imports("yoso_core.attention.ops", top_level_only=True)
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
