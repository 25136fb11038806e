"""The ``camp`` command: a lazy click group and the single error boundary.

Subcommands live one per module and are imported only when run, so ``camp --help`` and
``camp status`` never load adios2, h5py or pillow. Every :class:`CampError` becomes
``camp: error: <one line>`` and its exit code; any other exception becomes one line too,
with the traceback only under ``--debug`` (or ``CAMP_DEBUG=1``).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import click

from campaignvcs.errors import CampError, ExitStatus

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("campaignvcs.cli.workspace", "init_cmd"),
    "add": ("campaignvcs.cli.workspace", "add_cmd"),
    "status": ("campaignvcs.cli.workspace", "status_cmd"),
    "commit": ("campaignvcs.cli.workspace", "commit_cmd"),
    "log": ("campaignvcs.cli.history", "log_cmd"),
    "show": ("campaignvcs.cli.history", "show_cmd"),
    "build": ("campaignvcs.cli.archive", "build_cmd"),
    "import": ("campaignvcs.cli.migrate", "import_cmd"),
    "key": ("campaignvcs.cli.keys", "key_group"),
    "connect": ("campaignvcs.cli.connect", "connect_cmd"),
    "cat": ("campaignvcs.cli.cat", "cat_cmd"),
    "diff": ("campaignvcs.cli.history", "diff_cmd"),
    "whereis": ("campaignvcs.cli.history", "whereis_cmd"),
    "rm": ("campaignvcs.cli.replicas", "rm_cmd"),
    "mv": ("campaignvcs.cli.replicas", "mv_cmd"),
    "replica": ("campaignvcs.cli.replicas", "replica_group"),
    "archive": ("campaignvcs.cli.replicas", "archive_group"),
    "timeseries": ("campaignvcs.cli.replicas", "timeseries_cmd"),
    "tar-index": ("campaignvcs.cli.replicas", "tar_index_cmd"),
    "hooks": ("campaignvcs.cli.hooks", "hooks_group"),
    "verify": ("campaignvcs.cli.verify", "verify_cmd"),
    "fsck": ("campaignvcs.cli.verify", "fsck_cmd"),
    "remote": ("campaignvcs.cli.sync", "remote_group"),
    "push": ("campaignvcs.cli.sync", "push_cmd"),
    "fetch": ("campaignvcs.cli.sync", "fetch_cmd"),
    "pull": ("campaignvcs.cli.sync", "pull_cmd"),
    "clone": ("campaignvcs.cli.sync", "clone_cmd"),
    "resolve": ("campaignvcs.cli.sync", "resolve_cmd"),
    "store": ("campaignvcs.cli.store", "store_group"),
}
"""Command name → (module, attribute). Add one line per new command."""


@dataclass
class Env:
    """What every command gets from the group: the selected repository and the environment."""

    repo: str | None
    debug: bool
    env: dict[str, str]


class CampGroup(click.Group):
    """A group that loads subcommands on demand and turns errors into one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CampError as exc:
            click.echo(f"camp: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as exc:
            if _debug(ctx):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(
                f"camp: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
                err=True,
            )
            ctx.exit(ExitStatus.ERROR)


def _debug(ctx: click.Context) -> bool:
    obj = ctx.find_object(Env)
    return bool(obj and obj.debug)


@click.group(cls=CampGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", "repo", metavar="PATH", help="Campaign repository (default: $CAMP_REPO, else the current "
              "directory or a parent).")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.version_option(package_name="campaignvcs", prog_name="camp")
@click.pass_context
def cli(ctx: click.Context, repo: str | None, debug: bool) -> None:
    """camp: an HPC data campaign as a versioned, shareable repository.

    Record ADIOS2, HDF5, image and text datasets with their replicas, keep their
    history, and build campaign archives (.aca) that ADIOS2 opens.
    """
    env = dict(os.environ)
    ctx.obj = Env(repo=repo or env.get("CAMP_REPO") or None, debug=debug or env.get("CAMP_DEBUG") == "1", env=env)


pass_env = click.make_pass_decorator(Env)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    try:
        cli.main(args=argv, prog_name="camp")
    except KeyboardInterrupt:
        click.echo("camp: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(141)
