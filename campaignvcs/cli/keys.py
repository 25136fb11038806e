"""camp key generate / verify / info, and the password prompt other commands share."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, json_option
from campaignvcs.errors import CampError

if TYPE_CHECKING:
    from campaignvcs.porcelain.keys import KeyInfo

PASSWORD_VAR = "CAMP_KEY_PASSWORD"


def ask_password(prompt: str, confirm: bool) -> str:
    """A hidden prompt on the terminal (asked twice for a new password); a line of stdin when piped."""
    try:
        # From a pipe nothing is echoed anyway, and getpass would only add warnings.
        answer: str = click.prompt(prompt, hide_input=sys.stdin.isatty(), confirmation_prompt=confirm,
                                   err=True)
    except click.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise exc.__context__ from None  # Ctrl-C at the prompt: camp was interrupted (exit 130)
        raise CampError(f"no password given: type it on a terminal or set {PASSWORD_VAR}") from None
    return answer


def _echo_info(info: KeyInfo) -> None:
    click.echo(f"key file:   {info.path}")
    click.echo(f"id:         {info.id}")
    click.echo(f"note:       {info.note}")
    click.echo(f"created on: {info.date}")
    click.echo(f"encryption: {'password' if info.protected else 'none'}")
    mode = info.mode + ("" if info.private else f"  (readable by others: chmod 600 {info.path})")
    click.echo(f"mode:       {mode}")


@click.group("key")
def key_group() -> None:
    """Create and check encryption key files (interchangeable with hpc_campaign genkey).

    A key encrypts the metadata camp embeds for replicas added with 'camp add -k KEYFILE';
    ADIOS2 gets it from 'camp connect' when it reads such a replica remotely.
    """


@key_group.command("generate")
@click.argument("path")
@click.option("-p", "--password", "protect", is_flag=True,
              help="Seal the key with a password (asked on the terminal, or $CAMP_KEY_PASSWORD).")
@click.option("--note", default="", metavar="TEXT", help="A note stored in the key file.")
@click.option("--force", is_flag=True,
              help="Replace an existing key file (archives using it become unreadable).")
@json_option
@pass_env
def generate_cmd(env: Env, path: str, protect: bool, note: str, force: bool, as_json: bool) -> None:
    """Write a new key file at PATH (mode 0600)."""
    info = porcelain.key_generate(path, protect=protect, note=note, force=force, ask_password=ask_password,
                                  env=env.env)
    if as_json:
        echo_json(info)
        return
    sealed = " (password-protected)" if info.protected else ""
    click.echo(f"Generated key {info.id} in {path}{sealed}")
    click.echo("Keep a copy: without it, data encrypted with this key cannot be read.")


@key_group.command("verify")
@click.argument("path")
@json_option
@pass_env
def verify_cmd(env: Env, path: str, as_json: bool) -> None:
    """Check the key file at PATH, and that the password opens it."""
    info = porcelain.key_verify(path, ask_password=ask_password, env=env.env)
    if as_json:
        echo_json(info)
        return
    if info.protected:
        click.echo(f"key {info.id}: password is correct")
    else:
        click.echo(f"key {info.id}: valid (not password-protected)")


@key_group.command("info")
@click.argument("path")
@json_option
@pass_env
def info_cmd(env: Env, path: str, as_json: bool) -> None:
    """Show what the key file at PATH says about itself (never the key)."""
    info = porcelain.key_info(path, env=env.env)
    if as_json:
        echo_json(info)
        return
    _echo_info(info)
