"""Checking an undeltified pack against its index in memory that does not grow with the pack.

A fetch verifies every pack it downloads before the pack joins the store; a clone of a
million-dataset campaign downloads one pack of 2.6 million objects. dulwich's check
keeps two sorted lists of every entry and maps the whole pack into the process (2 GiB
resident at a million datasets). Here the pack is hashed with plain reads, its entries are
inflated one at a time from a map whose pages are dropped behind the scan, and each
recomputed id is looked up in the index's own sorted tables
(:class:`~campaignvcs.packreader.IndexTable`); what stays is :class:`PackIds`, 28 bytes an
object. Packs with deltas (another tool's) are not checked here: the caller hands them to
dulwich.
"""

from __future__ import annotations

import binascii
import bisect
import hashlib
import itertools
import mmap
import operator
import struct
import zlib
from array import array
from collections.abc import Iterator
from collections.abc import Set as AbstractSet

from campaignvcs.oidsets import ID_BYTES, binary_id
from campaignvcs.packreader import SHAS_AT, TYPE_NAMES, IndexTable

READ_SIZE = 1 << 20
"""Bytes per read while hashing a pack."""
DROP_EVERY = 4 << 20
"""Pages of the pack's map already scanned are dropped from the process every this many bytes."""
DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
"""Dropping a map's pages (not every platform has it: there they stay until the map is closed)."""
DELTA_TYPES = (6, 7)
"""Pack entry types of deltas (offset and reference)."""


class PackRefused(Exception):
    """A pack or its index is damaged or does not match: the message is one line, for people."""


class PackIds(AbstractSet[bytes]):
    """The (hex) ids of a checked pack's objects: a read-only set over the index's sorted ids.

    ``in`` looks in the ids that share the first two bytes (~40 at 2.6 million objects),
    found through a 65,537-entry table of where each such run starts, with one
    ``bytes.find``: no Python object per id, ~0.3 µs a lookup.
    """

    def __init__(self, idx: bytes, starts: array, distinct: int) -> None:
        self.idx = idx
        self.starts = starts
        self.distinct = distinct

    def __contains__(self, oid: object) -> bool:
        sha = binary_id(oid)
        return sha is not None and _position(self.idx, self.starts, sha) is not None

    def __iter__(self) -> Iterator[bytes]:
        previous = b""
        with memoryview(self.idx) as view:
            for at in range(SHAS_AT, SHAS_AT + ID_BYTES * self.starts[-1], ID_BYTES):
                sha = bytes(view[at:at + ID_BYTES])
                if sha != previous:
                    yield binascii.hexlify(sha)
                previous = sha

    def __len__(self) -> int:
        return self.distinct


def _run_starts(prefixes: array) -> array:
    """Where the sorted ids of each two-byte prefix start: those of prefix k are rows ``starts[k]:starts[k + 1]``."""
    return array("I", (bisect.bisect_left(prefixes, k << 48) for k in range(65537)))


def _position(idx: bytes | mmap.mmap, starts: array, sha: bytes) -> int | None:
    """The first row of the index ``idx`` listing ``sha`` (20 bytes), or None."""
    key = sha[0] << 8 | sha[1]
    end = SHAS_AT + starts[key + 1] * ID_BYTES
    at = idx.find(sha, SHAS_AT + starts[key] * ID_BYTES, end)
    while at >= 0 and (at - SHAS_AT) % ID_BYTES:  # found across two ids: look on
        at = idx.find(sha, at + 1, end)
    return None if at < 0 else (at - SHAS_AT) // ID_BYTES


def check_undeltified(pack: str, idx: str, name: str, what: str) -> PackIds | None:
    """Check ``pack`` (named ``name``) and its version-2 index ``idx``; None when the pack has deltas.

    In the order, and with the messages, of the check it replaces (``what`` names the pack
    in them): the pack's trailing checksum, the index's, the pack's checksum against its
    name and the one the index records; then every entry is inflated and its id recomputed,
    and each must be listed at its offset with its CRC (as many entries as rows: the
    offsets differ, so every row is matched once). Raises :class:`PackRefused`.
    """
    from dulwich.errors import ChecksumMismatch  # the message the dulwich check gave

    with open(idx, "rb") as f:
        raw = f.read()
    stored, actual = _pack_checksums(pack)
    if actual != stored:
        raise PackRefused(f"{what} is damaged (checksum mismatch: {ChecksumMismatch(stored, actual)})")
    index_sum = hashlib.sha1(memoryview(raw)[:-20]).digest()
    if index_sum != raw[-20:]:
        raise PackRefused(f"{what} is damaged (checksum mismatch: {ChecksumMismatch(raw[-20:], index_sum)})")
    if "pack-" + stored.hex() != name or raw[-40:-20] != stored:
        raise PackRefused(f"{what} does not match its name or index")
    table = IndexTable(raw)
    prefixes = table.prefixes()
    if not _tables_in_order(table, prefixes):
        raise PackRefused(f"{what} holds objects its index does not list")
    starts = _run_starts(prefixes)
    duplicates = sum(table.sha(i - 1) == table.sha(i) for i in _equal_prefix_starts(prefixes))
    del prefixes
    damage = None
    with open(pack, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            listed = _entries_listed(data, table, starts)
        except (zlib.error, ValueError, IndexError, struct.error) as exc:
            damage = f"{type(exc).__name__}: {exc}"  # raised once the map is closed (the traceback holds views of it)
    if damage is not None:
        raise PackRefused(f"{what} is damaged ({damage})")
    if listed is None:
        return None
    if not listed:
        raise PackRefused(f"{what} holds objects its index does not list")
    return PackIds(raw, starts, table.count - duplicates)


def _pack_checksums(pack: str) -> tuple[bytes, bytes]:
    """(the checksum a pack ends with, the SHA-1 of what comes before it), read in fixed-size pieces."""
    digest = hashlib.sha1()
    buffer = bytearray(READ_SIZE)
    with open(pack, "rb", buffering=0) as f, memoryview(buffer) as view:
        size = f.seek(0, 2)
        left = size - 20
        f.seek(0)
        while left > 0:
            n = f.readinto(view[:min(READ_SIZE, left)])
            if not n:
                break
            digest.update(view[:n])
            left -= n
        return f.read(20), digest.digest()


def _tables_in_order(table: IndexTable, prefixes: array) -> bool:
    """Whether the index's ids are sorted and its fan-out counts them (what every lookup relies on)."""
    fanout = struct.unpack_from(">256I", table.idx, 8)
    if any(fanout[b] != bisect.bisect_left(prefixes, (b + 1) << 56) for b in range(255)):
        return False
    if not all(map(operator.le, prefixes, itertools.islice(prefixes, 1, None))):
        return False
    return all(table.sha(i - 1) <= table.sha(i) for i in _equal_prefix_starts(prefixes))


def _equal_prefix_starts(prefixes: array) -> Iterator[int]:
    """Positions whose 8-byte prefix equals the one before (full ids are compared there; rare but for duplicates)."""
    if not any(map(operator.eq, prefixes, itertools.islice(prefixes, 1, None))):
        return
    for i, (a, b) in enumerate(zip(prefixes, itertools.islice(prefixes, 1, None)), 1):
        if a == b:
            yield i


def _entries_listed(data: mmap.mmap, table: IndexTable, starts: array) -> bool | None:
    """Whether the pack's entries are exactly the rows of the index; None at the first delta.

    Raises ValueError (or zlib.error) for an entry that cannot be read.
    """
    count = struct.unpack_from(">I", data, 8)[0]
    if count != table.count:
        return False
    end = len(data) - 20
    pos = 12
    dropped = 0
    with memoryview(data) as view:
        for number in range(count):
            start = pos
            if pos >= end:
                raise ValueError(f"the pack ends after {number} of its {count} objects")
            byte = data[pos]
            kind = (byte >> 4) & 7
            size = byte & 0x0F
            shift = 4
            pos += 1
            while byte & 0x80:
                if pos >= end:
                    raise ValueError(f"the object at offset {start} is cut short")
                byte = data[pos]
                size |= (byte & 0x7F) << shift
                shift += 7
                pos += 1
            if kind in DELTA_TYPES:
                return None
            type_name = TYPE_NAMES.get(kind)
            if type_name is None:
                raise ValueError(f"the object at offset {start} has unknown type {kind}")
            content, pos = _inflate(view, pos, end, size, start)
            sha = hashlib.sha1(b"%s %d\0" % (type_name, size))
            sha.update(content)
            if not _listed(table, starts, sha.digest(), start, zlib.crc32(view[start:pos])):
                return False
            if pos - dropped > DROP_EVERY and DONTNEED is not None:
                dropped = pos - pos % mmap.PAGESIZE
                data.madvise(DONTNEED, 0, dropped)
    if pos != end:
        raise ValueError(f"{end - pos} bytes after the last object")
    return True


def _inflate(view: memoryview, pos: int, end: int, size: int, start: int) -> tuple[bytes, int]:
    """(the ``size`` bytes of the zlib stream at ``pos``, where it ends); never inflates more than ``size`` + 1."""
    inflater = zlib.decompressobj()
    parts = []
    got = 0
    step = size + size // 1000 + 64  # more than zlib needs for ``size`` bytes: usually one piece
    piece: bytes | memoryview
    while not inflater.eof:
        if inflater.unconsumed_tail:
            piece = inflater.unconsumed_tail
        elif pos < end:
            piece = view[pos:min(end, pos + step)]
            pos += len(piece)
        else:
            raise ValueError(f"the object at offset {start} is cut short")
        out = inflater.decompress(piece, size + 1 - got)
        got += len(out)
        parts.append(out)
        if got > size:
            raise ValueError(f"the object at offset {start} is longer than its header says ({size} bytes)")
    if got != size:
        raise ValueError(f"the object at offset {start} is shorter than its header says ({got} of {size} bytes)")
    return (parts[0] if len(parts) == 1 else b"".join(parts)), pos - len(inflater.unused_data)


def _listed(table: IndexTable, starts: array, sha: bytes, offset: int, crc: int) -> bool:
    """Whether the index lists ``sha`` at ``offset`` with ``crc`` (duplicate ids: any of their rows)."""
    j = _position(table.idx, starts, sha)
    if j is None:
        return False
    try:
        while j < table.count and table.sha(j) == sha:
            if table.offset(j) == offset and table.crc(j) == crc:
                return True
            j += 1
    except struct.error:  # a large offset pointing past its table
        return False
    return False
