"""Compact collections of git object ids, for passes over millions of objects (issue 16).

A Python ``bytes`` per id and a ``set`` slot cost ~130 bytes an object; a first push of a
million-dataset campaign (2.6 million objects) held them twice, ~700 MiB. These hold the
20-byte binary ids in flat buffers instead (~21 bytes an object) and speak hex ids, as the
rest of camp does: :class:`OidList` keeps an order (the objects of a pack, in pack order),
:class:`OidSet` answers "seen already?".
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator

ID_BYTES = 20
"""A SHA-1 object id, binary."""


class OidList:
    """Hex object ids in the order appended, held as one buffer of binary ids."""

    def __init__(self) -> None:
        self.ids = bytearray()

    def append(self, oid: bytes) -> None:
        """Add a (hex) id at the end."""
        self.ids += binascii.unhexlify(oid)

    def __len__(self) -> int:
        return len(self.ids) // ID_BYTES

    def __contains__(self, oid: object) -> bool:
        try:
            sha = binascii.unhexlify(oid) if isinstance(oid, bytes) and len(oid) == 2 * ID_BYTES else None
        except binascii.Error:
            sha = None
        return sha is not None and _find(self.ids, sha)

    def __iter__(self) -> Iterator[bytes]:
        view = memoryview(self.ids)
        for at in range(0, len(view), ID_BYTES):
            yield binascii.hexlify(view[at:at + ID_BYTES])


class OidSet:
    """A set of hex object ids: binary ids in 65,536 buckets chosen by their first two bytes.

    SHA-1 spreads ids evenly, so at 2.6 million ids a bucket holds ~40 (800 bytes), which
    ``bytearray.find`` scans in C; a match counts only at an id's start.
    """

    def __init__(self) -> None:
        self.buckets: list[bytearray | None] = [None] * 65536
        self.count = 0

    def add(self, oid: bytes) -> bool:
        """Add a (hex) id; True when it was not there yet."""
        sha = binascii.unhexlify(oid)
        key = sha[0] << 8 | sha[1]
        bucket = self.buckets[key]
        if bucket is None:
            self.buckets[key] = bytearray(sha)
        elif _find(bucket, sha):
            return False
        else:
            bucket += sha
        self.count += 1
        return True

    def __contains__(self, oid: object) -> bool:
        sha = binary_id(oid)
        if sha is None:
            return False
        bucket = self.buckets[sha[0] << 8 | sha[1]]
        return bucket is not None and _find(bucket, sha)

    def __len__(self) -> int:
        return self.count


def binary_id(oid: object) -> bytes | None:
    """The 20 bytes of a hex object id; None for anything else (a set of ids holds no such thing)."""
    if not isinstance(oid, bytes) or len(oid) != 2 * ID_BYTES:
        return None
    try:
        return binascii.unhexlify(oid)
    except binascii.Error:
        return None


def _find(bucket: bytearray, sha: bytes) -> bool:
    at = bucket.find(sha)
    while at >= 0:
        if at % ID_BYTES == 0:
            return True
        at = bucket.find(sha, at + 1)
    return False
