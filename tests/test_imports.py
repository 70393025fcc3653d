"""No import cycles among mixlab's modules (top-level and function-level imports both count).

Importing a submodule runs its parents' __init__ first, so parents are edges too, except a package's own
submodules importing it. `if TYPE_CHECKING:` blocks are skipped. Cycles are Tarjan's strongly connected
components of that graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mixlab


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    mod = ".".join(base + ([child.module] if child.module else []))
                else:
                    mod = child.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = {module_name(root, path): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        raw = imports(ast.parse(path.read_text(encoding="utf-8")), name, path.name == "__init__.py")
        edges = set()
        for target in raw:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if not target or target == name:
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                t = ".".join(parts[:i])
                if t in modules and t != name and not name.startswith(t + "."):
                    edges.add(t)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative over sorted names)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_mixlab_has_no_import_cycle() -> None:
    root = Path(mixlab.__file__).parent
    graph = import_graph(root)
    assert "mixlab.engine" in graph and "mixlab.cli" in graph
    assert cycles(graph) == []


def test_a_function_level_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    # the shape mixlab.engine had: base imports an implementation lazily, the implementation imports base
    pkg = tmp_path / "pkg"
    (pkg / "eng").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "eng" / "__init__.py").write_text("from pkg.eng.base import Engine\n")
    (pkg / "eng" / "base.py").write_text(
        "class Engine: ...\ndef get():\n    from pkg.eng.local import Local\n"
    )
    (pkg / "eng" / "local.py").write_text("from pkg.eng.base import Engine\nclass Local(Engine): ...\n")
    (pkg / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.eng.local\n"
    )
    assert cycles(import_graph(pkg)) == [["pkg.eng.base", "pkg.eng.local"]]
