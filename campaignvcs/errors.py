"""Errors that cross layers.

Every error camp raises on purpose is a :class:`CampError`: its ``str()`` is the one line
the user sees and ``exit_code`` is the process status. Errors specific to one module live
beside their raiser and subclass these.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """Process exit codes a script may branch on (docs/architecture.md, "Errors")."""

    OK = 0
    ERROR = 1
    USAGE = 2
    LOCKED = 3
    CONFLICT = 4
    HANGUP = 129
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    TERMINATED = 143


class CampError(Exception):
    """Base of every expected failure: a one-line message naming the thing."""

    exit_code: int = ExitStatus.ERROR

    def __init__(self, message: str) -> None:
        assert message, "CampError needs a message"
        super().__init__(message.splitlines()[0] if message else message)


class NotACampaign(CampError):
    """No campaign repository at or above the given path."""


class RepoLocked(CampError):
    """Another camp process holds the repository lock."""

    exit_code = ExitStatus.LOCKED


class NothingToCommit(CampError):
    """A commit found nothing staged and no shard that changes anything."""


class BadInput(CampError):
    """A path, name or option value camp cannot use."""


class UsageError(BadInput):
    """The command line itself is wrong: options that exclude each other, a missing argument.

    Exit status 2, and the boundary points at the command's ``--help``, as for click's own
    usage errors.
    """

    exit_code = ExitStatus.USAGE


class UnreadableDataset(BadInput):
    """A data file or directory that cannot be read as the kind it claims to be."""


class UnknownRevision(CampError):
    """A revision name that does not resolve to a commit."""
