"""git's object encoding, as camp writes it: ids, tree bytes, pack entry headers.

Kept apart from the object store so that the store, the pack writer and the remote code
share one definition of each format detail without importing one another.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from dulwich.objects import parse_tree, serialize_tree, sorted_tree_items

TREE_MODE = 0o040000
BLOB_MODE = 0o100644
COMMIT_TYPE, TREE_TYPE, BLOB_TYPE = 1, 2, 3
TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
"""git object type numbers (as in packs) → type names (as in object headers)."""
TYPE_NUMBERS = {name: number for number, name in TYPE_NAMES.items()}

Entry = tuple[int, bytes]
"""A tree entry value: (mode, hex object id)."""


def object_id(type_num: int, raw: bytes) -> bytes:
    """The hex id git gives an object of this type and raw content."""
    digest = hashlib.sha1(b"%s %d\0" % (TYPE_NAMES[type_num], len(raw)))
    digest.update(raw)
    return digest.hexdigest().encode()


def tree_bytes(items: dict[bytes, Entry]) -> bytes:
    """Raw content of a git tree with these entries (name → (mode, hex id)), in git's order."""
    return b"".join(serialize_tree(sorted_tree_items(items, False)))


def tree_items(raw: bytes) -> dict[bytes, Entry]:
    """Inverse of :func:`tree_bytes`: entry name → (mode, hex id)."""
    return {name: (mode, sha) for name, mode, sha in parse_tree(raw, 20)}


def pack_entry_header(type_num: int, size: int) -> bytes:
    """A pack entry's type and size (git's variable-length encoding, 4 bits then 7 per byte)."""
    out = bytearray()
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


_STORED_BLOCK = 0xFFFF


def stored_zlib(data: bytes) -> bytes:
    """``data`` as a valid zlib stream of uncompressed (stored) deflate blocks, without zlib's set-up.

    For payloads that are compressed or encrypted already, where deflating again gains
    nothing and costs a zlib set-up per object.
    """
    out = [b"\x78\x01"]  # deflate, 32 KiB window, no dictionary; (0x78 << 8 | 0x01) % 31 == 0
    if not data:
        out.append(b"\x01\x00\x00\xff\xff")
    for start in range(0, len(data), _STORED_BLOCK):
        block = data[start:start + _STORED_BLOCK]
        final = 1 if start + _STORED_BLOCK >= len(data) else 0
        out += (struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF), block)
    out.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(out)
