"""Temporary files that name their writer, so a killed writer's leftovers can be swept safely.

A process killed by the scheduler (``kill -9``, a node failure) leaves its temporaries
behind: half a pack, a half-written archive, a lock. camp names each of them
``<prefix>~<host>~<pid>~<start>~<random><suffix>``, where ``start`` is the writer's start
time as the kernel counts it (a reused pid is not mistaken for the writer). The next
writing command removes those whose writer is provably gone — same host, and that
process no longer exists — or, when that cannot be checked (another host, another
naming), that are older than :data:`STALE_AFTER`. A temporary name never ends in the
real file's suffix, so no reader (git, dulwich, ADIOS2) takes a leftover for the real
thing while it waits to be swept.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable

STALE_AFTER = 3600.0
"""Seconds after which a temporary whose writer cannot be checked counts as left over."""
SEP = "~"
"""Separates host, pid, start time and the random part (no host name contains it)."""


def hostname() -> str:
    """This machine's name as ``socket.gethostname()`` gives it (uname's node name)."""
    try:
        return os.uname().nodename
    except AttributeError:  # not POSIX
        import socket

        return socket.gethostname()


def process_start(pid: int) -> str:
    """When process ``pid`` started, in the kernel's clock ticks since boot ("0" where unknown).

    Together with the pid this identifies a process for good: a pid is reused, the pair is not.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return "0"
    # The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    return fields[19].decode() if len(fields) > 19 else "0"


_TAG: str | None = None


def writer_tag() -> str:
    """``<host>~<pid>~<start>`` of this process (computed once; a forked child computes its own)."""
    global _TAG
    pid = os.getpid()
    if _TAG is None or _TAG.split(SEP)[1] != str(pid):
        _TAG = SEP.join((hostname(), str(pid), process_start(pid)))
    return _TAG


def writer_alive(host: str, pid: str, start: str) -> bool | None:
    """Whether the writer ``host``/``pid``/``start`` still runs; None when this host cannot tell."""
    if host != hostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, another user's
    except (OverflowError, ValueError):
        return False
    return start in ("0", process_start(int(pid)))


def make_temp(folder: str, prefix: str, suffix: str = "", mode: int = 0o600) -> tuple[int, str]:
    """A new file in ``folder`` named after this writer: (fd, path), like ``tempfile.mkstemp``.

    Written here because importing :mod:`tempfile` (with shutil, bz2, lzma, random) costs
    more than a one-dataset ``camp add`` spends writing.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        path = os.path.join(folder, prefix + SEP + writer_tag() + SEP + os.urandom(4).hex() + suffix)
        try:
            return os.open(path, flags, mode), path
        except FileExistsError:
            continue


def make_temp_dir(folder: str, prefix: str) -> str:
    """A new private folder in ``folder`` named after this writer (swept like a temporary file)."""
    while True:
        path = os.path.join(folder, prefix + SEP + writer_tag() + SEP + os.urandom(4).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def _writer_of(name: str) -> bool | None:
    """Whether the writer named in a temporary's name runs (None: no writer in the name, or another host).

    The writer is read from the right (``…~<host>~<pid>~<start>~<random><suffix>``), so a
    prefix may hold anything.
    """
    parts = name.split(SEP)
    return writer_alive(parts[-4], parts[-3], parts[-2]) if len(parts) >= 5 else None


def writer_running(name: str) -> bool:
    """Whether the temporary ``name`` is provably a live writer's (so not a leftover to report)."""
    return _writer_of(name) is True


def is_stale(name: str, mtime: float, now: float) -> bool:
    """Whether the temporary ``name`` is a leftover of a writer that is gone (or, unknowable, an old one)."""
    alive = _writer_of(name)
    if alive is not None:
        return not alive
    return now - mtime > STALE_AFTER


def sweep(folder: str, prefixes: Iterable[str], suffix: str = "", now: float | None = None) -> list[str]:
    """Remove the leftovers in ``folder`` named ``<prefix>…<suffix>`` (files or folders); returns their paths.

    Never raises: a folder that cannot be listed, or a file another process removes
    first, is simply skipped (the sweep is housekeeping, not part of the operation).
    """
    prefixes = tuple(prefixes)
    now = time.time() if now is None else now
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefixes) or not entry.name.endswith(suffix):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not is_stale(entry.name, st.st_mtime, now):
                continue
            if entry.is_dir(follow_symlinks=False):
                import shutil  # only here: it costs more to import than most sweeps take

                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue
        removed.append(entry.path)
    return removed


def remove_quietly(*paths: str) -> None:
    """Delete files that may or may not exist (clean-up after a failed write)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never half of one.

    The temporary file names its writer, so one left by a killed process is swept by the
    next writer.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = make_temp(folder, "." + os.path.basename(path) + ".", ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
