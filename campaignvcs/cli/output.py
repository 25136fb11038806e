"""Shared output helpers: ``--json`` for every listing, dates, sizes, plurals, colour."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from campaignvcs.formats import format_ns as format_ns  # re-exported: what every command prints
from campaignvcs.formats import format_size as format_size

F = TypeVar("F", bound=Callable[..., Any])


def json_option(func: F) -> F:
    """The ``--json`` flag every listing has."""
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(func)


def to_jsonable(value: Any) -> Any:
    """Dataclasses (and lists of them) as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON."""
    click.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def format_time(seconds: int, offset: int = 0) -> str:
    """A commit date the way git prints it."""
    tz = datetime.timezone(datetime.timedelta(seconds=offset))
    return datetime.datetime.fromtimestamp(seconds, tz).strftime("%a %b %d %H:%M:%S %Y %z")


def echo_warning(message: str) -> None:
    """One ``camp: warning: ...`` line on stderr (e.g. a failed post-hook; the command still succeeded)."""
    click.echo(f"camp: warning: {message}", err=True)


def echo_warnings(*groups: str | Sequence[str]) -> None:
    """Every warning of a result (porcelain returns them in ``warnings``), one line each."""
    for group in groups:
        for message in [group] if isinstance(group, str) else group:
            echo_warning(message)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 dataset``, ``2 datasets`` (``many``: an irregular plural)."""
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def color_enabled(choice: str, env: Mapping[str, str]) -> bool:
    """Whether to colour: ``--color=always``/``never``, else on a terminal unless ``NO_COLOR`` is set."""
    if choice in ("always", "never"):
        return choice == "always"
    if env.get("NO_COLOR"):
        return False
    try:
        return os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False


class Painter:
    """Colours lines when colour is on; plain text otherwise (a pipe, ``NO_COLOR``, ``--color=never``)."""

    STYLES = {"added": "green", "new": "green", "removed": "red", "deleted": "red", "conflict": "red",
              "renamed": "cyan", "moved": "cyan", "changed": "yellow", "modified": "yellow"}
    """A change word → its colour (git's: green for what comes, red for what goes)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __call__(self, text: str, fg: str | None = None, bold: bool = False) -> str:
        """``text`` in colour ``fg`` (and/or bold) when colour is on."""
        return click.style(text, fg=fg, bold=bold or None) if self.on and (fg or bold) else text

    def change(self, word: str, text: str) -> str:
        """``text`` in the colour of the change ``word`` describes (its first word decides)."""
        for part in word.replace(":", " ").split():
            if part in self.STYLES:
                return self(text, self.STYLES[part])
        return text

    def echo(self, text: str = "") -> None:
        """Print one line, keeping the colour codes when colour is on (even into a pipe: --color=always)."""
        click.echo(text, color=self.on)
