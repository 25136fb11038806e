"""The one pack writer: undeltified objects → ``pack-<sha>.pack`` and its index, crash-safe.

Used for the local object store (many new objects at once) and for the pack a push
uploads. The index comes from the write itself (dulwich's ``add_objects`` would re-read and
re-index the pack). As git does, both files are written as ``tmp_pack_*``/``tmp_idx_*``
(no ``.pack``/``.idx`` suffix, so no reader loads a half-written one), fsynced, and renamed
``.pack`` first, ``.idx`` last: a pack is used only once its index exists.
"""

from __future__ import annotations

import binascii
import hashlib
import itertools
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from campaignvcs.faults import fault
from campaignvcs.gitobjects import pack_entry_header, stored_zlib
from campaignvcs.tempfiles import make_temp, remove_quietly

PACK_COMPRESSION = 1
"""zlib level for packs camp writes: most blobs are zlib streams already."""
TEMPORARY_PREFIXES = ("tmp_pack_", "tmp_idx_")
"""Names of a pack and index being written (swept when their writer is gone)."""


@dataclass(frozen=True)
class PackFiles:
    """A pack and its index, written and renamed into place."""

    name: str
    """``pack-<40 hex>`` (the pack's own checksum, so equal packs have equal names)."""
    pack: str
    idx: str
    objects: int

    @property
    def size(self) -> int:
        """Bytes of both files."""
        return os.path.getsize(self.pack) + os.path.getsize(self.idx)


def write_pack(folder: str, objects: Iterable[tuple[bytes, int, bytes]], count: int,
               dense: Collection[bytes] = (), fault_at: str | None = None) -> PackFiles:
    """Write ``count`` objects, given as (hex id, type number, raw content), as one pack in ``folder``.

    Objects whose id is in ``dense`` (compressed or encrypted payloads) are stored in
    zlib's uncompressed block format instead of being deflated again. The same objects in
    the same order give byte-identical files (a retried push re-sends the same pack).
    ``fault_at`` names a crash-test kill point (see :mod:`campaignvcs.faults`).
    """
    entries = ((oid, encode_entry(type_num, raw, oid in dense)) for oid, type_num, raw in objects)
    return write_pack_entries(folder, entries, count, fault_at=fault_at)


def encode_entry(type_num: int, raw: bytes, dense: bool = False) -> bytes:
    """One pack entry: git's type/size header, then the content deflated (or stored, when ``dense``)."""
    body = stored_zlib(raw) if dense else zlib.compress(raw, PACK_COMPRESSION)
    return pack_entry_header(type_num, len(raw)) + body


def write_pack_entries(folder: str, entries: Iterable[tuple[bytes, bytes]], count: int,
                       durable: bool = True, fault_at: str | None = None) -> PackFiles:
    """Write ``count`` ready pack entries, given as (hex id, entry bytes), as one pack and its index.

    A push hands over entries copied from the packs that hold them (nothing inflated or
    deflated again). ``durable`` false skips the fsyncs: for a pack that is uploaded and
    thrown away, not one the repository keeps.
    """
    os.makedirs(folder, exist_ok=True)
    fd, tmp_pack = make_temp(folder, TEMPORARY_PREFIXES[0])
    idx_fd, tmp_idx = make_temp(folder, TEMPORARY_PREFIXES[1])
    os.close(idx_fd)
    try:
        shas = bytearray()  # binary ids, 20 bytes each, in pack order
        offsets = array("Q")
        crcs = array("I")
        digest = hashlib.sha1()
        written = 0
        with os.fdopen(fd, "wb") as f:
            chunks = [b"PACK" + struct.pack(">II", 2, count)]
            offset = len(chunks[0])
            for oid, entry in entries:
                shas += binascii.unhexlify(oid)
                offsets.append(offset)
                crcs.append(zlib.crc32(entry))
                chunks.append(entry)
                offset += len(entry)
                written += 1
                if len(chunks) > 512:
                    data = b"".join(chunks)
                    digest.update(data)
                    f.write(data)
                    chunks = []
            if written != count:
                raise ValueError(f"pack announced {count} objects but was given {written}")
            data = b"".join(chunks)
            digest.update(data)
            checksum = digest.digest()
            f.write(data[:len(data) // 2])
            f.flush()
            fault(fault_at, "pack-half-written")
            f.write(data[len(data) // 2:] + checksum)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        with open(tmp_idx, "wb") as f:
            for part in _index_parts(shas, offsets, crcs, checksum):
                f.write(part)
            f.flush()
            fault(fault_at, "pack-index-written")
            if durable:
                os.fsync(f.fileno())
        name = "pack-" + checksum.hex()
        base = os.path.join(folder, name)
        os.chmod(tmp_pack, 0o444)
        os.chmod(tmp_idx, 0o444)
        os.replace(tmp_pack, base + ".pack")
        fault(fault_at, "pack-before-index")
        os.replace(tmp_idx, base + ".idx")
    finally:
        remove_quietly(tmp_pack, tmp_idx)
    return PackFiles(name, base + ".pack", base + ".idx", count)


def pack_index(shas: Sequence[bytes] | bytes | bytearray, offsets: array, crcs: array, pack_checksum: bytes) -> bytes:
    """A version-2 pack index (git's ``.idx``) of entries given in pack order.

    ``shas`` are the binary ids, as a list or as one buffer of 20 bytes each. Parallel flat
    arrays rather than one tuple per object, and no Python object per id while sorting.
    """
    return b"".join(_index_parts(shas, offsets, crcs, pack_checksum))


def _index_parts(shas: Sequence[bytes] | bytes | bytearray, offsets: array, crcs: array,
                 pack_checksum: bytes) -> Iterator[bytes]:
    """The pieces of :func:`pack_index` in file order, its checksum last (written one by one: no copy of the whole).

    The ids are sorted in 256 runs by first byte (positions in flat arrays, 4 bytes an
    object), each run sorted on its own and handed out at once: at 2.6 million objects a
    run is ~10,000 ids, where sorting every position at once held a Python int and a key
    per object (~250 MB). Equal ids keep their pack order, as a stable sort does.
    """
    ids = shas if isinstance(shas, (bytes, bytearray)) else b"".join(shas)
    runs = [array("I") for _ in range(256)]
    for position, first in enumerate(ids[0::20]):
        runs[first].append(position)
    fanout = array("I", itertools.accumulate(len(run) for run in runs))
    assert fanout[-1] == len(ids) // 20
    small = array("I")
    large = array("Q")
    crc_table = array("I")
    digest = hashlib.sha1()

    def part(data: bytes) -> bytes:
        digest.update(data)
        return data

    yield part(b"\377tOc" + struct.pack(">I", 2) + struct.pack(">256I", *fanout))
    for run in runs:
        keyed = sorted((ids[i * 20: i * 20 + 20], i) for i in run)
        del run[:]
        for _sha, i in keyed:
            crc_table.append(crcs[i])
            off = offsets[i]
            if off < 0x80000000:
                small.append(off)
            else:
                small.append(0x80000000 | len(large))
                large.append(off)
        yield part(b"".join(sha for sha, _i in keyed))
    if sys.byteorder == "little":  # the index is big-endian
        for table in (small, large, crc_table):
            table.byteswap()
    for table in (crc_table, small, large):
        yield part(table.tobytes())
    yield part(pack_checksum)
    yield digest.digest()
