"""Value types of a campaign and their canonical text form.

A manifest is canonical JSON: keys sorted, one value per line, fixed list order, a final
newline. The same content therefore always gives the same bytes and the same git blob
id, ``git diff`` shows one changed value per line, and ``json.loads`` (in C) keeps a
100,000-dataset build fast. JSON is also valid YAML, so YAML tools read manifests too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, NewType

from campaignvcs.canonical import dumps, encode_str, integer, write_value

__all__ = ["dumps"]  # re-exported: callers write their manifests with model.dumps

BlobId = NewType("BlobId", str)
"""Hex git object id of a blob (an embedded metadata object or a manifest)."""

DatasetName = NewType("DatasetName", str)
"""Representation name of a dataset, e.g. ``run/out.bp``; ``dataset.name`` in the ACA."""

HostName = NewType("HostName", str)
"""Short host name as readers put it in config.yaml / hosts.yaml."""

KINDS = ("ADIOS", "HDF5", "TEXT", "IMAGE", "SCALAR_FIELD")
"""Dataset kinds, spelled exactly as ACA ``dataset.fileformat``.

``SCALAR_FIELD`` (a 2-D array embedded in the archive; hpc-campaign's development version
writes it, with its shape and type in the ``scalar_field`` table) only ever comes in
through ``camp import``: ``camp add`` never detects it, and like TEXT and IMAGE its
replicas are plain files for status and verify. ADIOS2 2.12 lists no variable for it.
"""

MANIFEST_FORMAT = 1


def loads(data: bytes, what: str) -> dict[str, Any]:
    """Parse canonical text; ``what`` names the object in the error message."""
    from campaignvcs.errors import CampError

    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise CampError(f"{what}: not a valid manifest ({exc})") from None
    if not isinstance(obj, dict):
        raise CampError(f"{what}: not a valid manifest (expected an object)")
    return obj


@dataclass(frozen=True)
class EmbeddedFile:
    """A metadata object stored in the campaign, as it goes into the ACA ``file`` table.

    ``blob`` holds the payload exactly as ``file.data`` stores it (zlib stream when
    ``compression`` is 1, then secretbox when the replica is keyed); ``checksum`` is what
    ``file.checksum`` gets.
    """

    name: str
    blob: BlobId
    compression: int
    lenorig: int
    lencompressed: int
    modtime: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        return {
            "name": self.name,
            "blob": self.blob,
            "compression": self.compression,
            "lenorig": self.lenorig,
            "lencompressed": self.lencompressed,
            "modtime": self.modtime,
            "checksum": self.checksum,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddedFile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=str(d["name"]),
            blob=BlobId(str(d["blob"])),
            compression=int(d["compression"]),
            lenorig=int(d["lenorig"]),
            lencompressed=int(d["lencompressed"]),
            modtime=int(d["modtime"]),
            checksum=str(d["checksum"]),
        )


@dataclass(frozen=True)
class TarMember:
    """One ``archiveidx`` row: where a replica (or a file inside a BP dir) sits in a TAR."""

    filename: str
    offset: int
    offset_data: int
    size: int


@dataclass(frozen=True)
class Replica:
    """One copy of a dataset: ``dir + "/" + path`` on ``host`` (inside ``archive`` if set).

    ``archive`` is ``None`` for an ordinary location; otherwise the TAR file name relative
    to ``dir`` (``""`` when the directory itself is the archive). ``checksum`` is the SHA-1
    of the bytes camp read to describe the replica (BP: the metadata object; HDF5: the
    metadata-only copy; text and images: the file).
    """

    host: HostName
    dir: str
    path: str
    size: int
    mtime: int
    checksum: str = ""
    archive: str | None = None
    deltime: int = 0
    key: str = ""
    resolution: tuple[int, int] | None = None
    accuracy: tuple[float, float, int] | None = None
    files: tuple[EmbeddedFile, ...] = ()
    tarindex: tuple[TarMember, ...] = ()

    @property
    def location(self) -> tuple[str, str, str, str]:
        """Identity of a replica inside its dataset: host, dir, archive, path."""
        return (self.host, self.dir, "" if self.archive is None else "\0" + self.archive, self.path)

    @property
    def id(self) -> str:
        """Short stable id (hex) users can pass to ``camp rm --replica``."""
        return hashlib.sha1("\n".join(self.location).encode()).hexdigest()[:8]

    @property
    def live(self) -> bool:
        """True unless the replica carries a tombstone."""
        return self.deltime == 0

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the manifest (fixed order of files and TAR rows)."""
        return {
            "host": self.host,
            "dir": self.dir,
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
            "checksum": self.checksum,
            "archive": self.archive,
            "deltime": self.deltime,
            "key": self.key,
            "resolution": list(self.resolution) if self.resolution else None,
            "accuracy": list(self.accuracy) if self.accuracy else None,
            "files": [f.to_dict() for f in sorted(self.files, key=_file_order)],
            "tarindex": [[t.filename, t.offset, t.offset_data, t.size] for t in self.tarindex],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Replica:
        """Inverse of :meth:`to_dict`."""
        res = d.get("resolution")
        acc = d.get("accuracy")
        return cls(
            host=HostName(str(d["host"])),
            dir=str(d["dir"]),
            path=str(d["path"]),
            size=int(d["size"]),
            mtime=int(d["mtime"]),
            checksum=str(d.get("checksum", "")),
            archive=None if d.get("archive") is None else str(d["archive"]),
            deltime=int(d.get("deltime", 0)),
            key=str(d.get("key", "")),
            resolution=(int(res[0]), int(res[1])) if res else None,
            accuracy=(float(acc[0]), float(acc[1]), int(acc[2])) if acc else None,
            files=tuple(EmbeddedFile.from_dict(f) for f in d.get("files", ())),
            tarindex=tuple(TarMember(str(t[0]), int(t[1]), int(t[2]), int(t[3])) for t in d.get("tarindex", ())),
        )


def _file_order(f: EmbeddedFile) -> tuple[str, str]:
    return (f.name, f.blob)


@dataclass(frozen=True)
class Dataset:
    """A dataset: its identity and every replica, including tombstoned ones."""

    name: DatasetName
    uuid: str
    kind: str
    modtime: int
    deltime: int = 0
    replicas: tuple[Replica, ...] = field(default_factory=tuple)

    @property
    def live(self) -> bool:
        """True unless the dataset carries a tombstone."""
        return self.deltime == 0

    def live_replicas(self) -> list[Replica]:
        """Replicas without a tombstone."""
        return [r for r in self.replicas if r.live]

    def with_replica(self, replica: Replica) -> Dataset:
        """This dataset with ``replica`` added or replacing the one at the same location."""
        others = [r for r in self.replicas if r.location != replica.location]
        return dataclasses.replace(self, deltime=0, replicas=tuple(sorted([*others, replica], key=_replica_order)))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the manifest."""
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "uuid": self.uuid,
            "kind": self.kind,
            "modtime": self.modtime,
            "deltime": self.deltime,
            "replicas": [r.to_dict() for r in sorted(self.replicas, key=_replica_order)],
        }

    def dumps(self) -> bytes:
        """Canonical manifest bytes: ``dumps(self.to_dict())``, written without the dict.

        One manifest per dataset is written at every ``camp add``; the generic writer spends
        ~40 calls on each. A field of another type than the manifest's (TypeError) goes the
        generic way, which writes it as ``to_dict`` gives it or says what it cannot write.
        """
        try:
            return _dataset_text(self).encode("utf-8")
        except TypeError:
            return dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dataset:
        """Inverse of :meth:`to_dict`."""
        replicas = sorted((Replica.from_dict(r) for r in d.get("replicas", ())), key=_replica_order)
        for a, b in zip(replicas, replicas[1:]):
            if a.location == b.location:
                raise ValueError(f"two replicas at {a.host}:{a.dir}/{a.path}")
        return cls(
            name=DatasetName(str(d["name"])),
            uuid=str(d["uuid"]),
            kind=str(d["kind"]),
            modtime=int(d["modtime"]),
            deltime=int(d.get("deltime", 0)),
            replicas=tuple(replicas),
        )

    @classmethod
    def loads(cls, data: bytes, what: str = "manifest") -> Dataset:
        """Parse manifest bytes; errors name ``what``."""
        from campaignvcs.errors import CampError

        try:
            return cls.from_dict(loads(data, what))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CampError(f"{what}: malformed dataset manifest ({exc})") from None


def _replica_order(r: Replica) -> tuple[str, str, str, str]:
    return r.location


_FILES_END, _REPLICAS_END = "\n   ]", "\n ]"


def _dataset_text(ds: Dataset) -> str:
    """The text of ``dumps(ds.to_dict())``: keys written in sorted order, rare values by write_value."""
    q, n = encode_str, integer
    out = [
        f'{{\n "deltime": {n(ds.deltime)},\n "format": {n(MANIFEST_FORMAT)},\n "kind": {q(ds.kind)},'
        f'\n "modtime": {n(ds.modtime)},\n "name": {q(ds.name)},\n "replicas": '
    ]
    sep = "["
    for r in sorted(ds.replicas, key=_replica_order):
        out.append(f'{sep}\n  {{\n   "accuracy": ')
        _write_rare(list(r.accuracy) if r.accuracy else None, out)
        archive = "null" if r.archive is None else q(r.archive)
        out.append(
            f',\n   "archive": {archive},\n   "checksum": {q(r.checksum)},\n   "deltime": {n(r.deltime)},'
            f'\n   "dir": {q(r.dir)},\n   "files": '
        )
        fsep = "["
        for f in sorted(r.files, key=_file_order):
            out.append(
                f'{fsep}\n    {{\n     "blob": {q(f.blob)},\n     "checksum": {q(f.checksum)},'
                f'\n     "compression": {n(f.compression)},\n     "lencompressed": {n(f.lencompressed)},'
                f'\n     "lenorig": {n(f.lenorig)},\n     "modtime": {n(f.modtime)},\n     "name": {q(f.name)}\n    }}'
            )
            fsep = ","
        out.append(
            f'{"[]" if fsep == "[" else _FILES_END},\n   "host": {q(r.host)},\n   "key": {q(r.key)},'
            f'\n   "mtime": {n(r.mtime)},\n   "path": {q(r.path)},\n   "resolution": '
        )
        _write_rare(list(r.resolution) if r.resolution else None, out)
        out.append(f',\n   "size": {n(r.size)},\n   "tarindex": ')
        _write_rare([[t.filename, t.offset, t.offset_data, t.size] for t in r.tarindex], out)
        out.append("\n  }")
        sep = ","
    out.append(f'{"[]" if sep == "[" else _REPLICAS_END},\n "uuid": {q(ds.uuid)}\n}}\n')
    return "".join(out)


def _write_rare(value: list[Any] | None, out: list[str]) -> None:
    """A replica's resolution, accuracy or TAR rows (mostly null or empty) in :func:`_dataset_text`."""
    if not value:
        out.append("null" if value is None else "[]")
    else:
        write_value(value, 3, out)


@dataclass(frozen=True)
class Archive:
    """An archival location on a host: a directory, or a TAR file inside it."""

    dir: str
    tarname: str
    system: str
    notes: BlobId | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the host manifest."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Archive:
        """Inverse of :meth:`to_dict`."""
        notes = d.get("notes")
        return cls(str(d["dir"]), str(d.get("tarname", "")), str(d["system"]), None if notes is None else BlobId(notes))


@dataclass(frozen=True)
class Host:
    """A host as the ACA ``host`` table describes it, plus its archival locations."""

    name: HostName
    longhostname: str | None = None
    default_protocol: str = ""
    modtime: int = 0
    archives: tuple[Archive, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``hosts/<host>.json``."""
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "longhostname": self.longhostname,
            "default_protocol": self.default_protocol,
            "modtime": self.modtime,
            "archives": [a.to_dict() for a in sorted(self.archives, key=lambda a: (a.dir, a.tarname))],
        }

    def dumps(self) -> bytes:
        """Canonical manifest bytes."""
        return dumps(self.to_dict())

    @classmethod
    def loads(cls, data: bytes, what: str = "host manifest") -> Host:
        """Parse ``hosts/<host>.json``."""
        from campaignvcs.errors import CampError

        d = loads(data, what)
        try:
            return cls(
                name=HostName(str(d["name"])),
                longhostname=None if d.get("longhostname") is None else str(d["longhostname"]),
                default_protocol=str(d.get("default_protocol", "")),
                modtime=int(d.get("modtime", 0)),
                archives=tuple(Archive.from_dict(a) for a in d.get("archives", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CampError(f"{what}: malformed host manifest ({exc!r})") from None


@dataclass(frozen=True)
class TimeSeries:
    """An ordered series of ADIOS/HDF5 datasets that ADIOS2 reads as one (``<name>/<var>``)."""

    name: str
    datasets: tuple[DatasetName, ...]

    def dumps(self) -> bytes:
        """Canonical bytes of ``timeseries/<name>.json``."""
        return dumps({"format": MANIFEST_FORMAT, "name": self.name, "datasets": list(self.datasets)})

    @classmethod
    def loads(cls, data: bytes, what: str = "time-series manifest") -> TimeSeries:
        """Parse ``timeseries/<name>.json``."""
        d = loads(data, what)
        return cls(str(d["name"]), tuple(DatasetName(str(n)) for n in d.get("datasets", ())))


@dataclass(frozen=True)
class Campaign:
    """Campaign-wide facts kept in ``campaign.json``."""

    name: str
    uuid: str
    created: int
    description: str = ""

    def dumps(self) -> bytes:
        """Canonical bytes of ``campaign.json``."""
        return dumps(
            {
                "format": MANIFEST_FORMAT,
                "name": self.name,
                "uuid": self.uuid,
                "created": self.created,
                "description": self.description,
            }
        )

    @classmethod
    def loads(cls, data: bytes, what: str = "campaign.json") -> Campaign:
        """Parse ``campaign.json``."""
        d = loads(data, what)
        return cls(str(d["name"]), str(d["uuid"]), int(d.get("created", 0)), str(d.get("description", "")))


REF_DATASET = "dataset"
"""Key of a dataset reference cell in an extra table: ``{"dataset": NAME, "uuid": UUID}``."""
REF_BASE64 = "base64"
"""Key of a BLOB cell in an extra table: ``{"base64": DATA}``."""


def dataset_ref(name: str, uuid: str) -> dict[str, str]:
    """The cell that stands for a dataset in an extra table (a row id or uuid in the archive)."""
    return {REF_DATASET: name, "uuid": uuid}


def is_dataset_ref(cell: Any) -> bool:
    """True for a cell made by :func:`dataset_ref`."""
    return isinstance(cell, dict) and REF_DATASET in cell


@dataclass(frozen=True)
class ExtraTable:
    """A table of an imported archive that camp does not model, kept so every build writes it back.

    ``extras/<table>.json`` holds it: the ``CREATE TABLE`` statement as the archive had
    it, the column names, and the rows. A cell is a JSON value, ``{"base64": ...}`` for
    a BLOB, or a dataset reference ``{"dataset": NAME, "uuid": UUID}`` where the archive
    had a dataset's row id (``dataset_columns``) or its uuid (``uuid_columns``), so the
    row follows the dataset whatever row id a build gives it. ``id_column`` is the
    table's own INTEGER PRIMARY KEY; ``links`` name the columns that hold another extra
    table's ``id_column`` (``visualization_item.visid``), so rows whose target a build
    leaves out go too. ``rowids`` are the archive's implicit row ids when they were not
    simply 1..n in order (None otherwise); ``indexes`` the table's ``CREATE INDEX``
    statements.
    """

    name: str
    ddl: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    dataset_columns: tuple[str, ...] = ()
    uuid_columns: tuple[str, ...] = ()
    id_column: str | None = None
    links: tuple[tuple[str, str], ...] = ()
    indexes: tuple[str, ...] = ()
    rowids: tuple[int, ...] | None = None

    def same_definition(self, other: ExtraTable) -> bool:
        """True when both describe the same table (everything but the rows)."""
        return (dataclasses.replace(self, rows=(), rowids=None) ==
                dataclasses.replace(other, rows=(), rowids=None))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for ``extras/<table>.json``."""
        return {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "ddl": self.ddl,
            "columns": list(self.columns),
            "dataset_columns": list(self.dataset_columns),
            "uuid_columns": list(self.uuid_columns),
            "id_column": self.id_column,
            "links": {column: table for column, table in self.links},
            "indexes": list(self.indexes),
            "rowids": None if self.rowids is None else list(self.rowids),
            "rows": [list(row) for row in self.rows],
        }

    def dumps(self) -> bytes:
        """Canonical manifest bytes."""
        return dumps(self.to_dict())

    @classmethod
    def loads(cls, data: bytes, what: str = "extra table") -> ExtraTable:
        """Parse ``extras/<table>.json``, checking that rows, columns and references fit together."""
        from campaignvcs.errors import CampError

        d = loads(data, what)
        try:
            table = cls(
                name=_text(d["name"]),
                ddl=_text(d["ddl"]),
                columns=tuple(_text(c) for c in d["columns"]),
                rows=tuple(tuple(row) for row in d["rows"]),
                dataset_columns=tuple(_text(c) for c in d.get("dataset_columns", ())),
                uuid_columns=tuple(_text(c) for c in d.get("uuid_columns", ())),
                id_column=None if d.get("id_column") is None else _text(d["id_column"]),
                links=tuple(sorted((_text(c), _text(t)) for c, t in d.get("links", {}).items())),
                indexes=tuple(_text(s) for s in d.get("indexes", ())),
                rowids=None if d.get("rowids") is None else tuple(_integer(i) for i in d["rowids"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CampError(f"{what}: malformed extra-table manifest ({exc})") from None
        problem = table._problem()
        if problem:
            raise CampError(f"{what}: malformed extra-table manifest ({problem})")
        return table

    def _problem(self) -> str:
        """Why the parts do not fit together, or ''."""
        columns = set(self.columns)
        named = [*self.dataset_columns, *self.uuid_columns, *(c for c, _t in self.links)]
        if self.id_column is not None:
            named.append(self.id_column)
        unknown = [c for c in named if c not in columns]
        if unknown:
            return f"column {unknown[0]!r} is not one of its columns"
        if self.rowids is not None and len(self.rowids) != len(self.rows):
            return f"{len(self.rowids)} row ids for {len(self.rows)} rows"
        for number, row in enumerate(self.rows, 1):
            if len(row) != len(self.columns):
                return f"row {number} has {len(row)} values for {len(self.columns)} columns"
            for cell in row:
                if isinstance(cell, dict | list) and not _valid_cell(cell):
                    return f"row {number} has a value that is neither a dataset reference nor base64 data"
        return ""


def _valid_cell(cell: Any) -> bool:
    if not isinstance(cell, dict):
        return False
    if is_dataset_ref(cell):
        return set(cell) == {REF_DATASET, "uuid"} and all(isinstance(v, str) for v in cell.values())
    return set(cell) == {REF_BASE64} and isinstance(cell[REF_BASE64], str)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {value!r}")
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, not {value!r}")
    return value
