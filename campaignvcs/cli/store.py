"""camp store ls / rm / pull: the built archives in the local campaign store."""

from __future__ import annotations

import sys

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, format_size, json_option, plural
from campaignvcs.cli.sync import transfer_progress
from campaignvcs.errors import BadInput


@click.group("store")
def store_group() -> None:
    """The .aca archives in the campaign store (Campaign.campaignstorepath), where ADIOS2 opens them."""


@store_group.command("ls")
@click.argument("pattern", required=False)
@json_option
@pass_env
def store_ls_cmd(env: Env, pattern: str | None, as_json: bool) -> None:
    """List the archives (or those whose name matches the glob PATTERN) and what built them.

    'behind' marks an archive whose repository has commits it does not include:
    'camp build' there brings it up to date.
    """
    listing = porcelain.store_ls(pattern, env=env.env)
    if as_json:
        echo_json(listing)
        return
    if not listing.entries:
        click.echo(f"no archives in {listing.store}")
        return
    width = max(len(e.name) for e in listing.entries)
    for e in listing.entries:
        if not e.built_by_camp:
            origin = "not built by camp"
        else:
            state = {True: "  (behind: the repository has newer commits)", False: "", None: "  (repository not found)"}
            origin = f"{(e.commit or '')[:10]}  {e.repository}{state[e.stale]}"
        click.echo(f"{e.name:<{width}}  {format_size(e.size):>10}  {origin}")


@store_group.command("rm")
@click.argument("patterns", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@pass_env
def store_rm_cmd(env: Env, patterns: tuple[str, ...], yes: bool) -> None:
    """Delete the archives whose names match the glob PATTERNS (asks first).

    A folder name stands for everything below it and '.' for the whole store; a pattern
    that matches nothing is an error and nothing is deleted. Without a terminal to ask on,
    --yes is required. Repositories are never touched: 'camp build' makes the archive again.
    """
    listing = porcelain.store_match(list(patterns), env=env.env)
    if not yes:
        if not sys.stdin.isatty():
            raise BadInput(f"not deleting {plural(len(listing.entries), 'archive')} without asking: "
                           "no terminal to confirm on (pass --yes)")
        for e in listing.entries:
            click.echo(f"  {e.path}")
        n = len(listing.entries)
        click.confirm("Delete this archive?" if n == 1 else f"Delete these {n} archives?", default=False, abort=True)
    removed = porcelain.store_rm(list(patterns), yes=True, env=env.env,
                                 confirmed=[e.name for e in listing.entries])
    for e in removed.entries:
        click.echo(f"removed {e.path}")


@store_group.command("pull")
@click.argument("remote")
@click.argument("pattern", required=False)
@json_option
@pass_env
def store_pull_cmd(env: Env, remote: str, pattern: str | None, as_json: bool) -> None:
    """Bring the built archives from REMOTE into the store.

    REMOTE is a remote name of the campaign you are in, or any rclone path (a configured
    rclone remote, a connection string, a folder). PATTERN picks archives by name. The
    archive of the campaign you are in is not downloaded: its history is fetched and the
    archive rebuilt here, patching the one in the store (bytes in proportion to the change).
    """
    with transfer_progress(not as_json) as progress:
        result = porcelain.store_pull(remote, pattern, repo=env.repo, env=env.env, progress=progress)
    if as_json:
        echo_json(result)
        return
    for name in result.archives:
        click.echo(f"{name}.aca")
    for name in result.rebuilt:
        click.echo(f"{name}.aca (rebuilt from the fetched history)")
    count = len(result.archives) + len(result.rebuilt)
    click.echo(f"{plural(count, 'archive')}, {format_size(result.bytes_received)} received, into {result.store}")
