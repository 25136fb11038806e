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
    dataset TEXT, host TEXT, path TEXT, probe TEXT, kind TEXT, size INT, mtime INT,
    PRIMARY KEY (host, dataset, path));
create index if not exists replica_dataset on replica(dataset);
"""
CREATE = "begin;\n" + SCHEMA + "commit;\n"
"""A new cache's tables, in one transaction (one commit instead of one per statement)."""
CACHE_VERSION = "4"
"""Bumped whenever the table changes; an older cache is simply rebuilt."""


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
        if not os.path.exists(path):
            self._con = sqlite3.connect(path)
            self._create()
            return
        self._con = sqlite3.connect(path)
        try:
            self._con.executescript(SCHEMA)
            version = self._con.execute("select value from meta where key = ?", ("version",)).fetchone()
        except sqlite3.DatabaseError:
            version = None
        if version is None or version[0] != CACHE_VERSION:
            self._recreate()

    def _recreate(self) -> None:
        """Start over: the cache is derived data, private to this clone."""
        self._con.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._con = sqlite3.connect(self.path)
        self._create()

    def _create(self) -> None:
        """Tables in one transaction (one commit instead of one per statement), then the version."""
        self._con.executescript(CREATE)
        with self._con:  # "or replace": a status that ran at the same moment may have written it too
            self._con.execute("insert or replace into meta(key, value) values (?, ?)", ("version", CACHE_VERSION))

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
                "insert or replace into replica values (?, ?, ?, ?, ?, ?, ?)",
                (_row(r) for ds in datasets for r in rows_of(ds)),
            )
            self._con.execute("insert or replace into meta(key, value) values (?, ?)", ("token", token))

    def update(self, datasets: Iterable[Dataset], removed: Iterable[str] = ()) -> None:
        """Replace the rows of these datasets (and drop those of ``removed`` names)."""
        latest = {ds.name: ds for ds in datasets}  # a name given twice: its last state counts
        with self._con:
            self._con.execute("delete from meta where key = ?", ("token",))
            self._con.executemany("delete from replica where dataset = ?", ((name,) for name in latest))
            self._con.executemany(
                "insert or replace into replica values (?, ?, ?, ?, ?, ?, ?)",
                (_row(r) for ds in latest.values() for r in rows_of(ds)),
            )
            self._con.executemany("delete from replica where dataset = ?", ((n,) for n in removed))

    def paths(self) -> Iterator[tuple[str, str]]:
        """(dataset, dir/path) of every recorded replica: candidates found without reading manifests."""
        yield from self._con.execute("select dataset, path from replica")

    def changed_on_host(self, host: str) -> Iterator[tuple[str, str, str]]:
        """(state, dataset, path) of every recorded replica on ``host`` that no longer matches.

        One ``stat`` per replica: a file is compared by size and mtime; a BP folder by the
        mtime of its md.idx, which ADIOS2 rewrites at every step and which camp records as
        the replica's mtime. This loop is the whole cost of ``camp status`` at 100,000
        datasets, so it reads only the columns it compares and stays on plain tuples.
        """
        rows = self._con.execute(
            "select rowid, probe, kind = 'ADIOS', size, mtime from replica where host = ?", (host,)
        ).fetchall()
        stat = os.stat
        changed: list[tuple[int, str]] = []
        for rowid, probe, is_bp, size, mtime in rows:
            try:
                st = stat(probe)
            except OSError:
                changed.append((rowid, "gone"))
                continue
            if st.st_mtime_ns != mtime or (not is_bp and st.st_size != size):
                if is_bp and _folder_mtime(probe) == mtime:
                    continue  # recorded by hpc-campaign (imported), which uses the folder's mtime
                changed.append((rowid, "modified"))
        found = []
        for rowid, state in changed:
            dataset, path = self._con.execute("select dataset, path from replica where rowid = ?", (rowid,)).fetchone()
            if state == "gone":
                state = "missing" if not os.path.exists(path) else "modified"
            found.append((state, dataset, path))
        yield from sorted(found, key=lambda f: (f[1], f[2]))


def _folder_mtime(md_idx: str) -> int | None:
    try:
        return os.stat(os.path.dirname(md_idx)).st_mtime_ns
    except OSError:
        return None


def _row(r: CachedReplica) -> tuple[str, str, str, str, str, int, int]:
    probe = os.path.join(r.path, "md.idx") if r.kind == "ADIOS" else r.path
    return (r.dataset, r.host, r.path, probe, r.kind, r.size, r.mtime)
