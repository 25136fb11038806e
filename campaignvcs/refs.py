"""Refs and the reflog: where branches point, moved by compare-and-swap.

camp uses dulwich's refs on disk, with two changes that keep a killed process from
wedging a repository: a ref lock left behind is recognised and removed while camp holds
its own repository lock, and a ref file that cannot be read is an error rather than a
ref that does not exist.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from dulwich.file import FileLocked
from dulwich.reflog import format_reflog_line
from dulwich.refs import DictRefsContainer, DiskRefsContainer, RefsContainer

from campaignvcs.errors import CampError
from campaignvcs.tempfiles import remove_quietly

BRANCH = b"refs/heads/main"
LOCK_WAIT_SECONDS = 3.0
"""How long a ref update waits on a ref lock someone else holds."""
REF_LOCK_PATIENCE = 1.0
"""Seconds a ref lock must stay unchanged, while camp holds its own lock, to count as a leftover."""


class Refs(DiskRefsContainer):
    """dulwich's refs on disk, where a ref lock left by a killed process does not wedge the repository.

    camp moves refs only while it holds the repository lock, so then no camp process can
    hold a ref lock (``refs/heads/main.lock``), and stock git holds one for milliseconds: a
    ref lock that stays unchanged for :data:`REF_LOCK_PATIENCE` seconds is a leftover and
    is removed. Without camp's lock the error names the file and the command that clears it.
    """

    under_lock: Callable[[], bool] = staticmethod(lambda: False)

    def set_if_equals(self, *args: Any, **kwargs: Any) -> bool:
        """As dulwich's, past leftover ref locks."""
        return self._past_locks(super().set_if_equals, *args, **kwargs)

    def add_if_new(self, *args: Any, **kwargs: Any) -> bool:
        """As dulwich's, past leftover ref locks."""
        return self._past_locks(super().add_if_new, *args, **kwargs)

    def remove_if_equals(self, *args: Any, **kwargs: Any) -> bool:
        """As dulwich's, past leftover ref locks."""
        return self._past_locks(super().remove_if_equals, *args, **kwargs)

    def set_symbolic_ref(self, *args: Any, **kwargs: Any) -> None:
        """As dulwich's, past leftover ref locks."""
        self._past_locks(super().set_symbolic_ref, *args, **kwargs)

    def _read_loose_ref_file(self, name: bytes) -> bytes | None:
        """As dulwich's, but a ref that cannot be read is an error, not a ref that does not exist.

        dulwich answers None for any OSError, so an unreadable ``refs/heads/main`` looked like
        an empty campaign ("campaign.json is missing"); the error boundary names the file.
        """
        try:
            with open(self.refpath(name), "rb"):
                pass
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except PermissionError:
            raise
        except OSError:
            return None
        return super()._read_loose_ref_file(name)

    def _past_locks(self, op: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen: dict[str, tuple[int, int, float]] = {}
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return op(*args, **kwargs)
            except FileLocked as exc:
                path = os.fsdecode(exc.lockfilename)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            now = time.monotonic()
            key = (st.st_ino, st.st_mtime_ns)
            first = seen.setdefault(path, (*key, now))
            if first[:2] != key:
                seen[path] = (*key, now)
            elif self.under_lock() and now - first[2] >= REF_LOCK_PATIENCE:
                remove_quietly(path)
                continue
            if now >= deadline:
                raise CampError(
                    f"a git ref is locked: {path} (if no git or camp process is running here, remove it: rm {path})"
                )
            time.sleep(0.05)


def memory_refs() -> RefsContainer:
    """Refs in a dict, with HEAD pointing at the main branch (unit tests)."""
    refs = DictRefsContainer({})
    refs.set_symbolic_ref(b"HEAD", BRANCH)
    return refs


def append_reflog(git_dir: str, ref: bytes, old_sha: bytes, new_sha: bytes, committer: bytes,
                  timestamp: int | None, timezone: int | None, message: bytes) -> None:
    """Append one reflog line, as dulwich's Repo writes it."""
    path = os.path.join(git_dir, "logs", os.fsdecode(ref))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    when = int(time.time()) if timestamp is None else timestamp
    line = format_reflog_line(old_sha, new_sha, committer, when, timezone or 0, message)
    with open(path, "ab") as f:
        f.write(line + b"\n")
