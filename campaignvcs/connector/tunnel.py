"""SSH connections, remote service launch and local port forwarding (paramiko).

What this does differently from hpc-campaign's connector, on purpose:

* host keys are checked: ``~/.ssh/known_hosts`` and camp's own known_hosts are read; an
  unknown key is refused unless the user opted in (``accept_new``), and then recorded in
  camp's file; a changed key is always refused;
* forwarded ports listen on 127.0.0.1 only, and each connection is checked (``allow``)
  before a channel is opened, so other users of the machine cannot ride the tunnel;
* the ``port:`` of a host entry is the SSH port (hpc-campaign always uses 22);
* passwords and passcodes are asked through a ``prompt`` callback (a terminal prompt)
  one at a time, never through a window, and never block other requests;
* a ProxyCommand is split into words first and ``%h``/``%p``/``%r`` are substituted inside
  single words, so a host name can never add words or reach a shell (paramiko runs the
  command without a shell);
* the forwarded destination is ``127.0.0.1`` on the SSH server: the remote server runs on
  the node we logged into, which a round-robin login host name need not resolve to.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import pwd
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paramiko

Prompt = Callable[[str, bool], str | None]
"""``(text, hidden) -> answer``, or None when there is no terminal to ask on."""

Log = Callable[[str], None]

AUTH_METHODS = ("publickey", "password", "passcode")
PASSWORD_ATTEMPTS = 3
CONNECT_TIMEOUT = 20.0
SERVICE_TIMEOUT = 60.0
FIRST_LOCAL_PORT = 28000
LOCAL_PORT_TRIES = 2000
BUFFER = 65536


class TunnelError(Exception):
    """An SSH connection or tunnel that could not be made; the message says why (for the log)."""


class UnknownHostKey(paramiko.SSHException):
    """The SSH server's host key is in no known_hosts file and new keys are not accepted."""


class ServiceDidNotStart(TunnelError):
    """The remote command ended, or went quiet, without reporting its port."""


class PortUnavailable(TunnelError):
    """The requested local port is taken."""


@dataclass(frozen=True)
class Endpoint:
    """One SSH server and how to log in to it."""

    host: str
    port: int = 22
    user: str | None = None
    auth: str = "publickey"
    identity_file: str | None = None


@dataclass(frozen=True)
class Route:
    """How to reach ``target``: directly, through a jump host, or through a ProxyCommand.

    The ProxyCommand carries the first hop (the jump host if there is one).
    """

    target: Endpoint
    jump: Endpoint | None = None
    proxycommand: str | None = None


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def proxy_command_line(template: str, host: str, port: int, user: str) -> str:
    """The ProxyCommand for one hop, safe to hand to paramiko (which splits it with shlex).

    The template is split into words first; ``%h``, ``%p``, ``%r`` and ``%%`` are replaced
    inside each word; the words are joined back with quoting, so paramiko's split gives
    exactly these words whatever the host name contains.
    """
    values = {"h": host, "p": str(port), "r": user, "%": "%"}

    def substitute(word: str) -> str:
        out, i = [], 0
        while i < len(word):
            if word[i] == "%" and i + 1 < len(word) and word[i + 1] in values:
                out.append(values[word[i + 1]])
                i += 2
            else:
                out.append(word[i])
                i += 1
        return "".join(out)

    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise TunnelError(f"invalid ProxyCommand {template!r}: {exc}") from None
    if not words:
        raise TunnelError("empty ProxyCommand")
    return shlex.join(substitute(w) for w in words)


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Refuse unknown host keys, or (opted in) accept and record them in camp's known_hosts."""

    def __init__(self, manager: SSHManager) -> None:
        self.manager = manager

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        m = self.manager
        if not m.accept_new:
            raise UnknownHostKey(
                f"unknown SSH host key for {hostname} ({key.get_name()} {fingerprint(key)}): "
                "check it, then restart with --accept-new-host-keys (or ssh to the host once)"
            )
        client.get_host_keys().add(hostname, key.get_name(), key)
        m.record_host_key(hostname, key)


class SSHManager:
    """Open SSH connections, reused per route, with one prompt on the terminal at a time."""

    def __init__(
        self,
        known_hosts: list[str],
        record_to: str,
        accept_new: bool = False,
        prompt: Prompt | None = None,
        log: Log | None = None,
        home: str = "",
    ) -> None:
        self.known_hosts = known_hosts
        self.record_to = record_to
        self.accept_new = accept_new
        self.prompt = prompt
        self.log: Log = log or (lambda _msg: None)
        self.home = home or pwd.getpwuid(os.getuid()).pw_dir
        self.default_user = pwd.getpwuid(os.getuid()).pw_name
        self._clients: dict[Route, paramiko.SSHClient] = {}
        self._route_locks: dict[Route, threading.Lock] = {}
        self._lock = threading.Lock()
        self._prompt_lock = threading.Lock()
        self._record_lock = threading.Lock()
        self._policy = _HostKeyPolicy(self)
        self._closed = False

    # -- connections -----------------------------------------------------------------

    def client(self, route: Route) -> paramiko.SSHClient:
        """A logged-in client for ``route`` (an open one is reused)."""
        with self._lock:
            if self._closed:
                raise TunnelError("the connector is shutting down")
            route_lock = self._route_locks.setdefault(route, threading.Lock())
        with route_lock:
            with self._lock:
                existing = self._clients.get(route)
            if existing is not None:
                transport = existing.get_transport()
                if transport is not None and transport.is_active():
                    return existing
                existing.close()
            client = self._open(route)
            with self._lock:
                if self._closed:
                    client.close()
                    raise TunnelError("the connector is shutting down")
                self._clients[route] = client
            return client

    def _open(self, route: Route) -> paramiko.SSHClient:
        target = route.target
        if route.jump is not None:
            jump = self.client(Route(route.jump, None, route.proxycommand))

            def through_jump() -> Any:
                transport = jump.get_transport()
                if transport is None or not transport.is_active():
                    raise TunnelError(f"jump host {route.jump.host} disconnected")  # type: ignore[union-attr]
                try:
                    return transport.open_channel(
                        "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT
                    )
                except (paramiko.SSHException, OSError) as exc:
                    raise TunnelError(f"jump host {route.jump.host} cannot reach "  # type: ignore[union-attr]
                                      f"{target.host}:{target.port} ({_reason(exc)})") from None

            return self._login(target, through_jump)
        if route.proxycommand:
            line = proxy_command_line(route.proxycommand, target.host, target.port, self._user(target))

            def through_proxy() -> Any:
                try:
                    return paramiko.ProxyCommand(line)
                except OSError as exc:
                    raise TunnelError(f"cannot run ProxyCommand {line!r} ({_reason(exc)})") from None

            return self._login(target, through_proxy)
        return self._login(target, lambda: None)

    def _user(self, ep: Endpoint) -> str:
        return ep.user or self.default_user

    def _where(self, ep: Endpoint) -> str:
        return f"{self._user(ep)}@{ep.host}:{ep.port}"

    def describe(self, route: Route) -> str:
        """The endpoint really dialled, for the log: ``ssh user@host:port [through ...]``."""
        text = f"ssh {self._where(route.target)}"
        first = route.target
        if route.jump is not None:
            text += f" through jump host {self._where(route.jump)}"
            first = route.jump
        if route.proxycommand:
            try:
                line = proxy_command_line(route.proxycommand, first.host, first.port, self._user(first))
            except TunnelError:
                line = route.proxycommand
            text += f" through ProxyCommand {line!r}"
        return text

    def _login(self, ep: Endpoint, sock: Callable[[], Any]) -> paramiko.SSHClient:
        where = self._where(ep)
        if ep.auth not in AUTH_METHODS:
            raise TunnelError(f"ssh {where}: unsupported authentication {ep.auth!r}")
        if ep.auth == "publickey":
            identity = self._expand(ep.identity_file) if ep.identity_file else None
            if identity is not None and not os.path.isfile(identity):
                raise TunnelError(f"ssh {where}: identity file {identity} does not exist")
            passphrase = None
            for _ in range(PASSWORD_ATTEMPTS + 1):
                try:
                    return self._attempt(ep, sock, key_filename=identity, passphrase=passphrase,
                                         allow_agent=True, look_for_keys=True)
                except paramiko.PasswordRequiredException:
                    passphrase = self._ask(f"Passphrase for {identity or 'your SSH key'} ({where}): ")
                except paramiko.AuthenticationException as exc:
                    raise TunnelError(
                        f"ssh {where}: public key authentication failed ({_reason(exc)})"
                    ) from None
            raise TunnelError(f"ssh {where}: wrong passphrase for {identity}")
        label = "Passcode" if ep.auth == "passcode" else "Password"
        for attempt in range(1, PASSWORD_ATTEMPTS + 1):
            secret = self._ask(f"{label} for {where}: ")
            try:
                return self._attempt(ep, sock, password=secret, allow_agent=False, look_for_keys=False)
            except paramiko.AuthenticationException:
                self.log(f"ssh {where}: {label.lower()} authentication failed "
                         f"({attempt}/{PASSWORD_ATTEMPTS})")
        raise TunnelError(f"ssh {where}: {label.lower()} authentication failed {PASSWORD_ATTEMPTS} times")

    def _attempt(self, ep: Endpoint, sock: Callable[[], Any], **auth: Any) -> paramiko.SSHClient:
        where = self._where(ep)
        client = paramiko.SSHClient()
        for path in self.known_hosts:
            if os.path.isfile(path):
                with contextlib.suppress(OSError, paramiko.SSHException):
                    client.load_system_host_keys(path)
        client.set_missing_host_key_policy(self._policy)
        channel = sock()
        try:
            client.connect(
                hostname=ep.host,
                port=ep.port,
                username=self._user(ep),
                sock=channel,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
                **auth,
            )
        except paramiko.AuthenticationException:
            _close(client, channel)
            raise
        except paramiko.BadHostKeyException as exc:
            _close(client, channel)
            raise TunnelError(
                f"ssh {where}: host key CHANGED (got {exc.key.get_name()} {fingerprint(exc.key)}, expected "
                f"{fingerprint(exc.expected_key)}): refusing to connect; remove the old key from known_hosts "
                "only if you know why it changed"
            ) from None
        except UnknownHostKey as exc:
            _close(client, channel)
            raise TunnelError(f"ssh {where}: {exc}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            _close(client, channel)
            raise TunnelError(f"ssh {where}: cannot connect ({_reason(exc)})") from None
        return client

    def _expand(self, path: str) -> str:
        if path == "~" or path.startswith("~/"):
            return self.home + path[1:]
        return path

    def _ask(self, text: str) -> str:
        if self.prompt is None:
            raise TunnelError(f"{text.rstrip(': ')} is needed, but camp connect runs without a terminal")
        with self._prompt_lock:
            answer = self.prompt(text, True)
        if answer is None:
            raise TunnelError(f"{text.rstrip(': ')} is needed, but camp connect runs without a terminal")
        return answer

    def record_host_key(self, hostname: str, key: paramiko.PKey) -> None:
        """Append a newly accepted host key to camp's known_hosts (mode 0600)."""
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with self._record_lock:
            try:
                with open(self.record_to, encoding="ascii", errors="replace") as f:
                    if line in f.read():
                        return  # recorded meanwhile by a concurrent login to the same host
            except OSError:
                pass
            try:
                os.makedirs(os.path.dirname(self.record_to), mode=0o700, exist_ok=True)
                fd = os.open(self.record_to, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="ascii") as f:
                    f.write(line)
            except OSError as exc:
                self.log(f"cannot record the host key of {hostname} in {self.record_to}: {_reason(exc)}")
                return
        self.log(f"accepted new SSH host key for {hostname} ({key.get_name()} {fingerprint(key)}); "
                 f"recorded in {self.record_to}")

    def close(self) -> None:
        """Close every SSH connection (and the ProxyCommand processes behind them)."""
        with self._lock:
            self._closed = True
            clients = list(self._clients.values())
            self._clients.clear()
        # Targets first, then the jump hosts they run through.
        for client in reversed(clients):
            with contextlib.suppress(Exception):
                client.close()


def _close(client: paramiko.SSHClient, channel: Any) -> None:
    with contextlib.suppress(Exception):
        client.close()
    if channel is not None:
        with contextlib.suppress(Exception):
            channel.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        # "[Errno None] Unable to connect to port 22 on 127.0.0.1" says less than the errno does
        reasons = sorted({getattr(e, "strerror", None) or str(e) for e in exc.errors.values()})
        return "; ".join(reasons) + ": is an sshd listening there? (host and port: in hosts.yaml)"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out: is the host reachable from here? (host and port: in hosts.yaml)"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- remote service ------------------------------------------------------------------


def start_remote_service(
    client: paramiko.SSHClient, command: str, parse: Callable[[str], dict[str, str] | None],
    timeout: float = SERVICE_TIMEOUT,
) -> tuple[dict[str, str], paramiko.Channel]:
    """Run ``command`` on the server and wait for its first line that ``parse`` accepts.

    Reads stdout and stderr side by side (a server may report on either), line by line,
    until a line parses, the command ends, or ``timeout`` passes. The channel stays open:
    closing it when the tunnel goes lets a foreground server see its end.
    ServiceDidNotStart (the channel closed) says why no line came: the exit status and the
    last line the command printed, or the time waited.
    """
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise TunnelError("SSH connection lost")
    try:
        chan = transport.open_session(timeout=CONNECT_TIMEOUT)
        chan.exec_command(command)
    except (paramiko.SSHException, OSError) as exc:
        raise TunnelError(f"cannot run {command!r}: {_reason(exc)}") from None
    buffers = {"out": b"", "err": b""}
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = False
        if chan.recv_ready():
            buffers["out"] += chan.recv(BUFFER)
            got = True
        if chan.recv_stderr_ready():
            buffers["err"] += chan.recv_stderr(BUFFER)
            got = True
        for name in ("out", "err"):
            while b"\n" in buffers[name]:
                line, _, buffers[name] = buffers[name].partition(b"\n")
                text = line.decode("utf-8", "replace")
                parsed = parse(text)
                if parsed is not None:
                    return parsed, chan
                last = text.strip() or last
        if not got:
            if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                for name in ("out", "err"):
                    text = buffers[name].decode("utf-8", "replace")
                    parsed = parse(text)
                    if parsed is not None:
                        return parsed, chan
                    last = text.strip() or last
                status = chan.recv_exit_status()
                chan.close()
                hint = " (not found: check serverpath in hosts.yaml)" if status == 127 else ""
                said = f": {last[:300]}" if last else ""
                raise ServiceDidNotStart(f"{command!r} exited with status {status} before reporting its "
                                         f"port{hint}{said}")
            time.sleep(0.02)
    chan.close()
    said = f" (its last line: {last[:300]})" if last else ""
    raise ServiceDidNotStart(f"{command!r} printed no 'port:N;msg:...' line within {timeout:.0f} s{said}: "
                             "does args in hosts.yaml include -report_port_selection?")


# -- port forwarding -----------------------------------------------------------------


@dataclass
class Forwarder:
    """A listener on 127.0.0.1 whose connections become ``direct-tcpip`` channels to ``dest``.

    ``allow(conn)`` decides per accepted connection (same user only); ``transient`` closes
    the listener after its first connection ends; ``on_close`` runs once when it closes.
    """

    transport: paramiko.Transport
    dest: tuple[str, int]
    allow: Callable[[socket.socket], bool]
    log: Log
    transient: bool = False
    on_close: Callable[[Forwarder], None] | None = None
    port: int = 0
    _listener: socket.socket | None = field(default=None, repr=False)
    _closed: threading.Event = field(default_factory=threading.Event, repr=False)
    _conns: set[Any] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def listen(self, requested: int | None = None) -> int:
        """Bind 127.0.0.1:``requested`` (PortUnavailable if taken), or the first free port from 28000."""
        last = FIRST_LOCAL_PORT + LOCAL_PORT_TRIES
        candidates = [requested] if requested else range(FIRST_LOCAL_PORT, last)
        for port in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen(16)
            except OSError as exc:
                sock.close()
                if requested:
                    raise PortUnavailable(f"local port {port} is not available ({_reason(exc)})") from None
                if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                    raise TunnelError(f"cannot listen on 127.0.0.1:{port} ({_reason(exc)})") from None
                continue
            self._listener = sock
            self.port = port
            threading.Thread(target=self._accept_loop, name=f"forward-{port}", daemon=True).start()
            return port
        raise TunnelError(f"no free local port in {FIRST_LOCAL_PORT}..{last - 1}")

    @property
    def closed(self) -> bool:
        """True once the listener is closed."""
        return self._closed.is_set()

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closed.is_set():
            try:
                ready, _, _ = select.select([listener], [], [], 0.5)
                if not ready:
                    continue
                conn, _ = listener.accept()
            except (OSError, ValueError):
                if self._closed.is_set():
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        if not self.allow(conn):
            self.log(f"tunnel 127.0.0.1:{self.port}: refused a connection from another user's process")
            with contextlib.suppress(OSError):
                conn.close()
            return
        try:
            chan = self.transport.open_channel(
                "direct-tcpip", self.dest, conn.getpeername(), timeout=CONNECT_TIMEOUT
            )
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.log(f"tunnel 127.0.0.1:{self.port} -> {self.dest[0]}:{self.dest[1]}: {_reason(exc)}")
            with contextlib.suppress(OSError):
                conn.close()
            return
        with self._lock:
            self._conns.add(conn)
            self._conns.add(chan)
        try:
            _pump(conn, chan, self._closed)
        finally:
            with self._lock:
                self._conns.discard(conn)
                self._conns.discard(chan)
            for end in (chan, conn):
                with contextlib.suppress(Exception):
                    end.close()
            if self.transient:
                self.close()

    def close(self) -> None:
        """Stop listening and cut every connection; runs ``on_close`` once."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._listener is not None:
            # shutdown() stops a listening socket at once, even while the accept thread polls it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            ends = list(self._conns)
            self._conns.clear()
        for end in ends:
            with contextlib.suppress(Exception):
                end.close()
        if self.on_close is not None:
            self.on_close(self)


def _pump(conn: socket.socket, chan: paramiko.Channel, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes or ``stop`` is set."""
    while not stop.is_set():
        try:
            ready, _, _ = select.select([conn, chan], [], [], 0.5)  # type: ignore[type-var]
            if conn in ready:
                data = conn.recv(BUFFER)
                if not data:
                    return
                chan.sendall(data)
            if chan in ready:
                data = chan.recv(BUFFER)
                if not data:
                    return
                conn.sendall(data)
        except (OSError, ValueError, EOFError, paramiko.SSHException):
            return
