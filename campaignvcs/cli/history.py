"""camp log / show / diff / whereis."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, format_ns, format_size, format_time, json_option

if TYPE_CHECKING:
    from campaignvcs.porcelain.history import Diff, LogEntry


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
@click.option("--replicas", is_flag=True,
              help="Only commits that changed where data lives (replica locations).")
@json_option
@pass_env
def log_cmd(env: Env, name: str | None, rev: str | None, max_count: int | None, replicas: bool,
            as_json: bool) -> None:
    """Show the history, or only the commits that changed dataset NAME."""
    entries = porcelain.log(name=name, rev=rev, max_count=max_count, repo=env.repo, env=env.env,
                            replicas=replicas)
    if as_json:
        echo_json(entries)
        return
    for i, entry in enumerate(entries):
        if i:
            click.echo("")
        _echo_commit(entry)
        if replicas and entry.datasets:
            click.echo("")
            click.echo("    replica locations changed: " + ", ".join(entry.datasets))


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
        for by in shown.recorded_by.get(ds.name, ()):
            click.echo("       recorded by " + ", ".join(f"{k} {v}" for k, v in by.items()))
        for r in ds.replicas:
            where = f"{r.host}:{r.dir}" + ("" if r.archive is None else f" [archive {r.archive or '(dir)'}]")
            extra = f"  {r.resolution[0]}x{r.resolution[1]}" if r.resolution else ""
            gone = "" if r.live else f"  [deleted {format_ns(r.deltime)}]"
            files = ", ".join(f"{f.name} {format_size(f.lenorig)}" for f in r.files)
            click.echo(f"       {where}  {r.path}  {format_size(r.size)}  {format_ns(r.mtime)}{extra}{gone}")
            if files:
                click.echo(f"         embedded: {files}")


@click.command("diff")
@click.argument("rev1", required=False)
@click.argument("rev2", required=False)
@json_option
@pass_env
def diff_cmd(env: Env, rev1: str | None, rev2: str | None, as_json: bool) -> None:
    """Show what changed between two states: datasets, replicas, metadata, hosts, series.

    Without REV: the staged changes against HEAD; with REV1: the staged state against
    REV1; with REV1 REV2: REV1 against REV2.
    """
    result = porcelain.diff(rev1, rev2, repo=env.repo, env=env.env)
    if as_json:
        echo_json(result)
        return
    _echo_diff(result)


def _echo_diff(d: Diff) -> None:
    old = d.old + (f" ({d.old_commit[:10]})" if d.old_commit and d.old_commit[:10] not in d.old else "")
    new = d.new + (f" ({d.new_commit[:10]})" if d.new_commit and d.new_commit[:10] not in d.new else "")
    if d.empty:
        click.echo(f"no differences between {old} and {new}")
        return
    click.echo(f"diff {old} -> {new}")
    for c in d.datasets:
        title = f"renamed {c.old_name} -> {c.name}" if c.change == "renamed" else f"{c.change} {c.name}"
        fields = f" ({', '.join(c.fields)} changed)" if c.fields else ""
        click.echo(f"dataset {title} [{c.kind}]{fields}")
        for rc in c.replicas:
            r = rc.replica
            if rc.change == "moved" and rc.before is not None:
                click.echo(f"  moved    {rc.before.where} -> {r.where} ({rc.before.id} -> {r.id})")
            elif rc.change == "changed":
                click.echo(f"  changed  {r.where} ({r.id}): {', '.join(rc.fields)}")
            else:
                sign = {"added": "+", "revived": "+", "removed": "-"}[rc.change]
                when = f" at {format_ns(r.deltime)}" if rc.change == "removed" and r.deltime else ""
                click.echo(f"  {sign} {rc.change:<8}{r.where} ({r.id}, {format_size(r.size)}){when}")
        for m in c.metadata:
            blobs = f"{','.join(b[:10] for b in m.old) or '-'} -> {','.join(b[:10] for b in m.new) or '-'}"
            click.echo(f"  metadata {m.name} {m.change} ({blobs})")
    for h in d.hosts:
        extra = f" ({', '.join(h.fields)} changed)" if h.fields else ""
        click.echo(f"host {h.change} {h.name}{extra}")
        for a in h.archives_added:
            click.echo(f"  + archive {a.dir}" + (f" [{a.tarname}]" if a.tarname else "") + f" ({a.system})")
        for a in h.archives_removed:
            click.echo(f"  - archive {a.dir}" + (f" [{a.tarname}]" if a.tarname else "") + f" ({a.system})")
    for s in d.timeseries:
        before, after = ", ".join(s.before) or "-", ", ".join(s.after) or "-"
        click.echo(f"time series {s.change} {s.name}: {before} -> {after}")
    for path in d.campaign:
        click.echo(f"changed {path}")


@click.command("whereis")
@click.argument("name")
@click.option("--history", is_flag=True,
              help="Also show where it was: every replica's appearance and removal.")
@click.option("--rev", metavar="REV", help="Where it was at this revision (default: the staged state).")
@json_option
@pass_env
def whereis_cmd(env: Env, name: str, history: bool, rev: str | None, as_json: bool) -> None:
    """Show every live replica of dataset NAME: host, directory, path, archive, size, id."""
    w = porcelain.whereis(name, history=history, rev=rev, repo=env.repo, env=env.env)
    if as_json:
        echo_json(w)
        return
    state = {"live": "", "deleted": f", deleted {format_ns(w.deltime)}",
             "absent": ", no longer in the campaign"}[w.state]
    click.echo(f"{w.name} ({w.kind or '?'}{', uuid ' + w.uuid if w.uuid else ''}{state})")
    if not w.replicas:
        click.echo("  no live replica")
    for r in w.replicas:
        key = f"  key {r.key}" if r.key else ""
        checksum = f"  sha1 {r.checksum[:12]}" if r.checksum else ""
        click.echo(f"  {r.id}  {r.where}  {format_size(r.size)}  {format_ns(r.mtime)}{checksum}{key}")
    if w.history is not None:
        click.echo("History:")
        shown = None
        for e in w.history:
            if (e.commit, e.message) != shown:
                shown = (e.commit, e.message)
                if e.commit:
                    when = format_time(e.time, e.timezone)
                    click.echo(f"  {e.commit[:10]}  {when}  {e.author}  {e.message}")
                    for by in e.recorded_by:
                        click.echo("      recorded by " + ", ".join(f"{k} {v}" for k, v in by.items()))
                else:
                    click.echo("  staged, not committed")
            what = f"replica {e.replica.id} {e.replica.where}" if e.replica is not None else "dataset"
            extra = f" ({', '.join(e.fields)})" if e.fields else ""
            click.echo(f"      {e.event:<9}{what}{extra}")
