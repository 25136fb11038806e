"""camp connect: the local connector ADIOS2 asks for keys and SSH tunnels."""

from __future__ import annotations

import datetime
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from campaignvcs import porcelain
from campaignvcs.cli import Env, pass_env

if TYPE_CHECKING:
    from campaignvcs.porcelain.connect import Ready


def _log(message: str) -> None:
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    click.echo(f"[{stamp}] {message}", err=True)


def _ask(text: str, hidden: bool) -> str | None:
    """A terminal prompt from any thread; None if the terminal is gone."""
    try:
        answer: str = click.prompt(text.rstrip(": "), hide_input=hidden, err=True, default="",
                                   show_default=False)
    except (click.Abort, EOFError):
        return None
    return answer


def _ask_key_password(text: str, confirm: bool) -> str:
    return _ask(text, True) or ""


def _check(env: Env, hosts: str | None, accept_new_host_keys: bool, proxy_command: str | None,
           names: tuple[str, ...]) -> None:
    from campaignvcs.errors import CampError
    from campaignvcs.porcelain.connect import check_hosts

    interactive = sys.stdin.isatty()
    results = check_hosts(
        names, hosts=hosts, accept_new_host_keys=accept_new_host_keys, proxy_command=proxy_command,
        prompt=_ask if interactive else None, log=_log, env=env.env)
    for r in results:
        if r.ok:
            click.echo(f"{r.group}/{r.service}: ok: {r.endpoint}: {r.detail}")
        else:
            click.echo(f"{r.group}/{r.service}: FAILED: {r.detail}")
    failed = [r for r in results if not r.ok]
    if failed:
        raise CampError(f"{len(failed)} of {len(results)} ssh entries failed the check: "
                        + ", ".join(f"{r.group}/{r.service}" for r in failed))
    click.echo(f"camp connect --check: all {len(results)} ssh entries ok")


def _ready(ready: Ready) -> None:
    click.echo(f"camp connect: listening on {', '.join(ready.addresses)}")
    for w in ready.warnings:
        click.echo(f"camp connect: warning: {w}", err=True)
    served = [k for k in ready.keys if k.loaded]
    click.echo(f"camp connect: {ready.services} services from {ready.hosts_file}; "
               f"{len(served)} key{'s' if len(served) != 1 else ''} loaded"
               + (f" ({', '.join(k.id for k in served)})" if served else ""))
    if not ready.peer_check:
        click.echo("camp connect: warning: requests are not limited to your own processes", err=True)
    click.echo("camp connect: press Ctrl-C to stop")
    sys.stdout.flush()


@click.command("connect")
@click.option("--port", type=click.IntRange(0, 65535), default=30000, show_default=True,
              help="Port on localhost (ADIOS2 asks 30000; 0 picks a free one).")
@click.option("--hosts", metavar="FILE",
              help="hosts.yaml to read (default ~/.config/hpc-campaign/hosts.yaml).")
@click.option("--keys", "keys_dir", metavar="DIR",
              help="Folder of key files to serve (default ~/.config/hpc-campaign/keys).")
@click.option("--accept-new-host-keys", is_flag=True,
              help="Accept SSH host keys seen for the first time and record them in "
                   "~/.config/hpc-campaign/known_hosts (default: refuse unknown hosts).")
@click.option("--proxy-command", metavar="CMD",
              help="ProxyCommand for hosts without their own 'proxycommand:' (%h host, %p port, %r user).")
@click.option("--check", is_flag=True,
              help="Instead of serving: log in to every ssh host of hosts.yaml (or the HOSTs given), start "
                   "its remote server, report per host; exit status 1 if any failed.")
@click.argument("check_hosts", metavar="[HOST]...", nargs=-1)
@pass_env
def connect_cmd(env: Env, port: int, hosts: str | None, keys_dir: str | None, accept_new_host_keys: bool,
                proxy_command: str | None, check: bool, check_hosts: tuple[str, ...]) -> None:
    """Serve keys and SSH tunnels to ADIOS2 on localhost until Ctrl-C.

    ADIOS2 asks this service for the key of an encrypted replica (/get_key) and for a
    tunnel to the adios2_remote_server of a host in hosts.yaml (/run_service). Only
    processes of your own user are served; tunnels listen on 127.0.0.1 only.

    With --check [HOST]...: try each ssh entry of hosts.yaml now, before a reader needs it.
    """
    if check_hosts and not check:
        raise click.UsageError("HOST names are for --check (camp connect --check HOST...)")
    if check:
        _check(env, hosts, accept_new_host_keys, proxy_command, check_hosts)
        return
    stop = threading.Event()
    ready = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()
        if not ready.is_set():
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    interactive = sys.stdin.isatty()

    def on_ready(r: Ready) -> None:
        ready.set()
        _ready(r)

    try:
        result = porcelain.connect(  # type: ignore[operator]  # the function, loaded lazily (PEP 562)
            port=port,
            hosts=hosts,
            keys_dir=keys_dir,
            accept_new_host_keys=accept_new_host_keys,
            proxy_command=proxy_command,
            stop=stop,
            ask_password=_ask_key_password if interactive else None,
            prompt=_ask if interactive else None,
            log=_log,
            on_ready=on_ready,
            env=env.env,
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    noun = "tunnel" if result.tunnels_closed == 1 else "tunnels"
    click.echo(f"camp connect: stopped after {result.requests} requests "
               f"({result.tunnels_closed} {noun} closed)")
