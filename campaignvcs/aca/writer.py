"""The rows of an ACA 0.7 archive, made from model objects: what a full build and an update share.

:func:`campaignvcs.aca.build.write_aca` fills a new file with a :class:`RowWriter`;
:func:`campaignvcs.aca.update.update_aca` patches an existing one with a subclass whose
provisional ids are the archive's own. Both therefore write the same rows for the same
dataset, and the file handling (temporary name, fsync, rename) stays in ``build``.

The writer streams: datasets arrive one by one (callers pass them sorted by name, so
``dataset.rowid`` follows the name) and their rows, embedded payloads included, go
straight into SQLite in batches inside one transaction. Nothing but small lookup tables
(hosts, directories, keys, archives, and one short key per distinct embedded file) is
kept in memory (the file keys only up to :data:`FILE_KEYS_KEPT`), so a campaign of a
million datasets builds in bounded memory.

ADIOS2 loads ``host`` and ``directory`` by position, so their rowids must be dense 1..n;
we want them sorted by name too (same commit → same table contents), but which hosts and
directories exist is only known after the last dataset. Replica and TAR-index rows are
therefore staged in temporary tables with provisional ids and copied into the archive
with their final ids by one ``INSERT … SELECT`` at the end.

What is written (see shared/aca-format.md):

* datasets as ADIOS2 2.12.1 can open them (aca/rules.py, applied to each dataset before
  its rows are made): one it could reach no replica of is left out, https replicas get
  their metadata as md.* files, and so on; ``Counts.warnings`` says what that changed;
* hosts: every host with a host manifest, plus every host an emitted replica names
  (``longhostname`` NULL, ``default_protocol`` "" and ``modtime`` = ``now`` when it has no
  manifest); a host named only by omitted replicas is left out;
* directories: every (host, dir) an emitted replica or an archival location uses;
* deleted datasets and replicas: left out entirely with ``omit_deleted``, else written
  with their ``deltime`` — except ADIOS ones, which ADIOS2 2.12.1 would read as live;
* TAR index rows only for replicas inside an archive (they mean nothing elsewhere);
* a dataset named in several time series belongs to the first series by name (the ACA
  has one ``tsid`` per dataset); series members that are not emitted ADIOS/HDF5 datasets,
  or that the rules write outside their series, are skipped, so ``tsorder`` stays
  consecutive from 0.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from campaignvcs.aca.extras import Extras, write_extras
from campaignvcs.aca.rules import (
    HDF5_KEY,
    MAX_NAMES,
    NOTES_KEY,
    Rules,
    dump_notes,
    left_out,
    unlisted_archive,
    warnings,
)
from campaignvcs.aca.schema import (
    ACA_VERSION,
    INFO_ID,
    INFO_NAME,
    PROVENANCE_DDL_IF_MISSING,
    SERIES_KINDS,
    TABLES,
)
from campaignvcs.errors import CampError
from campaignvcs.model import KINDS, Dataset, EmbeddedFile, Host, TimeSeries

BATCH = 2000
"""Datasets per executemany batch: large enough to amortise calls, small enough for memory."""
FILE_KEYS_KEPT = 250_000
"""Identical file rows are shared through ``repfiles`` when they are at most this many distinct
files apart (~30 MB of keys): at a million distinct datasets, remembering every file would
cost ~300 MB. A duplicate further apart gets a row of its own: a slightly larger archive, the
same datasets."""


STAGING = (
    "create temp table rep(rowid INTEGER PRIMARY KEY, datasetid INT, hostpid INT, dirpid INT, archpid INT, "
    "name TEXT, modtime INT, deltime INT, keypid INT, size INT)",
    "create temp table tar(archpid INT, replicaid INT, filename TEXT, offset INT, offset_data INT, size INT)",
    "create temp table hostmap(pid INTEGER PRIMARY KEY, id INT)",
    "create temp table dirmap(pid INTEGER PRIMARY KEY, id INT)",
    "create temp table archmap(pid INTEGER PRIMARY KEY, id INT)",
    "create temp table keymap(pid INTEGER PRIMARY KEY, id INT)",
)
"""Temporary tables of provisional ids and replica/TAR rows, copied out by :meth:`RowWriter.copy_staged`."""

_INSERT = {
    "dataset": "insert into dataset(rowid, name, uuid, modtime, deltime, fileformat, tsid, tsorder) "
    "values (?, ?, ?, ?, ?, ?, 0, 0)",
    "rep": "insert into temp.rep values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "file": "insert into file(fileid, name, compression, lenorig, lencompressed, modtime, checksum, data) "
    "values (?, ?, ?, ?, ?, ?, ?, ?)",
    "repfiles": "insert or ignore into repfiles values (?, ?)",
    "resolution": "insert into resolution values (?, ?, ?)",
    "accuracy": "insert into accuracy values (?, ?, ?, ?)",
    "tar": "insert into temp.tar values (?, ?, ?, ?, ?, ?)",
}
"""Batched inserts of the streaming phase, by batch name (``rep`` and ``tar`` are staging tables)."""


@dataclass(frozen=True)
class Counts:
    """What went into the archive: dataset, replica and (distinct) embedded-file rows."""

    datasets: int
    replicas: int
    files: int
    warnings: tuple[str, ...] = ()
    """What a reader should know: datasets left out or changed for ADIOS2 (aca/rules.py), HDF5."""
    left_out: tuple[str, ...] = ()
    """Datasets left out because ADIOS2 can reach none of their replicas."""


def write_provenance(con: sqlite3.Connection, provenance: Mapping[str, str]) -> None:
    """(Re)write camp's ``camp_build`` table inside the caller's transaction."""
    con.execute(PROVENANCE_DDL_IF_MISSING)
    con.execute("delete from camp_build")
    con.executemany("insert into camp_build(key, value) values (?, ?)", sorted(provenance.items()))


class RowWriter:
    """One build: provisional ids while streaming, final rows at the end.

    :meth:`write` fills an empty database; :mod:`campaignvcs.aca.update` subclasses it to
    patch an existing archive with :meth:`add_datasets` and :meth:`copy_staged`.
    """

    def __init__(
        self, con: sqlite3.Connection, now: int, omit_deleted: bool, read_blob: Callable[[str], bytes]
    ) -> None:
        self.con = con
        self.now = now
        self.omit_deleted = omit_deleted
        self.hdf5: tuple[int, list[str]] | None = None
        """Live HDF5 datasets written: (number, first names); None until counted."""
        self.source_blob = read_blob
        self.rules = Rules({}, omit_deleted, read_blob)
        """What ADIOS2 needs of each dataset (set up with the host manifests by :meth:`use_hosts`)."""
        self.read_blob = self.rules.read_blob
        # Provisional ids (insertion order) for the small lookup tables.
        self.hosts: dict[str, int] = {}
        self.dirs: dict[tuple[str, str], int] = {}
        self.keys: dict[str, int] = {}
        self.archives: dict[tuple[str, str, str], int] = {}
        # One entry per distinct file row: identical rows are shared through repfiles.
        self.files: dict[bytes, int] = {}
        self.file_base = 0
        """File ids start after this (an incremental update appends to existing rows)."""
        self.n_datasets = 0
        self.n_replicas = 0
        self.n_files = 0

    def write(
        self, datasets: Iterable[Dataset], hosts: Iterable[Host], timeseries: Iterable[TimeSeries],
        provenance: Mapping[str, str] | None = None, extras: Extras | None = None,
    ) -> Counts:
        """Create the tables in the empty database and write the whole campaign, in one transaction."""
        con = self.con
        # page_size must precede the first table; journal_mode=DELETE is what a legacy
        # (non-WAL) file is, so the fast settings below leave no trace in the file.
        con.execute("pragma page_size=4096")
        con.execute("pragma journal_mode=off")
        con.execute("pragma synchronous=off")
        con.execute("begin")
        for ddl in TABLES.values():
            con.execute(ddl)
        for ddl in STAGING:
            con.execute(ddl)
        con.execute("insert into info values (?, ?, ?, ?)", (INFO_ID, INFO_NAME, ACA_VERSION, self.now))
        host_manifests: dict[str, Host] = {h.name: h for h in hosts}
        timeseries = sorted(timeseries, key=lambda s: s.name)
        self.use_hosts(host_manifests, series=_series_of(timeseries))
        for host in sorted(host_manifests.values(), key=lambda h: h.name):
            self._host(host.name)
            for a in host.archives:
                self._dir(host.name, a.dir)
                self.archives.setdefault((host.name, a.dir, a.tarname), len(self.archives) + 1)
        self.add_datasets(datasets)
        self._finish(host_manifests)
        self._timeseries(timeseries)
        if provenance is not None:
            write_provenance(con, self.with_notes(provenance))
        if extras is not None:
            write_extras(con, extras)  # last: references resolve against the dataset rows written
        con.execute("commit")
        con.execute("pragma journal_mode=delete")
        return self.counts(self.n_datasets, self.n_replicas, self.n_files)

    # -- what ADIOS2 needs (aca/rules.py) ------------------------------------------

    def use_hosts(self, hosts: Mapping[str, Host], notes: dict[str, list] | None = None,
                  series: Mapping[str, str] | None = None) -> None:
        """Apply the ADIOS2 rules with these host manifests (and the notes of datasets not rewritten)."""
        self.rules = Rules(hosts, self.omit_deleted, self.source_blob, notes, series)
        self.read_blob = self.rules.read_blob

    def prepare(self, datasets: Iterable[Dataset]) -> Iterator[Dataset]:
        """The datasets as they go into the archive (see aca/rules.py); the others are left out."""
        for ds in datasets:
            ready = self.rules.prepare(ds)
            if ready is not None:
                yield ready

    def with_notes(self, provenance: Mapping[str, str]) -> dict[str, str]:
        """``provenance`` plus the notes of the datasets the rules changed or left out, and the HDF5 ones."""
        out = dict(provenance)
        if self.rules.notes:
            out[NOTES_KEY] = dump_notes(self.rules.notes)
        count, names = self.hdf5_datasets()
        if count:
            out[HDF5_KEY] = json.dumps([count, names], ensure_ascii=False)
        return out

    def hdf5_datasets(self) -> tuple[int, list[str]]:
        """(number, first names) of the live HDF5 datasets written (ADIOS2 without HDF5 refuses them all)."""
        if self.hdf5 is None:
            names = [name for (name,) in self.con.execute(
                "select d.name from dataset d where d.fileformat = 'HDF5' and d.deltime = 0 and exists "
                "(select 1 from replica r where r.datasetid = d.rowid and r.deltime = 0) order by d.name")]
            self.hdf5 = (len(names), names[:MAX_NAMES])
        return self.hdf5

    def counts(self, datasets: int, replicas: int, files: int) -> Counts:
        """Counts with the warnings of this archive: the rules' notes and any HDF5 datasets."""
        notes = self.rules.notes
        return Counts(datasets, replicas, files, tuple(warnings(notes, self.hdf5_datasets())),
                      tuple(left_out(notes)))

    # -- streaming -----------------------------------------------------------------

    def _host(self, name: str) -> int:
        return self.hosts.setdefault(name, len(self.hosts) + 1)

    def _dir(self, host: str, name: str) -> int:
        self._host(host)
        return self.dirs.setdefault((host, name), len(self.dirs) + 1)

    def add_datasets(self, datasets: Iterable[Dataset], prepared: bool = False) -> None:
        """Stream the rows of ``datasets`` (through the rules unless already ``prepared``) in batches."""
        rows: dict[str, list[tuple]] = {
            t: [] for t in ("dataset", "rep", "file", "repfiles", "resolution", "accuracy", "tar")
        }
        pending = 0
        for ds in datasets if prepared else self.prepare(datasets):
            self._dataset(ds, rows)
            pending += 1
            if pending >= BATCH:
                self._flush(rows)
                pending = 0
        self._flush(rows)

    def _dataset(self, ds: Dataset, rows: dict[str, list[tuple]]) -> None:
        if ds.kind not in KINDS:
            raise CampError(
                f"dataset {ds.name}: unknown kind {ds.kind!r} (expected one of {', '.join(KINDS)})"
            )
        self.n_datasets += 1
        dsid = self.n_datasets
        rows["dataset"].append((dsid, ds.name, ds.uuid, ds.modtime, ds.deltime, ds.kind))
        for r in ds.replicas:  # what the rules kept: deleted ones only if they are to be written
            self.n_replicas += 1
            repid = self.n_replicas
            archpid = 0
            if r.archive is not None:
                archpid = self.archives.get((r.host, r.dir, r.archive), 0)
                if not archpid:
                    raise unlisted_archive(ds, r)
                rows["tar"].extend(
                    (archpid, repid, t.filename, t.offset, t.offset_data, t.size) for t in r.tarindex
                )
            keypid = self.keys.setdefault(r.key, len(self.keys) + 1) if r.key else 0
            hostpid, dirpid = self._host(r.host), self._dir(r.host, r.dir)
            rows["rep"].append(
                (repid, dsid, hostpid, dirpid, archpid, r.path, r.mtime, r.deltime, keypid, r.size)
            )
            for f in r.files:
                k = file_key(f)
                fileid = self.files.get(k)
                if fileid is None:
                    self.n_files += 1
                    fileid = self.files[k] = self.file_base + self.n_files
                    if len(self.files) > FILE_KEYS_KEPT:
                        del self.files[next(iter(self.files))]  # the oldest (dicts keep insertion order)
                    meta = (f.name, f.compression, f.lenorig, f.lencompressed, f.modtime, f.checksum)
                    rows["file"].append((fileid, *meta, self.read_blob(f.blob)))
                rows["repfiles"].append((repid, fileid))
            if r.resolution is not None:
                rows["resolution"].append((repid, *r.resolution))
            if r.accuracy is not None:
                rows["accuracy"].append((repid, *r.accuracy))

    def _flush(self, rows: dict[str, list[tuple]]) -> None:
        for table, batch in rows.items():
            if batch:
                self.con.executemany(_INSERT[table], batch)
                batch.clear()
        self.rules.forget_payloads()

    # -- final ids -----------------------------------------------------------------

    def _finish(self, host_manifests: dict[str, Host]) -> None:
        """Write hosts, directories, keys and archives sorted, then the staged rows with final ids."""
        con = self.con
        host_ids = {name: i for i, name in enumerate(sorted(self.hosts), 1)}
        con.executemany(
            "insert into host(rowid, hostname, longhostname, modtime, deltime, default_protocol) "
            "values (?, ?, ?, ?, 0, ?)",
            ((i, name, *host_columns(host_manifests.get(name), self.now)) for name, i in host_ids.items()),
        )
        dir_ids = {hd: i for i, hd in enumerate(sorted(self.dirs), 1)}
        con.executemany(
            "insert into directory(rowid, hostid, name, modtime, deltime) values (?, ?, ?, ?, 0)",
            ((i, host_ids[h], d, self.now) for (h, d), i in dir_ids.items()),
        )
        key_ids = {k: i for i, k in enumerate(sorted(self.keys), 1)}
        con.executemany("insert into key(rowid, keyid) values (?, ?)", ((i, k) for k, i in key_ids.items()))
        # Archive rows sorted by (dirid, tarname); a location listed twice gets one row.
        locations = sorted(
            {
                (dir_ids[(h, a.dir)], a.tarname): (h, a)
                for h, host in host_manifests.items()
                for a in host.archives
            }.items()
        )
        arch_ids: dict[tuple[str, str, str], int] = {}
        arch_rows = []
        for i, ((dirid, tarname), (h, a)) in enumerate(locations, 1):
            arch_ids[(h, a.dir, tarname)] = i
            notes = None if a.notes is None else self.read_blob(a.notes)
            arch_rows.append((i, dirid, tarname, a.system, notes))
        con.executemany(
            "insert into archive(rowid, dirid, tarname, system, notes) values (?, ?, ?, ?, ?)", arch_rows
        )
        self.copy_staged(host_ids, dir_ids, key_ids, arch_ids)

    def copy_staged(self, host_ids: dict[str, int], dir_ids: dict[tuple[str, str], int],
                     key_ids: dict[str, int], arch_ids: dict[tuple[str, str, str], int]) -> None:
        """Copy the staged replica and TAR-index rows into the archive with final ids for provisional ones."""
        con = self.con
        maps: tuple[tuple[str, Mapping[Any, int], Mapping[Any, int]], ...] = (
            ("insert into temp.hostmap values (?, ?)", self.hosts, host_ids),
            ("insert into temp.dirmap values (?, ?)", self.dirs, dir_ids),
            ("insert into temp.keymap values (?, ?)", self.keys, key_ids),
            ("insert into temp.archmap values (?, ?)", self.archives, arch_ids),
        )
        for sql, prov, final in maps:
            con.executemany(sql, ((p, final[k]) for k, p in prov.items()))
        con.execute(
            "insert into replica(rowid, datasetid, hostid, dirid, archiveid, name, modtime, deltime, keyid, "
            "size) select r.rowid, r.datasetid, h.id, d.id, coalesce(a.id, 0), r.name, r.modtime, r.deltime, "
            "coalesce(k.id, 0), r.size from temp.rep r "
            "join temp.hostmap h on h.pid = r.hostpid join temp.dirmap d on d.pid = r.dirpid "
            "left join temp.archmap a on a.pid = r.archpid left join temp.keymap k on k.pid = r.keypid "
            "order by r.rowid"
        )
        con.execute(
            "insert or ignore into archiveidx(archiveid, replicaid, filename, offset, offset_data, size) "
            "select a.id, t.replicaid, t.filename, t.offset, t.offset_data, t.size from temp.tar t "
            "join temp.archmap a on a.pid = t.archpid order by t.rowid"
        )

    def _timeseries(self, timeseries: Iterable[TimeSeries]) -> None:
        """Series rows sorted by name; members get ``tsid``/``tsorder`` (0-based, consecutive)."""
        series = sorted(timeseries, key=lambda s: s.name)
        self.con.executemany(
            "insert into timeseries(tsid, name) values (?, ?)", ((i, s.name) for i, s in enumerate(series, 1))
        )
        placed: set[str] = set()
        updates = []
        for tsid, s in enumerate(series, 1):
            order = 0
            for name in s.datasets:
                row = self.con.execute("select fileformat from dataset where name = ?", (name,)).fetchone()
                if name in placed or row is None or row[0] not in SERIES_KINDS or name in self.rules.outside:
                    continue
                placed.add(name)
                updates.append((tsid, order, name))
                order += 1
        self.con.executemany("update dataset set tsid = ?, tsorder = ? where name = ?", updates)


def _series_of(timeseries: Iterable[TimeSeries]) -> dict[str, str]:
    """Member name → the series it is placed in: the first by name that lists it.

    The same choice as :meth:`RowWriter._timeseries` makes when it writes the rows.
    """
    out: dict[str, str] = {}
    for s in sorted(timeseries, key=lambda s: s.name):
        for name in s.datasets:
            out.setdefault(name, s.name)
    return out


def file_key(f: EmbeddedFile) -> bytes:
    """A 16-byte identity of a ``file`` row (everything but the payload, which the blob id fixes).

    A digest instead of the 7-tuple keeps the one per-file structure of a build at a
    quarter of the memory (200,000 files: ~25 MB instead of ~90 MB).
    """
    text = f"{f.name}\0{f.blob}\0{f.compression}\0{f.lenorig}\0{f.lencompressed}\0{f.modtime}\0{f.checksum}"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def host_columns(host: Host | None, now: int) -> tuple[str | None, int, str]:
    """(longhostname, modtime, default_protocol) of a host row."""
    if host is None:
        return None, now, ""
    return host.longhostname, host.modtime or now, host.default_protocol
