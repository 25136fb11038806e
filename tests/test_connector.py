"""camp connect against real parts: a real sshd on a loopback port, a stand-in remote server
launched over SSH, and clients that talk to the connector exactly as ADIOS2 does (one raw
string over a socket, no terminator, one response, connection closed).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml
from camp_process import foreground_signals
from helpers import missing_part, requires

from campaignvcs.connector import peers
from campaignvcs.connector.tunnel import proxy_command_line

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HAVE_SSHD = os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None
SSHD_WHY = "openssh-server (sshd, ssh-keygen); as root, bash scripts/system-deps.sh installs it"
needs_sshd = requires(HAVE_SSHD, SSHD_WHY)
IS_ROOT = os.getuid() == 0
SETPRIV = shutil.which("setpriv")

STANDIN = '''\
"""Stand-in for adios2_remote_server -report_port_selection: report a port, echo on it."""
import os, secrets, socket, sys, threading
pidfile = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
with open(pidfile, "w") as f:
    f.write(str(os.getpid()))
print(f"port:{srv.getsockname()[1]};msg:no_error;cookie:0x{secrets.randbits(64):016x}", flush=True)

def echo(c):
    while True:
        data = c.recv(65536)
        if not data:
            break
        c.sendall(data)
    c.close()

def accept():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
sys.stdin.read()  # returns when the SSH channel that started us closes
'''

RELAY = '''\
"""A ProxyCommand: connect to HOST PORT and relay stdin/stdout (records that it ran)."""
import os, select, socket, sys
marker, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(marker, "a") as f:
    f.write(f"{host} {port}\\n")
s = socket.create_connection((host, port))
while True:
    r, _, _ = select.select([0, s], [], [])
    if 0 in r:
        data = os.read(0, 65536)
        if not data:
            break
        s.sendall(data)
    if s in r:
        data = s.recv(65536)
        if not data:
            break
        os.write(1, data)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, request: bytes, host: str = "127.0.0.1", timeout: float = 30) -> bytes:
    """One request the way ADIOS2 sends it; asserts the server closes after its response."""
    with socket.create_connection((host, port), timeout=timeout) as c:
        c.sendall(request)
        reply = c.recv(2048)
        assert c.recv(16) == b""
    return reply


def fields(reply: bytes) -> dict[str, str]:
    return dict(item.split(":", 1) for item in reply.decode().split(","))


def echo_through(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


def listeners(port: int) -> set[str]:
    """Addresses listening on ``port``, from the kernel's own table."""
    found = set()
    for table in peers.TABLES:
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
                found.add(str(peers._decode(f[1])[0]))
    return found


def as_nobody(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)


def gone(pid: int, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


class Connector:
    """``camp connect`` as a subprocess, logging to files; optionally on a pseudo-terminal."""

    def __init__(self, tmp: Path, *args: str, tty: bool = False):
        for _ in range(3):  # a free port can be taken by another process before the connector binds it
            self._start(tmp, args, tty)
            try:
                self.wait_for("listening on", stream="out")
                return
            except AssertionError:
                if "is in use" not in self.text():
                    raise
                self.stop()
        raise AssertionError(f"no free port for the connector: {self.text()}")

    def _start(self, tmp: Path, args: tuple[str, ...], tty: bool) -> None:
        self.port = free_port()
        self.out = tmp / f"connect-{self.port}.out"
        self.err = tmp / f"connect-{self.port}.err"
        self.master = None
        cmd = [sys.executable, "-m", "campaignvcs", "connect", "--port", str(self.port), *args]
        kwargs: dict = {}
        if tty:
            self.master, slave = os.openpty()

            def controlling_tty():
                foreground_signals()
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

            kwargs = {"stdin": slave, "preexec_fn": controlling_tty}
        else:
            kwargs = {"stdin": subprocess.DEVNULL, "preexec_fn": foreground_signals}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, **kwargs)
        self.terminal = b""
        if tty:
            os.close(slave)
            threading.Thread(target=self._read_terminal, daemon=True).start()

    def _read_terminal(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.terminal += data

    def text(self, stream: str = "err") -> str:
        if stream == "tty":
            return self.terminal.decode(errors="replace")
        return (self.out if stream == "out" else self.err).read_text(errors="replace")

    def wait_for(self, needle: str, stream: str = "err", timeout: float = 30, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text(stream).count(needle) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} (x{count}) in connector {stream}:\n{self.text('out')}{self.text('err')}")

    def ask(self, request: bytes, **kw) -> bytes:
        return ask(self.port, request, **kw)

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        return rc


@pytest.fixture
def connectors(tmp_path):
    started: list[Connector] = []

    def start(*args: str, tty: bool = False) -> Connector:
        c = Connector(tmp_path, *map(str, args), tty=tty)
        started.append(c)
        return c

    yield start
    for c in started:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


# -- the protocol and key serving (no SSH needed) ------------------------------------------


def test_keys_are_served_to_the_same_user_only_and_never_printed(camp, tmp_path, connectors):
    keys = tmp_path / "keys"
    camp("key", "generate", keys / "proj.key", "--note", "project key")
    doc = yaml.safe_load((keys / "proj.key").read_text())
    (keys / "README").write_text("not a key\n")
    shared = keys / "shared.key"
    shared.write_text(yaml.safe_dump({"note": "", "id": "f" * 32, "key": "ab" * 32, "date": "x"}, sort_keys=False))
    shared.chmod(0o644)
    c = connectors("--keys", keys)
    assert f"2 keys loaded ({doc['id']}, {'f' * 32})" in c.text("out")
    assert c.ask(f"/get_key?id={doc['id']}".encode()) == f"key:{doc['key']},msg:no_error".encode()
    # Whitespace and NUL bytes are ignored, as by hpc-campaign's connector.
    assert c.ask(f" /get_key?id={doc['id']}\r\n\0".encode()) == f"key:{doc['key']},msg:no_error".encode()
    # A key not held: a message ADIOS2 shows (cannot_find_key_id makes 2.12.1 fail with an unrelated one),
    # and one log line saying how to load it.
    assert c.ask(b"/get_key?id=0123") == b"key:0,msg:key_0123_is_not_loaded_in_camp_connect"
    c.wait_for(f"/get_key 0123: this key is not loaded; put its key file in {keys} and restart camp connect")
    assert c.ask(b"/get_key?id=0123") == b"key:0,msg:key_0123_is_not_loaded_in_camp_connect"
    assert c.ask(b"/get_key?name=x") == b"key:0,msg:missing_key_id_in_request"
    assert c.ask(b"/get_key") == b"port:-1,msg:incorrect_request_format"
    assert c.ask(b"/reverse?group=a&service=b") == b"port:-1,msg:incorrect_request_format"
    assert c.ask(b"GET /get_key?id=1 HTTP/1.1") == b"port:-1,msg:incorrect_request_format"  # no HTTP
    # A client that never sends holds one thread, not the service.
    with socket.create_connection(("127.0.0.1", c.port)):
        t0 = time.monotonic()
        assert c.ask(f"/get_key?id={doc['id']}".encode()).startswith(b"key:" + doc["key"].encode())
        assert time.monotonic() - t0 < 2
    if IS_ROOT and SETPRIV:
        code = textwrap.dedent(f"""
            import socket
            for host in ("127.0.0.1", "::1"):
                try:
                    c = socket.create_connection((host, {c.port}))
                except OSError:
                    continue
                c.sendall(b"/get_key?id={doc['id']}")
                print(c.recv(2048).decode())
            c = socket.create_connection(("127.0.0.1", {c.port}))
            c.sendall(b"/run_service?group=a&service=b")
            print(c.recv(2048).decode())
        """)
        r = as_nobody(code)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.split()
        assert set(lines[:-1]) == {"key:0,msg:cannot_find_key_id"} and lines[-1] == "port:-1,msg:permission_denied"
        assert "refused a request from uid 65534 (not this user)" in c.text()
    assert c.stop() == 0
    logs = c.text("out") + c.text("err")
    assert doc["key"] not in logs and "ab" * 32 not in logs
    assert f"key file {shared} is readable by other users (chmod 600 {shared})" in logs
    assert f"skipped {keys / 'README'}: key file {keys / 'README'}: not a key file" in logs
    assert re.search(r"stopped after \d+ requests \(0 tunnels closed\)", c.text("out"))


def test_hosts_yaml_problems_answer_with_the_protocol_errors(tmp_path, connectors):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    hosts = tmp_path / "hosts.yaml"
    hosts.write_text(textwrap.dedent(f"""\
        version: v0.1
        frontier:
          noserver: {{host: frontier.example.org, protocol: ssh, authentication: publickey}}
          xroot: {{host: x.example.org, protocol: xrootd, authentication: publickey, serverpath: /adios}}
          cert: {{host: x.example.org, protocol: ssh, authentication: x509, serverpath: /bin/srv}}
          fixed: {{host: x.example.org, protocol: ssh, authentication: publickey, serverpath: /bin/srv,
                  local_port: {taken.getsockname()[1]}}}
        olcf: frontier
        laptop: local
    """))
    c = connectors("--hosts", hosts)
    assert "has a top-level 'version:' key: ADIOS2 refuses to open any campaign" in c.text()
    err = b"port:-1,msg:"
    assert c.ask(b"/run_service?service=x") == err + b"missing_group_in_request"
    assert c.ask(b"/run_service?group=frontier") == err + b"missing_service_in_request"
    assert c.ask(b"/run_service?group=frontier&service=noserver") == err + b"incomplete_service_definition"
    assert c.ask(b"/run_service?group=olcf&service=nope") == err + b"incomplete_service_definition"
    assert c.ask(b"/run_service?group=laptop&service=x") == err + b"incomplete_service_definition"
    assert c.ask(b"/run_service?group=olcf&service=xroot") == err + b"unsupported_protocol"
    assert c.ask(b"/run_service?group=frontier&service=cert") == err + b"unsupported_authication_method"
    assert c.ask(b"/run_service?group=frontier&service=fixed") == \
        f"port:{taken.getsockname()[1]},msg:requested_port_is_not_available".encode()
    assert c.ask(b"/connect_port?dport=1") == err + b"missing_destination_host_in_request"
    assert c.ask(b"/connect_port?dhost=a") == err + b"missing_destination_port_in_request"
    assert c.ask(b"/connect_port?dhost=a&dport=1&group=frontier") == err + b"missing_service_in_request"
    assert c.ask(b"/connect_port?dhost=a&dport=1&group=frontier&service=zz") == \
        err + b"no_matching_group_or_service_in_config_file"
    assert c.ask(b"/connect_port?dhost=a&dport=1") == err + b"missing_remote_host_in_request"
    # Without a terminal a password login is refused at once, not hung.
    assert c.ask(b"/connect_port?dhost=a&dport=1&rhost=127.0.0.1") == err + b"cannot_connect_to_remote_host_port"
    assert "runs without a terminal" in c.text()
    assert "incomplete service definition in hosts.yaml (missing serverpath)" in c.text()
    assert c.stop(signal.SIGINT) == 0
    taken.close()
    # The connector never writes hosts.yaml.
    assert hosts.read_text().startswith("version: v0.1\n")


def test_port_in_use_and_missing_files_are_one_line_errors(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "campaignvcs", "connect", "--port", str(port)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert r.stderr == f"camp: error: port {port} on 127.0.0.1 is in use (is another connector running?)\n"
    r = subprocess.run([sys.executable, "-m", "campaignvcs", "connect", "--hosts", str(tmp_path / "none.yaml")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and r.stderr == f"camp: error: hosts file {tmp_path / 'none.yaml'}: no such file\n"


def test_proxy_command_words_are_never_split_by_a_host_name():
    line = proxy_command_line("ssh -W %h:%p -l %r 'jump host' %%h", "evil; touch x $(id)", 2222, "me")
    assert shlex.split(line) == ["ssh", "-W", "evil; touch x $(id):2222", "-l", "me", "jump host", "%h"]


def test_peer_uid_finds_our_own_connections():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname()) as client:
            conn, _ = srv.accept()
            with conn:
                assert peers.peer_uid(conn) == os.getuid() and peers.same_user(conn)
                assert peers.peer_uid(client) == os.getuid()


# -- SSH against a real sshd -------------------------------------------------------------


class SSHServer:
    """A throw-away sshd on 127.0.0.1 with its own host key, accepting one user key."""

    def __init__(self, root: Path):
        self.root = root
        self.user = pwd.getpwuid(os.getuid()).pw_name
        for name in ("host_key", "user_key", "other_host_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(root / name)],
                           check=True, capture_output=True)
        shutil.copy(root / "user_key.pub", root / "authorized_keys")
        self.host_pub = (root / "host_key.pub").read_text().split()[:2]
        self.other_pub = (root / "other_host_key.pub").read_text().split()[:2]
        (root / "standin.py").write_text(STANDIN)
        (root / "relay.py").write_text(RELAY)
        for _ in range(3):  # a free port can be taken by another process before sshd binds it
            if self._start():
                return
        raise RuntimeError("sshd did not start: " + (root / "sshd.log").read_text())

    def _start(self) -> bool:
        """Start sshd on a free port; False if it exited at once (its port taken meanwhile)."""
        root = self.root
        self.port = free_port()
        config = root / "sshd_config"
        config.write_text(textwrap.dedent(f"""\
            Port {self.port}
            ListenAddress 127.0.0.1
            HostKey {root}/host_key
            PidFile {root}/sshd.pid
            AuthorizedKeysFile {root}/authorized_keys
            StrictModes no
            UsePAM no
            PermitRootLogin yes
            PasswordAuthentication yes
            KbdInteractiveAuthentication no
            PubkeyAuthentication yes
            AllowTcpForwarding yes
            MaxStartups 100
            LogLevel VERBOSE
        """))
        self.log = open(root / "sshd.log", "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                pass
            if self.proc.poll() is not None:
                self.log.close()
                return False
            if time.monotonic() > deadline:
                raise RuntimeError("sshd did not start: " + (root / "sshd.log").read_text())
            time.sleep(0.05)

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_pub[0]} {self.host_pub[1]}\n"

    def service(self, pidfile: Path, **extra) -> dict:
        entry = {
            "protocol": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "authentication": "publickey",
            "identity_file": str(self.root / "user_key"),
            "serverpath": f"{sys.executable} {self.root / 'standin.py'}",
            "args": str(pidfile),
        }
        entry.update(extra)
        return entry

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self.log.close()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not HAVE_SSHD:
        missing_part(SSHD_WHY)
    if IS_ROOT and not os.path.isdir("/run/sshd"):  # made at boot by the system; a test does not change it
        missing_part("sshd's privilege-separation folder /run/sshd; as root, scripts/system-deps.sh makes it")
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def remote_pids(tmp_path):
    """Pid files the stand-in servers write; any still running at the end are stopped."""
    made: list[Path] = []

    def pidfile(name: str) -> Path:
        p = tmp_path / f"{name}.pid"
        made.append(p)
        return p

    yield pidfile
    for p in made:
        if p.exists():
            try:
                os.kill(int(p.read_text()), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


def write_hosts(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@needs_sshd
def test_run_service_opens_a_loopback_tunnel_to_the_remote_server(sshd, tmp_path, connectors, remote_pids,
                                                                   clean_env):
    pidfile = remote_pids("adios")
    hosts = write_hosts(tmp_path / "hosts.yaml", {"testhost": {"adios": sshd.service(pidfile)}, "ALIAS": "testhost"})
    c = connectors("--hosts", hosts, "--accept-new-host-keys")
    reply = fields(c.ask(b"/run_service?group=testhost&service=adios"))
    assert reply["msg"] == "no_error" and re.fullmatch(r"0x[0-9a-f]{16}", reply["cookie"])
    port = int(reply["port"])
    assert list(fields(c.ask(b"/run_service?group=testhost&service=adios"))) == ["port", "cookie", "msg"]
    assert listeners(port) == {"127.0.0.1"}
    assert echo_through(port, b"metadata request " * 1000) == b"metadata request " * 1000
    # The same tunnel is handed out again, also through an alias.
    assert fields(c.ask(b"/run_service?group=ALIAS&service=adios")) == reply
    # The new host key was accepted because we opted in, and recorded.
    recorded = (clean_env / ".config" / "hpc-campaign" / "known_hosts").read_text()
    assert recorded == sshd.known_hosts_line
    assert f"accepted new SSH host key for [127.0.0.1]:{sshd.port}" in c.text()
    # A direct forward through the same SSH connection.
    remote_port = int(re.search(r"-> 127\.0\.0\.1:(\d+)", c.text()).group(1))
    fwd = fields(c.ask(f"/connect_port?group=testhost&service=adios&dhost=127.0.0.1&dport={remote_port}".encode()))
    assert fwd["msg"] == "no_error" and int(fwd["port"]) != port
    assert echo_through(int(fwd["port"]), b"direct") == b"direct"
    # Other users cannot ride the tunnel.
    if IS_ROOT and SETPRIV:
        r = as_nobody(textwrap.dedent(f"""
            import socket
            c = socket.create_connection(("127.0.0.1", {port}))
            c.settimeout(10)
            try:
                c.sendall(b"x")
                print("echoed" if c.recv(10) else "closed")
            except ConnectionResetError:
                print("closed")
        """))
        assert r.stdout.strip() == "closed", r.stderr
        assert f"tunnel 127.0.0.1:{port}: refused a connection from another user's process" in c.text()
    remote = int(pidfile.read_text())
    # Ctrl-C closes the tunnels and the SSH connection; the remote server sees its channel end.
    assert c.stop(signal.SIGINT) == 0
    assert "(2 tunnels closed)" in c.text("out")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert gone(remote)


@needs_sshd
def test_unknown_or_changed_host_keys_are_refused(sshd, tmp_path, connectors, remote_pids, clean_env):
    pidfile = remote_pids("refused")
    hosts = write_hosts(tmp_path / "hosts.yaml", {"testhost": {"adios": sshd.service(pidfile)}})
    c = connectors("--hosts", hosts)
    assert c.ask(b"/run_service?group=testhost&service=adios") == b"port:-1,msg:cannot_connect_to_remote_server"
    assert f"unknown SSH host key for [127.0.0.1]:{sshd.port} (ssh-ed25519 SHA256:" in c.text()
    assert "restart with --accept-new-host-keys" in c.text()
    assert not pidfile.exists()
    assert not (clean_env / ".config" / "hpc-campaign" / "known_hosts").exists()
    c.stop()
    # A key that differs from the recorded one is refused even when new keys are accepted.
    (clean_env / ".ssh").mkdir()
    (clean_env / ".ssh" / "known_hosts").write_text(
        f"[127.0.0.1]:{sshd.port} {sshd.other_pub[0]} {sshd.other_pub[1]}\n")
    c = connectors("--hosts", hosts, "--accept-new-host-keys")
    assert c.ask(b"/run_service?group=testhost&service=adios") == b"port:-1,msg:cannot_connect_to_remote_server"
    assert "host key CHANGED" in c.text() and not pidfile.exists()


@needs_sshd
def test_check_logs_in_to_each_ssh_entry_and_reports_per_entry(sshd, tmp_path, remote_pids, clean_env):
    (clean_env / ".ssh").mkdir()
    (clean_env / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line)
    pidfile = remote_pids("checked")
    closed = free_port()
    hosts = write_hosts(tmp_path / "hosts.yaml", {
        "testhost": {"adios": sshd.service(pidfile),
                     "missing": sshd.service(pidfile, serverpath="/opt/nowhere/adios2_remote_server", args="")},
        "downhost": {"adios": sshd.service(pidfile, port=closed)},
        "alias": "testhost",
        "laptop": "local",
    })

    def check(*names):
        return subprocess.run([sys.executable, "-m", "campaignvcs", "connect", "--hosts", str(hosts), "--check",
                               *names], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    r = check()
    assert r.returncode == 1
    where = f"ssh {sshd.user}@127.0.0.1:{sshd.port}"
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf"testhost/adios: ok: {re.escape(where)}: remote server reported port \d+", lines[0])
    assert lines[1] == (f"testhost/missing: FAILED: {where}: '/opt/nowhere/adios2_remote_server' exited with "
                        "status 127 before reporting its port (not found: check serverpath in hosts.yaml): "
                        f"{os.path.basename(pwd.getpwuid(os.getuid()).pw_shell)}: line 1: "
                        "/opt/nowhere/adios2_remote_server: No such file or directory"), lines[1]
    assert lines[2] == (f"downhost/adios: FAILED: ssh {sshd.user}@127.0.0.1:{closed}: cannot connect (Connection "
                        "refused: is an sshd listening there? (host and port: in hosts.yaml))")
    assert r.stderr.splitlines()[-1] == ("camp: error: 2 of 3 ssh entries failed the check: testhost/missing, "
                                         "downhost/adios")
    # The started server ended with its SSH channel (a -background server would keep running).
    assert gone(int(pidfile.read_text()))
    r = check("alias")
    assert r.returncode == 1 and "downhost" not in r.stdout and "testhost/adios: ok:" in r.stdout
    r = check("laptop")
    assert r.returncode == 1 and r.stderr == f"camp: error: no host 'laptop' with services in {hosts}\n"
    r = subprocess.run([sys.executable, "-m", "campaignvcs", "connect", "somehost"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "HOST names are for --check" in r.stderr


@needs_sshd
def test_jump_host_and_proxy_command(sshd, tmp_path, connectors, remote_pids, clean_env):
    (clean_env / ".ssh").mkdir()
    (clean_env / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line)
    marker = tmp_path / "relay.log"
    key = str(sshd.root / "user_key")
    hosts = write_hosts(tmp_path / "hosts.yaml", {"testhost": {
        "viajump": sshd.service(remote_pids("jump"), jumphost="127.0.0.1", jumpport=sshd.port, jumpuser=sshd.user,
                                jumpidentity_file=key),
        "viaproxy": sshd.service(remote_pids("proxy"),
                                 proxycommand=f"{sys.executable} {sshd.root / 'relay.py'} {marker} %h %p"),
        "once": sshd.service(remote_pids("once"), tunneltype="transient"),
    }})
    c = connectors("--hosts", hosts)
    results = {}

    def request(service):
        results[service] = fields(c.ask(f"/run_service?group=testhost&service={service}".encode()))

    threads = [threading.Thread(target=request, args=(s,)) for s in ("viajump", "viaproxy")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for service in ("viajump", "viaproxy"):
        assert results[service]["msg"] == "no_error", c.text()
        assert echo_through(int(results[service]["port"]), service.encode()) == service.encode()
    assert marker.read_text() == f"127.0.0.1 {sshd.port}\n"
    # A transient tunnel closes after its first connection, and the remote server with it.
    once = fields(c.ask(b"/run_service?group=testhost&service=once"))
    assert echo_through(int(once["port"]), b"once") == b"once"
    assert gone(int((tmp_path / "once.pid").read_text()))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(once["port"])), timeout=2).close()
    assert c.stop() == 0


@needs_sshd
def test_publickey_from_the_ssh_agent(sshd, tmp_path, connectors, remote_pids, clean_env, monkeypatch):
    (clean_env / ".ssh").mkdir()
    (clean_env / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(sshd.root / "user_key")], check=True, capture_output=True)
        hosts = write_hosts(tmp_path / "hosts.yaml", {"testhost": {
            "agent": sshd.service(remote_pids("agent"), identity_file=None)}})
        c = connectors("--hosts", hosts)
        reply = fields(c.ask(b"/run_service?group=testhost&service=agent"))
        assert reply["msg"] == "no_error", c.text()
        assert echo_through(int(reply["port"]), b"agent") == b"agent"
        assert c.stop() == 0
    finally:
        agent.terminate()
        agent.wait(timeout=10)


@needs_sshd
def test_password_prompts_on_the_terminal_without_blocking_other_requests(sshd, tmp_path, camp, connectors,
                                                                          remote_pids, clean_env):
    (clean_env / ".ssh").mkdir()
    (clean_env / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line)
    keys = tmp_path / "keys"
    camp("key", "generate", keys / "k.key")
    key = yaml.safe_load((keys / "k.key").read_text())
    pidfile = remote_pids("pw")
    hosts = write_hosts(tmp_path / "hosts.yaml", {"testhost": {
        "pw": sshd.service(pidfile, authentication="password", identity_file=None)}})
    c = connectors("--hosts", hosts, "--keys", keys, tty=True)
    reply: list[bytes] = []
    waiting = threading.Thread(target=lambda: reply.append(c.ask(b"/run_service?group=testhost&service=pw",
                                                                 timeout=120)))
    waiting.start()
    prompt = f"Password for {sshd.user}@127.0.0.1:{sshd.port}"
    c.wait_for(prompt, stream="tty")
    # While the prompt waits for the user, keys are still served at once.
    t0 = time.monotonic()
    assert c.ask(f"/get_key?id={key['id']}".encode()) == f"key:{key['key']},msg:no_error".encode()
    assert time.monotonic() - t0 < 2
    for attempt in range(1, 4):
        c.wait_for(prompt, stream="tty", count=attempt)
        c.type(f"wrong-{attempt}")
    waiting.join(60)
    assert reply == [b"port:-1,msg:cannot_connect_to_remote_server"]
    assert f"ssh {sshd.user}@127.0.0.1:{sshd.port}: password authentication failed 3 times" in c.text()
    assert not pidfile.exists()
    assert c.stop() == 0
    logs = c.text("out") + c.text("err") + c.text("tty")
    assert "wrong-1" not in logs and key["key"] not in logs  # the terminal did not even echo it
