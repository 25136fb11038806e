"""Lock files: the repository lock camp holds while writing, and git's ref locks it meets.

The repository lock is a file created with ``O_EXCL`` that names its holder
(``<host>~<pid>~<start>``, see :mod:`campaignvcs.tempfiles`). A lock whose holder is
provably gone — same host and that process no longer runs, or a file left empty (the
holder died, or the disk was full, between creating and writing it) for longer than
:data:`EMPTY_STALE_AFTER` — is broken by the next writer, so a job killed by the
scheduler never leaves a repository that needs hand repair. A lock held on another host
cannot be checked from here; the error names it and the command that clears it.

Breaking is itself guarded by a second ``O_EXCL`` file, so two writers that find the same
stale lock do not both remove it (the second would remove the first one's new lock).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from campaignvcs import signals
from campaignvcs.errors import CampError, RepoLocked
from campaignvcs.tempfiles import hostname, writer_alive, writer_tag

EMPTY_STALE_AFTER = 2.0
"""Seconds after which an empty or unreadable lock file counts as left by a dead writer."""
REF_LOCK_STALE_AFTER = 10.0
"""Seconds after which a git ref lock (``<ref>.lock``) met under camp's own lock counts as left over.

camp moves refs only while it holds the repository lock, so no camp process can hold a
ref lock then; stock git holds one for milliseconds.
"""
POLL = 0.05


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its file says: host, pid, process start; ``state`` running/gone/unknown."""

    path: str
    host: str
    pid: str
    state: str
    age: float

    def describe(self) -> str:
        """One phrase for messages: who holds the lock and whether that process still runs."""
        if not self.host:
            return f"an empty lock file {self.path} ({self.age:.0f} s old)"
        where = f"pid {self.pid} on {self.host}"
        if self.state == "running":
            return f"{where} (running)"
        if self.state == "gone":
            return f"{where}, which is no longer running"
        return f"{where} (cannot be checked from {hostname()})"


def read_holder(path: str) -> Holder | None:
    """The holder named by the lock file at ``path``, or None when there is no lock."""
    try:
        with open(path, "rb") as f:
            text = f.read(512).decode("utf-8", "replace")
            age = time.time() - os.fstat(f.fileno()).st_mtime
    except FileNotFoundError:
        return None
    except OSError:
        return Holder(path, "", "", "unknown", 0.0)
    fields = text.split()
    if len(fields) == 1 and fields[0].count("~") == 2:
        host, pid, start = fields[0].split("~")
    elif len(fields) == 2:  # camp before 0.2: "<host> <pid>"
        (host, pid), start = fields, "0"
    else:
        return Holder(path, "", "", "gone" if age > EMPTY_STALE_AFTER else "unknown", age)
    alive = writer_alive(host, pid, start)
    state = "unknown" if alive is None else "running" if alive else "gone"
    return Holder(path, host, pid, state, age)


class RepoLock:
    """The repository's write lock at ``path`` (not re-entrant; CampaignRepo counts for itself)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, wait: float) -> None:
        """Take the lock, breaking a stale one; wait up to ``wait`` seconds for a live holder.

        Creating and filling the lock file happen with SIGINT, SIGTERM and SIGHUP held back
        (delivered right after), so an interrupted camp never leaves a lock it did not record.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                with signals.held():
                    self._create()
                return
            except FileExistsError:
                if self._break_stale():
                    continue
                if time.monotonic() >= deadline:
                    holder = read_holder(self.path)
                    who = holder.describe() if holder else "another camp process"
                    raise RepoLocked(
                        f"repository is locked by {who}: {self.path} "
                        f"(if no camp process is using it, remove it: rm {self.path})"
                    ) from None
                time.sleep(POLL)
            except OSError as exc:
                raise CampError(f"cannot take the repository lock {self.path}: {exc.strerror}; nothing was changed") \
                    from None

    def _create(self) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            os.write(fd, (writer_tag() + "\n").encode())
        except BaseException:  # a full disk creates the file but cannot fill it: leave nothing behind
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (no-op when not held); signals wait until the file is gone."""
        if self._fd is not None:
            with signals.held():
                os.close(self._fd)
                self._fd = None
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)


    def _break_stale(self) -> bool:
        """Remove the lock if its holder is provably gone; True if it was removed (or vanished)."""
        holder = read_holder(self.path)
        if holder is None:
            return True
        if holder.state != "gone":
            return False
        guard = self.path + ".break"
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - os.stat(guard).st_mtime > EMPTY_STALE_AFTER:
                    os.unlink(guard)  # a breaker killed in these few lines
            return False
        except OSError:
            return False
        try:
            again = read_holder(self.path)
            if again is not None and (again.host, again.pid, again.state) == (holder.host, holder.pid, "gone"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            return True
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(guard)


def leftover_locks(git_dir: str) -> list[Holder]:
    """Lock files in a repository that no running process on this host holds: what status and fsck name.

    The repository lock when its holder is gone or unknown, and every git ref lock
    (``*.lock`` below ``refs/``, ``packed-refs.lock``, ``HEAD.lock``, ``config.lock``)
    older than :data:`REF_LOCK_STALE_AFTER`.
    """
    found = []
    holder = read_holder(os.path.join(git_dir, "camp", "lock"))
    if holder is not None and holder.state != "running":
        found.append(holder)
    candidates = [os.path.join(git_dir, n) for n in ("HEAD.lock", "packed-refs.lock", "config.lock")]
    for folder, _dirs, files in os.walk(os.path.join(git_dir, "refs")):
        candidates += [os.path.join(folder, f) for f in files if f.endswith(".lock")]
    for path in candidates:
        try:
            age = time.time() - os.stat(path).st_mtime
        except OSError:
            continue
        if age > REF_LOCK_STALE_AFTER:
            found.append(Holder(path, "", "", "gone", age))
    return found
