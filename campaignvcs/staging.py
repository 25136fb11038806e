"""The staging area: the tree paths changed since HEAD, and nothing else.

git's index would hold 200,000 entries at 100,000 datasets and be rewritten whole on every
change; camp's holds only what changed (a whole dataset folder is one entry), so staging
and committing cost O(change). It lives in ``.git/camp/index.json`` (or in memory), and
only a repository transaction changes it (see ``CampaignRepo.transaction``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from campaignvcs.errors import CampError
from campaignvcs.gitobjects import TREE_MODE, Entry
from campaignvcs.tempfiles import atomic_write


@dataclass
class Staging:
    """The staged state: tree paths changed since ``head``; ``None`` marks a removal."""

    head: str | None
    entries: dict[str, Entry | None]

    def to_bytes(self) -> bytes:
        """Serialised form (sorted, so identical staging gives identical bytes)."""
        ent = {p: (None if v is None else [v[0], v[1].decode()]) for p, v in sorted(self.entries.items())}
        return json.dumps({"head": self.head, "entries": ent}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Staging:
        """Inverse of :meth:`to_bytes`."""
        d = json.loads(data)
        ent = {p: (None if v is None else (int(v[0]), v[1].encode())) for p, v in d["entries"].items()}
        return cls(d.get("head"), ent)


class StagingArea:
    """The staging area of one repository, loaded once and written atomically.

    ``path`` None keeps it in memory. Readers see :attr:`entries` read-only; changes go
    through :meth:`stage`, :meth:`clear` and :meth:`rebase`, which a repository calls
    only inside a transaction (lock held, stat cache kept in step).
    """

    def __init__(self, path: str | None, head: Callable[[], bytes | None]) -> None:
        self.path = path
        self._head = head
        self._state: Staging | None = None

    def _load(self) -> Staging:
        if self._state is None:
            try:
                if self.path is None:
                    raise FileNotFoundError
                with open(self.path, "rb") as f:
                    self._state = Staging.from_bytes(f.read())
            except FileNotFoundError:
                head = self._head()
                self._state = Staging(head.decode() if head else None, {})
            except (ValueError, KeyError) as exc:
                raise CampError(f"staging area {self.path} is corrupt ({exc})") from None
        return self._state

    @property
    def entries(self) -> Mapping[str, Entry | None]:
        """Staged path → entry (None: removed), read-only."""
        return MappingProxyType(self._load().entries)

    @property
    def base(self) -> str | None:
        """The commit (hex) the staged changes were made against."""
        return self._load().head

    def to_bytes(self) -> bytes:
        """The serialised staging area (what the stat cache's token covers)."""
        return self._load().to_bytes()

    def forget(self) -> None:
        """Drop what is in memory: the next read loads the file again (another writer may have changed it)."""
        self._state = None

    def stage(self, path: str, entry: Entry | None) -> None:
        """Record that ``path`` becomes ``entry`` (None: removed) in the next commit."""
        self._load().entries[path] = entry

    def clear(self, base: bytes | None = None) -> dict[str, Entry | None]:
        """Empty the staging area (now against commit ``base`` when given); returns what was staged."""
        state = self._load()
        staged = dict(state.entries)
        state.entries.clear()
        if base is not None:
            state.head = base.decode()
        return staged

    def save(self) -> None:
        """Write the staging area atomically (the caller wrote the objects it points at first)."""
        if self.path is not None:
            atomic_write(self.path, self._load().to_bytes())

    def current(self, path: str, in_head: Callable[[str], Entry | None],
                below: Callable[[bytes, str], Entry | None]) -> Entry | None:
        """The entry at ``path`` as the next commit would have it: staged, else ``in_head(path)``.

        A staged folder (e.g. a whole dataset) answers for the paths below it, through
        ``below(tree id, rest of path)``.
        """
        entries = self._load().entries
        if entries:
            parts = path.split("/")
            for i in range(len(parts), 0, -1):
                prefix = "/".join(parts[:i])
                if prefix in entries:
                    entry = entries[prefix]
                    if entry is None or i == len(parts):
                        return entry
                    return below(entry[1], "/".join(parts[i:])) if entry[0] == TREE_MODE else None
        return in_head(path)


def staging_file(camp_dir: str) -> str:
    """Where a repository keeps its staging area."""
    return os.path.join(camp_dir, "index.json")
