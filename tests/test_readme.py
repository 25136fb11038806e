"""Every camp command the README shows is one camp accepts: the verb exists, the options are its own.

Each command is parsed with ``--help`` appended (click checks the command and every option
name, then prints the help instead of running); the README's paths need not exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from campaignvcs.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    found = []
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside and line.strip() == "```sh"
            continue
        candidates = [line] if inside else re.findall(r"`(camp [^`]+)`", line)
        for candidate in candidates:
            candidate = candidate.split(" # ")[0].split("  #")[0]
            for part in re.split(r"&&|\|", candidate):
                part = part.strip()
                if part.startswith("camp "):
                    found.append(part)
    return found


def test_every_readme_command_parses():
    commands = readme_commands()
    assert len(commands) > 20
    bad = []
    for command in commands:
        words = shlex.split(command)[1:]
        r = CliRunner().invoke(cli, [*words, "--help"])
        if r.exit_code != 0 or not ("Usage:" in r.output or r.output.startswith("camp, version")):
            bad.append(f"{command}: {r.stderr.strip() or r.output.strip()}")
    assert bad == []
