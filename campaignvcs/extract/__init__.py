"""From a file or folder on disk to what a campaign records about it.

One module per kind (``bp5``, ``hdf5``, ``image``, ``text``) turns a path into an
:class:`Extracted`: the dataset kind and modification time, and one or more
:class:`ExtractedReplica` with the metadata objects to embed (as :class:`Payload`,
bytes ready for the ACA ``file`` table). Extractors know nothing of git, keys or hosts;
heavy libraries (adios2, h5py, pillow) are imported inside the module that needs them.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zlib
from dataclasses import dataclass, field

from campaignvcs.errors import BadInput

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
KIND_CHOICES = ("auto", "adios", "hdf5", "image", "text")


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
    return Payload(name, zlib.compress(original), 1, len(original), modtime, hashlib.sha1(original).hexdigest())


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


def detect(path: str, kind: str = "auto") -> str:
    """The dataset kind of ``path`` (ADIOS, HDF5, IMAGE, TEXT), or BadInput saying why not.

    A permission problem is named as one (the path and what was denied), never taken for
    a missing file or for a folder that is not a BP dataset.
    """
    try:
        os.lstat(path)
    except PermissionError:
        raise BadInput(f"{path}: permission denied: cannot reach it (a folder on the way is not "
                       "searchable)") from None
    except OSError:
        raise BadInput(f"{path}: no such file or directory") from None
    if kind != "auto":
        want = {"adios": "ADIOS", "hdf5": "HDF5", "image": "IMAGE", "text": "TEXT"}[kind]
        if want == "ADIOS" and not os.path.isdir(path):
            raise BadInput(f"{path}: not an ADIOS2 BP dataset (not a directory)")
        if want != "ADIOS" and not os.path.isfile(path):
            raise BadInput(f"{path}: not a regular file")
        if want == "ADIOS":
            _readable_folder(path)
        return want
    if os.path.isdir(path):
        if _is_file_in(path, "md.idx") and _is_file_in(path, "data.0"):
            return "ADIOS"
        _readable_folder(path)
        raise BadInput(f"{path}: directory is not an ADIOS2 BP dataset (needs md.idx and data.0)")
    if not os.path.isfile(path):
        raise BadInput(f"{path}: not a regular file or directory")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except PermissionError:
        raise BadInput(f"{path}: permission denied: cannot read the file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    if head == HDF5_SIGNATURE:
        return "HDF5"
    if os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES:
        return "IMAGE"
    return "TEXT"


def _is_file_in(folder: str, name: str) -> bool:
    """True if ``folder/name`` is a regular file; BadInput if the folder may not be looked into."""
    try:
        return stat.S_ISREG(os.stat(os.path.join(folder, name)).st_mode)
    except PermissionError:
        raise BadInput(f"{folder}: permission denied: cannot look into the folder") from None
    except OSError:
        return False


def _readable_folder(folder: str) -> None:
    """BadInput naming ``folder`` if its entries may not be listed (mode 0311, say)."""
    try:
        with os.scandir(folder):
            pass
    except PermissionError:
        raise BadInput(f"{folder}: permission denied: cannot list the folder") from None
    except OSError:
        pass


def extract(path: str, kind: str, options: Options) -> Extracted:
    """Extract ``path`` as ``kind`` (from :func:`detect`)."""
    if kind == "ADIOS":
        from campaignvcs.extract import bp5

        return bp5.extract(path)
    if kind == "HDF5":
        from campaignvcs.extract import hdf5

        return hdf5.extract(path)
    if kind == "IMAGE":
        from campaignvcs.extract import image

        return image.extract(path, store=options.store, thumbnail=options.thumbnail)
    from campaignvcs.extract import text

    return text.extract(path, store=options.store)


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
