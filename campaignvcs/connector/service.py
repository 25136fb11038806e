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
* keys are held in memory only and never printed or logged (only their ids); a key not
  held is answered with a message ADIOS2 shows the reader, and logged with the archives
  that use it and how to load it;
* the ``port:``, ``user``, ``identity_file`` and jump host of an entry are honoured, and
  the log names the endpoint really dialled; a failure is logged once, not at every retry;
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko

from campaignvcs.connector import peers, protocol
from campaignvcs.connector.hosts import HostsConfig, ServiceConfigError, parse_service
from campaignvcs.connector.launch import LaunchError, check_definition, launch
from campaignvcs.connector.tunnel import (
    Endpoint,
    Forwarder,
    PortUnavailable,
    Route,
    SSHManager,
    TunnelError,
)

Log = Callable[[str], None]

REQUEST_TIMEOUT = 10.0
REPEAT_QUIET = 30.0
"""Seconds during which the same failure of the same request is not logged again (ADIOS2 retries)."""

KeyHelp = Callable[[str], str]
"""``key id -> advice`` for the log line of a key not held (which archive uses it, how to load it)."""


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
        key_help: KeyHelp | None = None,
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
        self.key_help = key_help
        self._failures: dict[str, tuple[str, float]] = {}

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
            advice = self.key_help(key_id) if self.key_help is not None else ""
            self._fail(f"/get_key {key_id}", f"this key is not loaded{advice}")
            # ADIOS2 2.12.1 answers cannot_find_key_id by failing the whole open with
            # "basic_string: construction from null is not valid"; any other message it shows.
            return protocol.key_error(protocol.key_not_loaded(key_id))
        self.log(f"/get_key {key_id}: sent")
        return protocol.key_reply(key.hex())

    def _fail(self, what: str, message: str) -> None:
        """Log ``what: message`` unless the same just happened (ADIOS2 asks again at once)."""
        now = time.monotonic()
        with self._lock:
            last = self._failures.get(what)
            self._failures[what] = (message, now)
        if last is None or last[0] != message or now - last[1] > REPEAT_QUIET:
            self.log(f"{what}: {message}")

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
                self._fail(what, f"incomplete service definition in hosts.yaml ({exc})")
                return protocol.port_error(protocol.INCOMPLETE_SERVICE_DEFINITION)
            refused = check_definition(sdef)
            if refused is not None:
                self._fail(what, str(refused))
                return protocol.port_error(refused.reply)
            requested = sdef.local_port
            if query.get("local_port", "").lstrip("-").isdigit() and int(query["local_port"]) > 0:
                requested = int(query["local_port"])
            if requested is not None and not _port_free(requested):
                self._fail(what, f"local port {requested} is not available")
                return protocol.port_error(protocol.REQUESTED_PORT_NOT_AVAILABLE, requested)
            try:
                server = launch(self.ssh, sdef, self.proxycommand)
            except LaunchError as exc:
                self._fail(what, str(exc))
                return protocol.port_error(exc.reply)
            tunnel, error = self._open_tunnel(key, server.client, server.port, requested, sdef.tunneltype, what,
                                              server.endpoint)
            if tunnel is None:
                server.channel.close()
                return error
            tunnel.cookie = server.cookie
            tunnel.channel = server.channel
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
            refused = check_definition(sdef)
            if refused is not None:
                self._fail(f"/connect_port {group}/{sdef.name}", str(refused))
                return protocol.port_error(refused.reply)
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
                self._fail(what, str(exc))
                return protocol.port_error(protocol.CANNOT_CONNECT_TO_REMOTE_HOST_PORT)
            tunnel, error = self._open_tunnel(key, client, dport, None, tunneltype, what,
                                              self.ssh.describe(route), dest_host=dhost)
            if tunnel is None:
                return error
            return protocol.response(port=tunnel.forwarder.port, msg=protocol.NO_ERROR)

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
        self.log(f"{what}: tunnel 127.0.0.1:{port} -> {dest_host}:{remote_port} via {via}")
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

