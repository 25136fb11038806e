"""Start the ``adios2_remote_server`` of one hosts.yaml entry over SSH.

Used by the service for ``/run_service`` (then a tunnel is opened to the port the server
reports) and by ``camp connect --check`` (log in and start it before any reader needs it).
A failure is a :class:`LaunchError`: one line for the log, naming the endpoint really
dialled, and the protocol message ADIOS2 gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import paramiko

from campaignvcs.connector import protocol
from campaignvcs.connector.hosts import PROTOCOLS, ServiceDef
from campaignvcs.connector.tunnel import AUTH_METHODS, SSHManager, TunnelError, start_remote_service


class LaunchError(Exception):
    """The server could not be started; ``str()`` is the log line, ``reply`` the protocol message."""

    def __init__(self, message: str, reply: str) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass
class Launched:
    """A remote server that reported its port, and the SSH connection it runs on."""

    client: paramiko.SSHClient
    channel: paramiko.Channel
    port: int
    cookie: str | None
    endpoint: str
    """How it was reached: ``ssh user@host:port [through ...]``."""


def check_definition(sdef: ServiceDef) -> LaunchError | None:
    """Why the connector cannot use this entry at all (protocol, authentication), or None."""
    if sdef.protocol not in PROTOCOLS:
        return LaunchError(f"protocol {sdef.protocol!r} is not supported (use ssh)", protocol.UNSUPPORTED_PROTOCOL)
    if sdef.authentication not in AUTH_METHODS:
        return LaunchError(f"authentication {sdef.authentication!r} is not supported "
                           f"(use {', '.join(AUTH_METHODS)})", protocol.UNSUPPORTED_AUTHENTICATION)
    return None


def launch(ssh: SSHManager, sdef: ServiceDef, proxycommand: str | None) -> Launched:
    """Log in to the entry's host (an open connection is reused) and start ``serverpath args``."""
    refused = check_definition(sdef)
    if refused is not None:
        raise refused
    route = sdef.route(proxycommand)
    endpoint = ssh.describe(route)
    try:
        client = ssh.client(route)
    except TunnelError as exc:
        raise LaunchError(str(exc), protocol.CANNOT_CONNECT_TO_REMOTE_SERVER) from None
    command = sdef.serverpath + (" " + sdef.args if sdef.args else "")
    try:
        data, channel = start_remote_service(client, command, protocol.parse_service_line)
    except TunnelError as exc:
        raise LaunchError(f"{endpoint}: {exc}", protocol.SERVICE_NOT_AVAILABLE) from None
    try:
        port = int(data.get("port", "-1"))
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        channel.close()
        raise LaunchError(f"{endpoint}: {command!r} reported no port ({data.get('msg', '')})",
                          protocol.CANNOT_FIND_SERVICE_PORT)
    return Launched(client, channel, port, data.get("cookie"), endpoint)
