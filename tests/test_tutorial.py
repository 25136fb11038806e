"""docs/tutorial.md runs by hand exactly as printed.

The commands are the ``$ `` lines of the page's console blocks, run in order by one bash (as a
reader pastes them into one shell) from a copy of the checkout's ``examples`` folder's parent;
each command's output is compared with the lines the page prints under it. Only what differs
from one run to the next is masked: the scratch folder ``mktemp -d`` made, object ids and
uuids, dates, and sizes in KiB.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "tutorial.md"
MARK = "@@camp-tutorial-command@@"


def page_commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, printed output lines) for every ``$ `` line of the page's console blocks."""
    steps: list[tuple[str, list[str]]] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside:
            continue
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def normalise(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        line = re.sub(r"/[^\s:]*?/tmp\.[A-Za-z0-9]+", "$T", line)
        line = re.sub(r"\b[0-9a-f]{8,}\b", "<id>", line)
        line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<date>", line)
        line = re.sub(r"\d+\.\d KiB", "<size>", line)
        out.append(line.rstrip())
    return out


def run_page(tmp_path: Path) -> tuple[list[tuple[str, list[str]]], list[list[str]], subprocess.CompletedProcess]:
    steps = page_commands(PAGE.read_text(encoding="utf-8"))
    checkout = tmp_path / "campaignvcs"
    shutil.copytree(ROOT / "examples", checkout / "examples", ignore=shutil.ignore_patterns("work*", "__pycache__"))
    script = ["set -e"]
    for command, _ in steps:
        script += [f"echo {MARK}", command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + env["PATH"], TMPDIR=str(tmp_path),
               HOME=str(tmp_path / "reader"), GIT_CONFIG_NOSYSTEM="1")
    r = subprocess.run(["bash", "-c", "\n".join(script)], cwd=checkout, capture_output=True, text=True, env=env,
                       timeout=600)
    outputs = [chunk.splitlines()[1:] for chunk in ("\n" + r.stdout).split("\n" + MARK)[1:]]
    return steps, outputs, r


def test_the_tutorial_page_runs_as_printed(tmp_path):
    steps, outputs, r = run_page(tmp_path)
    assert len(steps) > 20
    assert r.returncode == 0 and len(outputs) == len(steps), \
        f"step {len(outputs)} failed: $ {steps[len(outputs) - 1][0]}\n{r.stdout[-2000:]}{r.stderr[-2000:]}"
    for (command, printed), actual in zip(steps, outputs):
        assert normalise(actual) == normalise(printed), f"$ {command}"
    # Bo's ADIOS2 read of Ana's data, through the archive he built from his clone
    assert any("[ 1.  2.  3.  4.  5.  6.  7.  8.  9. 10.  2.  4.  6." in line for out in outputs for line in out)


def test_the_extraction_sees_every_console_block():
    text = PAGE.read_text(encoding="utf-8")
    assert len(page_commands(text)) == text.count("\n$ ")


if __name__ == "__main__":  # print the page's commands with their actual output (to update the page)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        steps, outputs, r = run_page(Path(tmp))
        for (command, _), actual in zip(steps, outputs):
            print("$ " + command)
            print("\n".join(actual))
        print(r.stderr, file=sys.stderr)
