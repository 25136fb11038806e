"""Which datasets a sub-archive holds: ``--include`` / ``--exclude`` globs over dataset names.

A reader of a 100,000-dataset campaign pays ADIOS2 ~0.5 ms and ~65 KiB per dataset to open
the whole archive; a sub-archive of one run costs in proportion to that run. The same
selection is used by ``camp build`` and by a remote's archive (``camp remote add
--include``), and is recorded in the archive's ``camp_build`` table, so an incremental
build only patches an archive made with the same selection.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from campaignvcs.errors import BadInput

UNSAFE = set(";#\"\n\r\\")
"""Characters a glob may not hold: git's config syntax (where a remote's selection is kept) reads them."""


@dataclass(frozen=True)
class Selection:
    """Dataset names to keep: those matching any ``include`` (all when none), minus any ``exclude``.

    Globs are :mod:`fnmatch` patterns over the whole dataset name; ``*`` also matches
    ``/``, so ``run_0001/*`` is everything under ``run_0001``.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for glob in (*self.include, *self.exclude):
            if not glob or UNSAFE.intersection(glob):
                raise BadInput(f"bad dataset glob {glob!r}: empty, or holding one of ; # \" \\ or a line break")

    @property
    def everything(self) -> bool:
        """True when nothing is selected out."""
        return not self.include and not self.exclude

    def keeps(self, name: str) -> bool:
        """Whether dataset ``name`` belongs in the archive."""
        if self.include and not any(fnmatch.fnmatchcase(name, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, g) for g in self.exclude)

    def recorded(self) -> str:
        """The selection as the ``camp_build`` table records it ("" for everything)."""
        if self.everything:
            return ""
        return "\n".join([*(f"+{g}" for g in self.include), *(f"-{g}" for g in self.exclude)])


EVERYTHING = Selection()
