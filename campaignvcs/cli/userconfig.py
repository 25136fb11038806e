"""camp config get / set / list: the shared hpc-campaign configuration (config.yaml)."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, json_option

SETTINGS = ("hostname", "campaignstorepath", "cachepath")


@click.group("config")
def config_group() -> None:
    """Read and change ~/.config/hpc-campaign/config.yaml, shared with hpc-campaign and ADIOS2.

    Settings of its Campaign: section: hostname (this machine's short name: replicas
    recorded here are local to ADIOS2), campaignstorepath (where camp build writes
    archives and ADIOS2 opens them from), cachepath (ADIOS2's cache of remote data).
    """


@config_group.command("get")
@click.argument("key", type=click.Choice(SETTINGS))
@pass_env
def config_get_cmd(env: Env, key: str) -> None:
    """Print the value of KEY (exit status 1, silently, when it is not set: as git config)."""
    value = porcelain.config_get(key, env=env.env)
    if value is None:
        click.get_current_context().exit(1)
    click.echo(value)


@config_group.command("set")
@click.argument("key", type=click.Choice(SETTINGS))
@click.argument("value")
@pass_env
def config_set_cmd(env: Env, key: str, value: str) -> None:
    """Set KEY to VALUE (the file and its Campaign: section are created if missing; other lines stay)."""
    settings = porcelain.config_set(key, value, env=env.env)
    click.echo(f"{key} = {settings.values[key]}  ({settings.path})")


@config_group.command("list")
@json_option
@pass_env
def config_list_cmd(env: Env, as_json: bool) -> None:
    """Print every setting the file has, and where the file is."""
    settings = porcelain.config_list(env=env.env)
    if as_json:
        echo_json(settings)
        return
    click.echo(f"# {settings.path}" + ("" if settings.values else " (no settings)"))
    for key, value in settings.values.items():
        click.echo(f"{key} = {value}")
