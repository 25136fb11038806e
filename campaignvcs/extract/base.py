"""The values every extractor builds and returns, and reading a file for one.

Kept apart from the package's ``__init__`` (which chooses the extractor for a path) so the
extractors (``bp5``, ``hdf5``, ``image``, ``text``) import only this, and the package can
load them on first use without an import cycle.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass, field

from campaignvcs.errors import BadInput


@dataclass(frozen=True)
class Payload:
    """An embedded object as the ACA ``file`` table stores it (before any encryption)."""

    name: str
    data: bytes
    compression: int
    lenorig: int
    modtime: int
    checksum: str

    @property
    def lencompressed(self) -> int:
        """Length of the stored payload (before encryption)."""
        return len(self.data)


def compressed_payload(name: str, original: bytes, modtime: int) -> Payload:
    """A zlib-compressed payload (default level: the same stream hpc-campaign writes)."""
    checksum = hashlib.sha1(original).hexdigest()
    return Payload(name, zlib.compress(original), 1, len(original), modtime, checksum)


def raw_payload(name: str, original: bytes, modtime: int) -> Payload:
    """An uncompressed payload (images are stored as they are)."""
    return Payload(name, original, 0, len(original), modtime, hashlib.sha1(original).hexdigest())


Probe = tuple[int, int, int, int]
"""(size, mtime_ns, ctime_ns, inode) of a file."""


def probe_of(st: os.stat_result) -> Probe:
    """What :attr:`ExtractedReplica.probe` keeps of a stat."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@dataclass(frozen=True)
class ExtractedReplica:
    """One replica to record; ``role`` is ``main`` or ``thumbnail`` (path ``thumbnails/<path>``)."""

    size: int
    mtime: int
    checksum: str
    payloads: tuple[Payload, ...] = ()
    resolution: tuple[int, int] | None = None
    role: str = "main"
    probe: tuple[Probe | None, ...] = ()
    """(size, mtime, ctime, inode) of each file that stands for the replica, taken before it was
    read (BP: md.idx, md.0; otherwise the file; None: absent): the stat cache's signature."""


@dataclass(frozen=True)
class Extracted:
    """What one path on disk contributes to a campaign."""

    kind: str
    modtime: int
    replicas: tuple[ExtractedReplica, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Options:
    """Per-``camp add`` choices that change what is extracted."""

    store: bool = False
    thumbnail: tuple[int, int] | None = None
    kind: str = "auto"


def read_file(path: str, size: int | None = None) -> bytes:
    """The bytes of a file, or BadInput naming it.

    With ``size`` (from a stat just made) the file is read with one ``read`` call
    instead of Python's buffered reader (open, fstat, reads: twice the cost per small
    file, which counts at thousands of metadata files); a file whose size changed
    meanwhile is still read to its end.
    """
    if size is None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    try:
        data = os.read(fd, size + 1)
        if len(data) != size:  # changed since the stat, or a short read: read on to the end
            rest = [data]
            while chunk := os.read(fd, 1 << 20):
                rest.append(chunk)
            data = b"".join(rest)
        return data
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
