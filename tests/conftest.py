"""Shared fixtures: a scrubbed environment, real example data, and a ``camp`` runner."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

import pytest
from click.testing import CliRunner, Result
from hypothesis import settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every Python process the tests start (module- and session-scoped fixtures' too) moves the
# reference tool's fixed /tmp files aside: see pythonpath/sitecustomize.py.
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [os.path.join(ROOT, "tests", "pythonpath"), os.environ.get("PYTHONPATH")]))
sys.path.insert(0, os.path.join(ROOT, "examples"))

import make_data  # noqa: E402
from helpers import missing_part  # noqa: E402

from campaignvcs.cli import cli  # noqa: E402

# The suite is deterministic (no flakes in CI): hypothesis draws the same examples every run.
# CAMP_HYPOTHESIS=explore draws new ones (and more) when hunting for bugs by hand.
settings.register_profile("camp", derandomize=True, database=None)
settings.register_profile("explore", max_examples=200, database=None)
settings.load_profile(os.environ.get("CAMP_HYPOTHESIS", "camp"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "requires(available, why): needs a real part: a skip here, a failure in CI (helpers.py)")


def pytest_runtest_setup(item):
    for mark in item.iter_markers("requires"):
        if not mark.kwargs["available"]:
            missing_part(mark.kwargs["why"])


@pytest.fixture(autouse=True)
def clean_env(tmp_path_factory, monkeypatch):
    """Keep tests away from the developer's config (HOME, git identity, CAMP_*)."""
    home = tmp_path_factory.mktemp("home")
    for var in list(os.environ):
        if var.startswith(("GIT_", "CAMP_")) or var in ("XDG_CONFIG_HOME", "RCLONE_CONFIG"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("CAMP_AUTHOR_NAME", "Test Scientist")
    monkeypatch.setenv("CAMP_AUTHOR_EMAIL", "scientist@example.org")
    return home


@dataclass
class Camp:
    """Runs ``camp`` in-process with CliRunner from a chosen directory.

    ``ok=True``: the command must succeed; ``ok=False``: it must fail (exit != 0);
    ``ok=None``: either, the caller checks the outcome.
    """

    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *args: str, cwd: str | os.PathLike | None = None, ok: bool | None = True,
                 input: str | None = None) -> Result:
        if cwd is not None:
            self.monkeypatch.chdir(cwd)
        result = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
        assert "Traceback" not in result.output + result.stderr
        command = " ".join(map(str, args))
        if ok:
            assert result.exit_code == 0, f"camp {command} failed: {result.stderr}{result.output}"
        elif ok is not None:
            assert result.exit_code != 0, f"camp {command} was meant to fail but succeeded: {result.output}"
        return result


@pytest.fixture
def camp(monkeypatch) -> Camp:
    return Camp(monkeypatch)


@pytest.fixture
def campaign(tmp_path, camp):
    """An initialised campaign at tmp_path/campaign with default host ``laptop``."""
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/run_001", "--host", "laptop")
    return root


@pytest.fixture(scope="session")
def example_data(tmp_path_factory):
    """One set of real data files shared read-only by tests (copy before modifying)."""
    out = tmp_path_factory.mktemp("example")
    make_data.make_example(str(out))
    return out / "run1"


@pytest.fixture
def data(tmp_path, example_data):
    """A private copy of the example data (tests may modify it); modules may define their own."""
    dst = tmp_path / "data"
    shutil.copytree(example_data, dst)
    return dst
