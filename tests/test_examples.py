"""The bundled examples run as the README says (the front door must not rot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quickstart_runs_end_to_end_and_reads_back_through_adios2(tmp_path):
    # Run a copy so a developer's examples/work is left alone.
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("work", "__pycache__"))
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    r = subprocess.run(["bash", str(examples / "quickstart.sh")], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "built " in r.stdout and "heat_run.aca" in r.stdout
    assert "double   heat.bp/T" in r.stdout and "steps 3" in r.stdout
    assert "[ 1.  2.  3." in r.stdout
    assert (examples / "work" / "store" / "demo" / "heat_run.aca").is_file()
    # pushed to the local-folder remote (history and archive) and cloned back from it
    shared = examples / "work" / "shared" / "demo"
    pushed = (shared / "heat_run.camp" / "refs" / "heads" / "main").read_text().strip()
    assert (shared / "heat_run.aca").stat().st_size > 0
    cloned = subprocess.run(["git", "rev-parse", "HEAD"], cwd=examples / "work" / "collaborator",
                            capture_output=True, text=True, check=True).stdout.strip()
    assert cloned == pushed and "Branch is up to date with origin/main" in r.stdout
