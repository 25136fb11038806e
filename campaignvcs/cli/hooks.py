"""camp hooks list / install / uninstall."""

from __future__ import annotations

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env
from campaignvcs.cli.output import echo_json, json_option


@click.group("hooks")
def hooks_group() -> None:
    """Manage the programs camp runs before and after add, commit, build, push and pull.

    Hooks live in .git/camp/hooks/<hook name> (pre-add, pre-commit, post-commit,
    pre-build, post-build, pre-push, post-pull). A failing pre-hook stops the
    operation; a failing post-hook is reported as a warning.
    """


@hooks_group.command("list")
@json_option
@pass_env
def list_cmd(env: Env, as_json: bool) -> None:
    """Show the installed hooks and the ready-made ones camp ships."""
    listing = porcelain.hooks_list(repo=env.repo, env=env.env)
    if as_json:
        echo_json(listing)
        return
    if not listing.installed:
        click.echo(f"no hooks installed in {listing.folder}")
    for h in listing.installed:
        what = f"ready hook {h.ready}" if h.ready else "own script"
        click.echo(f"{h.name:<12} {what}" + ("" if h.executable else "  (NOT executable: it cannot run)"))
    if listing.ready:
        click.echo("ready-made hooks (camp hooks install NAME):")
        for r in listing.ready:
            click.echo(f"  {r.name:<20} {r.hook or 'job-script helper (not installed as a hook)'}")


@hooks_group.command("install")
@click.argument("source", metavar="NAME|PATH")
@click.option("--as", "as_name", metavar="HOOKNAME", help="Install as this hook (default: what the hook declares).")
@click.option("--force", is_flag=True, help="Replace a hook already installed under that name.")
@pass_env
def install_cmd(env: Env, source: str, as_name: str | None, force: bool) -> None:
    """Install a ready hook (by NAME) or a script (by PATH) into this campaign, as a copy."""
    done = porcelain.hooks_install(source, as_name=as_name, force=force, repo=env.repo, env=env.env)
    click.echo(f"{'replaced' if done.replaced else 'installed'} {done.name} hook: {done.path}")


@hooks_group.command("uninstall")
@click.argument("name")
@pass_env
def uninstall_cmd(env: Env, name: str) -> None:
    """Remove the hook NAME (a hook name such as post-commit, or a ready hook's name)."""
    path = porcelain.hooks_uninstall(name, repo=env.repo, env=env.env)
    click.echo(f"removed {path}")
