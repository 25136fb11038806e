"""The documentation stays true: generated CLI reference, a page for every command, a strict site build."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import requires

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gen_cli_docs  # noqa: E402


def commands():
    return [(name, text) for name, text in gen_cli_docs.walk(gen_cli_docs.cli, ["camp"], None) if name != "camp"]


def test_cli_reference_is_up_to_date():
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == gen_cli_docs.render(), \
        "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


@pytest.mark.parametrize("name, text", commands())
def test_every_command_has_help_and_a_docs_page(name, text):
    lines = text.splitlines()
    assert len(lines) > 2 and lines[2].strip(), f"{name} has no help text"
    pages = [p for p in (ROOT / "docs").glob("*.md") if p.name != "cli.md"]
    assert any(f"{name} " in p.read_text(encoding="utf-8") or f"{name}\n" in p.read_text(encoding="utf-8")
               for p in pages), f"no page in docs/ describes '{name}'"


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if p.name not in nav]
    assert missing == []


@requires(importlib.util.find_spec("mkdocs") is not None, "mkdocs (pip install .[test])")
def test_site_builds_without_warnings(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "site" / "index.html").is_file()
