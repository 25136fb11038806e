"""camp remote / push / fetch / pull / clone / resolve: sharing a campaign through rclone remotes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.completion import complete_dataset, complete_remote
from campaignvcs.cli.output import echo_json, format_size, json_option, plural
from campaignvcs.errors import ExitStatus

if TYPE_CHECKING:
    from campaignvcs.porcelain.remotes import RemoteInfo


@contextmanager
def transfer_progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """A progress callback that draws one line on stderr, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    drawn = [False]

    def show(what: str, done: int, total: int) -> None:
        click.echo(f"\r{what}: {format_size(done)} / {format_size(total)}\033[K", err=True, nl=False)
        drawn[0] = True

    try:
        yield show
    finally:
        if drawn[0]:
            click.echo("", err=True)


def _short(oid: str | None) -> str:
    return oid[:10] if oid else "(none)"


@click.group("remote")
def remote_group() -> None:
    """Manage the remotes a campaign is pushed to and pulled from (any rclone path)."""


@remote_group.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--archive/--no-archive", default=True, show_default=True,
              help="Whether pushes also upload the built archive (--no-archive: history only; readers "
              "with camp pull and rebuild locally, readers with only ADIOS2 need the archive).")
@click.option("--include", multiple=True, metavar="GLOB",
              help="The archive pushed here holds only datasets whose name matches GLOB (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="The archive pushed here leaves out datasets whose name matches GLOB (repeatable).")
@pass_env
def remote_add_cmd(env: Env, name: str, url: str, archive: bool, include: tuple[str, ...],
                   exclude: tuple[str, ...]) -> None:
    """Add remote NAME at URL: 'remote:bucket/path', ':backend,opt=v:path' or a folder.

    A relative folder is stored as an absolute path.
    """
    info = porcelain.remote_add(name, url, repo=env.repo, env=env.env, archive=archive, include=include,
                                exclude=exclude)
    click.echo(f"added remote {info.name}: {info.url}{_remote_options(info)}")


@remote_group.command("list")
@json_option
@pass_env
def remote_list_cmd(env: Env, as_json: bool) -> None:
    """List the remotes (credentials in URLs are shown as ***)."""
    remotes = porcelain.remote_list(repo=env.repo, env=env.env)
    if as_json:
        echo_json(remotes)
        return
    for r in remotes:
        click.echo(f"{r.name}\t{r.url}{_remote_options(r)}")


def _remote_options(r: RemoteInfo) -> str:
    """What a push sends there besides history, when it is not the whole archive."""
    if not r.archive:
        return " (history only, no archive)"
    globs = [*(f"+{g}" for g in r.include), *(f"-{g}" for g in r.exclude)]
    return f" (sub-archive: {' '.join(globs)})" if globs else ""


@remote_group.command("remove")
@click.argument("name", shell_complete=complete_remote)
@pass_env
def remote_remove_cmd(env: Env, name: str) -> None:
    """Forget remote NAME here (nothing on the remote is deleted)."""
    info = porcelain.remote_remove(name, repo=env.repo, env=env.env)
    click.echo(f"removed remote {info.name}")


@click.command("push")
@click.argument("remote", required=False, shell_complete=complete_remote)
@click.option("--build/--no-build", default=True, show_default=True,
              help="Also upload the archive built from the pushed commit (<archive name>.aca).")
@json_option
@pass_env
def push_cmd(env: Env, remote: str | None, build: bool, as_json: bool) -> None:
    """Send the history the remote lacks (default: origin), then the built archive.

    Refused when the remote has commits you do not have: run 'camp pull' first.
    """
    with transfer_progress(not as_json) as progress:
        result = porcelain.push(remote, build=build, repo=env.repo, env=env.env, progress=progress)
    if as_json:
        echo_json(result)
        return
    for w in result.warnings:
        click.echo(f"camp: warning: {w}", err=True)
    if result.up_to_date:
        click.echo(f"{result.remote}: everything up to date ({_short(result.new)})")
        return
    click.echo(f"{result.remote}: {_short(result.old)}..{_short(result.new)}  {result.objects} objects, "
               f"{format_size(result.pack_bytes)} history"
               + (f", {format_size(result.archive_bytes)} archive ({result.archive})" if result.archive_bytes else ""))


@click.command("fetch")
@click.argument("remote", required=False, shell_complete=complete_remote)
@json_option
@pass_env
def fetch_cmd(env: Env, remote: str | None, as_json: bool) -> None:
    """Download what the remote has and this clone lacks; record it as REMOTE/main."""
    with transfer_progress(not as_json) as progress:
        result = porcelain.fetch(remote, repo=env.repo, env=env.env, progress=progress)
    if as_json:
        echo_json(result)
        return
    for w in result.warnings:
        click.echo(f"camp: warning: {w}", err=True)
    if result.new is None:
        click.echo(f"{result.remote}: nothing pushed there yet")
    elif result.old == result.new and not result.packs:
        click.echo(f"{result.remote}: up to date ({_short(result.new)})")
    else:
        click.echo(f"{result.remote}/main: {_short(result.old)}..{_short(result.new)}  {result.objects} objects, "
                   f"{format_size(result.bytes_received)}")


@click.command("pull")
@click.argument("remote", required=False, shell_complete=complete_remote)
@click.option("--build/--no-build", default=True, show_default=True,
              help="Rebuild the archive into the campaign store afterwards (when one is configured).")
@click.option("--abort", is_flag=True, help="Give up a pull that stopped on conflicts.")
@json_option
@pass_env
def pull_cmd(env: Env, remote: str | None, build: bool, abort: bool, as_json: bool) -> None:
    """Fetch from the remote (default: origin) and merge into the current branch.

    Replica sets merge as unions and deletions win over unchanged copies. A dataset
    changed differently on both sides is a conflict: it is named, the rest is staged,
    and 'camp resolve NAME --ours|--theirs' then 'camp commit' finish the merge
    (exit status 4 until then).
    """
    if abort:
        head = porcelain.abort_merge(repo=env.repo, env=env.env)
        click.echo(f"merge aborted; staging area reset to {_short(head)}")
        return
    with transfer_progress(not as_json) as progress:
        result = porcelain.pull(remote, build=build, repo=env.repo, env=env.env, progress=progress)
    if as_json:
        echo_json(result)
    else:
        for w in result.warnings:
            click.echo(f"camp: warning: {w}", err=True)
        if result.action == "up to date":
            click.echo(f"{result.remote}: already up to date")
        elif result.action == "conflicts":
            click.echo(f"{result.remote}: merged {plural(result.changed, 'manifest')} cleanly; "
                       f"{plural(len(result.conflicts), 'conflict')}:")
            for c in result.conflicts:
                click.echo(f"  CONFLICT {c.name}: {'; '.join(c.details)}")
            click.echo("Resolve each with 'camp resolve NAME --ours|--theirs', then 'camp commit -m MESSAGE' "
                       "(or 'camp pull --abort').")
        else:
            click.echo(f"{result.remote}: {result.action} {_short(result.old)}..{_short(result.new)} "
                       f"({plural(result.changed, 'dataset')} changed)")
        if result.archive:
            click.echo(f"archive: {result.archive}")
    if result.conflicts:
        sys.stdout.flush()
        click.get_current_context().exit(int(ExitStatus.CONFLICT))


@click.command("clone")
@click.argument("url")
@click.argument("directory", required=False)
@click.option("--name", "name", metavar="ARCHIVE_NAME", help="Which campaign below URL (when it holds several).")
@click.option("--host", metavar="HOST", help="Default host for camp add in the new clone.")
@click.option("--build/--no-build", default=True, show_default=True,
              help="Build the archive into the campaign store (when one is configured).")
@json_option
@pass_env
def clone_cmd(env: Env, url: str, directory: str | None, name: str | None, host: str | None, build: bool,
              as_json: bool) -> None:
    """Make a new campaign repository DIRECTORY from the campaign at URL.

    URL is the remote root a campaign was pushed to (or its <archive name>.camp folder);
    DIRECTORY defaults to the last part of the archive name. The remote becomes origin.
    """
    with transfer_progress(not as_json) as progress:
        result = porcelain.clone(url, directory, name=name, host=host, build=build, env=env.env, progress=progress)
    if as_json:
        echo_json(result)
        return
    for w in result.warnings:
        click.echo(f"camp: warning: {w}", err=True)
    click.echo(f"Cloned {result.name} into {result.path} ({result.objects} objects, "
               f"{format_size(result.bytes_received)}; HEAD {_short(result.head)})")
    if result.archive:
        click.echo(f"archive: {result.archive}")


@click.command("resolve")
@click.argument("name", shell_complete=complete_dataset)
@click.option("--ours", "side", flag_value="ours", help="Keep this clone's side of the conflict.")
@click.option("--theirs", "side", flag_value="theirs", help="Take the remote's side of the conflict.")
@json_option
@pass_env
def resolve_cmd(env: Env, name: str, side: str | None, as_json: bool) -> None:
    """Resolve a conflict a pull left for dataset NAME (or manifest path) by taking one side.

    What merged cleanly in that dataset (e.g. replicas only one side added) is kept.
    """
    if side is None:
        raise click.UsageError("choose a side: --ours or --theirs")
    result = porcelain.resolve(name, side, repo=env.repo, env=env.env)
    if as_json:
        echo_json(result)
        return
    left = len(result.remaining)
    click.echo(f"resolved {result.name} ({result.side}); "
               + (f"{plural(left, 'conflict')} left" if left
                  else "no conflicts left: 'camp commit' to finish the merge"))
