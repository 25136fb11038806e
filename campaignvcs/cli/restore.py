"""camp restore --staged: unstage datasets (git restore --staged)."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.completion import complete_dataset
from campaignvcs.cli.output import echo_json, json_option
from campaignvcs.errors import UsageError


@click.command("restore")
@click.argument("names", nargs=-1, required=True, metavar="NAME...", shell_complete=complete_dataset)
@click.option("--staged", is_flag=True, help="Take the datasets out of the staging area (required: camp never "
              "touches the data itself).")
@json_option
@pass_env
def restore_cmd(env: Env, names: tuple[str, ...], staged: bool, as_json: bool) -> None:
    """Unstage datasets: NAME goes back to its committed version, or out of the staging area.

    Like git restore --staged: a dataset HEAD has keeps HEAD's version (the staged
    change is dropped); one that was added but never committed is no longer staged.
    The data on disk is never touched.
    """
    if not staged:
        raise UsageError("camp restore only unstages: pass --staged (the data itself is never changed)")
    result = porcelain.restore_staged(list(names), repo=env.repo, env=env.env)
    if as_json:
        echo_json(result)
        return
    for name in result.restored:
        click.echo(f"restored: {name} (as committed)")
    for name in result.unstaged:
        click.echo(f"unstaged: {name}")
    for name in result.unchanged:
        click.echo(f"unchanged: {name} (nothing staged)")
