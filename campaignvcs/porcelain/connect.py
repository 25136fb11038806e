"""connect: run the local connector ADIOS2 uses for keys and SSH tunnels until told to stop."""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from campaignvcs import keys
from campaignvcs.config import config_dir, expand_user, load_hosts_config, load_user_config
from campaignvcs.errors import BadInput, CampError
from campaignvcs.porcelain.common import environ
from campaignvcs.porcelain.keys import PASSWORD_VAR, AskPassword

DEFAULT_PORT = 30000
"""ADIOS2 2.12 asks localhost:30000, always."""

KEY_ATTEMPTS = 3

Log = Callable[[str], None]
Prompt = Callable[[str, bool], str | None]


@dataclass(frozen=True)
class LoadedKey:
    """A key file found in the keys folder and whether it is served."""

    path: str
    id: str
    note: str
    loaded: bool
    reason: str = ""


@dataclass(frozen=True)
class Ready:
    """What the connector serves, reported once it listens."""

    addresses: list[str]
    port: int
    hosts_file: str
    services: int
    keys: list[LoadedKey]
    known_hosts: str
    peer_check: bool
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HostCheck:
    """``camp connect --check``: one ssh entry of hosts.yaml, logged in to and its server started."""

    group: str
    service: str
    ok: bool
    endpoint: str
    """How it was reached (``ssh user@host:port [through ...]``); empty if never dialled."""
    detail: str
    """``remote server reported port N``, or why it failed (one line)."""


@dataclass(frozen=True)
class Stopped:
    """How a connector run ended."""

    requests: int
    tunnels_closed: int


def connect(
    port: int = DEFAULT_PORT,
    hosts: str | None = None,
    keys_dir: str | None = None,
    accept_new_host_keys: bool = False,
    proxy_command: str | None = None,
    stop: threading.Event | None = None,
    ask_password: AskPassword | None = None,
    prompt: Prompt | None = None,
    log: Log | None = None,
    on_ready: Callable[[Ready], None] | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Stopped:
    """Serve ``/get_key``, ``/run_service`` and ``/connect_port`` on localhost:``port`` until ``stop`` is set.

    ``hosts`` is the hosts.yaml ADIOS2 reads (default ``~/.config/hpc-campaign/hosts.yaml``,
    only read, never written); every key file in ``keys_dir`` (default
    ``~/.config/hpc-campaign/keys``) is loaded at start, asking ``ask_password`` (or
    ``$CAMP_KEY_PASSWORD``) for protected ones. ``prompt`` asks SSH passwords and
    passcodes on the terminal (None: no terminal, such logins fail). ``log`` gets one
    line per event; keys are never in it.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    say: Log = log or (lambda _msg: None)
    if not 0 <= port <= 65535:
        raise BadInput(f"invalid port: {port}")
    hosts_path = _hosts_path(hosts, cwd, env)
    doc = load_hosts_config(env, hosts_path)
    warnings = []
    if "version" in doc:
        warnings.append(f"{hosts_path} has a top-level 'version:' key: ADIOS2 refuses to open any campaign "
                        "while it is there (remove it; camp does not need it)")
    folder = _keys_path(keys_dir, cwd, env)
    served, loaded = load_keys(folder, ask_password, env, say)

    from campaignvcs.connector import peers
    from campaignvcs.connector.service import Connector

    if not peers.can_check():
        warnings.append("cannot tell which user a local client runs as on this system: keys and tunnels are "
                        "served to every local process")
    ssh, record_to = _ssh_manager(env, accept_new_host_keys, prompt, say)
    store = load_user_config(env).campaign_store
    connector = Connector(doc, served, ssh, log=say, proxycommand=proxy_command or None,
                          key_help=lambda key_id: key_advice(key_id, folder, loaded, store))
    try:
        addresses = connector.listen(port)
    except OSError as exc:
        ssh.close()
        if exc.errno == errno.EADDRINUSE:
            raise CampError(f"port {port} on 127.0.0.1 is in use (is another connector running?)") from None
        raise CampError(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})") from None
    try:
        bound_port = int(addresses[0].rsplit(":", 1)[1])
        services = sum(len(v) for v in doc.values() if isinstance(v, dict))
        if on_ready is not None:
            on_ready(Ready(addresses, bound_port, hosts_path, services, loaded, record_to,
                           connector.check_peers, warnings))
        stop = stop or threading.Event()
        while not stop.wait(0.5):
            pass
    finally:
        tunnels = len(connector.tunnels)
        connector.shutdown()
    return Stopped(connector.requests, tunnels)


def check_hosts(
    names: list[str] | tuple[str, ...] = (),
    hosts: str | None = None,
    accept_new_host_keys: bool = False,
    proxy_command: str | None = None,
    prompt: Prompt | None = None,
    log: Log | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[HostCheck]:
    """Log in to every ssh entry of hosts.yaml (of the hosts ``names`` only, if given) and start its server.

    What a reader's first ``/run_service`` would do, done now, one entry after another,
    with the same host key checks and prompts; the SSH connections are closed afterwards
    (a server started with ``-background`` keeps running, as after a read).
    """
    from campaignvcs.connector.hosts import HostsConfig, ServiceConfigError, parse_service
    from campaignvcs.connector.launch import LaunchError, launch

    env = environ(env)
    say: Log = log or (lambda _msg: None)
    hosts_path = _hosts_path(hosts, cwd or os.getcwd(), env)
    doc = load_hosts_config(env, hosts_path)
    config = HostsConfig(doc)
    unknown = [n for n in names if not isinstance(doc.get(config.resolve(n)), dict)]
    if unknown:
        raise BadInput(f"no host {unknown[0]!r} with services in {hosts_path}")
    entries = config.ssh_services(list(names) or None)
    if not entries:
        raise BadInput(f"no ssh entries in {hosts_path}")
    ssh, _ = _ssh_manager(env, accept_new_host_keys, prompt, say)
    results = []
    try:
        for group, name in entries:
            try:
                sdef = parse_service(group, name, config.entry(group, name))
            except ServiceConfigError as exc:
                results.append(HostCheck(group, name, False, "", f"incomplete service definition ({exc})"))
                continue
            endpoint = ssh.describe(sdef.route(proxy_command or None))
            try:
                server = launch(ssh, sdef, proxy_command or None)
            except LaunchError as exc:
                results.append(HostCheck(group, name, False, endpoint, str(exc)))
                continue
            server.channel.close()
            results.append(HostCheck(group, name, True, endpoint, f"remote server reported port {server.port}"))
    finally:
        ssh.close()
    return results


def _ssh_manager(env: Mapping[str, str], accept_new: bool, prompt: Prompt | None, log: Log) -> tuple:
    from campaignvcs.connector.tunnel import SSHManager

    home = env.get("HOME") or os.path.expanduser("~")
    record_to = os.path.join(config_dir(env), "known_hosts")
    known = [os.path.join(home, ".ssh", "known_hosts"), "/etc/ssh/ssh_known_hosts", record_to]
    return SSHManager(known, record_to, accept_new=accept_new, prompt=prompt, log=log, home=home), record_to


MAX_ARCHIVES_SCANNED = 2000
"""At most this many .aca files of the campaign store are looked into for a key id."""


def key_advice(key_id: str, folder: str, loaded: list[LoadedKey], store: str) -> str:
    """The rest of the log line for a key the connector does not hold: where it is used, how to load it."""
    skipped = [k for k in loaded if k.id == key_id and not k.loaded]
    if skipped:
        return (f"; its key file {skipped[0].path} was skipped at start-up ({skipped[0].reason}): "
                "restart camp connect to unlock it")
    archives = archives_using_key(store, key_id) if store else []
    used = f" (used by {', '.join(archives)})" if archives else ""
    return (f"{used}; put its key file in {folder} and restart camp connect "
            "(camp key info FILE shows the id of a key file)")


def archives_using_key(store: str, key_id: str, limit: int = 3) -> list[str]:
    """Archives below ``store`` whose ``key`` table lists ``key_id`` (at most ``limit``)."""
    found: list[str] = []
    seen = 0
    for top, dirs, files in os.walk(store):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".aca"):
                continue
            seen += 1
            if seen > MAX_ARCHIVES_SCANNED:
                return found
            path = os.path.join(top, name)
            try:
                con = sqlite3.connect("file:" + quote(path, safe="/") + "?mode=ro", uri=True, timeout=1)
                try:
                    hit = con.execute("select 1 from key where keyid = ? limit 1", (key_id,)).fetchone()
                finally:
                    con.close()
            except sqlite3.Error:
                continue
            if hit:
                found.append(path)
                if len(found) >= limit:
                    return found
    return found


def _hosts_path(hosts: str | None, cwd: str, env: Mapping[str, str]) -> str:
    if hosts is None:
        return os.path.join(config_dir(env), "hosts.yaml")
    path = os.path.join(cwd, expand_user(hosts, env))
    if not os.path.isfile(path):
        raise BadInput(f"hosts file {hosts}: no such file")
    return path


def _keys_path(keys_dir: str | None, cwd: str, env: Mapping[str, str]) -> str:
    if keys_dir is None:
        return os.path.join(config_dir(env), "keys")
    path = os.path.join(cwd, expand_user(keys_dir, env))
    if not os.path.isdir(path):
        raise BadInput(f"keys folder {keys_dir}: no such directory")
    return path


def load_keys(
    folder: str, ask_password: AskPassword | None, env: Mapping[str, str], log: Log
) -> tuple[dict[str, bytes], list[LoadedKey]]:
    """Every key file in ``folder`` (hidden files skipped), unlocked: ``{id: raw key}`` and a report.

    A file that is not a key, or whose password is not given, is skipped with a reason;
    one bad key never stops the others.
    """
    served: dict[str, bytes] = {}
    report: list[LoadedKey] = []
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return served, report
    except OSError as exc:
        raise CampError(f"keys folder {folder}: cannot read ({exc.strerror})") from None
    for name in names:
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            kf = keys.read_keyfile(path)
        except keys.KeyFileError as exc:
            report.append(LoadedKey(path, "", "", False, str(exc)))
            log(f"skipped {path}: {exc}")
            continue
        if stat.S_IMODE(os.stat(path).st_mode) & 0o077:
            log(f"warning: key file {path} is readable by other users (chmod 600 {path})")
        raw, reason = _unlock(path, kf, ask_password, env, log)
        if raw is None:
            report.append(LoadedKey(path, kf.id, kf.note, False, reason))
            log(f"skipped key {kf.id} ({path}): {reason}")
            continue
        if kf.id in served and served[kf.id] != raw:
            reason = "another key file has the same id and a different key"
            report.append(LoadedKey(path, kf.id, kf.note, False, reason))
            log(f"skipped key {kf.id} ({path}): {reason}")
            continue
        served[kf.id] = raw
        report.append(LoadedKey(path, kf.id, kf.note, True))
    return served, report


def _unlock(
    path: str, kf: keys.KeyFile, ask: AskPassword | None, env: Mapping[str, str], log: Log
) -> tuple[bytes | None, str]:
    if not kf.protected:
        return kf.key, ""
    given = env.get(PASSWORD_VAR)
    if given:
        try:
            return keys.unlock(kf, given, where=path), ""
        except keys.WrongPassword:
            return None, f"{PASSWORD_VAR} does not open it"
    if ask is None:
        return None, f"password-protected, and no terminal to ask on (set {PASSWORD_VAR})"
    for _ in range(KEY_ATTEMPTS):
        try:
            password = ask(f"Password for key {kf.id} ({kf.note or os.path.basename(path)})", False)
        except (EOFError, KeyboardInterrupt):
            return None, "no password given"
        if not password:
            return None, "no password given"
        try:
            return keys.unlock(kf, password, where=path), ""
        except keys.WrongPassword:
            log(f"wrong password for key {kf.id} ({path})")
    return None, "wrong password"
