"""camp verify / camp fsck."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, json_option

SHOWN_PROBLEMS = 50
"""fsck prints at most this many problems as text (all of them with --json)."""


@click.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--host", metavar="HOST", help="Check the replicas of this host (default: this machine's host name).")
@click.option("--rev", metavar="REV", help="Compare with this commit instead of the staged state.")
@json_option
@click.pass_context
@pass_env
def verify_cmd(env: Env, ctx: click.Context, names: tuple[str, ...], host: str | None, rev: str | None,
               as_json: bool) -> None:
    """Check that the replicas on this host still match their record.

    Re-reads every replica this machine can reach (size, modification time, checksum
    of its metadata) and lists the ones that are missing or changed. Exit status 1 when
    any does not match; replicas on other hosts or in archives are not checked.
    """
    report = porcelain.verify(list(names), host=host, rev=rev, repo=env.repo, env=env.env)
    if as_json:
        echo_json(report)
    else:
        for c in report.mismatched:
            detail = "; ".join(c.problems)
            click.echo(f"{c.state}: {c.dataset} [{c.replica}] {c.path}" + (f" ({detail})" if detail else ""))
        skipped = len(report.replicas) - report.checked
        tail = f", {skipped} not checked (other hosts, archives)" if skipped else ""
        if report.ok:
            click.echo(f"verified {report.checked} replicas on {report.host}: all match{tail}")
        else:
            bad = report.checked - report.matched
            click.echo(f"verified {report.checked} replicas on {report.host}: "
                       f"{bad} {'does' if bad == 1 else 'do'} not match{tail}")
    if not report.ok:
        ctx.exit(1)


@click.command("fsck")
@json_option
@click.pass_context
@pass_env
def fsck_cmd(env: Env, ctx: click.Context, as_json: bool) -> None:
    """Check the repository: object hashes, manifests, and the references between them.

    Reads every object reachable from every ref and the staging area, recomputes its
    id, parses every manifest and checks that embedded objects, archives and
    time-series members they name exist. Reports only; exit status 1 when anything is
    wrong.
    """
    report = porcelain.fsck(repo=env.repo, env=env.env)
    if as_json:
        echo_json(report)
    else:
        for p in report.problems[:SHOWN_PROBLEMS]:
            click.echo(f"{p.kind}: {p.message}")
        for line in report.leftovers:
            click.echo(f"leftover: {line}")
        if len(report.problems) > SHOWN_PROBLEMS:
            click.echo(f"... and {len(report.problems) - SHOWN_PROBLEMS} more (--json lists all)")
        summary = (f"checked {report.objects} objects ({report.commits} commits, {report.manifests} manifests, "
                   f"{report.packs} packs) from {report.refs} refs")
        count = len(report.problems)
        click.echo(f"{summary}: " + ("no problems" if report.ok else f"{count} problem{'s' if count > 1 else ''}"))
    if not report.ok:
        ctx.exit(1)
