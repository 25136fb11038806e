"""camp cat: the original bytes of an embedded metadata object (decrypted with -k)."""

from __future__ import annotations

import os
import sys

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.completion import complete_dataset
from campaignvcs.cli.keys import ask_password
from campaignvcs.errors import CampError


def looks_binary(data: bytes) -> bool:
    """True for bytes a terminal should not get: NUL bytes, or not UTF-8 text."""
    if b"\0" in data[:65536]:
        return True
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < 65536 - 4  # not just a character cut at the end of the sample
    return False


def _terminal() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        return False


@click.command("cat")
@click.argument("name", shell_complete=complete_dataset)
@click.argument("file")
@click.option("--rev", metavar="REV", help="Read from this revision (default: the staged state, else HEAD).")
@click.option("--replica", metavar="ID|HOST", help="Replica to read from: an id (camp whereis NAME) or a host name.")
@click.option("-k", "--key", "keyfile", metavar="KEYFILE", help="Key file for an encrypted replica.")
@click.option("-o", "--output", metavar="PATH", help="Write to PATH instead of standard output.")
@click.option("-f", "--force", is_flag=True, help="Write binary content to a terminal all the same.")
@pass_env
def cat_cmd(env: Env, name: str, file: str, rev: str | None, replica: str | None, keyfile: str | None,
            output: str | None, force: bool) -> None:
    """Print embedded file FILE of dataset NAME as it was on disk.

    The object is decompressed and, for a replica added with 'camp add -k', decrypted
    with the key file given by -k. 'camp show' lists the embedded files. Binary content
    is not written to a terminal unless -o PATH or --force is given. When replicas embed
    different versions of FILE, the first live one is read and camp says which (choose
    with --replica).
    """
    content = porcelain.cat(name, file, rev=rev, replica=replica, keyfile=keyfile, ask_password=ask_password,
                            repo=env.repo, env=env.env)
    if content.differing:
        others = "; ".join(content.differing)
        click.echo(f"camp: note: showing {file} of replica {content.replica} ({content.where}); "
                   f"other replicas embed a different version: {others} (choose with --replica ID|HOST)", err=True)
    if output is None:
        if not force and _terminal() and looks_binary(content.data):
            raise CampError(f"{name}: {file} is binary ({len(content.data)} bytes): not writing it to the terminal "
                            "(-o PATH writes it to a file, --force to the terminal, or pipe it)")
        out = sys.stdout.buffer
        out.write(content.data)
        out.flush()
        return
    try:
        with open(output, "wb") as f:
            f.write(content.data)
    except OSError as exc:
        raise CampError(f"cannot write {output}: {exc.strerror}") from None
    click.echo(f"wrote {len(content.data)} bytes to {os.path.abspath(output)}", err=True)
