"""Read an ADIOS campaign archive (``.aca``, versions 0.5, 0.6 and 0.7) into model objects.

This is the migration path (``camp import``): an archive that ``hpc_campaign manager``
wrote becomes hosts, datasets and time series, with every embedded payload kept as the
exact bytes of ``file.data`` (encrypted ones too). The whole archive is read and checked
before anything is returned, so a malformed one is refused with one line naming the
archive and the problem and the caller has nothing half-read to stage.

Choices (the archive says nothing about them):

* **Times**: integer ns; other numbers are converted by magnitude as ADIOS2 reads them
  (see :mod:`campaignvcs.aca.values`).
* **Replica checksum** (not in the ACA): the ``file.checksum`` of the embedded file that
  describes the replica — ``metadata`` for ADIOS, the only embedded file for other
  kinds — which is what ``camp add`` records for the same data; ``""`` when there is no
  such file or the replica is keyed (camp never records a plaintext SHA-1 for keyed data).
* **0.5 archival directories**: in 0.5 an ``archive`` row marks a whole directory as
  archival storage and replicas in it are archived copies; they are imported as replicas
  in that archive (``archive=""``). (``hpc_campaign manager upgrade`` drops that link.)
* Directory rows that no replica or archive uses, host ``deltime`` (always 0) and
  directory times are not part of the campaign model and are not kept.
* **Tables camp does not model** (hpc-campaign's development version adds
  ``visualization_*`` and ``scalar_field``) are read by :mod:`campaignvcs.aca.extras`
  into :class:`~campaignvcs.model.ExtraTable` objects, their dataset row ids and uuids
  turned into references by name; what cannot be carried refuses the import unless the
  caller drops it. camp's own ``camp_build`` table describes a build, not the campaign,
  and is not kept.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from campaignvcs.aca.extras import read_extras
from campaignvcs.aca.schema import SUPPORTED_VERSIONS, tables_of
from campaignvcs.aca.values import Cells, MalformedArchive
from campaignvcs.gitobjects import BLOB_TYPE, object_id
from campaignvcs.keys import OVERHEAD as SEALED_OVERHEAD
from campaignvcs.model import (
    KINDS,
    Archive,
    BlobId,
    Dataset,
    DatasetName,
    EmbeddedFile,
    ExtraTable,
    Host,
    HostName,
    Replica,
    TarMember,
    TimeSeries,
)

_OLD_FILE = ("replicaid", "name", "compression", "lenorig", "lencompressed", "modtime", "checksum", "data")
_NEW_FILE = ("fileid", "name", "compression", "lenorig", "lencompressed", "modtime", "checksum", "data")
_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "0.5": {
        "info": ("id", "version"),
        "key": ("keyid",),
        "host": ("hostname", "longhostname", "modtime"),
        "directory": ("hostid", "name"),
        "timeseries": ("tsid", "name"),
        "dataset": ("name", "uuid", "modtime", "deltime", "fileformat", "tsid", "tsorder"),
        "replica": ("datasetid", "hostid", "dirid", "name", "modtime", "deltime", "keyid", "size"),
        "file": _OLD_FILE,
        "accuracy": ("replicaid", "accuracy", "norm", "relative"),
        "resolution": ("replicaid", "x", "y"),
        "archive": ("dirid", "system", "notes"),
    },
}
_COLUMNS["0.6"] = {
    **_COLUMNS["0.5"],
    "host": ("hostname", "longhostname", "modtime", "default_protocol"),
    "replica": ("datasetid", "hostid", "dirid", "archiveid", "name", "modtime", "deltime", "keyid", "size"),
    "archive": ("dirid", "tarname", "system", "notes"),
    "archiveidx": ("archiveid", "replicaid", "filename", "offset", "offset_data", "size"),
}
_COLUMNS["0.7"] = {**_COLUMNS["0.6"], "file": _NEW_FILE, "repfiles": ("replicaid", "fileid")}
"""Columns the reader uses, per version and table (a missing one is a malformed archive)."""

# One fixed statement per version and table: SQL is never assembled from strings.
_HOSTS = {
    "0.5": "select rowid, hostname, longhostname, modtime, '' from host order by rowid",
    "0.6": "select rowid, hostname, longhostname, modtime, default_protocol from host order by rowid",
}
_REPLICAS = {
    "0.5": "select rowid, datasetid, hostid, dirid, null, name, modtime, deltime, keyid, size from replica "
    "order by rowid",
    "0.6": "select rowid, datasetid, hostid, dirid, archiveid, name, modtime, deltime, keyid, size "
    "from replica order by rowid",
}
_ARCHIVES = {
    "0.5": "select rowid, dirid, '', system, notes from archive order by rowid",
    "0.6": "select rowid, dirid, tarname, system, notes from archive order by rowid",
}
_FILES = {
    "0.5": "select rowid, name, compression, lenorig, lencompressed, modtime, checksum, data, replicaid "
    "from file order by rowid",
    "0.7": "select fileid, name, compression, lenorig, lencompressed, modtime, checksum, data, null "
    "from file order by fileid",
}


@dataclass(frozen=True)
class ArchiveContents:
    """Everything an archive records, as campaign model objects.

    ``blobs`` maps the git blob id of every embedded payload and archive note to its bytes
    (``file.data`` exactly); ``files`` counts the distinct ``file`` rows replicas use.
    ``extras`` are the tables camp does not model, ``left_out`` one line for each table
    (view, trigger, index) the caller chose to leave out.
    """

    version: str
    hosts: tuple[Host, ...]
    datasets: tuple[Dataset, ...]
    timeseries: tuple[TimeSeries, ...]
    blobs: dict[str, bytes]
    files: int
    extras: tuple[ExtraTable, ...] = ()
    left_out: tuple[str, ...] = ()

    @property
    def replicas(self) -> int:
        """Number of replicas (tombstoned ones included)."""
        return sum(len(d.replicas) for d in self.datasets)


def blob_id(data: bytes) -> str:
    """The git blob id of ``data`` (what the repository will store it under)."""
    return object_id(BLOB_TYPE, data).decode()


def read_aca(path: str, shown: str | None = None, drop_unknown: bool = False) -> ArchiveContents:
    """Read and check a whole archive; errors name it as ``shown`` (default: ``path``).

    The file is opened read-only (SQLite URI ``mode=ro``), so reading never changes it.
    Raises :class:`MalformedArchive` for anything that is not a consistent 0.5–0.7 archive,
    and :class:`~campaignvcs.aca.extras.UncarriableTable` for a table camp could not write
    back correctly, unless ``drop_unknown`` (then it is named in ``left_out``).
    """
    shown = path if shown is None else shown
    if not os.path.exists(path):
        raise MalformedArchive(f"{shown}: no such file")
    if os.path.isdir(path):
        raise MalformedArchive(f"{shown}: is a directory, not an ADIOS campaign archive")
    uri = "file:" + quote(os.path.abspath(path), safe="/") + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise MalformedArchive(f"{shown}: cannot open ({exc})") from None
    try:
        return _Reader(con, shown, drop_unknown).read()
    except sqlite3.Error as exc:
        raise MalformedArchive(f"{shown}: cannot read the archive ({exc})") from None
    finally:
        con.close()


def read_provenance(path: str) -> dict[str, str] | None:
    """What camp recorded about the build of ``path`` (``camp_build`` table), or None.

    None for an archive camp did not build (hpc-campaign's), or a file that is not an
    SQLite archive at all: listing a store must not fail on a stranger's file.
    """
    uri = "file:" + quote(os.path.abspath(path), safe="/") + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return None
    try:
        rows = con.execute("select key, value from camp_build").fetchall()
    except sqlite3.Error:
        return None
    finally:
        con.close()
    return {str(k): str(v) for k, v in rows}


@dataclass
class _Rep:
    """A replica row with its references resolved."""

    id: int
    dataset: int
    host: str
    dir: str
    archiveid: int
    archive: str | None
    path: str
    mtime: int
    deltime: int
    key: str
    size: int


class _Reader(Cells):
    """One pass over one archive: small tables into dicts by rowid, then datasets."""

    def __init__(self, con: sqlite3.Connection, shown: str, drop_unknown: bool = False) -> None:
        super().__init__(shown)
        self.con = con
        self.drop_unknown = drop_unknown
        self.version = ""

    # -- structure -------------------------------------------------------------------

    def read(self) -> ArchiveContents:
        try:
            tables = {r[0] for r in self.con.execute("select name from sqlite_master where type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise self.bad(f"not an ADIOS campaign archive ({exc})") from None
        if "info" not in tables:
            raise self.bad("not an ADIOS campaign archive (no info table)")
        self.version = self.read_version()
        for table in tables_of(self.version):
            if table not in tables:
                raise self.bad(f"missing table {table} (an archive of version {self.version} has it)")
            have = {r[0] for r in self.con.execute("select name from pragma_table_info(?)", (table,))}
            for column in _COLUMNS[self.version][table]:
                if column not in have:
                    raise self.bad(f"table {table} has no column {column} (version {self.version})")
        return self.read_tables()

    def read_version(self) -> str:
        rows = self.con.execute("select id, version from info").fetchall()
        if not rows:
            raise self.bad("missing info row (no archive id and version)")
        aca = [r for r in rows if r[0] == "ACA"]
        if not aca:
            raise self.bad(f"not an ADIOS campaign archive (info id is {rows[0][0]!r}, not 'ACA')")
        raw = aca[0][1]
        match = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", str(raw).strip()) if raw is not None else None
        version = f"{int(match.group(1))}.{int(match.group(2))}" if match else ""
        if version not in SUPPORTED_VERSIONS:
            shown = "(none)" if raw is None else str(raw)
            raise self.bad(
                f"unsupported archive version {shown} (camp imports {', '.join(SUPPORTED_VERSIONS)})"
            )
        return version

    def query(self, statements: dict[str, str]) -> list[tuple[Any, ...]]:
        """Rows of the statement for this version (the newest one not newer than it)."""
        chosen = max(v for v in statements if v <= self.version)
        return self.con.execute(statements[chosen]).fetchall()

    # -- tables ----------------------------------------------------------------------

    def read_tables(self) -> ArchiveContents:
        blobs: dict[str, bytes] = {}
        keys = {
            rowid: self.text(keyid, f"key {rowid}", "keyid")
            for rowid, keyid in self.con.execute("select rowid, keyid from key order by rowid")
        }
        hosts: dict[int, tuple[str, str | None, str, int]] = {}
        for rowid, name, longname, modtime, protocol in self.query(_HOSTS):
            what = f"host {rowid}"
            hosts[rowid] = (
                self.text(name, what, "hostname"),
                None if longname is None else self.text(longname, what, "longhostname"),
                "" if protocol is None else self.text(protocol, what, "default_protocol"),
                self.time(modtime, what, "modtime"),
            )
        dirs: dict[int, tuple[int, str]] = {}
        for rowid, hostid, name in self.con.execute(
            "select rowid, hostid, name from directory order by rowid"
        ):
            what = f"directory {rowid}"
            hostid = self.integer(hostid, what, "hostid")
            if hostid not in hosts:
                raise self.bad(f"{what} refers to missing host {hostid}")
            dirs[rowid] = (hostid, self.text(name, what, "name"))
        archives: dict[int, tuple[int, str]] = {}
        host_archives: dict[int, list[Archive]] = {}
        for rowid, dirid, tarname, system, notes in self.query(_ARCHIVES):
            what = f"archive {rowid}"
            dirid = self.integer(dirid, what, "dirid")
            if dirid not in dirs:
                raise self.bad(f"{what} refers to missing directory {dirid}")
            tarname = self.text(tarname, what, "tarname")
            note_id = None
            if notes is not None:
                data = notes.encode("utf-8") if isinstance(notes, str) else bytes(notes)
                note_id = blob_id(data)
                blobs[note_id] = data
            archives[rowid] = (dirid, tarname)
            host_archives.setdefault(dirs[dirid][0], []).append(
                Archive(
                    dirs[dirid][1],
                    tarname,
                    self.text(system, what, "system"),
                    None if note_id is None else BlobId(note_id),
                )
            )
        series = {
            tsid: self.text(name, f"time series {tsid}", "name")
            for tsid, name in self.con.execute("select tsid, name from timeseries order by tsid")
        }
        datasets, members = self.read_datasets(series)
        replicas = self.read_replicas(datasets, hosts, dirs, archives, keys)
        files, n_files = self.read_files(replicas, blobs)
        extras = self.read_replica_extras(replicas, archives)

        by_dataset: dict[int, list[Replica]] = {}
        for rep in replicas.values():
            own = files.get(rep.id, [])
            resolution, accuracy, tarindex = extras.get(rep.id, (None, None, []))
            by_dataset.setdefault(rep.dataset, []).append(
                Replica(
                    host=HostName(rep.host),
                    dir=rep.dir,
                    path=rep.path,
                    size=rep.size,
                    mtime=rep.mtime,
                    checksum=_replica_checksum(datasets[rep.dataset][2], rep.key, own),
                    archive=rep.archive,
                    deltime=rep.deltime,
                    key=rep.key,
                    resolution=resolution,
                    accuracy=accuracy,
                    files=tuple(own),
                    tarindex=tuple(tarindex),
                )
            )
        out: list[Dataset] = []
        for rowid, (name, uuid, kind, modtime, deltime) in datasets.items():
            reps = sorted(by_dataset.get(rowid, []), key=lambda r: r.location)
            for a, b in zip(reps, reps[1:], strict=False):
                if a.location == b.location:
                    raise self.bad(f"dataset {name} has two replicas at {a.host}:{a.dir}/{a.path}")
            out.append(Dataset(DatasetName(name), uuid, kind, modtime, deltime, tuple(reps)))
        for what, names_seen in (
            ("hosts", [h[0] for h in hosts.values()]),
            ("datasets", [str(d.name) for d in out]),
        ):
            dup = _first_duplicate(names_seen)
            if dup is not None:
                raise self.bad(f"two {what} are named {dup!r}")
        host_list = tuple(
            Host(HostName(name), longname, protocol, modtime, tuple(host_archives.get(rowid, ())))
            for rowid, (name, longname, protocol, modtime) in hosts.items()
        )
        names = {rowid: d[0] for rowid, d in datasets.items()}
        ts = tuple(
            TimeSeries(
                series[tsid], tuple(DatasetName(names[dsid]) for _, dsid in sorted(members.get(tsid, ())))
            )
            for tsid in series
        )
        extra = read_extras(
            self.con, {rowid: (d[0], d[1]) for rowid, d in datasets.items()}, self.drop_unknown, self.shown
        )
        return ArchiveContents(
            self.version, host_list, tuple(out), ts, blobs, n_files, extra.tables, extra.left_out
        )

    def read_datasets(
        self, series: dict[int, str]
    ) -> tuple[dict[int, tuple[str, str, str, int, int]], dict[int, list[tuple[int, int]]]]:
        datasets: dict[int, tuple[str, str, str, int, int]] = {}
        members: dict[int, list[tuple[int, int]]] = {}
        rows = self.con.execute(
            "select rowid, name, uuid, modtime, deltime, fileformat, tsid, tsorder from dataset "
            "order by rowid"
        )
        for rowid, name, uuid, modtime, deltime, kind, tsid, tsorder in rows:
            what = f"dataset {rowid}"
            name = self.text(name, what, "name")
            if not name:
                raise self.bad(f"{what} has an empty name")
            what = f"dataset {rowid} ({name})"
            kind = self.text(kind, what, "fileformat")
            if kind not in KINDS:
                raise self.bad(f"{what} has unknown fileformat {kind!r} (camp knows {', '.join(KINDS)})")
            tsid = 0 if tsid is None else self.integer(tsid, what, "tsid")
            if tsid:
                if tsid not in series:
                    raise self.bad(f"{what} refers to missing time series {tsid}")
                order = 0 if tsorder is None else self.integer(tsorder, what, "tsorder")
                members.setdefault(tsid, []).append((order, rowid))
            datasets[rowid] = (
                name,
                self.text(uuid, what, "uuid"),
                kind,
                self.time(modtime, what, "modtime"),
                self.time(deltime, what, "deltime"),
            )
        return datasets, members

    def read_replicas(
        self,
        datasets: dict[int, Any],
        hosts: dict[int, tuple[str, str | None, str, int]],
        dirs: dict[int, tuple[int, str]],
        archives: dict[int, tuple[int, str]],
        keys: dict[int, str],
    ) -> dict[int, _Rep]:
        # 0.5: the one archive row of a directory makes every replica in it an archived copy.
        dir_archive = {dirid: rowid for rowid, (dirid, _t) in archives.items()}
        replicas: dict[int, _Rep] = {}
        for row in self.query(_REPLICAS):
            rowid, dsid, hostid, dirid, archiveid, name, modtime, deltime, keyid, size = row
            what = f"replica {rowid}"
            dsid = self.integer(dsid, what, "datasetid")
            hostid = self.integer(hostid, what, "hostid")
            dirid = self.integer(dirid, what, "dirid")
            if dsid not in datasets:
                raise self.bad(f"{what} refers to missing dataset {dsid}")
            if hostid not in hosts:
                raise self.bad(f"{what} refers to missing host {hostid}")
            if dirid not in dirs:
                raise self.bad(f"{what} refers to missing directory {dirid}")
            if dirs[dirid][0] != hostid:
                raise self.bad(
                    f"{what} is on host {hostid} but its directory {dirid} belongs to host {dirs[dirid][0]}"
                )
            if self.version == "0.5":
                archiveid = dir_archive.get(dirid, 0)
            else:
                archiveid = self.integer(archiveid, what, "archiveid")
            tarname = None
            if archiveid:
                if archiveid not in archives:
                    raise self.bad(f"{what} refers to missing archive {archiveid}")
                if archives[archiveid][0] != dirid:
                    raise self.bad(
                        f"{what} is in directory {dirid} but its archive {archiveid} is in directory "
                        f"{archives[archiveid][0]}"
                    )
                tarname = archives[archiveid][1]
            keyid = self.integer(keyid, what, "keyid")
            if keyid and keyid not in keys:
                raise self.bad(f"{what} refers to missing key {keyid}")
            replicas[rowid] = _Rep(
                id=rowid,
                dataset=dsid,
                host=hosts[hostid][0],
                dir=dirs[dirid][1],
                archiveid=archiveid,
                archive=tarname,
                path=self.text(name, what, "name"),
                mtime=self.time(modtime, what, "modtime"),
                deltime=self.time(deltime, what, "deltime"),
                key=keys[keyid] if keyid else "",
                size=self.integer(size, what, "size"),
            )
        return replicas

    def read_files(
        self, replicas: dict[int, _Rep], blobs: dict[str, bytes]
    ) -> tuple[dict[int, list[EmbeddedFile]], int]:
        """Embedded files per replica id, and how many distinct file rows replicas use."""
        rows = {row[0]: row for row in self.query(_FILES)}
        if self.version == "0.7":
            links: Iterable[tuple[Any, Any]] = self.con.execute(
                "select replicaid, fileid from repfiles order by replicaid, fileid"
            ).fetchall()
        else:
            links = [(row[8], row[0]) for row in rows.values()]
        label = "file" if self.version == "0.7" else "file row"
        parsed: dict[int, tuple[EmbeddedFile, int]] = {}
        out: dict[int, list[EmbeddedFile]] = {}
        for repid, fileid in links:
            link = f"repfiles row ({repid}, {fileid})" if self.version == "0.7" else f"file row {fileid}"
            repid = self.integer(repid, link, "replicaid")
            fileid = self.integer(fileid, link, "fileid")
            if repid not in replicas:
                raise self.bad(f"{link} refers to missing replica {repid}")
            if fileid not in rows:
                raise self.bad(f"{link} refers to missing file {fileid}")
            if fileid not in parsed:
                parsed[fileid] = self.parse_file(rows[fileid], label, blobs)
            f, length = parsed[fileid]
            keyed = bool(replicas[repid].key)
            expected = f.lencompressed + (SEALED_OVERHEAD if keyed else 0)
            if length != expected:
                because = f"lencompressed {f.lencompressed}" + (
                    f" + {SEALED_OVERHEAD} for the key" if keyed else ""
                )
                raise self.bad(
                    f"{label} {fileid} ({f.name}) of replica {repid} holds {length} bytes, expected "
                    f"{expected} ({because})"
                )
            out.setdefault(repid, []).append(f)
        return out, len(parsed)

    def parse_file(
        self, row: tuple[Any, ...], label: str, blobs: dict[str, bytes]
    ) -> tuple[EmbeddedFile, int]:
        fileid, name, compression, lenorig, lencompressed, modtime, checksum, data, _repid = row
        what = f"{label} {fileid}"
        if data is None:
            raise self.bad(f"{what} has NULL data")
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        bid = blob_id(payload)
        blobs[bid] = payload
        f = EmbeddedFile(
            name=self.text(name, what, "name"),
            blob=BlobId(bid),
            compression=self.integer(compression, what, "compression"),
            lenorig=self.integer(lenorig, what, "lenorig"),
            lencompressed=self.integer(lencompressed, what, "lencompressed"),
            modtime=self.time(modtime, what, "modtime"),
            checksum=self.text(checksum, what, "checksum"),
        )
        return f, len(payload)

    def read_replica_extras(
        self, replicas: dict[int, _Rep], archives: dict[int, tuple[int, str]]
    ) -> dict[int, tuple[tuple[int, int] | None, tuple[float, float, int] | None, list[TarMember]]]:
        """Resolution, accuracy and TAR index rows per replica id."""
        res: dict[int, tuple[int, int]] = {}
        for repid, x, y in self.con.execute("select replicaid, x, y from resolution order by rowid"):
            what = f"resolution row of replica {repid}"
            repid = self.integer(repid, "resolution row", "replicaid")
            if repid not in replicas:
                raise self.bad(f"resolution row refers to missing replica {repid}")
            res[repid] = (self.integer(x, what, "x"), self.integer(y, what, "y"))
        acc: dict[int, tuple[float, float, int]] = {}
        for repid, accuracy, norm, relative in self.con.execute(
            "select replicaid, accuracy, norm, relative from accuracy order by rowid"
        ):
            what = f"accuracy row of replica {repid}"
            repid = self.integer(repid, "accuracy row", "replicaid")
            if repid not in replicas:
                raise self.bad(f"accuracy row refers to missing replica {repid}")
            if accuracy is None or norm is None:
                raise self.bad(f"{what} has NULL accuracy or norm")
            try:
                acc[repid] = (float(accuracy), float(norm), self.integer(relative, what, "relative"))
            except (TypeError, ValueError):
                raise self.bad(f"{what} has a value that is not a number") from None
        tar: dict[int, list[TarMember]] = {}
        if self.version != "0.5":
            rows = self.con.execute(
                "select archiveid, replicaid, filename, offset, offset_data, size from archiveidx "
                "order by rowid"
            )
            for archiveid, repid, filename, offset, offset_data, size in rows:
                what = f"archiveidx row of replica {repid}"
                repid = self.integer(repid, "archiveidx row", "replicaid")
                archiveid = self.integer(archiveid, what, "archiveid")
                if repid not in replicas:
                    raise self.bad(f"archiveidx row refers to missing replica {repid}")
                if archiveid not in archives:
                    raise self.bad(f"{what} refers to missing archive {archiveid}")
                if replicas[repid].archiveid != archiveid:
                    raise self.bad(f"{what} names archive {archiveid}, but replica {repid} is not in it")
                tar.setdefault(repid, []).append(
                    TarMember(
                        self.text(filename, what, "filename"),
                        self.integer(offset, what, "offset"),
                        self.integer(offset_data, what, "offset_data"),
                        self.integer(size, what, "size"),
                    )
                )
        return {
            repid: (res.get(repid), acc.get(repid), tar.get(repid, []))
            for repid in set(res) | set(acc) | set(tar)
        }


def _first_duplicate(names: list[str]) -> str | None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            return n
        seen.add(n)
    return None


def _replica_checksum(kind: str, key: str, files: list[EmbeddedFile]) -> str:
    """What ``camp add`` records as the replica checksum, derived from the embedded files."""
    if key:
        return ""
    if kind == "ADIOS":
        meta = [f for f in files if f.name == "metadata"]
        return meta[0].checksum if len(meta) == 1 else ""
    return files[0].checksum if len(files) == 1 else ""
