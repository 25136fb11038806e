"""examples/tutorial.sh — the script behind docs/tutorial.md — runs as the page shows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_tutorial_runs_from_init_to_a_collaborator_reading_through_adios2_and_pulling(tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("work*", "__pycache__"))
    work = tmp_path / "work"
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               TUTORIAL_WORK=str(work))
    env = {k: v for k, v in env.items() if not k.startswith(("CAMP_REPO", "GIT_"))}
    r = subprocess.run(["bash", str(examples / "tutorial.sh")], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    # Bo's ADIOS2 read of Ana's data, through the archive he built from his clone
    assert "double   heat.bp/T                        shape [10] steps 3" in out
    assert "[ 1.  2.  3.  4.  5.  6.  7.  8.  9. 10.  2.  4.  6." in out
    assert "Branch is behind 1 of origin/main ('camp pull' to merge)" in out
    assert "dataset added run2/heat.bp [ADIOS]" in out

    def head(repo):
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert head(work / "bo" / "heat") == head(work / "ana" / "heat")
    assert (work / "bo" / "store" / "proj" / "heat.aca").is_file()
    assert (work / "share" / "proj" / "heat.aca").is_file()
