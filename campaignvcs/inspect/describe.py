"""A recorded dataset — repository manifest or archive rows — and what its metadata says it holds.

:class:`Recorded` is what ``camp info`` and the search index need of a dataset, whichever
side recorded it; :func:`describe_all` turns many of them into :class:`Contents`, asking
ADIOS2 once for all the BP datasets among them. Encrypted objects are opened in memory
with a key from ``keys`` (key id → raw key); without one only the names are known.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaignvcs.errors import CampError
from campaignvcs.inspect import bp
from campaignvcs.inspect.bp import Attribute, Variable
from campaignvcs.inspect.hdf5 import HDF5Error
from campaignvcs.inspect.hdf5 import describe as describe_hdf5

BP_FILES = ("md.0", "mmd.0", "md.idx")
TEXT_HEAD_LINES = 10
TEXT_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class StoredFile:
    """An embedded object: its name, the checksum of its original bytes, and how to read what is stored."""

    name: str
    checksum: str
    compression: int
    read: Callable[[], bytes]


@dataclass(frozen=True)
class RecordedReplica:
    """One replica as recorded: where it is, its key id ('' = not encrypted) and its embedded objects."""

    host: str
    dir: str
    path: str
    archive: str | None
    key: str = ""
    size: int = 0
    resolution: tuple[int, int] | None = None
    files: tuple[StoredFile, ...] = ()
    live: bool = True

    @property
    def thumbnail(self) -> bool:
        """A thumbnail of an image (hpc-campaign's virtual ``thumbnails/<path>`` replica)."""
        return self.path.startswith("thumbnails/")


@dataclass(frozen=True)
class Recorded:
    """A dataset as a repository or an archive records it."""

    name: str
    kind: str
    replicas: tuple[RecordedReplica, ...]

    @property
    def live_replicas(self) -> list[RecordedReplica]:
        """The replicas that are not tombstones."""
        return [r for r in self.replicas if r.live]


@dataclass
class Contents:
    """What is inside one dataset, as far as its recorded metadata tells."""

    kind: str
    encrypted: bool = False
    decrypted: bool = False
    variables: list[Variable] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    groups: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    note: str = ""
    """Why something is not shown (no key at hand, unreadable metadata, nothing embedded)."""
    key_id: str = ""


def _metadata_replica(rec: Recorded, keys: Mapping[str, bytes]) -> RecordedReplica | None:
    """The replica whose embedded objects describe the dataset: readable first, plain before keyed."""
    candidates = [r for r in rec.live_replicas if r.files and not r.thumbnail] or \
        [r for r in rec.replicas if r.files and not r.thumbnail]
    if not candidates:
        return None
    candidates.sort(key=lambda r: (bool(r.key) and r.key not in keys, bool(r.key), r.archive is not None))
    return candidates[0]


def content_key(rec: Recorded, keys: Mapping[str, bytes]) -> str:
    """A name for what :func:`describe_all` would say of ``rec``: equal keys, equal contents.

    Built from the checksums of the original bytes of the objects it reads (content
    addressing: an object's listing never changes), plus what else goes into the answer
    (resolutions, text size); ``#sealed`` when the objects are encrypted and no key is at hand.
    """
    rep = _metadata_replica(rec, keys)
    parts = [rec.kind]
    if rec.kind == "IMAGE":
        parts.append(repr(_image(rec)))
    if rec.kind == "TEXT":
        main = [r for r in rec.live_replicas if not r.thumbnail]
        parts.append(str(main[0].size if main else 0))
    if rep is not None:
        parts.extend(f"{f.name}={f.checksum}" for f in sorted(rep.files, key=lambda f: f.name))
        if rep.key and rep.key not in keys:
            parts.append("#sealed:" + rep.key)
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()


def _open(rep: RecordedReplica, f: StoredFile, keys: Mapping[str, bytes], what: str) -> bytes:
    from campaignvcs import keys as sealing

    data = f.read()
    if rep.key:
        data = sealing.open_sealed(keys[rep.key], data, what)
    if f.compression:
        try:
            data = zlib.decompress(data)
        except zlib.error:
            raise CampError(f"{what}: stored object is not a valid zlib stream") from None
    return data


def _image(rec: Recorded) -> dict[str, Any] | None:
    main = [r for r in rec.live_replicas if not r.thumbnail and r.resolution] or \
        [r for r in rec.replicas if not r.thumbnail and r.resolution]
    thumbs = sorted({r.resolution for r in rec.live_replicas if r.thumbnail and r.resolution})
    if not main and not thumbs:
        return None
    width, height = main[0].resolution if main and main[0].resolution else (None, None)
    return {"width": width, "height": height, "thumbnails": [{"width": w, "height": h} for w, h in thumbs]}


def _text(rec: Recorded, data: bytes | None) -> dict[str, Any]:
    main = [r for r in rec.live_replicas if not r.thumbnail] or list(rec.replicas)
    size = main[0].size if main else 0
    if data is None:
        return {"size": size, "encoding": None, "head": None}
    encoding, text = _decode(data[:TEXT_HEAD_BYTES])
    head = None if text is None else text.splitlines()[:TEXT_HEAD_LINES]
    return {"size": size, "encoding": encoding, "head": head}


def _decode(data: bytes) -> tuple[str, str | None]:
    """(encoding, text) of the start of a file; ('binary', None) when it is not text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", data.decode("utf-16", "replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", data[3:].decode("utf-8", "replace")
    if b"\0" in data:
        return "binary", None
    try:
        text = data.decode("ascii")
        return "ascii", text
    except UnicodeDecodeError:
        pass
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3:  # a character cut by the head's end
            return "utf-8", data[: exc.start].decode("utf-8")
    return "latin-1", data.decode("latin-1")


def describe_all(records: Sequence[Recorded], keys: Mapping[str, bytes], env: Mapping[str, str]
                 ) -> list[Contents]:
    """What each of ``records`` holds; BP datasets are read by one ADIOS2 child for all of them."""
    out: list[Contents] = []
    pending: dict[str, dict[str, bytes]] = {}
    waiting: list[tuple[Contents, str]] = []
    for number, rec in enumerate(records):
        contents = Contents(rec.kind)
        out.append(contents)
        if rec.kind == "IMAGE":
            contents.image = _image(rec)
        rep = _metadata_replica(rec, keys)
        if rep is None:
            if rec.kind == "TEXT":
                contents.text = _text(rec, None)
            elif rec.kind in ("ADIOS", "HDF5"):
                contents.note = "no embedded metadata recorded"
            continue
        contents.encrypted = bool(rep.key)
        contents.key_id = rep.key
        if rep.key and rep.key not in keys:
            contents.note = f"metadata is encrypted with key {rep.key}, which is not at hand: names only"
            if rec.kind == "TEXT":
                contents.text = _text(rec, None)
            continue
        contents.decrypted = bool(rep.key)
        try:
            if rec.kind == "ADIOS":
                files = _bp_files(rec, rep, keys)
                pending[str(number)] = files
                waiting.append((contents, str(number)))
            elif rec.kind == "HDF5":
                data = _open(rep, rep.files[0], keys, f"{rec.name}: {rep.files[0].name}")
                contents.groups, contents.variables, contents.attributes = describe_hdf5(data)
            elif rec.kind == "TEXT":
                data = _open(rep, rep.files[0], keys, f"{rec.name}: {rep.files[0].name}")
                contents.text = _text(rec, data)
        except (CampError, bp.MetadataError, HDF5Error) as exc:
            contents.note = str(exc)
    if pending:
        answers = bp.describe(pending, env)
        for contents, key in waiting:
            answer = answers[key]
            contents.variables, contents.attributes = answer.variables, answer.attributes
            if answer.error:
                contents.note = f"ADIOS2 cannot read the metadata: {answer.error}"
    return out


def _bp_files(rec: Recorded, rep: RecordedReplica, keys: Mapping[str, bytes]) -> dict[str, bytes]:
    by_name = {f.name: f for f in rep.files}
    if "metadata" in by_name:
        data = _open(rep, by_name["metadata"], keys, f"{rec.name}: metadata")
        try:
            return bp.split_metadata(data)
        except bp.MetadataError as exc:
            raise bp.MetadataError(f"{rec.name}: {exc}") from None
    if "md.0" in by_name and "md.idx" in by_name:
        return {n: _open(rep, by_name[n], keys, f"{rec.name}: {n}") for n in BP_FILES if n in by_name}
    raise bp.MetadataError(f"{rec.name}: no BP metadata embedded (files: {', '.join(sorted(by_name)) or 'none'})")
