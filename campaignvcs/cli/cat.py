"""camp cat: the original bytes of an embedded metadata object (decrypted with -k)."""

from __future__ import annotations

import os
import sys

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.keys import ask_password
from campaignvcs.errors import CampError


@click.command("cat")
@click.argument("name")
@click.argument("file")
@click.option("--rev", metavar="REV", help="Read from this revision (default: the staged state, else HEAD).")
@click.option("--replica", metavar="ID", help="Replica to read from (an id from 'camp show --json').")
@click.option("-k", "--key", "keyfile", metavar="KEYFILE", help="Key file for an encrypted replica.")
@click.option("-o", "--output", metavar="PATH", help="Write to PATH instead of standard output.")
@pass_env
def cat_cmd(env: Env, name: str, file: str, rev: str | None, replica: str | None, keyfile: str | None,
            output: str | None) -> None:
    """Print embedded file FILE of dataset NAME as it was on disk.

    The object is decompressed and, for a replica added with 'camp add -k', decrypted
    with the key file given by -k. 'camp show' lists the embedded files.
    """
    content = porcelain.cat(name, file, rev=rev, replica=replica, keyfile=keyfile, ask_password=ask_password,
                            repo=env.repo, env=env.env)
    if output is None:
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
