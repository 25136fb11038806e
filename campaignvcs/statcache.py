"""A local SQLite cache of where each staged replica lives on disk and how it looked.

``camp status`` must compare 100,000 datasets against the disk in well under a second;
reading 100,000 manifests from git objects takes several. The cache holds one row per
live, non-archived replica of the staged state (HEAD + staging area): absolute path,
kind, size and mtime as recorded. It is keyed by a token of (HEAD, staging area); when
the token does not match (another tool moved HEAD, a crash between two writes) it is
rebuilt from the manifests. It is never shared and never part of history.

A timestamp alone never decides that data is unchanged (git's "racily clean" rule):
each row also keeps the *signature* of its files as last verified — size, mtime, ctime
and inode of the file, or of a BP dataset's ``md.idx`` and ``md.0`` (never the
folder) — and when that was taken (``stamp``). A row is clean only if the signature is
unchanged and every mtime in it is older than the stamp by more than
:data:`RACY_MARGIN_NS`; otherwise its content is compared with the recorded checksum (as
``camp verify`` does) and the signature refreshed when it matches. ``touch -r``
(ctime moves), a rewrite of the same size in the same clock tick (the mtime is within
the margin), an append right after ``camp add`` — each ends in a content check.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import itertools
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from campaignvcs.model import Dataset

SCHEMA = """
create table if not exists meta(key TEXT PRIMARY KEY, value TEXT);
create table if not exists replica(
    dataset TEXT, host TEXT, path TEXT, kind TEXT, size INT, mtime INT, checksum TEXT,
    digest TEXT, sig INT, stamp INT,
    PRIMARY KEY (host, dataset, path));
create index if not exists replica_dataset on replica(dataset);
create index if not exists replica_path on replica(host, path, dataset);
"""
CREATE = "begin;\n" + SCHEMA + "commit;\n"
"""A new cache's tables, in one transaction (one commit instead of one per statement)."""
CACHE_VERSION = "7"
"""Bumped whenever the table changes; an older cache is simply rebuilt."""
RACY_MARGIN_NS = 2_000_000_000
"""A file whose mtime is this close to (or after) the moment it was read may change again unseen.

File systems keep times coarsely (1 s on some, 2 s on FAT; a shared file system's clock
may also be a little off ours), so a write just after camp read a file can leave the
same mtime: such rows get a content check until their files are older than this.
"""
_INSERT = ("insert or replace into replica(dataset, host, path, kind, size, mtime, checksum, digest, sig, stamp) "
           "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_VERIFIED = "select host, path, size, mtime, checksum, digest, sig, stamp from replica where sig is not null"
_VERIFIED_OF = _VERIFIED + " and dataset in (select value from json_each(?))"

ContentDigests = Callable[[list[tuple[str, str]]], list[str | None]]
"""[(kind, path)] → the checksum ``camp add`` would record for each now (None: unreadable), in order."""


@dataclass(frozen=True)
class CachedReplica:
    """A recorded local replica: where it is and what it looked like when added."""

    dataset: str
    host: str
    path: str
    kind: str
    size: int
    mtime: int
    checksum: str


def rows_of(dataset: Dataset) -> list[CachedReplica]:
    """Cache rows of a dataset: its live replicas that are real paths (not archives, not thumbnails)."""
    if not dataset.live:
        return []
    rows = []
    for r in dataset.live_replicas():
        if r.archive is not None or is_thumbnail(dataset, r.path):
            continue
        rows.append(CachedReplica(dataset.name, r.host, os.path.normpath(os.path.join(r.dir, r.path)), dataset.kind,
                                  r.size, r.mtime, r.checksum))
    return rows


def is_thumbnail(dataset: Dataset, path: str) -> bool:
    """True for the virtual ``thumbnails/<path>`` replica of an image (no such file exists)."""
    return dataset.kind == "IMAGE" and path.startswith("thumbnails/")


def state_token(head: bytes | None, staging: bytes) -> str:
    """What the cache must have been built for: HEAD and the staging area's bytes."""
    return (head or b"-").decode() + ":" + hashlib.sha1(staging).hexdigest()


_ABSENT = (-1, -1, -1, -1)
"""The probe of a metadata file that is not there (a missing md.0 is part of the signature)."""


def probe(kind: str, path: str, stat: Callable[[str], os.stat_result] = os.stat) -> tuple[int, ...]:
    """(size, mtime, ctime, inode) of each file that stands for the replica at ``path``, in one flat tuple.

    A file: the file. A BP folder: md.idx and md.0, which ADIOS2 rewrites at every step (a
    missing md.0 is part of it as -1s; mmd.0 only ever changes with them, and a third stat
    per dataset is a third of the cost of ``camp status``). OSError when the file, or a BP
    folder's md.idx, is gone.
    """
    if kind != "ADIOS":
        st = stat(path)
        return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    a = stat(path + "/md.idx")
    try:
        b = stat(path + "/md.0")
    except FileNotFoundError:
        return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino, *_ABSENT)
    return (a.st_size, a.st_mtime_ns, a.st_ctime_ns, a.st_ino, b.st_size, b.st_mtime_ns, b.st_ctime_ns, b.st_ino)


STAT_THREADS = 4
"""Threads that stat replicas when stats are slow (a cold cache, a network file system): stat
releases the GIL, so the waits overlap. With the inodes cached a stat is ~3 µs of mostly
Python, and threads only contend for the GIL (measured at a million datasets: 10.8 s serial,
17 s with 2-8 threads), so the first batch decides."""
STAT_BATCH = 2000
SLOW_STAT_SECONDS = 20e-6
"""A first batch slower than this per replica means the stats wait on storage: use the threads."""


def _probed(rows: Iterable[tuple]) -> Iterator[tuple]:
    """Each row followed by its probe (None: gone), in order.

    The first :data:`STAT_BATCH` rows are probed here and timed; when that took more than
    :data:`SLOW_STAT_SECONDS` per row, the rest are probed in :data:`STAT_THREADS` threads,
    at most twice as many batches as threads in flight (a million rows are never all held).
    """
    iterator = iter(rows)
    first = list(itertools.islice(iterator, STAT_BATCH))
    started = time.perf_counter()
    done = list(_probe_rows(first))
    slow = time.perf_counter() - started > SLOW_STAT_SECONDS * max(1, len(first))
    yield from done
    if not slow:
        yield from _probe_rows(iterator)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(STAT_THREADS, thread_name_prefix="camp-stat") as pool:
        pending: collections.deque = collections.deque()
        while True:
            while len(pending) < 2 * STAT_THREADS:
                batch = list(itertools.islice(iterator, STAT_BATCH))
                if not batch:
                    break
                pending.append(pool.submit(list, _probe_rows(batch)))  # the stats run in the worker
            if not pending:
                return
            yield from pending.popleft().result()


def _probe_rows(rows: Iterable[tuple]) -> Iterator[tuple]:
    for row in rows:
        try:
            yield (*row, probe("ADIOS" if row[2] else "", row[1]))
        except OSError:
            yield (*row, None)


def signature_of(probed: Sequence[Sequence[int] | None]) -> int | None:
    """The signature of an extractor's probe (one stat tuple per file, None: absent); None without one.

    A 64-bit hash of the flat integers, as :func:`probe` gives them (Python hashes int
    tuples alike in every process): one integer for SQLite to keep and the status loop
    to compare, which is where the time of ``camp status`` goes.
    """
    if not probed or probed[0] is None:
        return None
    return hash(tuple(v for p in probed for v in (_ABSENT if p is None else p)))


def _sig_or_none(kind: str, path: str) -> int | None:
    try:
        return hash(probe(kind, path))
    except OSError:
        return None


SPLIT_ABOVE = 200_000
"""A stat cache with more rows than this is scanned by forked workers, a rowid range each."""


def _scan_range(path: str, host: str, started: int, bounds: tuple[int, int]
                ) -> tuple[list[tuple[int, str]], list[tuple[int, str, int, int | None]]]:
    """:func:`_compare` on the rows of ``host`` with ``low <= rowid < high``, through a connection of its own."""
    con = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "select rowid, path, kind = 'ADIOS', size, mtime, sig, stamp from replica "
            "where host = ? and rowid >= ? and rowid < ?", (host, *bounds))
        return _compare(rows, started)
    finally:
        con.close()


def _compare(rows: Iterable[tuple], started: int
             ) -> tuple[list[tuple[int, str]], list[tuple[int, str, int, int | None]]]:
    """(changed, unsure): rows whose replica is gone or modified, and those a content check must settle.

    The stat loop is the whole cost of ``camp status`` at 100,000 datasets, so it reads
    only the columns it compares and stays on plain tuples.
    """
    changed: list[tuple[int, str]] = []
    unsure: list[tuple[int, str, int, int | None]] = []
    for rowid, path, is_bp, size, mtime, sig, stamp, probed in _probed(rows):
        if probed is None:
            changed.append((rowid, "gone"))
            continue
        now_sig = hash(probed)
        if now_sig == sig and max(probed[1::4]) < stamp - RACY_MARGIN_NS:
            continue  # the common case: nothing moved since it was verified
        if not (probed[1] == mtime and (is_bp or probed[0] == size)) and \
                not (is_bp and _folder_mtime(path) == mtime):
            changed.append((rowid, "modified"))  # (the folder's mtime: recorded by hpc-campaign, imported)
            continue
        unsure.append((rowid, path, now_sig, sig))
    return changed, unsure


MEMORY = ":memory:"
"""The path of a stat cache that lives in memory (a repository that does)."""


class StatCache:
    """The cache file ``.git/camp/statcache.sqlite`` (mode 0600: it holds digests of keyed data)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == MEMORY:
            self._con = sqlite3.connect(path)
            self._create()
            return
        if not os.path.exists(path):
            self._con = self._connect()
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

    def _connect(self) -> sqlite3.Connection:
        """A new database file, private to its owner before anything is written into it."""
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        return sqlite3.connect(self.path)

    def _recreate(self) -> None:
        """Start over: the cache is derived data, private to this clone."""
        self._con.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._con = self._connect()
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

    def _verified(self, names: Iterable[str] | None = None) -> dict[tuple, tuple]:
        """(host, path, size, mtime, checksum) → (digest, sig, stamp) of rows whose signature was taken.

        A rebuilt or rewritten row keeps what was verified of the same record (the same
        replica under another dataset name after ``camp mv``, or the same state read
        again). ``names``: only rows of these datasets (default: all).
        """
        if names is None:
            rows: Iterable[tuple] = self._con.execute(_VERIFIED)
        else:
            import json

            rows = self._con.execute(_VERIFIED_OF, (json.dumps(list(names)),))
        return {tuple(row[:5]): tuple(row[5:]) for row in rows}

    def replace_all(self, datasets: Iterable[Dataset], token: str) -> None:
        """Rebuild from every dataset of the staged state."""
        known = self._verified()
        with self._con:
            self._con.execute("delete from meta where key = ?", ("token",))
            self._con.execute("delete from replica")
            self._con.executemany(
                _INSERT,
                (_row(r, known) for ds in datasets for r in rows_of(ds)),
            )
            self._con.execute("insert or replace into meta(key, value) values (?, ?)", ("token", token))

    def update(self, datasets: Iterable[Dataset], removed: Iterable[str] = (),
               fresh: Mapping[tuple[str, str], tuple[str, int | None]] | None = None, stamp: int = 0) -> None:
        """Replace the rows of these datasets (and drop those of ``removed`` names).

        ``fresh``: (host, dir/path) → (digest, signature) of replicas just read from this
        disk (by ``camp add``, which began reading at ``stamp`` ns; a signature of None is
        taken now). The digest is what a later content check compares with — the
        plaintext checksum even where the manifest records none (a keyed replica).
        """
        latest = {ds.name: ds for ds in datasets}  # a name given twice: its last state counts
        removed = list(removed)
        names = list(latest) + removed
        known = self._verified(names)
        rows = []
        for ds in latest.values():
            for r in rows_of(ds):
                read = None if fresh is None else fresh.get((r.host, r.path))
                if read is None:
                    rows.append(_row(r, known))
                else:
                    rows.append((*_row(r, {})[:7], read[0], read[1] or _sig_or_none(r.kind, r.path), stamp))
        with self._con:
            self._con.execute("delete from meta where key = ?", ("token",))
            self._con.executemany("delete from replica where dataset = ?", ((name,) for name in names))
            self._con.executemany(_INSERT, rows)

    def datasets_at(self, host: str, paths: Iterable[str]) -> dict[str, list[str]]:
        """Path → sorted names of the datasets with a live replica there on ``host`` (paths normalised, absolute).

        One query for all paths (a JSON array parameter), not one per path: ``camp add`` asks
        this for every path it reads.
        """
        import json

        found: dict[str, list[str]] = {}
        # INDEXED BY: SQLite would take the primary key (host, ...) instead, a scan of the host's rows.
        for path, name in self._con.execute(
                "select path, dataset from replica indexed by replica_path where host = ? and path in "
                "(select value from json_each(?))", (host, json.dumps(list(paths)))):
            found.setdefault(path, []).append(name)
        return {path: sorted(names) for path, names in found.items()}

    def paths(self) -> Iterator[tuple[str, str]]:
        """(dataset, dir/path) of every recorded replica: candidates found without reading manifests."""
        yield from self._con.execute("select dataset, path from replica")

    def _scan(self, host: str, started: int) -> tuple[list[tuple[int, str]], list[tuple[int, str, int, int | None]]]:
        """(changed, unsure) rows of ``host``: in this process, or split by rowid over forked workers.

        Above :data:`SPLIT_ABOVE` rows, each worker reads and stats its own rowid range
        through its own connection and sends back only the rows that need a second look
        (few): at a million datasets reading the rows and two million stats are ~8 s of
        Python in one process.
        """
        if self.path != MEMORY:
            low, high = self._con.execute("select min(rowid), max(rowid) from replica").fetchone()
            if low is not None and high - low >= SPLIT_ABOVE:
                from campaignvcs.extract.parallel import auto_processes, map_in_order

                workers = auto_processes()
                if workers > 1:
                    step = (high - low) // workers + 1
                    ranges = [(low + i * step, low + (i + 1) * step) for i in range(workers)]
                    parts = map_in_order(functools.partial(_scan_range, self.path, host, started), ranges,
                                         processes=workers)
                    return [c for part in parts for c in part[0]], [u for part in parts for u in part[1]]
        rows = self._con.execute(
            "select rowid, path, kind = 'ADIOS', size, mtime, sig, stamp from replica where host = ?", (host,)
        )  # streamed: 100,000 rows held at once cost 40 MB
        return _compare(rows, started)

    def changed_on_host(self, host: str,
                        content_digests: ContentDigests | None = None) -> Iterator[tuple[str, str, str]]:
        """(state, dataset, path) of every recorded replica on ``host`` that no longer matches.

        Stats only (one per file, two per BP dataset) while signatures match and are old
        enough; a content check where they are not conclusive, all at once through
        ``content_digests`` (which may spread them over processes) — rows whose check
        passes get a fresh signature, so the next status is stats only again. The stat
        loop is the whole cost of ``camp status`` at 100,000 datasets, so it reads only the
        columns it compares and stays on plain tuples.
        """
        started = time.time_ns()
        changed, unsure = self._scan(host, started)
        refreshed: list[tuple[int, int, int]] = []
        checks: list[tuple[int, str, str, str, int]] = []
        for rowid, path, now_sig, sig in unsure:
            kind, digest = self._con.execute("select kind, digest from replica where rowid = ?", (rowid,)).fetchone()
            if digest:
                checks.append((rowid, kind, path, digest, now_sig))
            elif sig is not None and sig != now_sig:
                changed.append((rowid, "modified"))  # nothing to compare the content with: the change stands
            else:
                refreshed.append((now_sig, started, rowid))
        if checks:
            found = content_digests([(kind, path) for _, kind, path, _, _ in checks]) if content_digests else []
            for i, (rowid, _kind, _path, digest, now_sig) in enumerate(checks):
                if i < len(found) and found[i] == digest:
                    refreshed.append((now_sig, started, rowid))
                else:
                    changed.append((rowid, "modified"))
        if refreshed:
            with contextlib.suppress(sqlite3.Error), self._con:  # housekeeping: a busy cache just stays slower
                self._con.executemany("update replica set sig = ?, stamp = ? where rowid = ?", refreshed)
        found_rows = []
        for rowid, state in changed:
            dataset, path = self._con.execute("select dataset, path from replica where rowid = ?", (rowid,)).fetchone()
            if state == "gone":
                state = "missing" if not os.path.exists(path) else "modified"
            found_rows.append((state, dataset, path))
        yield from sorted(found_rows, key=lambda f: (f[1], f[2]))


def _folder_mtime(folder: str) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def _row(r: CachedReplica, known: Mapping[tuple, tuple]) -> tuple[object, ...]:
    """The table row of ``r``, keeping the verified signature of the same record if there is one."""
    digest, sig, stamp = known.get((r.host, r.path, r.size, r.mtime, r.checksum), (r.checksum, None, 0))
    return (r.dataset, r.host, r.path, r.kind, r.size, r.mtime, r.checksum, digest, sig, stamp)
