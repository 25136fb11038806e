"""camp init / add / status / commit."""

from __future__ import annotations

import os
import sys

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import Painter, color_enabled, echo_json, echo_warnings, format_size, json_option, plural
from campaignvcs.errors import CampError, UsageError
from campaignvcs.extract import KIND_CHOICES


@click.command("init")
@click.argument("path", default=".", type=click.Path(file_okay=False))
@click.option("--name", "name", required=True, metavar="ARCHIVE_NAME",
              help="Archive name, e.g. proj/run_001 (camp build writes <store>/<name>.aca).")
@click.option("--host", metavar="HOST", help="Default host for camp add in this repository.")
@pass_env
def init_cmd(env: Env, path: str, name: str, host: str | None) -> None:
    """Make PATH (default: here) a campaign repository."""
    root = porcelain.init(path, name, host=host, env=env.env)
    click.echo(f"Initialised campaign {name} in {root}")


@click.command("add")
@click.argument("paths", nargs=-1)
@click.option("--host", metavar="HOST", help="Host the data is on (default: the repository's, else config.yaml).")
@click.option("--name", metavar="NAME", help="Dataset name instead of the path (one path only).")
@click.option("--store", is_flag=True, help="Embed text files and images themselves.")
@click.option("--thumbnail", nargs=2, type=int, metavar="W H", help="Embed an image thumbnail of at most W x H.")
@click.option("--kind", type=click.Choice(KIND_CHOICES), default="auto", show_default=True,
              help="Treat the paths as this kind instead of detecting it.")
@click.option("-m", "--message", help="Also commit, with this message (one process, one lock).")
@click.option("-k", "--key", "keyfile", metavar="KEYFILE",
              help="Encrypt the embedded metadata of these replicas with this key file (camp key generate).")
@click.option("--from", "source", metavar="RCLONE_PATH",
              help="The datasets are below this rclone path (remote:bucket/dir, :sftp,host=...:dir, a folder): "
                   "only their metadata files are read; PATHS are relative to it.")
@click.option("--dir", "directory", metavar="DIR",
              help="With --from: the directory to record (default: the folder part of RCLONE_PATH).")
@click.option("--datetime", "when", metavar="TIME",
              help="With --from: the modification time to record, e.g. '2024-10-22 10:20:15 -0400' "
                   "(default: the remote listing's).")
@click.option("--fetch-metadata", is_flag=True,
              help="With --from: download HDF5 files whole to extract their metadata (it is spread through the file).")
@click.option("--files-from", metavar="FILE", help="Also add the paths listed in FILE, one a line ('-': stdin).")
@click.option("-0", "--null", "nul", is_flag=True, help="With --files-from: the paths are NUL-separated.")
@click.option("--shard", "share", metavar="I/N",
              help="Add only task I of N's share of the paths: those whose 0-based position modulo N is I-1.")
@click.option("--shard-staging/--no-shard-staging", default=None,
              help="Record into a shard of this process's own, without the lock (default: inside a Slurm job); "
                   "camp commit gathers every shard.")
@click.option("--meta", multiple=True, metavar="KEY=VALUE",
              help="Provenance recorded as a commit trailer (KEY: VALUE), beside Slurm's; repeatable.")
@json_option
@pass_env
def add_cmd(env: Env, paths: tuple[str, ...], host: str | None, name: str | None, store: bool,
            thumbnail: tuple[int, int] | None, kind: str, message: str | None, keyfile: str | None,
            source: str | None, directory: str | None, when: str | None, fetch_metadata: bool,
            files_from: str | None, nul: bool, share: str | None, shard_staging: bool | None,
            meta: tuple[str, ...], as_json: bool) -> None:
    """Record datasets (ADIOS2 BP, HDF5, images, text) into the staging area.

    Paths are relative to the current directory. Adding an unchanged dataset changes
    nothing; adding it from another host or directory records another replica.
    With --from, the datasets stay where they are (an S3 bucket, another cluster) and
    camp reads only what ADIOS2 embeds, through rclone. Many writers at once
    (a Slurm array): see --shard-staging and the docs page "At HPC scale".
    """
    if nul and files_from is None:
        raise UsageError("-0 goes with --files-from FILE")
    if not paths and files_from is None:
        raise UsageError("missing argument 'PATHS...' (or --files-from FILE)")
    listed = list(paths)
    if files_from is not None:
        listed += porcelain.read_path_list(files_from, nul, stdin=sys.stdin.buffer)
    paths = tuple(porcelain.take_share(listed, share) if share is not None else listed)
    if share is not None and not paths:  # more tasks than paths: this one has nothing to do
        echo_json([]) if as_json else click.echo(f"nothing to add in share {share} of {plural(len(listed), 'path')}")
        return
    if source is not None:
        if shard_staging or meta:
            raise UsageError("--shard-staging and --meta cannot be used with --from")
        _add_from(env, source, paths, host, name, store, thumbnail, kind, message, keyfile, directory, when,
                  fetch_metadata, as_json)
        return
    if directory is not None or when is not None or fetch_metadata:
        raise UsageError("--dir, --datetime and --fetch-metadata go with --from RCLONE_PATH")
    encrypt = None
    if keyfile:
        from campaignvcs.cli.keys import ask_password

        encrypt = porcelain.encryptor(keyfile, ask_password=ask_password, env=env.env)
    provenance = porcelain.parse_meta(meta)
    # Readers start before porcelain.add loads the repository code (a third of a big add's start-up);
    # porcelain.add closes them whatever happens.
    todo = list(paths)
    reading = porcelain.start_reading(todo, name, store, thumbnail, kind, env=env.env)
    outcome = porcelain.add(todo, repo=env.repo, host=host, name=name, store=store,
                            thumbnail=thumbnail, kind=kind, message=message, env=env.env,
                            encrypt=encrypt, key_id=encrypt.key_id if encrypt else "",
                            shard_staging=shard_staging, meta=provenance, reading=reading)
    echo_warnings(outcome.warnings, *(outcome.committed.warnings if outcome.committed else ()))
    if as_json:
        echo_json(outcome.added)
        return
    for r in outcome.added:
        click.echo(f"{r.action}: {r.name} ({r.kind}, {r.host})")
    if outcome.shard and not outcome.committed:
        click.echo(f"recorded in shard {os.path.basename(outcome.shard)}; "
                   + ("another writer's commit gathered it" if outcome.gathered else "'camp commit' gathers it"))


def _add_from(env: Env, source: str, paths: tuple[str, ...], host: str | None, name: str | None, store: bool,
              thumbnail: tuple[int, int] | None, kind: str, message: str | None, keyfile: str | None,
              directory: str | None, when: str | None, fetch_metadata: bool, as_json: bool) -> None:
    if name is not None or keyfile is not None:
        raise UsageError("--name and --key cannot be used with --from")
    result = porcelain.add_from(source, list(paths), host=host, directory=directory, when=when,
                                fetch_metadata=fetch_metadata, store=store, thumbnail=thumbnail, kind=kind,
                                repo=env.repo, env=env.env, message=message)
    echo_warnings(result.warnings)
    if as_json:
        echo_json(result)
        return
    for r in result.added:
        click.echo(f"{r.action}: {r.name} ({r.kind}, {r.host}:{result.dir})")
    click.echo(f"read {format_size(result.bytes_read)} from the remote for {format_size(result.data_bytes)} of data")


@click.command("status")
@json_option
@pass_env
def status_cmd(env: Env, as_json: bool) -> None:
    """Show staged changes and recorded local data that changed on disk."""
    st = porcelain.status(repo=env.repo, env=env.env)
    if as_json:
        echo_json(st)
        return
    paint = Painter(color_enabled(env.color, env.env))
    paint.echo(f"On campaign {st.campaign}, branch {st.branch}")
    if st.tracking:
        paint.echo(tracking_line(st.tracking, st.ahead, st.behind))
    if st.merging:
        paint.echo(f"Merging: {plural(len(st.conflicts), 'unresolved conflict')} (camp resolve NAME --ours|--theirs)"
                   if st.conflicts else "Merging: all conflicts resolved ('camp commit' to finish the merge)")
        for name in st.conflicts:
            paint.echo(paint(f"  {'conflict:':<16}{name}", "red"))
    if st.staged:
        paint.echo("Changes to be committed:")
        for c in st.staged:
            what = f"{c.path} -> {c.name}" if c.change == "renamed" else c.name
            paint.echo(paint(f"  {c.change + ':':<16}{what}", "green"))
    if st.unstaged:
        paint.echo(f"Data changed on disk since it was added (host {st.host}; 'camp add' it again):")
        for c in st.unstaged:
            paint.echo(paint(f"  {c.change + ':':<16}{c.name}  ({c.path})", "red"))
    if st.sharded:
        paint.echo(f"Recorded in {plural(len({c.path for c in st.sharded}), 'shard')}, gathered by the next "
                   "'camp commit':")
        for c in st.sharded:
            paint.echo(paint(f"  {c.change + ':':<16}{c.name}  (shard {c.path})", "green"))
    if not st.staged and not st.unstaged and not st.sharded:
        paint.echo("nothing to commit" + ("" if st.host else " (no local host set: on-disk changes not checked)"))
    if st.leftovers:
        paint.echo("Left by an interrupted process or an older camp (never read as data):")
        for line in st.leftovers:
            paint.echo(f"  {line}")


def tracking_line(tracking: str, ahead: int, behind: int) -> str:
    """Where the branch stands against ``<remote>/main``, in git's words."""
    if ahead and behind:
        return (f"Branch and {tracking} have diverged: {ahead} and {behind} different commits each "
                "('camp pull' to merge)")
    if behind:
        return f"Branch is behind {tracking} by {plural(behind, 'commit')} ('camp pull' to merge)"
    if ahead:
        return f"Branch is ahead of {tracking} by {plural(ahead, 'commit')} ('camp push' to publish)"
    return f"Branch is up to date with {tracking}"


@click.command("commit")
@click.option("-m", "--message", help="Commit message (default: write it in $VISUAL/$EDITOR, as git does).")
@json_option
@pass_env
def commit_cmd(env: Env, message: str | None, as_json: bool) -> None:
    """Record the staged changes as a new commit.

    Without -m, the editor ($CAMP_EDITOR, $VISUAL, $EDITOR, else vi) opens with the
    staged changes listed as # comments; an empty message aborts the commit.
    """
    if message is None:
        from campaignvcs.cli.editor import edit_message, template

        st = porcelain.status(repo=env.repo, env=env.env)
        if not st.staged and not st.merging:
            raise CampError("nothing to commit (use 'camp add' to record datasets)")
        staged = [f"{c.change + ':':<16}{c.name}" for c in st.staged]
        message = edit_message(template(staged, st.campaign, st.branch), env.env)
    result = porcelain.commit(message, repo=env.repo, env=env.env)
    echo_warnings(result.warnings)
    if as_json:
        echo_json(result)
        return
    first = message.strip().splitlines()[0]
    click.echo(f"[{result.id[:10]}] {first} ({plural(result.datasets, 'dataset')} changed)")
    sys.stdout.flush()
