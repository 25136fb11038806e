"""camp log / show."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, format_ns, format_size, format_time, json_option

if TYPE_CHECKING:
    from campaignvcs.porcelain.history import LogEntry


def _echo_commit(entry: LogEntry) -> None:
    click.echo(f"commit {entry.id}")
    if len(entry.parents) > 1:
        click.echo("Merge: " + " ".join(p[:10] for p in entry.parents))
    click.echo(f"Author: {entry.author}")
    click.echo(f"Date:   {format_time(entry.time, entry.timezone)}")
    click.echo("")
    for line in entry.message.rstrip("\n").splitlines():
        click.echo(f"    {line}")


@click.command("log")
@click.argument("name", required=False)
@click.option("--rev", metavar="REV", help="Start from this revision (default HEAD).")
@click.option("-n", "--max-count", type=click.IntRange(min=1), help="Show at most N commits.")
@json_option
@pass_env
def log_cmd(env: Env, name: str | None, rev: str | None, max_count: int | None, as_json: bool) -> None:
    """Show the history, or only the commits that changed dataset NAME."""
    entries = porcelain.log(name=name, rev=rev, max_count=max_count, repo=env.repo, env=env.env)
    if as_json:
        echo_json(entries)
        return
    for i, entry in enumerate(entries):
        if i:
            click.echo("")
        _echo_commit(entry)


@click.command("show")
@click.argument("rev", required=False)
@click.option("--dataset", "names", multiple=True, metavar="NAME", help="Only this dataset (repeatable).")
@json_option
@pass_env
def show_cmd(env: Env, rev: str | None, names: tuple[str, ...], as_json: bool) -> None:
    """Show a commit (default HEAD) with its datasets and their replicas."""
    shown = porcelain.show(rev, names=list(names), repo=env.repo, env=env.env)
    if as_json:
        echo_json(shown)
        return
    _echo_commit(shown.commit)
    click.echo("")
    n = len(shown.datasets)
    click.echo(f"campaign {shown.campaign}: {n} dataset{'s' if n != 1 else ''}")
    for ds in shown.datasets:
        state = "" if ds.live else f"  [deleted {format_ns(ds.deltime)}]"
        click.echo(f"{ds.kind:<6} {ds.name}  uuid {ds.uuid}{state}")
        for r in ds.replicas:
            where = f"{r.host}:{r.dir}" + ("" if r.archive is None else f" [archive {r.archive or '(dir)'}]")
            extra = f"  {r.resolution[0]}x{r.resolution[1]}" if r.resolution else ""
            gone = "" if r.live else f"  [deleted {format_ns(r.deltime)}]"
            files = ", ".join(f"{f.name} {format_size(f.lenorig)}" for f in r.files)
            click.echo(f"       {where}  {r.path}  {format_size(r.size)}  {format_ns(r.mtime)}{extra}{gone}")
            if files:
                click.echo(f"         embedded: {files}")
