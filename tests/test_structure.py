"""The import structure of src/sysemu: no import cycles, and the model never imports host/.

Every import counts, wherever it stands (module level, inside a function, under
TYPE_CHECKING): a function-local import that dodges a cycle is still the cycle
(STYLE.md: "an import loop, or a function-local import used to dodge one, says it is
in the wrong room"). `from pkg import mod` is an edge to the submodule when `mod` is
one, else to the package. Importing a module's parent packages (their __init__) is
Python's doing, not the module's, and draws no edge.
"""
from __future__ import annotations

import ast
from pathlib import Path

import sysemu

SRC = Path(sysemu.__file__).resolve().parent

HOST = "sysemu.host"
# The front ends that start and drive the host side (`sysemu run`, the Sandbox API and
# agent, wherever they live, the observe commands); every other module is below host/
# and must not import it.
FRONT_ENDS = ("sysemu.cli", "sysemu.api", "sysemu.sandbox", "sysemu.observe")


def module_name(path: Path, root: Path) -> str:
    """sysemu.net.core for <root>/net/core.py, sysemu.net for <root>/net/__init__.py."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def read_modules(root: Path) -> dict[str, tuple[ast.Module, bool]]:
    """Every module under `root` (a package directory): name -> (tree, is_package)."""
    return {module_name(path, root): (ast.parse(path.read_text(), str(path)),
                                      path.name == "__init__.py")
            for path in sorted(root.rglob("*.py"))}


def _owner(name: str, known: set[str]) -> str | None:
    """The longest known module that `name` is or lies in (a.b.c -> a.b if only that)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in known:
            return candidate
    return None


def imports_of(module: str, tree: ast.Module, is_package: bool,
               known: set[str]) -> set[str]:
    """The known modules `module` imports anywhere in `tree`."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[:-(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            owner = _owner(target, known)
            if owner is not None and owner != module:
                found.add(owner)
    return found


def import_graph(modules: dict[str, tuple[ast.Module, bool]]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: imports_of(name, tree, is_package, known)
            for name, (tree, is_package) in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found, key=sorted)


def describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = [f"  {a} -> {b}" for a in sorted(component)
             for b in sorted(graph[a] & component)]
    return "cycle of " + ", ".join(sorted(component)) + ":\n" + "\n".join(edges)


# -- the checker on small made-up packages ---------------------------------------------

def fake_modules(tmp_path: Path, files: dict[str, str]) -> dict[str, tuple[ast.Module, bool]]:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return read_modules(root)


def test_checker_finds_a_cycle(tmp_path):
    graph = import_graph(fake_modules(tmp_path, {
        "a.py": "from pkg.b import f\n",
        "b.py": "import pkg.c\n",
        "c.py": "from pkg import a\n",
        "d.py": "import pkg.a\n"}))
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b", "pkg.c"})]


def test_checker_does_not_report_a_chain(tmp_path):
    graph = import_graph(fake_modules(tmp_path, {
        "a.py": "from pkg.b import f\nimport os\n",
        "b.py": "from . import c\n",
        "c.py": "x = 1\n",
        "sub/__init__.py": "from .e import g\n",
        "sub/e.py": "from ..a import h\n"}))
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.sub"] == {"pkg.sub.e"}
    assert graph["pkg.sub.e"] == {"pkg.a"}
    assert cycles(graph) == []


def test_checker_counts_function_local_and_type_checking_imports(tmp_path):
    graph = import_graph(fake_modules(tmp_path, {
        "a.py": "import pkg.b\n",
        "b.py": "def f():\n    from pkg.a import g\n    return g\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import T\n",
        "d.py": "from pkg import c\n"}))
    assert cycles(graph) == [frozenset({"pkg.a", "pkg.b"}), frozenset({"pkg.c", "pkg.d"})]


def test_from_package_import_name_is_an_edge_to_the_package(tmp_path):
    graph = import_graph(fake_modules(tmp_path, {
        "__init__.py": "def attach(): pass\n",
        "a.py": "from pkg import attach\n"}))
    assert graph["pkg.a"] == {"pkg"}


# -- sysemu itself -----------------------------------------------------------------------

def test_no_import_cycles():
    graph = import_graph(read_modules(SRC))
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_only_front_ends_import_host():
    graph = import_graph(read_modules(SRC))
    offenders = sorted(
        f"{name} -> {target}" for name, targets in graph.items()
        if not (name == HOST or name.startswith(HOST + "."))
        and not any(name == f or name.startswith(f + ".") for f in FRONT_ENDS)
        for target in targets if target == HOST or target.startswith(HOST + "."))
    assert not offenders, "modules below host/ import it:\n" + "\n".join(offenders)
