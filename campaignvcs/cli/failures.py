"""One line for failures of the machine rather than of camp: permissions, a full disk, a read-only mount.

The error boundary (:func:`campaignvcs.cli._report`) asks :func:`describe` before it calls an
exception an internal error. These exceptions come from anywhere below (camp's own code,
dulwich, sqlite3, the interpreter's file objects), often without a file name: a full disk
shows at ``write()`` or ``close()`` of a file that opened fine, and Python's file objects
do not say which file that was. So the name is looked for, in this order, on the
exception, then on the file object or path the failing code had in hand (innermost frame
first); the line says what was denied or not written, and that nothing recorded was lost.
The last holds because every file that matters is written to a temporary name and
renamed into place (see docs/architecture.md, "Errors").
"""

from __future__ import annotations

import errno
import io
import os
import re
from types import TracebackType

DENIED = {errno.EACCES, errno.EPERM}
NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EFBIG: "file too large for this file system or the file size limit"}
READ_ONLY = {errno.EROFS}

_SQLITE_FULL = ("SQLITE_FULL",)
_SQLITE_IO = ("SQLITE_IOERR",)
_SQLITE_DENIED = ("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_CANTOPEN", "SQLITE_AUTH")

_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8,}(?:\.[0-9]+)*\.tmp$")
"""``.index.json.<random hex>.tmp``: the temporary an atomic write of ``index.json`` renames."""

_PATH_LOCALS = ("path", "filename", "tmp", "target", "dest", "destination", "full")
"""Local variable names that hold the file a failing function was working on (camp's, dulwich's)."""


def describe(exc: BaseException, command: str = "camp") -> str | None:
    """The message for ``exc`` (without ``camp: error:``), or None if it is not a failure of the machine."""
    if isinstance(exc, OSError) and exc.errno is not None:
        path = _name(exc.filename) or _path_in_hand(exc.__traceback__)
        if exc.errno in DENIED:
            return denied(path, exc.strerror or "permission denied", _name(exc.filename2))
        if exc.errno in NO_SPACE:
            return not_written(NO_SPACE[exc.errno], path, command)
        if exc.errno in READ_ONLY:
            return not_written("read-only file system", path, command, "make it writable")
        return None
    if type(exc).__module__ == "sqlite3":
        code = str(getattr(exc, "sqlite_errorname", "") or "")
        text = str(exc).splitlines()[0] if str(exc) else code
        path = _sqlite_file(exc.__traceback__)
        if code.startswith(_SQLITE_FULL) or "disk is full" in text:
            return not_written(f"no space left on device (SQLite: {text})", path, command)
        if code.startswith(_SQLITE_IO) or "disk I/O error" in text:
            return not_written(f"input/output error (SQLite: {text}; a full disk can cause it)", path,
                               command, "check the disk and free some space")
        if code.startswith(_SQLITE_DENIED) or "readonly database" in text or "unable to open" in text:
            where = denied(path) if path else "permission denied or no space"
            return f"{where} (SQLite: {text}); {command} did not finish, nothing recorded before was lost"
    return None


def denied(path: str | None, strerror: str = "permission denied", other: str | None = None) -> str:
    """``permission denied: cannot read /x/y`` (or write, create in, enter), from what the path allows."""
    if not path:
        return f"permission denied ({strerror})"
    if other:
        return f"permission denied: cannot move {path} to {other}"
    return f"permission denied: {_what_is_denied(path)}"


def not_written(reason: str, path: str | None, command: str, remedy: str = "free some space") -> str:
    """``<reason>: <what> was not written; <command> did not finish, nothing recorded before was lost``."""
    what = f"{_real_name(path)} was not written" if path else "nothing more could be written"
    return (f"{reason}: {what}; {command} did not finish, nothing recorded before was lost "
            f"({remedy}, then run it again)")


def _what_is_denied(path: str) -> str:
    """Which access to ``path`` this process lacks.

    The first folder on the way it cannot enter, else reading, writing, or creating in the
    folder.
    """
    full = os.path.abspath(path)
    parts = full.split(os.sep)
    for i in range(2, len(parts)):
        folder = os.sep.join(parts[:i]) or os.sep
        if os.path.isdir(folder) and not os.access(folder, os.X_OK):
            return f"cannot enter folder {folder} (needed for {full})"
    if not os.path.lexists(full):
        parent = os.path.dirname(full)
        return f"cannot create {full} (folder {parent} is not writable)"
    if os.path.isdir(full):
        if not os.access(full, os.R_OK):
            return f"cannot list folder {full}"
        if not os.access(full, os.W_OK):
            return f"cannot write in folder {full}"
        return f"cannot use folder {full}"
    if not os.access(full, os.R_OK):
        return f"cannot read {full}"
    if not os.access(full, os.W_OK):
        return f"cannot write {full}"
    parent = os.path.dirname(full)
    if not os.access(parent, os.W_OK):
        return f"cannot replace {full} (folder {parent} is not writable)"
    return f"cannot access {full}"


def _real_name(path: str) -> str:
    """The file a temporary stands for, else the folder it is in.

    ``.index.json.1a2b….tmp`` → ``index.json``; dulwich's ``HEAD.lock`` → ``HEAD``.
    """
    folder, base = os.path.split(path)
    match = _TEMP.match(base)
    if match:
        return os.path.join(folder, match["name"])
    if base.endswith(".lock"):
        return os.path.join(folder, base[: -len(".lock")])
    if base.startswith(("tmp", ".tmp")) or base.endswith(".tmp"):
        return f"a new file in {folder}"
    return path


def _name(value: object) -> str | None:
    if isinstance(value, bytes):
        return os.fsdecode(value)
    if isinstance(value, str) and value:
        return value
    return None


def _path_in_hand(tb: TracebackType | None) -> str | None:
    """The file the innermost frame that had one was working on.

    An open file object with a name, else a local such as ``path`` or ``tmp`` holding an
    absolute path.
    """
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        values = frame.f_locals
        for value in values.values():
            inner = getattr(value, "_file", None)  # dulwich's _GitFile wraps the real file object
            for candidate in (value, inner):
                name = getattr(candidate, "name", None)
                if isinstance(candidate, io.IOBase) and isinstance(name, str):
                    return name
            lock = getattr(value, "_lockfilename", None)
            if isinstance(lock, str | bytes):
                return _name(lock)
        for key in _PATH_LOCALS:
            value = values.get(key)
            name = _name(value)
            if name and os.path.isabs(name):
                return name
    return None


def _sqlite_file(tb: TracebackType | None) -> str | None:
    """The file of the SQLite database the failing code had open.

    A connection among the locals of a frame, or among the attributes of one (``self._con``),
    is asked with ``PRAGMA database_list``; once closed (a ``finally`` ran), the ``path`` of
    the object that held it is taken instead.
    """
    import sqlite3

    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in frame.f_locals.values():
            holder = value if hasattr(value, "__dict__") and not isinstance(value, type) else None
            for candidate in (value, *(vars(holder).values() if holder is not None else ())):
                if not isinstance(candidate, sqlite3.Connection):
                    continue
                try:
                    rows = candidate.execute("PRAGMA database_list").fetchall()
                except sqlite3.Error:
                    rows = []
                for row in rows:
                    if row[1] == "main" and row[2]:
                        return str(row[2])
                path = _name(getattr(holder, "path", None))
                if path:
                    return path
    return None
