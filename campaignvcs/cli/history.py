"""camp log / show / diff / whereis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.completion import complete_dataset
from campaignvcs.cli.output import (
    Painter,
    color_enabled,
    echo_json,
    format_ns,
    format_size,
    format_time,
    json_option,
    plural,
)
from campaignvcs.cli.pager import paged

if TYPE_CHECKING:
    from campaignvcs.porcelain.history import Dataset, Diff, LogEntry, hm


def _echo_commit(entry: LogEntry, paint: Painter) -> None:
    paint.echo(paint(f"commit {entry.id}", "yellow"))
    if len(entry.parents) > 1:
        paint.echo("Merge: " + " ".join(p[:10] for p in entry.parents))
    paint.echo(f"Author: {entry.author}")
    paint.echo(f"Date:   {format_time(entry.time, entry.timezone)}")
    paint.echo("")
    for line in entry.message.rstrip("\n").splitlines():
        paint.echo(f"    {line}")


def _painter(env: Env) -> Painter:
    return Painter(color_enabled(env.color, env.env))


@click.command("log")
@click.argument("name", required=False, shell_complete=complete_dataset)
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
    paint = _painter(env)
    with paged(env.pager, env.env):
        for i, entry in enumerate(entries):
            if i:
                paint.echo("")
            _echo_commit(entry, paint)
            if replicas and entry.datasets:
                paint.echo("")
                paint.echo("    replica locations changed: " + ", ".join(entry.datasets))


SUMMARY_ABOVE = 50
"""camp show lists every dataset up to this many; above, a summary and the first SUMMARY_FIRST."""
SUMMARY_FIRST = 20


@click.command("show")
@click.argument("rev", required=False)
@click.option("--dataset", "names", multiple=True, metavar="NAME", shell_complete=complete_dataset,
              help="Only this dataset (repeatable).")
@click.option("--all", "show_all", is_flag=True,
              help=f"List every dataset (default above {SUMMARY_ABOVE}: counts by kind and host, then the first "
                   f"{SUMMARY_FIRST}).")
@json_option
@pass_env
def show_cmd(env: Env, rev: str | None, names: tuple[str, ...], show_all: bool, as_json: bool) -> None:
    """Show a commit (default HEAD) with its datasets and their replicas.

    A large campaign is summarised: datasets by kind and by host, then the first ones;
    --all lists them all (through the pager on a terminal).
    """
    shown = porcelain.show(rev, names=list(names), repo=env.repo, env=env.env)
    if as_json:
        echo_json(shown)
        return
    paint = _painter(env)
    with paged(env.pager, env.env):
        _echo_commit(shown.commit, paint)
        paint.echo("")
        n = len(shown.datasets)
        paint.echo(f"campaign {shown.campaign}: {plural(n, 'dataset')}")
        listed = shown.datasets
        if n > SUMMARY_ABOVE and not show_all and not names:
            _echo_summary(shown.datasets, paint)
            listed = shown.datasets[:SUMMARY_FIRST]
            paint.echo(f"first {len(listed)}:")
        for ds in listed:
            _echo_dataset(ds, paint, shown.recorded_by.get(ds.name, ()))
        if len(listed) < n:
            paint.echo(f"... and {n - len(listed)} more ('camp show --all' lists every dataset, "
                       "'camp show --dataset NAME' one)")


def _echo_summary(datasets: list[Dataset], paint: Painter) -> None:
    kinds = Counter(ds.kind for ds in datasets)
    deleted = sum(1 for ds in datasets if not ds.live)
    hosts = Counter(r.host for ds in datasets if ds.live for r in {r.host: r for r in ds.live_replicas()}.values())
    paint.echo("by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
               + (f" ({deleted} deleted)" if deleted else ""))
    paint.echo("by host: " + (", ".join(f"{host} {count}" for host, count in sorted(hosts.items())) or "-")
               + "  (live datasets with a replica there)")


def _echo_dataset(ds: Dataset, paint: Painter, recorded_by: Iterable[Mapping[str, str]] = ()) -> None:
    state = "" if ds.live else paint(f"  [deleted {format_ns(ds.deltime)}]", "red")
    paint.echo(f"{ds.kind:<6} {paint(ds.name, bold=True)}  uuid {ds.uuid}{state}")
    for by in recorded_by:
        paint.echo("       recorded by " + ", ".join(f"{k} {v}" for k, v in by.items()))
    for r in ds.replicas:
        where = f"{r.host}:{r.dir}" + ("" if r.archive is None else f" [archive {r.archive or '(dir)'}]")
        extra = f"  {r.resolution[0]}x{r.resolution[1]}" if r.resolution else ""
        gone = "" if r.live else f"  [deleted {format_ns(r.deltime)}]"
        files = ", ".join(f"{f.name} {format_size(f.lenorig)}" for f in r.files)
        paint.echo(f"       {where}  {r.path}  {format_size(r.size)}  {format_ns(r.mtime)}{extra}{gone}")
        if files:
            paint.echo(f"         embedded: {files}")


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
    merge = porcelain.merge_state(repo=env.repo, env=env.env) if rev1 is None and rev2 is None else None
    if as_json:
        echo_json(result)
        return
    paint = _painter(env)
    with paged(env.pager, env.env):
        if merge is not None:
            state = (f"{plural(len(merge.conflicts), 'unresolved conflict')}: {', '.join(merge.conflicts)} "
                     "(camp resolve NAME --ours|--theirs)" if merge.conflicts
                     else "all conflicts resolved ('camp commit' to finish the merge)")
            paint.echo(paint(f"Merging {merge.merging[:10]}: {state}", "red" if merge.conflicts else None))
        _echo_diff(result, paint, merging=merge is not None)


def _replica_title(c: hm.DatasetChange) -> str | None:
    """``replica added`` etc. for a dataset whose only change is where its copies are."""
    if c.change != "modified" or c.fields or c.metadata or not c.replicas:
        return None
    kinds = {rc.change for rc in c.replicas}
    if kinds <= {"added", "revived"}:
        what = "added"
    elif kinds == {"removed"}:
        what = "removed"
    elif kinds <= {"moved", "added", "removed"}:
        what = "moved"
    else:
        return None
    return "replica " + what if len(c.replicas) == 1 else f"{len(c.replicas)} replicas {what}"


def _echo_diff(d: Diff, paint: Painter, merging: bool = False) -> None:
    old = d.old + (f" ({d.old_commit[:10]})" if d.old_commit and d.old_commit[:10] not in d.old else "")
    new = d.new + (f" ({d.new_commit[:10]})" if d.new_commit and d.new_commit[:10] not in d.new else "")
    if d.empty:
        paint.echo(f"no differences between {old} and {new}" + (" (the merge so far changes nothing)"
                                                                  if merging else ""))
        return
    paint.echo(paint(f"diff {old} -> {new}", bold=True))
    for c in d.datasets:
        moved = _replica_title(c)
        if c.change == "renamed":
            title, word = f"renamed {c.old_name} -> {c.name}", "renamed"
        elif moved is not None:
            title, word = f"{c.name}: {moved}", moved.split()[-1]
        else:
            title, word = f"{c.change} {c.name}", c.change
        fields = f" ({', '.join(c.fields)} changed)" if c.fields else ""
        paint.echo(paint.change(word, f"dataset {title} [{c.kind}]{fields}"))
        for rc in c.replicas:
            r = rc.replica
            if rc.change == "moved" and rc.before is not None:
                paint.echo(paint.change("moved", f"  moved    {rc.before.where} -> {r.where} "
                                                 f"({rc.before.id} -> {r.id})"))
            elif rc.change == "changed":
                paint.echo(paint.change("changed", f"  changed  {r.where} ({r.id}): {', '.join(rc.fields)}"))
            else:
                sign = {"added": "+", "revived": "+", "removed": "-"}[rc.change]
                when = f" at {format_ns(r.deltime)}" if rc.change == "removed" and r.deltime else ""
                paint.echo(paint.change("removed" if sign == "-" else "added",
                                        f"  {sign} {rc.change:<8}{r.where} ({r.id}, {format_size(r.size)}){when}"))
        for m in c.metadata:
            blobs = f"{','.join(b[:10] for b in m.old) or '-'} -> {','.join(b[:10] for b in m.new) or '-'}"
            paint.echo(f"  metadata {m.name} {m.change} ({blobs})")
    for h in d.hosts:
        extra = f" ({', '.join(h.fields)} changed)" if h.fields else ""
        paint.echo(paint.change(h.change, f"host {h.change} {h.name}{extra}"))
        for a in h.archives_added:
            paint.echo(paint(f"  + archive {a.dir}" + (f" [{a.tarname}]" if a.tarname else "") + f" ({a.system})",
                             "green"))
        for a in h.archives_removed:
            paint.echo(paint(f"  - archive {a.dir}" + (f" [{a.tarname}]" if a.tarname else "") + f" ({a.system})",
                             "red"))
    for s in d.timeseries:
        before, after = ", ".join(s.before) or "-", ", ".join(s.after) or "-"
        paint.echo(f"time series {s.change} {s.name}: {before} -> {after}")
    for path in d.campaign:
        paint.echo(f"changed {path}")


@click.command("whereis")
@click.argument("name", shell_complete=complete_dataset)
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
