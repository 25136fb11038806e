"""TAR indexes: where each member of an (uncompressed) TAR file starts, as CSV lines.

A tape archive is read by offset: ADIOS2 reads a replica inside a TAR file from
``offset_data`` for ``size`` bytes (ACA ``archiveidx``), so whoever records an archived
replica needs each member's header offset, data offset and size. The index is one CSV
line per member, in archive order::

    <type>,<header offset>,<data offset>,<size>,"<member name>"

``type`` is ``0`` for a regular file (also V7's NUL type), ``5`` for a directory, the
tar type character otherwise; sparse members are always ``S`` (their data is stored
without the holes, so it cannot be read as the file's bytes) with the size as stored.
This is the format hpc-campaign's ``taridx`` writes, with two fixes: names are quoted as
CSV (a quote is doubled), and V7 and sparse members do not crash the writer. Reading
accepts both: the reference writes names in double quotes without escaping, so a quoted
name whose inner quotes are not all doubled is taken verbatim. (Only a reference-written
name containing two adjacent quotes reads differently: as one quote.)
"""

from __future__ import annotations

import csv
import io
import os
import tarfile
from dataclasses import dataclass

from campaignvcs.errors import BadInput

REGULAR = "0"
DIRECTORY = "5"
SPARSE = "S"

COMPRESSED_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x9d", "compress"),
)
"""Leading bytes of compressed streams: offsets into them mean nothing to a reader."""

ENCODING = "utf-8"
ERRORS = "surrogateescape"
"""Member names that are not UTF-8 survive a write/read round trip byte for byte."""


class TarIndexError(BadInput):
    """A TAR file or TAR index camp cannot use."""


@dataclass(frozen=True)
class IndexEntry:
    """One member of a TAR file: type, header offset, data offset, data size (as stored), name."""

    type: str
    offset: int
    offset_data: int
    size: int
    name: str

    @property
    def is_regular(self) -> bool:
        """A plain file whose bytes are stored contiguously."""
        return self.type == REGULAR

    @property
    def is_dir(self) -> bool:
        """A directory header (no data)."""
        return self.type == DIRECTORY


def scan(path: str) -> list[IndexEntry]:
    """Every member of the uncompressed TAR file at ``path``, in archive order.

    ustar, GNU (long names, old sparse), pax (incl. GNU sparse 0.0/0.1/1.0) and V7
    headers are understood through :mod:`tarfile`; compressed files are refused, since
    offsets into a compressed stream are useless to a reader.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        file_size = os.path.getsize(path)
    except OSError as exc:
        raise TarIndexError(f"{path}: cannot read TAR file ({exc.strerror or exc})") from None
    for magic, kind in COMPRESSED_MAGIC:
        if head.startswith(magic):
            raise TarIndexError(
                f"{path}: is a {kind}-compressed TAR file; index the uncompressed TAR "
                "(readers need offsets into the plain archive)"
            )
    entries: list[IndexEntry] = []
    try:
        with tarfile.open(path, "r:", encoding=ENCODING, errors=ERRORS) as tf:
            for ti in tf:
                entries.append(_entry(ti))
            end = tf.offset
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise TarIndexError(f"{path}: not a readable TAR file ({exc})") from None
    except OSError as exc:
        raise TarIndexError(f"{path}: cannot read TAR file ({exc.strerror or exc})") from None
    _check_complete(path, entries, end, file_size)
    return entries


def _entry(ti: tarfile.TarInfo) -> IndexEntry:
    if ti.sparse is not None:
        kind, size = SPARSE, sum(n for _offset, n in ti.sparse)  # type: ignore[misc,has-type]
    elif ti.type == tarfile.AREGTYPE:
        kind, size = REGULAR, ti.size
    else:
        kind, size = ti.type.decode("latin-1"), ti.size
    return IndexEntry(kind, ti.offset, ti.offset_data, size, ti.name)


def _check_complete(path: str, entries: list[IndexEntry], end: int, file_size: int) -> None:
    """Refuse a truncated archive, or one whose headers stop making sense before its end.

    :mod:`tarfile` silently ends the listing at the first bad header after the first
    member; an index that quietly misses members would leave datasets unarchived.
    """
    for e in entries:
        if e.type in (REGULAR, SPARSE) and e.offset_data + e.size > file_size:
            raise TarIndexError(
                f"{path}: TAR file is truncated (member {e.name!r} ends past the end of the file)"
            )
    try:
        with open(path, "rb") as f:
            f.seek(end)
            block = f.read(tarfile.BLOCKSIZE)
    except OSError as exc:
        raise TarIndexError(f"{path}: cannot read TAR file ({exc.strerror or exc})") from None
    if block.strip(b"\0"):
        raise TarIndexError(f"{path}: not a readable TAR file (bad member header at offset {end})")


def dumps(entries: list[IndexEntry]) -> str:
    """The index text: numbers bare, the type character and the name quoted when not numeric."""
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    for e in entries:
        kind: int | str = int(e.type) if e.type.isdigit() else e.type
        writer.writerow([kind, e.offset, e.offset_data, e.size, e.name])
    return out.getvalue()


def encode(entries: list[IndexEntry]) -> bytes:
    """:func:`dumps` as the bytes of an index file."""
    return dumps(entries).encode(ENCODING, ERRORS)


def load(path: str) -> list[IndexEntry]:
    """Read an index file written by camp or by hpc-campaign's ``taridx``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TarIndexError(f"{path}: cannot read TAR index ({exc.strerror or exc})") from None
    return parse(data.decode(ENCODING, ERRORS), path)


def parse(text: str, what: str) -> list[IndexEntry]:
    """Parse index text; a line that is not ``type,offset,offset,size,name`` is an error naming it."""
    lines = text.split("\n")
    entries: list[IndexEntry] = []
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i]
        i += 1
        if not line.strip():
            continue
        parts = line.split(",", 4)
        if len(parts) != 5:
            raise TarIndexError(
                f"{what} line {number}: malformed TAR index line (expected type,offset,data offset,size,name)"
            )
        rest = parts[4]
        # A quoted name may contain newlines: take following lines until its closing quote.
        while rest.startswith('"') and not _closed(rest) and i < len(lines):
            rest += "\n" + lines[i]
            i += 1
        entries.append(_parse_fields(parts[:4], rest, what, number))
    return entries


def _closed(field: str) -> bool:
    """True if a field that opens with a quote also closes on this line."""
    body = field[1:]
    return (len(body) - len(body.rstrip('"'))) % 2 == 1 or _verbatim_quoted(field)


def _verbatim_quoted(field: str) -> bool:
    """A reference-style quoted name: ends in a quote but its inner quotes are not CSV-escaped."""
    return len(field) >= 2 and field.endswith('"') and '"' in field[1:-1].replace('""', "")


def _parse_fields(head: list[str], rest: str, what: str, number: int) -> IndexEntry:
    kind = head[0].strip()
    if len(kind) >= 2 and kind[0] == kind[-1] == '"':
        kind = kind[1:-1]
    try:
        offset, offset_data, size = (int(v.strip()) for v in head[1:4])
    except ValueError:
        raise TarIndexError(
            f"{what} line {number}: malformed TAR index line (offsets and size must be integers)"
        ) from None
    if not kind or min(offset, offset_data, size) < 0 or offset_data < offset:
        raise TarIndexError(f"{what} line {number}: malformed TAR index line (bad type or offsets)")
    if kind.isdigit():
        kind = str(int(kind))
    return IndexEntry(kind, offset, offset_data, size, _unquote(rest, what, number))


def _unquote(field: str, what: str, number: int) -> str:
    field = field.rstrip("\r")
    if not field.startswith('"'):
        if not field:
            raise TarIndexError(f"{what} line {number}: malformed TAR index line (empty member name)")
        return field
    if len(field) < 2 or not field.endswith('"'):
        raise TarIndexError(f"{what} line {number}: malformed TAR index line (unterminated quoted name)")
    inner = field[1:-1]
    if '"' in inner.replace('""', ""):
        return inner  # hpc-campaign's taridx: quoted, never escaped
    name = inner.replace('""', '"')
    if not name:
        raise TarIndexError(f"{what} line {number}: malformed TAR index line (empty member name)")
    return name
