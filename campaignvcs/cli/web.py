"""camp web: the campaign catalog in the browser, served on 127.0.0.1 or exported as a static site."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, json_option
from campaignvcs.errors import UsageError


@click.command("web")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--rev", metavar="REV", help="Show this commit (default HEAD).")
@click.option("--store", "whole_store", is_flag=True,
              help="Serve every campaign of the campaign store, with a search across them.")
@click.option("--export", "export_dir", metavar="DIR",
              help="Write the catalog as a static site into DIR instead of serving it.")
@click.option("-k", "--key", "keyfile", metavar="KEYFILE",
              help="Key file that opens encrypted replicas (otherwise only their public record is shown).")
@json_option
@pass_env
def web_cmd(env: Env, port: int, rev: str | None, whole_store: bool, export_dir: str | None,
            keyfile: str | None, as_json: bool) -> None:
    """Browse the campaign: datasets, replicas, images, history, log and diffs.

    Serves a read-only catalog on http://127.0.0.1:PORT/ until Ctrl-C (only this machine
    can reach it). With --export DIR, writes the same catalog as plain files that open
    from disk or any web server; exporting again rewrites only what changed.
    """
    if export_dir is not None:
        if whole_store:
            raise UsageError("--store serves the store; --export writes one campaign")
        result = porcelain.web_export(export_dir, rev=rev, keyfile=keyfile, repo=env.repo, env=env.env)
        if as_json:
            echo_json(result)
            return
        click.echo(f"exported {result.datasets} datasets to {result.folder}: {result.written} files written, "
                   f"{result.unchanged} unchanged, {result.removed} removed")
        return

    def ready(url: str) -> None:
        click.echo(f"camp web: serving {url} (Ctrl-C stops)", nl=True)

    try:
        porcelain.web_serve(port=port, rev=rev, store=whole_store, keyfile=keyfile, repo=env.repo, env=env.env,
                            ready=ready)
    except KeyboardInterrupt as exc:
        if getattr(exc, "signum", 2) != 2:
            raise  # SIGTERM, SIGHUP: reported as for every command
        click.echo("camp web: stopped")
