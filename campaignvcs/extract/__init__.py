"""From a file or folder on disk to what a campaign records about it.

One module per kind (``bp5``, ``hdf5``, ``image``, ``text``) turns a path into an
:class:`Extracted`: the dataset kind and modification time, and one or more
:class:`ExtractedReplica` with the metadata objects to embed (as :class:`Payload`,
bytes ready for the ACA ``file`` table); those values live in :mod:`campaignvcs.extract.base`,
which is all the extractors import. Extractors know nothing of git, keys or hosts; each is
loaded on first use, and heavy libraries (HDF5, pillow) only by the module that needs them,
so ``camp status`` never pays for them.
"""

from __future__ import annotations

import os
import stat

from campaignvcs.errors import BadInput
from campaignvcs.extract.base import Extracted, ExtractedReplica, Options, Payload, compressed_payload

__all__ = [
    "HDF5_SIGNATURE",
    "IMAGE_SUFFIXES",
    "KIND_CHOICES",
    "Extracted",
    "ExtractedReplica",
    "Options",
    "Payload",
    "compressed_payload",
    "detect",
    "extract",
]
"""What callers use: choosing and running an extractor, and the values it returns (from ``base``)."""

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".ppm"})
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
KIND_CHOICES = ("auto", "adios", "hdf5", "image", "text")


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
            sample = f.read(TEXT_SAMPLE)
    except PermissionError:
        raise BadInput(f"{path}: permission denied: cannot read the file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    if sample[:8] == HDF5_SIGNATURE:
        return "HDF5"
    if os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES:
        return "IMAGE"
    why = not_text(sample)
    if why:
        raise BadInput(f"{path}: not a text file ({why}) nor a kind camp recognises (ADIOS2 BP folder, HDF5, "
                       "image): pass --kind text to record it as TEXT anyway")
    return "TEXT"


TEXT_SAMPLE = 8192
"""Bytes read from the start of a file to tell its kind (text: no NUL, valid UTF-8)."""


def not_text(sample: bytes) -> str:
    """Why ``sample`` (a file's first bytes) is not text, or '' when it is (NUL bytes, invalid UTF-8)."""
    if b"\0" in sample:
        return "it has NUL bytes"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3 or len(sample) < TEXT_SAMPLE:  # not just a character cut at the end
            return f"byte {exc.start} is not UTF-8"
    return ""


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
    # Each extractor is loaded on first use: hdf5 brings HDF5's C library, and bp5 its BP checks
    # (bpcheck, ffs), which would triple the import time of this package for camp status.
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
