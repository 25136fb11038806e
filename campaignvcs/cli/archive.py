"""camp build."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, echo_warning, format_size, json_option, plural
from campaignvcs.errors import ExitStatus

if TYPE_CHECKING:
    from campaignvcs.porcelain.archive import CheckReport

SHOWN_WARNINGS = 20
"""Warnings printed one by one; the rest are counted (``--json`` has them all)."""


@click.command("build")
@click.argument("rev", required=False, metavar="[REV]")
@click.option(
    "-o", "--output", metavar="PATH.aca", help="Write here instead of <campaign store>/<archive name>.aca."
)
@click.option(
    "--omit-deleted/--keep-deleted",
    default=True,
    show_default=True,
    help="Leave deleted datasets and replicas out, or keep them with their deletion time (not those of "
    "ADIOS datasets, which ADIOS2 2.12 would read as live).",
)
@click.option("--exclude-kind", "exclude", multiple=True,
              type=click.Choice(["ADIOS", "HDF5", "TEXT", "IMAGE"]),
              help="Leave out datasets of this kind (repeatable); e.g. HDF5 for the PyPI adios2, which "
              "has no HDF5 engine and refuses a whole archive listing one.")
@click.option("--include", multiple=True, metavar="GLOB",
              help="A sub-archive: only datasets whose name matches GLOB (repeatable; '*' also matches '/', "
              "e.g. 'run_0001/*'). Needs -o.")
@click.option("--exclude", "exclude_globs", multiple=True, metavar="GLOB",
              help="Leave out datasets whose name matches GLOB (repeatable). Needs -o.")
@click.option("--full", is_flag=True,
              help="Write the whole archive anew even where patching the previous one would do.")
@click.option("--force", is_flag=True,
              help="Overwrite the output even if another repository (or another tool) built it.")
@click.option("--check", is_flag=True,
              help="Then open the archive with the best installed ADIOS2 ($ADIOS2_DIR, else the adios2 "
              "Python imports; in a child process) and list what it could not read; exit status 1 if anything.")
@json_option
@pass_env
def build_cmd(env: Env, rev: str | None, output: str | None, omit_deleted: bool, exclude: tuple[str, ...],
              include: tuple[str, ...], exclude_globs: tuple[str, ...], full: bool, force: bool, check: bool,
              as_json: bool) -> None:
    """Compile commit REV (default HEAD) into a campaign archive that ADIOS2 opens.

    When the output is an archive this repository built before with the same options,
    only the datasets changed since are rewritten (unless --full). An archive another
    repository built is not overwritten without --force. Datasets ADIOS2 could not open
    are left out, with a warning saying why. --include/--exclude write a sub-archive of
    some datasets (with their hosts, keys and time series), which a reader opens in
    proportion to its size.
    """
    result = porcelain.build(rev=rev, output=output, omit_deleted=omit_deleted, repo=env.repo, env=env.env,
                             exclude_kinds=exclude, full=full, force=force, check=check,
                             include=include, exclude=exclude_globs)
    failed = result.check is not None and not result.check.ok
    if as_json:
        echo_json(result)  # the warnings are in it
    else:
        for line in result.warnings[:SHOWN_WARNINGS]:
            echo_warning(line)
        if len(result.warnings) > SHOWN_WARNINGS:
            echo_warning(f"... and {len(result.warnings) - SHOWN_WARNINGS} more (camp build --json lists them all)")
        how = f"; {plural(result.rewritten, 'changed dataset')} rewritten" if result.incremental else ""
        click.echo(
            f"built {result.path} ({plural(result.datasets, 'dataset')}, {plural(result.replicas, 'replica')}, "
            f"{plural(result.files, 'embedded file')}, {format_size(result.size_bytes)}{how})"
        )
        if result.check is not None:
            _print_check(result.check)
    if failed:
        sys.stdout.flush()
        click.get_current_context().exit(int(ExitStatus.ERROR))


def _print_check(report: CheckReport) -> None:
    """The check's findings: one line each, the verdict last."""
    click.echo(f"check: {report.adios2}")
    if report.error:
        click.echo(f"check: {report.error}")
    for u in report.unreadable:
        click.echo(f"check: cannot read {u.dataset}: {u.reason}")
    for line in report.advice:
        click.echo(f"check: {line}")
    if report.ok:
        click.echo(f"check: ok: ADIOS2 opened the archive and read all {report.datasets} datasets "
                   f"({report.variables} variables)")
    else:
        bad = len(report.unreadable) if report.opened and not report.crashed else report.datasets
        click.echo(f"check failed: ADIOS2 could not read {bad} of {report.datasets} datasets")
