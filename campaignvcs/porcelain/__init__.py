"""The Python API: one function per user operation.

Each function takes plain values (paths, names, ``repo=``/``cwd=``/``env=`` like
dulwich's porcelain), returns data, and raises :class:`campaignvcs.errors.CampError`
subclasses; none prints. The click commands in :mod:`campaignvcs.cli` are thin wrappers.
"""

from campaignvcs.porcelain.history import log, show
from campaignvcs.porcelain.workspace import add, commit, init, status

__all__ = ["add", "commit", "init", "log", "show", "status"]
