"""Print the shape of the code: module sizes, the import graph and its cycles, private imports.

Run by hand (`python scripts/arch_report.py`); tests/test_architecture.py enforces the same rules.
Imports inside functions count: they hide cycles, they do not remove them. Imports under
``if TYPE_CHECKING:`` do not: they are never executed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "campaignvcs"


def module_name(path: Path) -> str:
    """Dotted module name of a source file of the package."""
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, tuple[Path, ast.Module]]:
    """Every module of the package, parsed."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        out[module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return out


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mods: dict[str, tuple[Path, ast.Module]]):
    """Yield (importer, imported module, imported name or None, line, inside a function)."""
    for mod, (path, tree) in mods.items():
        is_pkg = path.name == "__init__.py"
        for node, in_func in _walk(tree, False):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("campaignvcs"):
                        yield mod, alias.name, None, node.lineno, in_func
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(mod, is_pkg, node)
                if not target.startswith("campaignvcs"):
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in mods:
                        yield mod, sub, None, node.lineno, in_func
                    else:
                        yield mod, target, alias.name, node.lineno, in_func


def _walk(node: ast.AST, in_func: bool):
    for child in ast.iter_child_nodes(node):
        if _type_checking_only(child):
            continue  # annotations only, never executed: not an import at run time
        inner = in_func or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield child, in_func
        yield from _walk(child, inner)


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _owner(mods: dict, target: str) -> str:
    while target not in mods and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def graph(mods: dict) -> dict[str, set[str]]:
    """Module -> modules it imports (package __init__ re-exports followed lazily are not edges)."""
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, target, _name, _line, _f in imports(mods):
        owner = _owner(mods, target)
        if owner != mod and owner in mods:
            edges[mod].add(owner)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
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
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def private_imports(mods: dict) -> list[str]:
    """`from other import _name`: a module reaching into another one's private parts."""
    bad = []
    for mod, target, name, line, _f in imports(mods):
        leaf = name if name is not None else target.rsplit(".", 1)[-1]
        owner = _owner(mods, target)
        if leaf.startswith("_") and not leaf.startswith("__") and owner != mod:
            bad.append(f"{mod}:{line} imports {target}{'.' + name if name else ''}")
    return bad


def main() -> None:
    """Print the report."""
    mods = sources()
    sizes = sorted(((len(p.read_text().splitlines()), m) for m, (p, _t) in mods.items()), reverse=True)
    print("largest modules:")
    for n, m in sizes[:15]:
        print(f"  {n:5d}  {m}")
    print(f"modules over 600 lines: {sum(1 for n, _m in sizes if n > 600)}; total lines {sum(n for n, _ in sizes)}")
    inner = sum(1 for *_x, f in imports(mods) if f)
    print(f"campaignvcs imports inside functions: {inner}")
    cyc = cycles(graph(mods))
    print(f"import cycles: {len(cyc)}")
    for c in cyc:
        print("  " + " <-> ".join(c))
    priv = private_imports(mods)
    print(f"private names imported across modules: {len(priv)}")
    for p in priv:
        print("  " + p)


if __name__ == "__main__":
    main()
