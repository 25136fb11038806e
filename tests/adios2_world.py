"""A private little world for camp connect's end-to-end tests (tests/test_connect_e2e.py).

Everything runs in a network namespace of its own (``unshare --net``, entered with
``nsenter``), so ADIOS2's fixed ports (the connector on 30000, ``adios2_remote_server``
on 26200) never meet another test run or another user on this machine:

* one or more sshd on 127.0.0.1 of that namespace, each in a mount namespace with a
  private ``/tmp`` (``adios2_remote_server`` writes ``/tmp/port_file_*`` and
  ``/tmp/server_std*`` whatever it is told; nothing is left on the machine);
* ``camp connect --port 30000`` (the real command, this checkout's);
* readers: the full ADIOS2 build's Python bindings, in a child process and in a mount
  namespace where the data folders of the "remote hosts" are empty tmpfs mounts, so
  every byte of array data must come through ``adios2_remote_server`` and the tunnel.

The full ADIOS2 (campaign reader, SST remote path, libsodium, HDF5) is
``tests/fixtures/adios2/adios2-2.12.1-full.tar.xz``, extracted once per test session.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

from camp_process import foreground_signals

ROOT = Path(__file__).resolve().parent.parent
TARBALL = ROOT / "tests" / "fixtures" / "adios2" / "adios2-2.12.1-full.tar.xz"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TOOLS = ("unshare", "nsenter", "ip", "ssh-keygen", "mount")
CONNECTOR_PORT = 30000  # ADIOS2 2.12 asks localhost:30000, always


def world_missing() -> str | None:
    """Why this machine cannot host the world (None: it can)."""
    if os.getuid() != 0:
        return "root (private network and mount namespaces for sshd, camp connect and the reader)"
    missing = [t for t in TOOLS if shutil.which(t) is None] + ([] if os.path.exists(SSHD) else ["sshd"])
    if missing:
        return f"{', '.join(missing)} (util-linux, iproute2, openssh-server: bash scripts/system-deps.sh)"
    probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"unshare --net --mount is not permitted here ({probe.stderr.strip()})"
    return None


def extract_adios2(dest: Path) -> tuple[Path | None, str]:
    """Extract the full ADIOS2 build into ``dest``: (prefix, "") or (None, why it cannot run here)."""
    with tarfile.open(TARBALL) as tar:
        tar.extractall(dest, filter="tar")
    prefix = dest / "adios2-2.12.1-full"
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if not site.is_dir():
        return None, f"the full ADIOS2 has Python bindings for 3.11 only, not {sys.version.split()[0]}"
    r = subprocess.run([str(prefix / "bin" / "adios2_remote_server"), "-h"], capture_output=True, text=True)
    if "error while loading shared libraries" in r.stderr:
        return None, (r.stderr.strip().splitlines()[-1] + " (libsodium23, libhdf5-103-1: "
                      "bash scripts/system-deps.sh)")
    r = subprocess.run([sys.executable, "-c", "import adios2; print(adios2.__version__)"],
                       env={**os.environ, "PYTHONPATH": str(site)}, capture_output=True, text=True)
    if r.returncode != 0 or "2.12.1" not in r.stdout:
        return None, f"the full ADIOS2's Python bindings do not load: {(r.stderr.strip() or r.stdout)[-300:]}"
    return prefix, ""


READER = r'''
"""Open a campaign archive with the adios2 on PYTHONPATH, read every variable, print JSON lines."""
import json, sys
import numpy as np
import adios2

def emit(**kv):
    print(json.dumps(kv), flush=True)

emit(adios2=adios2.__file__)
try:
    f = adios2.FileReader(sys.argv[1])
except Exception as exc:
    emit(open=False, error=str(exc))
    sys.exit(3)
variables = f.available_variables()
emit(open=True, variables=sorted(variables))
for name in sorted(variables):
    info = variables[name]
    try:
        steps = int(info.get("AvailableStepsCount", "1"))
        data = np.asarray(f.read(name, step_selection=[0, steps]) if steps > 1 else f.read(name))
        if data.dtype.kind in "iuf" and info.get("Type") not in ("uint8_t",):
            emit(read=name, sum=float(data.sum()))
        else:
            raw = data.tobytes()
            emit(read=name, bytes=raw[:64].hex(), size=len(raw), zeros=raw.count(0))
    except Exception as exc:
        emit(read=name, error=str(exc))
try:
    f.close()
except Exception as exc:
    emit(closed=False, error=str(exc))
    sys.exit(4)
emit(done=True)
'''


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STAMP = re.compile(r"^\[[^\]]*\]\s*")


def clean(text: str) -> str:
    """An ADIOS2 message without colour codes and time stamp, on one line."""
    text = _STAMP.sub("", _ANSI.sub("", text).strip())
    return " ".join(text.split())


class Reading:
    """What a reader child process saw: its exit status, JSON events and stderr."""

    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stderr = proc.stderr
        self.events = []
        for line in proc.stdout.splitlines():
            try:
                self.events.append(json.loads(line))
            except ValueError:
                self.stderr += "\n[stdout] " + line
        self.sums = {e["read"]: e["sum"] for e in self.events if "sum" in e}
        self.blobs = {e["read"]: e for e in self.events if "bytes" in e}
        self.errors = {e["read"]: e["error"] for e in self.events if "error" in e and "read" in e}
        opened = [e for e in self.events if "open" in e]
        self.opened = bool(opened and opened[0]["open"])
        self.open_error = clean(opened[0].get("error", "")) if opened else ""
        self.closed = any("done" in e for e in self.events)
        assert self.returncode >= 0, f"the reader crashed (signal {-self.returncode}): {self.stderr[-3000:]}"

    def error_lines(self) -> list[str]:
        """ADIOS2's messages on stderr, cleaned (no colours, no time stamps), without repeats."""
        out: list[str] = []
        for line in self.stderr.splitlines():
            text = clean(line)
            if text and text not in out:
                out.append(text)
        return out

    def __repr__(self) -> str:
        return f"Reading(rc={self.returncode}, events={self.events}, stderr={self.stderr[-2000:]!r})"


def _die_with_us() -> None:
    """In a child before exec: SIGKILL it when the test process dies (a killed run leaves nothing running),
    and the signal dispositions of a foreground command (camp_process.foreground_signals)."""
    import ctypes

    foreground_signals()
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (kept across exec)


class World:
    """A private network namespace with sshd(s), camp connect and readers; see the module docstring."""

    def __init__(self, root: Path, adios2: Path):
        self.root = root
        self.adios2 = adios2
        self.site = adios2 / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
        self.server = adios2 / "bin" / "adios2_remote_server"
        self.home = root / "home"
        self.cfg = self.home / ".config" / "hpc-campaign"
        (self.cfg / "keys").mkdir(parents=True)
        (self.home / ".ssh").mkdir(mode=0o700)
        self.store = root / "store"
        self.store.mkdir()
        (self.cfg / "config.yaml").write_text(
            f"Campaign:\n  hostname: LOCALHOST\n  campaignstorepath: {self.store}\n  cachepath: {root / 'cache'}\n")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "e2e", "-f",
                        str(self.home / ".ssh" / "id_ed25519")], check=True)
        (root / "reader.py").write_text(READER)
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"], preexec_fn=_die_with_us)
        self.ns = ["nsenter", f"--target={self.holder.pid}", "--net", "--"]
        self._net = os.readlink(f"/proc/{self.holder.pid}/ns/net") if self._wait_ns() else ""
        subprocess.run([*self.ns, "ip", "link", "set", "lo", "up"], check=True)
        self.sshds: dict[int, subprocess.Popen] = {}
        self.connector: subprocess.Popen | None = None
        self.logs = 0

    def _wait_ns(self) -> bool:
        own = os.readlink("/proc/self/ns/net")
        for _ in range(200):
            try:
                if os.readlink(f"/proc/{self.holder.pid}/ns/net") != own:
                    return True
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError("unshare --net did not make a network namespace")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every process in the world (HOME is the world's)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMP_")}
        env.update(HOME=str(self.home), **extra)
        return env

    # -- sshd ----------------------------------------------------------------------------

    def start_sshd(self, port: int) -> str:
        """An sshd on 127.0.0.1:``port`` with a private /tmp; returns its known_hosts line."""
        d = self.root / f"sshd-{port}"
        d.mkdir(exist_ok=True)
        if not (d / "host_key").exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")], check=True)
        shutil.copy(self.home / ".ssh" / "id_ed25519.pub", d / "authorized_keys")
        (d / "tmp").mkdir(exist_ok=True)
        (d / "sshd_config").write_text(textwrap.dedent(f"""\
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {d}/host_key
            PidFile {d}/sshd.pid
            AuthorizedKeysFile {d}/authorized_keys
            PermitRootLogin prohibit-password
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            AllowTcpForwarding yes
            LogLevel VERBOSE
        """))
        # A mount namespace whose /tmp is d/tmp: the remote servers' fixed /tmp files stay in there.
        log = open(d / "sshd.log", "ab")
        self.sshds[port] = subprocess.Popen(
            [*self.ns, "unshare", "--mount", "--", sys.executable, str(ROOT / "tests" / "private_tmp.py"),
             "--tmp", str(d / "tmp"), "--keep", str(self.root), "--", SSHD, "-D", "-e", "-f", str(d / "sshd_config")],
            stdout=log, stderr=log, env=self.env(), preexec_fn=_die_with_us)
        log.close()
        self._wait_port(port, b"SSH-", self.sshds[port], d / "sshd.log")
        pub = (d / "host_key.pub").read_text().split()
        return f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n" if port != 22 else f"127.0.0.1 {pub[0]} {pub[1]}\n"

    def stop_sshd(self, port: int) -> None:
        """Stop the sshd on ``port`` (its sessions end with it only when they end by themselves)."""
        proc = self.sshds.pop(port)
        proc.terminate()
        proc.wait(timeout=20)

    def trust(self, *lines: str) -> None:
        """Write ~/.ssh/known_hosts with these lines (and nothing else)."""
        (self.home / ".ssh" / "known_hosts").write_text("".join(lines))

    def _probe(self, port: int) -> bytes:
        code = ("import socket,sys\ntry:\n s=socket.create_connection(('127.0.0.1',%d),timeout=2)\n"
                " s.settimeout(2)\n sys.stdout.write(s.recv(8).hex())\nexcept OSError:\n pass\n" % port)
        r = subprocess.run([*self.ns, sys.executable, "-c", code], capture_output=True, text=True)
        return bytes.fromhex(r.stdout.strip() or "")

    def _wait_port(self, port: int, banner: bytes, proc: subprocess.Popen, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"exited at start ({proc.returncode}): {log.read_text(errors='replace')}")
            if self._probe(port).startswith(banner):
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing on 127.0.0.1:{port}: {log.read_text(errors='replace')}")

    # -- camp connect ------------------------------------------------------------------------

    def start_connector(self, *args: str, env: dict[str, str] | None = None) -> Path:
        """``camp connect --port 30000 ARGS`` in the world; returns its log (stdout and stderr)."""
        self.stop_connector()
        self.logs += 1
        log_path = self.root / f"connect-{self.logs}.log"
        log = open(log_path, "ab")
        self.connector = subprocess.Popen(
            [*self.ns, sys.executable, "-m", "campaignvcs", "connect", "--port", str(CONNECTOR_PORT), *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env or self.env(), cwd=self.root,
            preexec_fn=_die_with_us)
        log.close()
        deadline = time.monotonic() + 60
        while "listening on" not in log_path.read_text(errors="replace"):
            if self.connector.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("camp connect did not start: " + log_path.read_text(errors="replace"))
            time.sleep(0.05)
        self.connector_log = log_path
        return log_path

    def stop_connector(self) -> int | None:
        """SIGTERM camp connect; its exit status (None if none ran)."""
        if self.connector is None:
            return None
        if self.connector.poll() is None:
            self.connector.send_signal(signal.SIGTERM)
        rc = self.connector.wait(timeout=30)
        self.connector = None
        return rc

    def connector_text(self) -> str:
        """Everything camp connect printed so far."""
        return self.connector_log.read_text(errors="replace")

    # -- readers ---------------------------------------------------------------------------

    def read(self, archive: Path, hide: list[Path], timeout: float = 120) -> Reading:
        """Read every variable of ``archive`` with the full ADIOS2, the folders ``hide`` empty."""
        cmd = [*self.ns, "unshare", "--mount", "--", sys.executable, str(ROOT / "tests" / "private_tmp.py"),
               "--hide", *map(str, hide), "--", sys.executable, str(self.root / "reader.py"), str(archive)]
        pythonpath = os.pathsep.join([str(self.site), os.environ.get("PYTHONPATH", "")])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=self.env(PYTHONPATH=pythonpath), cwd=self.root)
        return Reading(proc)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything that runs in the world (remote servers included) and the world itself."""
        self.stop_connector()
        for port in list(self.sshds):
            self.stop_sshd(port)
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.holder.kill()
        self.holder.wait()

    def pids(self) -> list[int]:
        """Processes in the world's network namespace other than its holder (remote servers, mostly)."""
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.holder.pid:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == self._net:
                    found.append(int(entry))
            except OSError:
                continue
        return found

    def server_processes(self) -> list[str]:
        """Command lines of the adios2_remote_server processes running in the world."""
        out = []
        for pid in self.pids():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "adios2_remote_server" in cmd:
                out.append(cmd)
        return out

