"""The commit message editor, as git's: ``$CAMP_EDITOR``, ``$VISUAL``, ``$EDITOR``, else vi.

The editor gets a file with an empty first line and, as ``#`` comments, the staged changes;
comment lines are dropped from what comes back and an empty message aborts the commit.
click starts the editor (through the shell, as git does, so ``EDITOR="code --wait"`` works).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import click

from campaignvcs.errors import CampError


def editor_command(env: Mapping[str, str]) -> str:
    """The editor to run: the first of CAMP_EDITOR, VISUAL, EDITOR that is set, else ``vi``."""
    for var in ("CAMP_EDITOR", "VISUAL", "EDITOR"):
        if env.get(var, "").strip():
            return env[var]
    return "vi"


def template(staged: Sequence[str], campaign: str, branch: str) -> str:
    """The file the editor opens: an empty first line, then what will be committed as comments."""
    lines = ["", "# Please enter the commit message for your changes. Lines starting",
             "# with '#' will be ignored, and an empty message aborts the commit.", "#",
             f"# On campaign {campaign}, branch {branch}", "# Changes to be committed:"]
    lines += [f"#\t{line}" for line in staged] or ["#\t(none: only finishing a merge)"]
    return "\n".join(lines) + "\n"


def _interactive() -> bool:
    try:
        return os.isatty(sys.stdin.fileno()) and os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def strip_comments(text: str) -> str:
    """The message without ``#`` lines and surrounding blank lines (git's ``--cleanup=strip``)."""
    kept = [line.rstrip() for line in text.splitlines() if not line.startswith("#")]
    return "\n".join(kept).strip("\n")


def edit_message(text: str, env: Mapping[str, str]) -> str:
    """Run the editor on ``text``; returns the cleaned message, or CampError when it is empty.

    With no editor chosen and no terminal (a batch job), vi would wait for a person who is
    not there: that is an error asking for -m instead.
    """
    command = editor_command(env)
    if command == "vi" and not _interactive():
        raise CampError("no commit message: pass -m MESSAGE (no terminal for an editor, and none set in "
                        "VISUAL or EDITOR)")
    try:
        edited = click.edit(text, editor=command, extension=".txt", require_save=False)
    except click.ClickException as exc:
        raise CampError(f"cannot run the editor {command!r} ({exc.format_message()}); "
                        "set VISUAL or EDITOR, or pass -m MESSAGE") from None
    message = strip_comments(edited or "")
    if not message.strip():
        raise CampError("aborting commit: empty commit message")
    return message
