"""Source rules from design.md, checked on the code itself (like dulwich's test_source)."""

from __future__ import annotations

import ast
import os
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "campaignvcs"

SUBPROCESS_ALLOWED = {"remote/rclone.py", "hooks.py", "adios2env.py", "cli/pager.py"}
"""Only these modules start programs (always from argument lists). cli/pager.py starts the pager
(``sh -c "$PAGER"`` as git does: the user's command line, never data); the commit editor goes
through click.edit; adios2env.py runs ADIOS2 in a child Python (build --check, info, search)."""
FORK_ALLOWED = {"extract/parallel.py"}
"""Only this module forks (worker processes reading many paths for camp add and status)."""

CLI_MAY_IMPORT = ("campaignvcs.porcelain", "campaignvcs.errors", "campaignvcs.cli", "campaignvcs.extract",
                  "campaignvcs.formats", "campaignvcs")
"""The cli layer talks to porcelain (plus error types, the kind names for --kind, and how sizes and
times read, shared with the web catalog)."""


def modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported_names(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def layer(rel: str) -> str:
    if rel == "__main__.py":
        return "cli"
    return rel.split("/")[0] if rel.startswith(("cli/", "porcelain/")) else "core"


def test_imports_point_down_only():
    bad = []
    for rel, tree in modules():
        lay = layer(rel)
        for line, name in imported_names(tree):
            if lay == "core" and (name.startswith(("campaignvcs.cli", "campaignvcs.porcelain")) or name == "click"
                                  or name.startswith("click.")):
                bad.append(f"{rel}:{line} core module imports {name}")
            if lay == "porcelain" and name.startswith("campaignvcs.cli"):
                bad.append(f"{rel}:{line} porcelain imports {name}")
            if lay == "cli" and name.startswith("campaignvcs") and not name.startswith(CLI_MAY_IMPORT[:-1]) \
                    and name != "campaignvcs":
                bad.append(f"{rel}:{line} cli imports {name} (go through porcelain)")
    assert bad == []


def test_environment_read_only_in_cli_and_porcelain():
    bad = []
    for rel, tree in modules():
        if layer(rel) != "core":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                bad.append(f"{rel}:{node.lineno} reads os.{node.attr}")
    assert bad == []


def test_subprocesses_only_in_named_places_and_never_through_a_shell():
    bad = []
    for rel, tree in modules():
        for line, name in imported_names(tree):
            if name.split(".")[0] == "subprocess" and rel not in SUBPROCESS_ALLOWED:
                bad.append(f"{rel}:{line} imports subprocess")
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                    bad.append(f"{rel}:{node.value.lineno} passes shell=")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("system", "popen") and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id == "os":
                bad.append(f"{rel}:{node.lineno} calls os.{node.func.attr}")
    assert bad == []


def test_only_the_parallel_reader_forks():
    bad = [f"{rel}:{node.lineno} calls os.{node.func.attr}" for rel, tree in modules() for node in ast.walk(tree)
           if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and
           node.func.attr in ("fork", "forkpty") and isinstance(node.func.value, ast.Name) and
           node.func.value.id == "os" and rel not in FORK_ALLOWED]
    assert bad == []


def test_sql_is_never_built_from_strings():
    bad = []
    for rel, tree in modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("execute", "executemany", "executescript") and node.args:
                sql = node.args[0]
                if isinstance(sql, ast.JoinedStr | ast.BinOp) or (
                        isinstance(sql, ast.Call) and isinstance(sql.func, ast.Attribute) and
                        sql.func.attr == "format"):
                    bad.append(f"{rel}:{node.lineno} builds SQL from strings")
    assert bad == []


def test_every_module_and_public_function_has_a_docstring():
    missing = []
    for rel, tree in modules():
        if ast.get_docstring(tree) is None:
            missing.append(rel)
        for node in _public_definitions(tree.body):
            if ast.get_docstring(node) is None and not _is_click_override(node):
                missing.append(f"{rel}:{node.lineno} {node.name}")
    assert missing == []


def _public_definitions(body):
    """Module-level and class-level functions and classes (nested helpers are exempt)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            yield node
            if isinstance(node, ast.ClassDef):
                yield from _public_definitions(node.body)


def _is_click_override(node) -> bool:
    return node.name in ("list_commands", "get_command", "invoke", "format_commands", "resolve_command")


def test_package_import_is_cheap():
    tree = ast.parse((PKG / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert os.path.getsize(PKG / "__init__.py") < 400


# -- the shape of the code (issue 15): scripts/arch_report.py prints the same facts --------------

def _arch_report():
    import importlib.util

    spec = importlib.util.spec_from_file_location("arch_report", PKG.parent / "scripts" / "arch_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAX_MODULE_LINES = 600
"""A module longer than this holds more than one responsibility; split it."""


def test_no_import_cycles_counting_imports_inside_functions():
    report = _arch_report()
    assert report.cycles(report.graph(report.sources())) == []


def test_no_module_imports_another_modules_private_names():
    report = _arch_report()
    assert report.private_imports(report.sources()) == []


def test_no_module_is_over_the_size_limit():
    big = [f"{rel} has {len(text.splitlines())} lines" for rel, text in
           ((p.relative_to(PKG).as_posix(), p.read_text(encoding="utf-8")) for p in sorted(PKG.rglob("*.py")))
           if len(text.splitlines()) > MAX_MODULE_LINES]
    assert big == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path):
    """The check itself can fail: two modules importing each other, one of them inside a function."""
    report = _arch_report()
    pkg = tmp_path / "campaignvcs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from campaignvcs import b\n")
    (pkg / "b.py").write_text("def f():\n    from campaignvcs.a import _hidden\n")
    report.PKG = pkg
    mods = report.sources()
    assert report.cycles(report.graph(mods)) == [["campaignvcs.a", "campaignvcs.b"]]
    assert report.private_imports(mods) == ["campaignvcs.b:2 imports campaignvcs.a._hidden"]
