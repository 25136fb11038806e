"""camp import."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, echo_warning, json_option


@click.command("import")
@click.argument("archive", metavar="ARCHIVE.aca")
@click.option("-m", "--message", help="Commit message (default: Import <archive file name>).")
@click.option("--drop-unknown-tables", "drop_unknown", is_flag=True,
              help="Import even if the archive holds tables (or views, triggers) camp cannot write back "
              "correctly, e.g. with row ids of replicas or files; they are left out, each named in a "
              "warning.")
@json_option
@pass_env
def import_cmd(env: Env, archive: str, message: str | None, drop_unknown: bool, as_json: bool) -> None:
    """Record an archive written by hpc-campaign (0.5, 0.6, 0.7) as one commit.

    Datasets (with their uuids), replicas, embedded files (byte for byte, encrypted ones
    too), archival locations with TAR indexes, time series and deletions all come over.
    Tables camp does not model (hpc-campaign's visualization and scalar-field tables) are
    kept and written back by camp build; one camp cannot carry refuses the import unless
    --drop-unknown-tables. The staging area must be clean; a refused archive changes nothing.
    """
    result = porcelain.import_aca(archive, message=message, repo=env.repo, env=env.env,
                                  drop_unknown_tables=drop_unknown)
    for line in result.left_out:
        echo_warning(line)
    if as_json:
        echo_json(result)
        return
    if result.commit is None:
        click.echo(f"nothing to import from {archive}: the campaign already records all of it")
        return
    extras = f", {result.extras} extra tables" if result.extras else ""
    click.echo(
        f"imported {archive}: {result.datasets} datasets, {result.replicas} replicas, "
        f"{result.files} embedded files{extras} into {result.commit[:10]}"
    )
