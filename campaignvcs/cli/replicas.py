"""camp rm / mv / replica add / archive add|replica|list / timeseries / tar-index."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.completion import complete_dataset
from campaignvcs.cli.output import echo_json, json_option

if TYPE_CHECKING:
    from campaignvcs.porcelain.replicas import ReplicaAdded


@click.command("rm")
@click.argument("names", nargs=-1, shell_complete=complete_dataset)
@click.option(
    "--replica",
    "replicas",
    multiple=True,
    metavar="ID|HOST:DIR[:PATH]",
    help="Remove this replica only (repeatable); with NAMEs, search only those datasets.",
)
@json_option
@pass_env
def rm_cmd(env: Env, names: tuple[str, ...], replicas: tuple[str, ...], as_json: bool) -> None:
    """Remove datasets or replicas: they get a tombstone, their history stays.

    Removing a dataset tombstones its live replicas; removing a dataset's last live
    replica tombstones the dataset. camp add brings a removed dataset back. Staged
    like git rm: camp commit records it. A dataset that was added but never committed
    is just unstaged (as camp restore --staged does).
    """
    result = porcelain.rm(list(names), list(replicas), repo=env.repo, env=env.env)
    if as_json:
        echo_json(result)
        return
    for gone in result.replicas:
        click.echo(f"removed replica {gone.replica.id} of {gone.dataset}: {gone.replica.where}")
    for name in result.datasets:
        reason = " (no live replica left)" if result.replicas else ""
        click.echo(f"deleted: {name}{reason}")
    for name in result.unstaged:
        click.echo(f"unstaged: {name} (never committed: nothing to record)")


@click.command("mv")
@click.argument("old", shell_complete=complete_dataset)
@click.argument("new")
@json_option
@pass_env
def mv_cmd(env: Env, old: str, new: str, as_json: bool) -> None:
    """Rename dataset OLD to NEW (same uuid and replicas; time series follow)."""
    result = porcelain.mv(old, new, repo=env.repo, env=env.env)
    if as_json:
        echo_json(result)
        return
    click.echo(f"renamed: {result.old} -> {result.new}")
    for s in result.series:
        click.echo(f"  time series {s} now lists {result.new}")


def _echo_added(result: ReplicaAdded, verb: str) -> None:
    r = result.replica
    if result.action == "unchanged":
        click.echo(f"unchanged: {result.dataset} already has replica {r.id} at {r.where}")
    else:
        click.echo(
            f"{verb} replica {r.id} of {result.dataset}: {r.where}"
            + (" (revived)" if result.action == "revived" else "")
        )
    if result.moved_from is not None:
        click.echo(f"removed replica {result.moved_from.id} of {result.dataset}: {result.moved_from.where}")


@click.group("replica")
def replica_group() -> None:
    """Record copies of datasets made outside camp (transfers between hosts)."""


@replica_group.command("add")
@click.argument("name")
@click.option("--host", required=True, metavar="HOST", help="Host the copy is on.")
@click.option("--dir", "directory", required=True, metavar="DIR", help="Directory the copy is in.")
@click.option("--path", metavar="PATH", help="Path of the copy inside DIR (default: the source's path).")
@click.option(
    "--from", "source", metavar="ID", help="Replica the copy was made from (when there are several)."
)
@click.option(
    "--no-check", is_flag=True, help="Do not compare the size of DIR/PATH when it is reachable here."
)
@json_option
@pass_env
def replica_add_cmd(
    env: Env,
    name: str,
    host: str,
    directory: str,
    path: str | None,
    source: str | None,
    no_check: bool,
    as_json: bool,
) -> None:
    """Record that dataset NAME has a copy at HOST:DIR/PATH.

    The copy gets the same embedded metadata, size and checksum as the replica it was
    made from. When DIR/PATH is reachable from this machine its size must match.
    """
    result = porcelain.replica_add(
        name, host, directory, path=path, source=source, check=not no_check, repo=env.repo, env=env.env
    )
    if as_json:
        echo_json(result)
        return
    _echo_added(result, "added")


@click.group("archive")
def archive_group() -> None:
    """Archival storage: tape systems, TAR files, web and S3 locations."""


@archive_group.command("add")
@click.argument("system")
@click.argument("host")
@click.argument("directory", metavar="DIR")
@click.argument("tarfile", required=False)
@click.argument("tarindex", required=False)
@click.option("--long-host-name", metavar="NAME", help="Full host name (URL host for https/S3 archives).")
@click.option("--note", metavar="FILE", help="File stored with the archive as its notes.")
@click.option(
    "--source-dir",
    metavar="DIR",
    help="Only replicas in this directory match TAR members (when several datasets share a path).",
)
@json_option
@pass_env
def archive_add_cmd(
    env: Env,
    system: str,
    host: str,
    directory: str,
    tarfile: str | None,
    tarindex: str | None,
    long_host_name: str | None,
    note: str | None,
    source_dir: str | None,
    as_json: bool,
) -> None:
    """Register archival storage SYSTEM (Kronos, HPSS, fs, https, S3) at HOST:DIR.

    With TARFILE the archive is that TAR file inside DIR; with its TARINDEX (camp
    tar-index) too, every dataset whose replica path is a member of the TAR gets an
    archived replica that readers can find by offset.
    """
    result = porcelain.archive_add(
        system,
        host,
        directory,
        tarname=tarfile,
        index=tarindex,
        long_host_name=long_host_name,
        note=note,
        source_dir=source_dir,
        repo=env.repo,
        env=env.env,
    )
    if as_json:
        echo_json(result)
        return
    tar = f" [{result.tarname}]" if result.tarname else ""
    click.echo(f"archive {result.action}: {result.host}:{result.dir}{tar} ({result.system})")
    for a in result.archived:
        click.echo(f"archived: {a.dataset} -> replica {a.replica.id} {a.replica.where} ({a.rows} TAR rows)")
    for s in result.skipped:
        click.echo(f"skipped: TAR member {s.member} (dataset {s.dataset}) {s.reason}")
    if result.unmatched:
        noun = "member" if result.unmatched == 1 else "members"
        click.echo(f"{result.unmatched} TAR {noun} matched no dataset")


@archive_group.command("replica")
@click.argument("name")
@click.argument("archive", metavar="HOST:DIR[:TARFILE]")
@click.option("--path", metavar="PATH", help="Path inside the archive (default: the source's path).")
@click.option("--move", is_flag=True, help="The data moved: tombstone the replica it came from.")
@click.option("--from", "source", metavar="ID", help="Replica the archived copy was made from.")
@json_option
@pass_env
def archive_replica_cmd(
    env: Env, name: str, archive: str, path: str | None, move: bool, source: str | None, as_json: bool
) -> None:
    """Record that dataset NAME is stored in a registered archive."""
    result = porcelain.archive_replica(
        name, archive, path=path, move=move, source=source, repo=env.repo, env=env.env
    )
    if as_json:
        echo_json(result)
        return
    _echo_added(result, "archived")


@archive_group.command("list")
@json_option
@pass_env
def archive_list_cmd(env: Env, as_json: bool) -> None:
    """List the registered archival locations."""
    archives = porcelain.archive_list(repo=env.repo, env=env.env)
    if as_json:
        echo_json(archives)
        return
    if not archives:
        click.echo("no archival storage registered (camp archive add)")
    for a in archives:
        tar = f" [{a.tarname}]" if a.tarname else ""
        extra = f"  ({a.longhostname})" if a.longhostname else ""
        note = "  (with note)" if a.notes else ""
        click.echo(f"{a.system:<7}{a.host}:{a.dir}{tar}{extra}{note}")


@click.command("timeseries")
@click.argument("name")
@click.argument("datasets", nargs=-1)
@click.option("--replace", is_flag=True, help="Make DATASETs the whole series, in this order.")
@click.option("--remove", is_flag=True, help="Delete the series (its datasets stay).")
@json_option
@pass_env
def timeseries_cmd(
    env: Env, name: str, datasets: tuple[str, ...], replace: bool, remove: bool, as_json: bool
) -> None:
    """Make ADIOS2 or HDF5 datasets one time series NAME (appended in order).

    ADIOS2 reads the series as NAME/<variable> with one step per dataset. A dataset
    belongs to at most one series: adding it here takes it out of another.
    """
    result = porcelain.timeseries(
        name, list(datasets), replace=replace, remove=remove, repo=env.repo, env=env.env
    )
    if as_json:
        echo_json(result)
        return
    if result.removed:
        click.echo(f"removed time series {result.name} (its datasets stay)")
        return
    for d, other in result.moved:
        click.echo(f"moved {d} out of time series {other}")
    for other in result.emptied:
        click.echo(f"removed time series {other} (no datasets left)")
    click.echo(f"time series {result.name}: {', '.join(result.datasets)}")


@click.command("tar-index")
@click.argument("tarfile")
@click.argument("output", required=False)
@json_option
@pass_env
def tar_index_cmd(env: Env, tarfile: str, output: str | None, as_json: bool) -> None:
    """Write the index of TARFILE (default output TARFILE.idx) for camp archive add.

    One CSV line per member: type, header offset, data offset, size, name. Needs an
    uncompressed TAR (ustar, GNU, pax or V7).
    """
    result = porcelain.tar_index(tarfile, output)
    if as_json:
        echo_json(result)
        return
    dirs = "directory" if result.directories == 1 else "directories"
    files = "file" if result.regular == 1 else "files"
    click.echo(
        f"wrote {result.path}: {result.members} members ({result.regular} {files}, "
        f"{result.directories} {dirs}, {result.other} other)"
    )
