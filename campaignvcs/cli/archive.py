"""camp build."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, echo_warning, format_size, json_option


@click.command("build")
@click.argument("rev", required=False, metavar="[REV]")
@click.option(
    "-o", "--output", metavar="PATH.aca", help="Write here instead of <campaign store>/<archive name>.aca."
)
@click.option(
    "--omit-deleted/--keep-deleted",
    default=True,
    show_default=True,
    help="Leave deleted datasets and replicas out (ADIOS2 2.12 would still show them), "
    "or keep them with their deletion time.",
)
@click.option("--exclude-kind", "exclude", multiple=True,
              type=click.Choice(["ADIOS", "HDF5", "TEXT", "IMAGE"]),
              help="Leave out datasets of this kind (repeatable); e.g. HDF5 for the PyPI adios2, which "
              "has no HDF5 engine and refuses a whole archive listing one.")
@click.option("--full", is_flag=True,
              help="Write the whole archive anew even where patching the previous one would do.")
@json_option
@pass_env
def build_cmd(env: Env, rev: str | None, output: str | None, omit_deleted: bool, exclude: tuple[str, ...],
              full: bool, as_json: bool) -> None:
    """Compile commit REV (default HEAD) into a campaign archive that ADIOS2 opens.

    When the output is an archive this repository built before with the same options,
    only the datasets changed since are rewritten (unless --full).
    """
    result = porcelain.build(rev=rev, output=output, omit_deleted=omit_deleted, repo=env.repo, env=env.env,
                             exclude_kinds=exclude, warn=echo_warning, full=full)
    if as_json:
        echo_json(result)
        return
    how = f"; {result.rewritten} changed dataset(s) rewritten" if result.incremental else ""
    click.echo(
        f"built {result.path} ({result.datasets} datasets, {result.replicas} replicas, "
        f"{result.files} embedded files, {format_size(result.size_bytes)}{how})"
    )
