"""`pip install .` from the checkout: no setuptools warnings, and a working ``camp`` (README: PATH)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pip_install_from_the_checkout_is_quiet_and_gives_a_working_camp(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "dist", "work*",
                                                             "__pycache__", ".site", ".hypothesis"))
    target = tmp_path / "target"
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--target", str(target),
                        str(src)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    build_output = "\n".join(line for line in (r.stdout + r.stderr).splitlines()
                             if "is ignored: it is neither a file nor a directory" not in line)  # local index noise
    assert "Warning" not in build_output and "deprecated" not in build_output, build_output
    camp = target / "bin" / "camp"
    assert camp.is_file()
    run = subprocess.run([sys.executable, str(camp), "--version"], capture_output=True, text=True,
                         env=dict(env, PYTHONPATH=str(target)), cwd=tmp_path)
    assert run.returncode == 0 and run.stdout.startswith("camp, version"), run.stderr
    ready = target / "share" / "campaignvcs" / "hooks" / "build-on-commit"
    assert ready.is_file()  # the ready hooks travel with the wheel (camp hooks install NAME)
