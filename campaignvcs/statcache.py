"""A local SQLite cache of where each staged replica lives on disk and how it looked.

``camp status`` must compare 100,000 datasets against the disk in well under a second;
reading 100,000 manifests from git objects takes several. The cache holds one row per
live, non-archived replica of the staged state (HEAD + staging area): absolute path,
kind, size and mtime as recorded. It is keyed by a token of (HEAD, staging area); when
the token does not match (another tool moved HEAD, a crash between two writes) it is
rebuilt from the manifests. It is never shared and never part of history.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from campaignvcs.model import Dataset

SCHEMA = """
create table if not exists meta(key TEXT PRIMARY KEY, value TEXT);
create table if not exists replica(
    dataset TEXT, host TEXT, path TEXT, kind TEXT, size INT, mtime INT,
    PRIMARY KEY (dataset, host, path));
"""


@dataclass(frozen=True)
class CachedReplica:
    """A recorded local replica: where it is and what it looked like when added."""

    dataset: str
    host: str
    path: str
    kind: str
    size: int
    mtime: int


def rows_of(dataset: Dataset) -> list[CachedReplica]:
    """Cache rows of a dataset: its live replicas that are real paths (not archives, not thumbnails)."""
    if not dataset.live:
        return []
    rows = []
    for r in dataset.live_replicas():
        if r.archive is not None or is_thumbnail(dataset, r.path):
            continue
        rows.append(CachedReplica(dataset.name, r.host, os.path.join(r.dir, r.path), dataset.kind, r.size, r.mtime))
    return rows


def is_thumbnail(dataset: Dataset, path: str) -> bool:
    """True for the virtual ``thumbnails/<path>`` replica of an image (no such file exists)."""
    return dataset.kind == "IMAGE" and path.startswith("thumbnails/")


def state_token(head: bytes | None, staging: bytes) -> str:
    """What the cache must have been built for: HEAD and the staging area's bytes."""
    return (head or b"-").decode() + ":" + hashlib.sha1(staging).hexdigest()


class StatCache:
    """The cache file ``.git/camp/statcache.sqlite``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._con = sqlite3.connect(path)
        self._con.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        self._con.close()

    def token(self) -> str | None:
        """The state the cache was built for."""
        row = self._con.execute("select value from meta where key = ?", ("token",)).fetchone()
        return None if row is None else str(row[0])

    def set_token(self, token: str) -> None:
        """Record that the cache now matches ``token``."""
        with self._con:
            self._con.execute("insert or replace into meta(key, value) values (?, ?)", ("token", token))

    def replace_all(self, datasets: Iterable[Dataset], token: str) -> None:
        """Rebuild from every dataset of the staged state."""
        with self._con:
            self._con.execute("delete from meta where key = ?", ("token",))
            self._con.execute("delete from replica")
            self._con.executemany(
                "insert or replace into replica values (?, ?, ?, ?, ?, ?)",
                ((r.dataset, r.host, r.path, r.kind, r.size, r.mtime) for ds in datasets for r in rows_of(ds)),
            )
            self._con.execute("insert or replace into meta(key, value) values (?, ?)", ("token", token))

    def update(self, datasets: Iterable[Dataset], removed: Iterable[str] = ()) -> None:
        """Replace the rows of these datasets (and drop those of ``removed`` names)."""
        with self._con:
            self._con.execute("delete from meta where key = ?", ("token",))
            for ds in datasets:
                self._con.execute("delete from replica where dataset = ?", (ds.name,))
                self._con.executemany(
                    "insert or replace into replica values (?, ?, ?, ?, ?, ?)",
                    ((r.dataset, r.host, r.path, r.kind, r.size, r.mtime) for r in rows_of(ds)),
                )
            self._con.executemany("delete from replica where dataset = ?", ((n,) for n in removed))

    def on_host(self, host: str) -> Iterator[CachedReplica]:
        """Recorded replicas on ``host``, by dataset name."""
        cur = self._con.execute(
            "select dataset, host, path, kind, size, mtime from replica where host = ? order by dataset, path", (host,)
        )
        for row in cur:
            yield CachedReplica(*row)


def disk_state(replica: CachedReplica) -> str | None:
    """``None`` if the replica looks as recorded, else ``missing`` or ``modified``.

    Files compare size and mtime; BP folders compare the later of the folder's and
    md.idx's mtime (ADIOS2 rewrites md.idx at every step, the folder only gains files).
    """
    try:
        st = os.stat(replica.path)
        if replica.kind == "ADIOS":
            with contextlib.suppress(FileNotFoundError):
                idx = os.stat(os.path.join(replica.path, "md.idx"))
                return None if max(st.st_mtime_ns, idx.st_mtime_ns) == replica.mtime else "modified"
            return "modified"
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "missing"
    return None if (st.st_size == replica.size and st.st_mtime_ns == replica.mtime) else "modified"
