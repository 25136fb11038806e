"""The datasets of a campaign archive (``.aca``, 0.6/0.7, camp's or hpc-campaign's) as :class:`Recorded`.

Only what describing needs is read: names, kinds, replica locations, key ids,
resolutions and the embedded files' names and checksums; a file's bytes are read when
:attr:`StoredFile.read` is called, so an archive whose contents are all indexed already
costs a few queries.
"""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from collections.abc import Callable
from urllib.parse import quote

from campaignvcs.errors import CampError
from campaignvcs.inspect.describe import Recorded, RecordedReplica, StoredFile

_FILES = {
    False: "select rf.replicaid, f.fileid, f.name, f.compression, f.checksum from repfiles rf "
           "join file f on f.fileid = rf.fileid order by rf.replicaid, f.fileid",
    True: "select rf.replicaid, f.fileid, f.name, f.compression, f.checksum from repfiles rf "
          "join file f on f.fileid = rf.fileid "
          "where rf.replicaid in (select rowid from replica where datasetid = ?) order by rf.replicaid, f.fileid",
}
_REPLICAS = {
    False: "select rowid, datasetid, hostid, dirid, archiveid, name, deltime, keyid, size from replica "
           "order by rowid",
    True: "select rowid, datasetid, hostid, dirid, archiveid, name, deltime, keyid, size from replica "
          "where datasetid = ? order by rowid",
}
_DATASETS = {
    False: "select rowid, name, fileformat, deltime from dataset order by rowid",
    True: "select rowid, name, fileformat, deltime from dataset where rowid = ?",
}
"""Queries for every dataset (False) or one (True, by row id)."""


class ArchiveError(CampError):
    """An archive that cannot be read as a campaign archive (one line naming it)."""


class ArchiveReader:
    """An open, read-only archive; use as a context manager."""

    def __init__(self, path: str, shown: str | None = None) -> None:
        self.path = path
        self.shown = shown or path
        uri = "file:" + quote(os.path.abspath(path), safe="/") + "?mode=ro"
        try:
            self.con = sqlite3.connect(uri, uri=True)
            tables = {r[0] for r in self.con.execute("select name from sqlite_master where type = 'table'")}
        except sqlite3.Error as exc:
            raise ArchiveError(f"{self.shown}: not a readable campaign archive ({exc})") from None
        missing = {"info", "dataset", "replica", "host", "directory", "file", "repfiles"} - tables
        if missing:
            self.con.close()
            raise ArchiveError(f"{self.shown}: not a campaign archive of version 0.6 or later "
                               f"(no table {sorted(missing)[0]})")
        self.tables = tables

    def __enter__(self) -> ArchiveReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.con.close()

    def _file_reader(self, fileid: int) -> Callable[[], bytes]:
        def read() -> bytes:
            try:
                row = self.con.execute("select data from file where fileid = ?", (fileid,)).fetchone()
            except sqlite3.Error as exc:
                raise ArchiveError(f"{self.shown}: cannot read an embedded file ({exc})") from None
            if row is None or row[0] is None:
                raise ArchiveError(f"{self.shown}: embedded file {fileid} has no data")
            return bytes(row[0])
        return read

    def datasets(self, only: int | None = None) -> list[tuple[int, Recorded]]:
        """(dataset row id, dataset) of every dataset (or only row id ``only``), in row order."""
        try:
            return self._datasets(only)
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise ArchiveError(f"{self.shown}: cannot read the archive ({exc})") from None

    def _datasets(self, only: int | None) -> list[tuple[int, Recorded]]:
        q = self.con.execute
        hosts = dict(q("select rowid, hostname from host"))
        dirs = dict(q("select rowid, name from directory"))
        keys = dict(q("select rowid, keyid from key")) if "key" in self.tables else {}
        tars = dict(q("select rowid, tarname from archive")) if "archive" in self.tables else {}
        sizes: dict[int, tuple[int, int]] = {}
        if "resolution" in self.tables:
            sizes = {r: (int(x), int(y)) for r, x, y in q("select replicaid, x, y from resolution")}
        one = only is not None
        args = (only,) if one else ()
        files: dict[int, list[StoredFile]] = defaultdict(list)
        for replicaid, fileid, name, compression, checksum in q(_FILES[one], args):
            files[replicaid].append(StoredFile(str(name), str(checksum or ""), int(compression or 0),
                                               self._file_reader(fileid)))
        replicas: dict[int, list[RecordedReplica]] = defaultdict(list)
        for rowid, dsid, hostid, dirid, archiveid, name, deltime, keyid, size in q(_REPLICAS[one], args):
            replicas[dsid].append(RecordedReplica(
                host=str(hosts.get(hostid, "")), dir=str(dirs.get(dirid, "")), path=str(name),
                archive=str(tars.get(archiveid, "")) if archiveid else None,
                key=str(keys.get(keyid, "")) if keyid else "", size=int(size or 0),
                resolution=sizes.get(rowid), files=tuple(files.get(rowid, ())), live=not deltime,
            ))
        out = []
        for rowid, name, kind, deltime in q(_DATASETS[one], args):
            reps = tuple(replicas.get(rowid, ()))
            if deltime and not any(r.live for r in reps):
                continue
            out.append((int(rowid), Recorded(str(name), str(kind), reps)))
        return out
