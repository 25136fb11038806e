"""Real rclone remotes for the remote tests: a local folder, and rclone serve webdav|sftp|s3 on 127.0.0.1.

Servers start once per test session on a free loopback port (waited for until they
accept connections) and stop at the end; each test gets its own folder below them.
Import the fixtures into a test module: ``from conftest_remote import remote_kind, ...``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

RCLONE = os.path.join(os.path.dirname(sys.executable), "rclone")
KINDS = ("local", "webdav", "sftp", "s3")
S3_KEY = "CAMPTESTACCESSKEY000"
S3_SECRET = "camptestsecretkey0000000000000000000000x"
SFTP_PASS = "camp-test-pass"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ExitedEarly(RuntimeError):
    """The server exited before it listened (most often: its port was taken since we chose it)."""


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = proc.stderr.read().decode() if proc.stderr else ""
            raise ExitedEarly(f"rclone server exited early: {why}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"rclone server did not listen on {port}")


@dataclass
class Server:
    """A running ``rclone serve`` over a local folder."""

    kind: str
    root: Path
    port: int
    proc: subprocess.Popen
    config: str = ""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class RemoteSpec:
    """A remote a test can push to: the rclone URL, and the folder on disk that backs it."""

    kind: str
    url: str
    backing: Path
    env: dict[str, str]


def _start(kind: str, root: Path, home: Path) -> Server:
    if kind == "s3":
        (root / "bucket").mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home)}
    for attempt in range(3):  # a free port can be taken by another process before rclone binds it
        port = free_port()
        args = [RCLONE, "serve", kind, "--addr", f"127.0.0.1:{port}"]
        if kind == "sftp":
            args += ["--user", "camp", "--pass", SFTP_PASS]
        elif kind == "s3":
            args += ["--auth-key", f"{S3_KEY},{S3_SECRET}"]
        args.append(str(root))
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(port, proc)
        except ExitedEarly:
            if attempt == 2:
                raise
            continue
        return Server(kind, root, port, proc)
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def rclone_servers(tmp_path_factory):
    """One server per served kind for the whole session (started lazily)."""
    started: dict[str, Server] = {}
    home = tmp_path_factory.mktemp("rclone-home")

    def get(kind: str) -> Server:
        if kind not in started:
            started[kind] = _start(kind, tmp_path_factory.mktemp(f"served-{kind}"), home)
        return started[kind]

    yield get
    for server in started.values():
        server.stop()


def _obscure(password: str) -> str:
    return subprocess.run([RCLONE, "obscure", password], capture_output=True, text=True, check=True).stdout.strip()


def make_remote(kind: str, servers, tmp_path: Path) -> RemoteSpec:
    """A fresh, empty remote of ``kind`` (its own folder on a shared server)."""
    sub = "t" + secrets.token_hex(4)
    if kind == "local":
        backing = tmp_path / "remote-folder"
        return RemoteSpec(kind, str(backing), backing, {})
    server = servers(kind)
    if kind == "webdav":
        return RemoteSpec(kind, f":webdav,url='http://127.0.0.1:{server.port}':{sub}", server.root / sub, {})
    if kind == "sftp":
        url = f":sftp,host=127.0.0.1,port={server.port},user=camp,pass={_obscure(SFTP_PASS)}:{sub}"
        return RemoteSpec(kind, url, server.root / sub, {})
    # s3: a configured rclone remote, through an RCLONE_CONFIG file the test writes.
    config = tmp_path / "rclone.conf"
    config.write_text(
        "[teststore]\ntype = s3\nprovider = Rclone\n"
        f"endpoint = http://127.0.0.1:{server.port}/\naccess_key_id = {S3_KEY}\nsecret_access_key = {S3_SECRET}\n"
    )
    return RemoteSpec(kind, f"teststore:bucket/{sub}", server.root / "bucket" / sub, {"RCLONE_CONFIG": str(config)})


@pytest.fixture(params=KINDS)
def remote_spec(request, rclone_servers, tmp_path, monkeypatch) -> RemoteSpec:
    """Every remote kind in turn (the contract suite); the environment is set for it."""
    spec = make_remote(request.param, rclone_servers, tmp_path)
    for key, value in spec.env.items():
        monkeypatch.setenv(key, value)
    return spec


@pytest.fixture
def store(clean_env, tmp_path) -> Path:
    """A campaign store, so push copies its archive and pull and clone rebuild it."""
    folder = tmp_path / "store"
    (clean_env / ".config" / "hpc-campaign").mkdir(parents=True)
    (clean_env / ".config" / "hpc-campaign" / "config.yaml").write_text(f"Campaign:\n  campaignstorepath: {folder}\n")
    return folder


@pytest.fixture
def local_remote(tmp_path) -> RemoteSpec:
    """A plain folder remote."""
    backing = tmp_path / "remote-folder"
    return RemoteSpec("local", str(backing), backing, {})


def diverged(camp, tmp_path: Path, url: str, data, clone_build: bool = False) -> tuple[Path, Path]:
    """Campaign ``a`` pushed to ``url`` (n1.txt), cloned to ``b``, then ``a`` commits n2.txt and pushes.

    ``b`` is one commit behind: what a pull in ``b`` fast-forwards to, or merges with its own.
    """
    a, b = tmp_path / "a", tmp_path / "b"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", url)
    camp("--repo", a, "push", "--no-build")
    camp("clone", url, b, "--host", "laptop", *([] if clone_build else ["--no-build"]), cwd=tmp_path)
    camp("--repo", a, "add", "n2.txt", "-m", "from a", cwd=data)
    camp("--repo", a, "push", "--no-build")
    return a, b
