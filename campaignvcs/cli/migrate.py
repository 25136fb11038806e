"""camp import."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, json_option


@click.command("import")
@click.argument("archive", metavar="ARCHIVE.aca")
@click.option("-m", "--message", help="Commit message (default: Import <archive file name>).")
@json_option
@pass_env
def import_cmd(env: Env, archive: str, message: str | None, as_json: bool) -> None:
    """Record an archive written by hpc-campaign (0.5, 0.6, 0.7) as one commit.

    Datasets (with their uuids), replicas, embedded files (byte for byte, encrypted ones
    too), archival locations with TAR indexes, time series and deletions all come over.
    The staging area must be clean; a malformed archive changes nothing.
    """
    result = porcelain.import_aca(archive, message=message, repo=env.repo, env=env.env)
    if as_json:
        echo_json(result)
        return
    if result.commit is None:
        click.echo(f"nothing to import from {archive}: the campaign already records all of it")
        return
    click.echo(
        f"imported {archive}: {result.datasets} datasets, {result.replicas} replicas, "
        f"{result.files} embedded files into {result.commit[:10]}"
    )
