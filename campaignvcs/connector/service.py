"""The local service ADIOS2 asks for keys and SSH tunnels (``camp connect``).

It answers the requests of :mod:`campaignvcs.connector.protocol` on 127.0.0.1 (and ::1
when the system has it, so nobody else can take "localhost" on that port), one thread
per connection, so a password prompt for one host never holds up a key request or a
tunnel to another. Compared with hpc-campaign's connector:

* every request is answered only for processes of the user running the service
  (:mod:`campaignvcs.connector.peers`); another user's ``/get_key`` gets
  ``key:0,msg:cannot_find_key_id`` (what ADIOS2 treats as "no key"), other requests
  ``port:-1,msg:permission_denied``. Where the peer cannot be identified (no
  ``/proc/net/tcp``: macOS) requests are served as hpc-campaign does, with a warning at
  start-up;
* keys are held in memory only and never printed or logged (only their ids);
* ``/reverse`` (opening a port on the remote host) is not offered;
* a tunnel whose SSH connection dropped is rebuilt on the next request instead of being
  handed out dead.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko

from campaignvcs.connector import peers, protocol
from campaignvcs.connector.tunnel import (
    AUTH_METHODS,
    Endpoint,
    Forwarder,
    PortUnavailable,
    Route,
    SSHManager,
    TunnelError,
    start_remote_service,
)

Log = Callable[[str], None]

PROTOCOLS = ("ssh", "ssh_tunnel")
REQUEST_TIMEOUT = 10.0


class ServiceConfigError(Exception):
    """A hosts.yaml service entry the connector cannot use; the message says which field."""


@dataclass(frozen=True)
class ServiceDef:
    """One ``<group>: <service>:`` entry of hosts.yaml, as the connector reads it."""

    group: str
    name: str
    host: str
    protocol: str
    authentication: str
    port: int = 22
    user: str | None = None
    serverpath: str = ""
    args: str = ""
    identity_file: str | None = None
    jumphost: str | None = None
    jumpport: int = 22
    jumpuser: str | None = None
    jumpidentity_file: str | None = None
    tunneltype: str = "permanent"
    local_port: int | None = None
    proxycommand: str | None = None

    def route(self, default_proxy: str | None) -> Route:
        """How to reach this service's host over SSH."""
        target = Endpoint(self.host, self.port, self.user, self.authentication, self.identity_file)
        jump = None
        if self.jumphost:
            jump_auth = "publickey" if self.jumpidentity_file or self.authentication == "publickey" \
                else self.authentication
            jump = Endpoint(self.jumphost, self.jumpport, self.jumpuser, jump_auth, self.jumpidentity_file)
        return Route(target, jump, self.proxycommand or default_proxy)


def _text(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ServiceConfigError(f"'{key}' must be a single value")
    return str(value).strip()


def _port(entry: dict[str, Any], key: str, default: int | None) -> int | None:
    value = entry.get(key)
    if value is None:
        return default
    try:
        port = int(str(value))
    except ValueError:
        raise ServiceConfigError(f"'{key}' is not a port number: {value!r}") from None
    if not 0 < port < 65536:
        raise ServiceConfigError(f"'{key}' is not a port number: {value!r}")
    return port


def parse_service(group: str, name: str, entry: Any, need_server: bool = True) -> ServiceDef:
    """A :class:`ServiceDef` from a hosts.yaml entry; ServiceConfigError names what is missing."""
    if entry is None:
        raise ServiceConfigError(f"no service {name!r} under {group!r}")
    if not isinstance(entry, dict):
        raise ServiceConfigError(f"{group}/{name} is not a mapping of options")
    need = ["host", "protocol", "authentication"] + (["serverpath"] if need_server else [])
    missing = [k for k in need if not _text(entry, k)]
    if missing:
        raise ServiceConfigError("missing " + ", ".join(missing))
    return ServiceDef(
        group=group,
        name=name,
        host=_text(entry, "host") or "",
        protocol=_text(entry, "protocol") or "",
        authentication=_text(entry, "authentication") or "",
        port=_port(entry, "port", 22) or 22,
        user=_text(entry, "user") or None,
        serverpath=_text(entry, "serverpath") or "",
        args=_text(entry, "args") or "",
        identity_file=_text(entry, "identity_file") or None,
        jumphost=_text(entry, "jumphost") or None,
        jumpport=_port(entry, "jumpport", 22) or 22,
        jumpuser=_text(entry, "jumpuser") or None,
        jumpidentity_file=_text(entry, "jumpidentity_file") or None,
        tunneltype=_text(entry, "tunneltype") or "permanent",
        local_port=_port(entry, "local_port", None),
        proxycommand=_text(entry, "proxycommand") or None,
    )


class HostsConfig:
    """hosts.yaml as the connector uses it: groups of services, and aliases (``A: B``)."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, group: str) -> str:
        """The group an alias names (one level, as ADIOS2 and hpc-campaign resolve it)."""
        value = self.doc.get(group)
        if isinstance(value, str) and isinstance(self.doc.get(value), dict):
            return value
        return group

    def entry(self, group: str, service: str) -> Any:
        """The raw options of ``group``/``service``, or None."""
        services = self.doc.get(group)
        if not isinstance(services, dict):
            return None
        return services.get(service)


@dataclass
class Tunnel:
    """An open forward: its listener, SSH client, and the remote server's cookie and channel."""

    key: tuple[str, ...]
    forwarder: Forwarder
    client: paramiko.SSHClient
    cookie: str | None = None
    channel: paramiko.Channel | None = None

    def alive(self) -> bool:
        """True while it listens and its SSH connection is up."""
        transport = self.client.get_transport()
        return not self.forwarder.closed and transport is not None and transport.is_active()

    def close(self) -> None:
        """Stop listening and end the remote command."""
        self.forwarder.close()
        if self.channel is not None:
            with contextlib.suppress(Exception):
                self.channel.close()


class Connector:
    """Request handling, key store and tunnel registry; :meth:`listen` puts it on the network."""

    def __init__(
        self,
        hosts: dict[str, Any],
        keys: dict[str, bytes],
        ssh: SSHManager,
        log: Log | None = None,
        proxycommand: str | None = None,
        check_peers: bool = True,
    ) -> None:
        self.hosts = HostsConfig(hosts)
        self._keys = dict(keys)
        self.ssh = ssh
        self.log: Log = log or (lambda _msg: None)
        self.proxycommand = proxycommand
        self.check_peers = check_peers and peers.can_check()
        self._tunnels: dict[tuple[str, ...], Tunnel] = {}
        self._tunnel_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []
        self.requests = 0

    @property
    def key_ids(self) -> list[str]:
        """Ids of the keys being served (the keys themselves stay private)."""
        return sorted(self._keys)

    # -- requests ----------------------------------------------------------------------

    def allowed(self, sock: socket.socket) -> bool:
        """True if the process on the other end of ``sock`` may use the service."""
        return not self.check_peers or peers.same_user(sock)

    def handle(self, raw: bytes, sock: socket.socket) -> bytes:
        """The response to one request read from ``sock``."""
        with self._lock:
            self.requests += 1
        parsed = protocol.parse_request(raw)
        if parsed is None:
            self.log("request without a query string: refused (incorrect_request_format)")
            return protocol.port_error(protocol.INCORRECT_REQUEST_FORMAT)
        path, query = parsed
        if not self.allowed(sock):
            uid = peers.peer_uid(sock)
            who = "an unknown user" if uid is None else f"uid {uid}"
            self.log(f"{path}: refused a request from {who} (not this user)")
            if path == "/get_key":
                return protocol.key_error(protocol.CANNOT_FIND_KEY_ID)
            return protocol.port_error(protocol.PERMISSION_DENIED)
        if path == "/get_key":
            return self.get_key(query)
        if path == "/run_service":
            return self.run_service(query)
        if path == "/connect_port":
            return self.connect_port(query)
        self.log(f"{path}: unknown request (incorrect_request_format)")
        return protocol.port_error(protocol.INCORRECT_REQUEST_FORMAT)

    def get_key(self, query: dict[str, str]) -> bytes:
        """``/get_key?id=<key id>``."""
        key_id = query.get("id")
        if not key_id:
            return protocol.key_error(protocol.MISSING_KEY_ID)
        key = self._keys.get(key_id)
        if key is None:
            self.log(f"/get_key {key_id}: no such key loaded")
            return protocol.key_error(protocol.CANNOT_FIND_KEY_ID)
        self.log(f"/get_key {key_id}: sent")
        return protocol.key_reply(key.hex())

    def run_service(self, query: dict[str, str]) -> bytes:
        """``/run_service?group=<host>&service=<name>[&local_port=N]``: start the server, open a tunnel."""
        if "group" not in query:
            return protocol.port_error(protocol.MISSING_GROUP)
        if "service" not in query:
            return protocol.port_error(protocol.MISSING_SERVICE)
        group = self.hosts.resolve(query["group"])
        name = query["service"]
        what = f"/run_service {group}/{name}"
        key = ("service", group, name)
        with self._tunnel_lock(key):
            existing = self._live_tunnel(key)
            if existing is not None:
                self.log(f"{what}: tunnel already open on 127.0.0.1:{existing.forwarder.port}")
                return self._service_reply(existing)
            try:
                sdef = parse_service(group, name, self.hosts.entry(group, name))
            except ServiceConfigError as exc:
                self.log(f"{what}: incomplete service definition in hosts.yaml ({exc})")
                return protocol.port_error(protocol.INCOMPLETE_SERVICE_DEFINITION)
            refused = self._check_definition(sdef, what)
            if refused is not None:
                return refused
            requested = sdef.local_port
            if query.get("local_port", "").lstrip("-").isdigit() and int(query["local_port"]) > 0:
                requested = int(query["local_port"])
            if requested is not None and not _port_free(requested):
                self.log(f"{what}: local port {requested} is not available")
                return protocol.port_error(protocol.REQUESTED_PORT_NOT_AVAILABLE, requested)
            try:
                client = self.ssh.client(sdef.route(self.proxycommand))
            except TunnelError as exc:
                self.log(f"{what}: {exc}")
                return protocol.port_error(protocol.CANNOT_CONNECT_TO_REMOTE_SERVER)
            command = sdef.serverpath + (" " + sdef.args if sdef.args else "")
            try:
                data, channel = start_remote_service(client, command, protocol.parse_service_line)
            except TunnelError as exc:
                self.log(f"{what}: {exc}")
                return protocol.port_error(protocol.SERVICE_NOT_AVAILABLE)
            if data is None:
                channel.close()
                self.log(f"{what}: {command!r} printed no 'port:...;msg:...' line")
                return protocol.port_error(protocol.SERVICE_NOT_AVAILABLE)
            try:
                remote_port = int(data.get("port", "-1"))
            except ValueError:
                remote_port = -1
            if remote_port < 0 or remote_port > 65535:
                channel.close()
                self.log(f"{what}: the remote server reported no port ({data.get('msg', '')})")
                return protocol.port_error(protocol.CANNOT_FIND_SERVICE_PORT)
            tunnel, error = self._open_tunnel(key, client, remote_port, requested, sdef.tunneltype, what,
                                              f"{sdef.host}:{sdef.port}")
            if tunnel is None:
                channel.close()
                return error
            tunnel.cookie = data.get("cookie")
            tunnel.channel = channel
            return self._service_reply(tunnel)

    def connect_port(self, query: dict[str, str]) -> bytes:
        """``/connect_port?dhost=&dport=`` plus ``group=&service=`` or ``rhost=[&ruser=][&jhost=&juser=]``."""
        if "dhost" not in query:
            return protocol.port_error(protocol.MISSING_DESTINATION_HOST)
        if "dport" not in query:
            return protocol.port_error(protocol.MISSING_DESTINATION_PORT)
        try:
            dport = int(query["dport"])
            if not 0 < dport < 65536:
                raise ValueError
        except ValueError:
            return protocol.port_error(protocol.MISSING_DESTINATION_PORT)
        dhost = query["dhost"]
        if "group" in query or "service" in query:
            if "service" not in query:
                return protocol.port_error(protocol.MISSING_SERVICE)
            if "group" not in query:
                return protocol.port_error(protocol.MISSING_GROUP)
            group = self.hosts.resolve(query["group"])
            try:
                sdef = parse_service(group, query["service"], self.hosts.entry(group, query["service"]),
                                     need_server=False)
            except ServiceConfigError as exc:
                self.log(f"/connect_port {group}/{query['service']}: {exc}")
                return protocol.port_error(protocol.NO_MATCHING_SERVICE)
            refused = self._check_definition(sdef, f"/connect_port {group}/{sdef.name}")
            if refused is not None:
                return refused
            route = sdef.route(self.proxycommand)
            tunneltype = sdef.tunneltype
        else:
            if "rhost" not in query:
                return protocol.port_error(protocol.MISSING_REMOTE_HOST)
            jump = None
            if query.get("jhost"):
                jump = Endpoint(query["jhost"], 22, query.get("juser"), "password")
            target = Endpoint(query["rhost"], 22, query.get("ruser"), "password")
            route = Route(target, jump, self.proxycommand)
            tunneltype = "permanent"
        what = f"/connect_port {route.target.host} -> {dhost}:{dport}"
        key = ("port", repr(route), dhost, str(dport))
        with self._tunnel_lock(key):
            existing = self._live_tunnel(key)
            if existing is not None:
                return protocol.response(port=existing.forwarder.port, msg=protocol.NO_ERROR)
            try:
                client = self.ssh.client(route)
            except TunnelError as exc:
                self.log(f"{what}: {exc}")
                return protocol.port_error(protocol.CANNOT_CONNECT_TO_REMOTE_HOST_PORT)
            tunnel, error = self._open_tunnel(key, client, dport, None, tunneltype, what,
                                              f"{route.target.host}:{route.target.port}", dest_host=dhost)
            if tunnel is None:
                return error
            return protocol.response(port=tunnel.forwarder.port, msg=protocol.NO_ERROR)

    def _check_definition(self, sdef: ServiceDef, what: str) -> bytes | None:
        if sdef.protocol not in PROTOCOLS:
            self.log(f"{what}: protocol {sdef.protocol!r} is not supported (use ssh)")
            return protocol.port_error(protocol.UNSUPPORTED_PROTOCOL)
        if sdef.authentication not in AUTH_METHODS:
            self.log(f"{what}: authentication {sdef.authentication!r} is not supported "
                     f"(use {', '.join(AUTH_METHODS)})")
            return protocol.port_error(protocol.UNSUPPORTED_AUTHENTICATION)
        return None

    def _open_tunnel(
        self,
        key: tuple[str, ...],
        client: paramiko.SSHClient,
        remote_port: int,
        requested: int | None,
        tunneltype: str,
        what: str,
        via: str,
        dest_host: str = "127.0.0.1",
    ) -> tuple[Tunnel | None, bytes]:
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            self.log(f"{what}: SSH connection lost")
            return None, protocol.port_error(protocol.CANNOT_START_FORWARD_SERVER)
        forwarder = Forwarder(transport, (dest_host, remote_port), self.allowed, self.log,
                              transient="transient" in tunneltype, on_close=lambda f: self._forget(key, f))
        try:
            port = forwarder.listen(requested)
        except PortUnavailable as exc:
            self.log(f"{what}: {exc}")
            return None, protocol.port_error(protocol.REQUESTED_PORT_NOT_AVAILABLE, requested or -1)
        except TunnelError as exc:
            self.log(f"{what}: {exc}")
            return None, protocol.port_error(protocol.CANNOT_FIND_LOCAL_PORT)
        tunnel = Tunnel(key, forwarder, client)
        with self._lock:
            self._tunnels[key] = tunnel
        self.log(f"{what}: tunnel 127.0.0.1:{port} -> {dest_host}:{remote_port} on {via}")
        return tunnel, b""

    def _service_reply(self, tunnel: Tunnel) -> bytes:
        if tunnel.cookie is not None:
            return protocol.response(port=tunnel.forwarder.port, cookie=tunnel.cookie, msg=protocol.NO_ERROR)
        return protocol.response(port=tunnel.forwarder.port, msg=protocol.NO_ERROR)

    def _tunnel_lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._lock:
            return self._tunnel_locks.setdefault(key, threading.Lock())

    def _live_tunnel(self, key: tuple[str, ...]) -> Tunnel | None:
        with self._lock:
            tunnel = self._tunnels.get(key)
        if tunnel is None:
            return None
        if tunnel.alive():
            return tunnel
        tunnel.close()
        return None

    def _forget(self, key: tuple[str, ...], forwarder: Forwarder) -> None:
        with self._lock:
            tunnel = self._tunnels.get(key)
            if tunnel is not None and tunnel.forwarder is forwarder:
                del self._tunnels[key]
        if tunnel is not None and tunnel.forwarder is forwarder and tunnel.channel is not None:
            with contextlib.suppress(Exception):
                tunnel.channel.close()

    @property
    def tunnels(self) -> list[Tunnel]:
        """The open tunnels."""
        with self._lock:
            return list(self._tunnels.values())

    # -- network -----------------------------------------------------------------------

    def listen(self, port: int) -> list[str]:
        """Serve on 127.0.0.1:``port`` (and [::1]:``port`` if possible); returns the addresses.

        OSError if 127.0.0.1:``port`` cannot be bound.
        """
        connector = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(REQUEST_TIMEOUT)
                try:
                    raw = sock.recv(protocol.MAX_REQUEST)
                except OSError:
                    return
                if not raw:
                    return
                reply = connector.handle(raw, sock)
                with contextlib.suppress(OSError):
                    sock.sendall(reply)

        v4 = _Server(("127.0.0.1", port), Handler)
        self._servers.append(v4)
        bound = [f"127.0.0.1:{v4.server_address[1]}"]
        if port and socket.has_ipv6:
            try:
                v6 = _Server6(("::1", port), Handler)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:  # someone else holds localhost on IPv6
                    self.log(f"warning: [::1]:{port} is taken by another program; clients that resolve "
                             "localhost to ::1 will reach it instead of camp connect")
            else:
                self._servers.append(v6)
                bound.append(f"[::1]:{port}")
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return bound

    def shutdown(self) -> None:
        """Stop serving, close every tunnel and SSH connection."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        with self._lock:
            tunnels = list(self._tunnels.values())
            self._tunnels.clear()
        for tunnel in tunnels:
            tunnel.close()
        self.ssh.close()


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True

