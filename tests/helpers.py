"""Helpers shared by the test modules: real parts that may be missing, and checks used everywhere.

Real parts. Some tests need a real component that a developer's machine may lack (sshd,
root to mount a tmpfs, the reference tool hpc-campaign, HDF5's C functions). They say so
through :func:`missing_part`, :func:`require_module` or the :func:`requires` marker: a
skip that names the missing part locally, a failure when ``CAMP_REQUIRE_REAL_PARTS=1``
(``.ci/run`` sets it), so CI never passes with a part silently left out.

Import from test modules: ``from helpers import manifest, assert_one_line_error, ...``.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

REQUIRE_REAL_PARTS = os.environ.get("CAMP_REQUIRE_REAL_PARTS", "") not in ("", "0")
"""Read once at import: the autouse ``clean_env`` fixture removes CAMP_* from each test's environment."""


def missing_part(why: str) -> NoReturn:
    """A real part this test needs is missing: skip saying ``why``, or fail under CAMP_REQUIRE_REAL_PARTS."""
    if REQUIRE_REAL_PARTS:
        pytest.fail(f"missing real part: {why} (CAMP_REQUIRE_REAL_PARTS is set: every part must be here)",
                    pytrace=False)
    pytest.skip(f"missing real part: {why}", allow_module_level=True)


def require_module(name: str, why: str) -> ModuleType:
    """Import ``name`` (a dependency of the ``test`` extra), or :func:`missing_part` saying ``why``."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing_part(f"{why} ({exc})")


def requires(available: bool, why: str) -> pytest.MarkDecorator:
    """Mark a test that needs a real part: when not ``available``, :func:`missing_part` at its set-up."""
    return pytest.mark.requires(available=available, why=why)


# -- checks ---------------------------------------------------------------------------------


def _exit_and_stderr(result) -> tuple[int, str]:
    """Exit status and stderr of a CliRunner ``Result`` or a ``subprocess.CompletedProcess``."""
    if hasattr(result, "exit_code"):
        return result.exit_code, result.stderr
    return result.returncode, result.stderr


def assert_one_line_error(result, *needles: str, status: int | None = None) -> str:
    """camp failed the way a user should see it: ``camp: error: ...`` on one line, naming ``needles``.

    ``result`` is an in-process (CliRunner) or a real-process (subprocess) result; the exit
    status is ``status`` when given, else any failure. Returns the line.
    """
    code, stderr = _exit_and_stderr(result)
    output = getattr(result, "output", "") or getattr(result, "stdout", "") or ""
    assert code != 0 if status is None else code == status, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("camp: error: "), stderr
    assert "internal error" not in stderr and "Traceback" not in stderr + output, stderr + output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def manifest(root, name: str, rev: str | None = None):
    """Dataset ``name`` of the campaign at ``root``, as staged (``rev`` None) or at revision ``rev``."""
    from campaignvcs.repo import CampaignRepo

    with CampaignRepo.open(str(root)) as repo:
        return repo.dataset(name, None if rev is None else repo.resolve(rev))
