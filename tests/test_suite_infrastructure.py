"""The test suite's own machinery: skips that CI turns into failures, a camp runner that can
fail, and the reference tool kept out of the shared /tmp."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import helpers
import make_data
import pytest

TESTS = Path(__file__).resolve().parent


def test_a_missing_part_is_a_skip_here_and_a_failure_when_every_part_is_required(monkeypatch):
    monkeypatch.setattr(helpers, "REQUIRE_REAL_PARTS", False)
    with pytest.raises(pytest.skip.Exception, match="missing real part: sshd"):
        helpers.missing_part("sshd")
    monkeypatch.setattr(helpers, "REQUIRE_REAL_PARTS", True)
    with pytest.raises(pytest.fail.Exception, match="missing real part: sshd .*CAMP_REQUIRE_REAL_PARTS"):
        helpers.missing_part("sshd")
    with pytest.raises(pytest.fail.Exception, match="no_such_module"):
        helpers.require_module("no_such_module_here", "a module")


def test_every_skip_goes_through_the_real_parts_helper():
    """A bare skip would pass CI without its part; helpers.missing_part fails there instead."""
    bare = re.compile(r"pytest\.skip\(|importorskip\(|mark\.skipif\(|mark\.skip\(")
    found = [f"{path.name}:{n}" for path in sorted(TESTS.glob("*.py"))
             if path.name not in ("helpers.py", os.path.basename(__file__))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if bare.search(line)]
    assert found == []


def test_the_camp_runner_fails_a_command_that_was_meant_to_fail_but_succeeded(campaign, camp):
    with pytest.raises(AssertionError, match="meant to fail"):
        camp("--repo", campaign, "status", ok=False)
    with pytest.raises(AssertionError, match="failed"):
        camp("--repo", campaign, "show", "nosuchrev")
    assert camp("--repo", campaign, "show", "nosuchrev", ok=None).exit_code == 1


def test_the_reference_tool_writes_its_fixed_tmp_files_elsewhere(tmp_path, clean_env):
    """hpc-campaign writes /tmp/md_<file> and /tmp/<w>x<h>.png; the suite's PYTHONPATH moves them aside."""
    helpers.require_module("hpc_campaign", "the reference tool hpc-campaign (pip install .[test])")
    name = f"shim-{secrets.token_hex(4)}"
    make_data.make_hdf5(str(tmp_path / f"{name}.h5"), seed=3)
    make_data.make_png(str(tmp_path / f"{name}.png"), size=(200, 150))
    config = clean_env / ".config" / "hpc-campaign"
    config.mkdir(parents=True)
    (config / "config.yaml").write_text(f"Campaign:\n  hostname: laptop\n  campaignstorepath: {tmp_path}\n")
    log = tmp_path / "moved.log"
    r = subprocess.run([sys.executable, "-m", "hpc_campaign", "manager", str(tmp_path / "x.aca"),
                        "data", f"{name}.h5", "image", f"{name}.png", "--thumbnail", "17", "17"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "REFERENCE_TMP_LOG": str(log)})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-2000:] + r.stderr
    assert set(log.read_text().splitlines()) == {f"/tmp/md_{name}.h5", "/tmp/17x13.png"}
    assert not os.path.exists(f"/tmp/md_{name}.h5")
