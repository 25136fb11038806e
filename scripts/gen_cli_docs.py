"""Write docs/cli.md from the click commands (the CLI reference is generated, never hand-kept).

python scripts/gen_cli_docs.py          # rewrite docs/cli.md
python scripts/gen_cli_docs.py --check  # exit 1 if docs/cli.md is out of date (tests run this)
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaignvcs.cli import cli  # noqa: E402

OUT = ROOT / "docs" / "cli.md"


def walk(command: click.Command, path: list[str], parent: click.Context | None):
    """(full name, help text) of a command and of every subcommand below it."""
    ctx = click.Context(command, info_name=path[-1], parent=parent, terminal_width=100, max_content_width=100)
    yield " ".join(path), command.get_help(ctx)
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, [*path, name], ctx)


def render() -> str:
    """docs/cli.md's text: every command's ``--help``, in command order."""
    parts = ["# Command reference", "",
             "Generated from the commands' own help by `scripts/gen_cli_docs.py`; "
             "`tests/test_docs.py` fails when it is out of date.", ""]
    for name, text in walk(cli, ["camp"], None):
        parts += [f"## {name}", "", "```text", text.rstrip(), "```", ""]
    return "\n".join(parts)


def main() -> int:
    """Write or (--check) compare docs/cli.md."""
    text = render()
    if "--check" in sys.argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
