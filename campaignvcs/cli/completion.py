"""Shell completion: dataset and remote names for click's completion (``camp completion SHELL``)."""

from __future__ import annotations

import os
from typing import Any

import click
from click.shell_completion import CompletionItem


def _names(ctx: click.Context, which: str) -> list[str]:
    from campaignvcs import porcelain

    root = ctx.find_root()
    repo = root.params.get("repo") or os.environ.get("CAMP_REPO")
    try:
        return list(porcelain.completion_names(which, repo=repo))
    except Exception:  # noqa: BLE001 - completion must never print an error into the user's prompt
        return []


def complete_dataset(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Dataset names of the staged state starting with ``incomplete``."""
    return [CompletionItem(n) for n in _names(ctx, "datasets") if n.startswith(incomplete)]


def complete_remote(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Remote names starting with ``incomplete``."""
    return [CompletionItem(n) for n in _names(ctx, "remotes") if n.startswith(incomplete)]


SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str, prog: str = "camp") -> str:
    """The completion script for ``shell`` (click's, for the ``camp`` command)."""
    from click.shell_completion import get_completion_class

    from campaignvcs.cli import cli

    cls: Any = get_completion_class(shell)
    return str(cls(cli, {}, prog, "_CAMP_COMPLETE").source())


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Commands, options, dataset names and remote names complete. Load it in the shell's
    start-up file: eval "$(camp completion bash)" in ~/.bashrc, eval "$(camp completion
    zsh)" in ~/.zshrc, camp completion fish | source in ~/.config/fish/config.fish.
    """
    click.echo(completion_script(shell))
