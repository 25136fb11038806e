"""What ADIOS2 2.12.1 needs of a dataset's rows, applied to each dataset before it is written.

ADIOS2's campaign reader (``CampaignData.cpp``, ``CampaignReader.cpp`` of v2.12.1) opens
every dataset it lists when the archive is opened. For each one it takes a replica on
the reader's own host (config.yaml ``hostname``, or a hosts.yaml alias ``local``), else
the first of: replicas outside archives on hosts listed in the reader's hosts.yaml, ``fs``
archives on listed hosts, S3 archives on listed hosts, archives on hosts whose default
protocol is ``https``, replicas outside archives on unlisted hosts. HPSS and Kronos
archives are never considered. When that list is empty it takes its first element
anyway: the reader dies with SIGSEGV (exit 139), whatever else the archive holds.

A builder does not know its readers' configuration, so camp writes only what every
reader can take without crashing (see docs/build.md):

* a dataset is written only if one of its live replicas is one ADIOS2 always finds — a
  replica outside any archive (on any host), or one in an archive on an https host;
  otherwise the dataset is left out (moved to tape, purged scratch after TAR archival,
  S3-only, ``fs`` archive only) and a warning says why; a time series then simply lacks
  that member;
* ADIOS2 2.12.1 ignores the deletion time of ADIOS rows (``WHERE fileformat = 'ADIOS' OR
  fileformat = 'HDF5' AND deltime = 0 ...``), so deleted ADIOS datasets and replicas are
  never written, even with ``--keep-deleted`` (it filters HDF5, TEXT and IMAGE tombstones
  itself, so those are kept);
* ADIOS and HDF5 replicas without embedded metadata are left out: a remote reader that
  picks one refuses the whole archive;
* a BP replica in an https archive gets its metadata as separate ``md.0``, ``md.idx`` and
  ``mmd.0`` files, split from the recorded ``metadata``
  object: ADIOS2 reads https replicas through its https transport, which finds those
  files in its cache and otherwise asks the web server even to open the dataset; a BP4
  replica there is left out (ADIOS2 reads https replicas with its BP5 engine only);
* a time-series member's replicas inside TAR files on a host where it also is (or was)
  outside any archive are left out (ADIOS2 reads a member on its own host as a plain
  path, without the TAR offsets), and so are those on https or S3 hosts (ADIOS2 reads a
  series through one I/O object, which their transport would take over); a member only
  reachable over https is written outside its series.

Kinds ADIOS2 does not know (``SCALAR_FIELD``) are ignored by it and written as recorded.
What was left out or changed is kept per dataset as *notes* (JSON in ``camp_build``), so
an incremental build reports the same warnings as a full one.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import replace

from campaignvcs.errors import CampError
from campaignvcs.model import BlobId, Dataset, EmbeddedFile, Host, Replica

ADIOS2_KINDS = ("ADIOS", "HDF5", "TEXT", "IMAGE")
"""The dataset kinds ADIOS2 2.12.1 reads; it ignores rows of any other ``fileformat``."""

METADATA_KINDS = ("ADIOS", "HDF5")
"""Kinds whose replicas ADIOS2 opens from embedded metadata when they are not local."""

TRANSPORT_PROTOCOLS = ("https", "s3")
"""Host default protocols for which ADIOS2 reads a replica through a transport it sets on the I/O object."""

RULES_VERSION = "2"
"""Recorded in ``camp_build``: an archive built under other rules is rebuilt in full, never patched."""

NOTES_KEY = "adios2_notes"
"""``camp_build`` key holding the notes (JSON) of the datasets the rules changed or left out."""

HDF5_KEY = "adios2_hdf5"
"""``camp_build`` key holding ``[number, first names]`` (JSON) of the live HDF5 datasets, if any."""


MAX_NAMES = 3
"""Dataset names quoted in a summary warning before "..."."""

_SPLIT = "#"
"""Separates a metadata blob id from the part split out of it (git ids are hex: never ambiguous)."""

_HEADERS = {b"BP5     ": ("md.0", "mmd.0", "md.idx"), b"BP4     ": ("md.0", "md.idx")}
"""Header of the BP ``metadata`` object → the files it concatenates, in order."""

_SYSTEM_HINTS = {
    "HPSS": "which ADIOS2 never reads",
    "Kronos": "which ADIOS2 never reads",
    "fs": "which ADIOS2 reads only where the reader's hosts.yaml lists {host}",
    "S3": "which ADIOS2 reads only where the reader's hosts.yaml lists {host}, and only when built with "
    "the AWS SDK (the PyPI wheel is not)",
}


def where(r: Replica) -> str:
    """``host:dir/path``, with ``[tarname]`` (``[archive]``) after the directory of an archived replica."""
    inside = "" if r.archive is None else f"[{r.archive}]" if r.archive else "[archive]"
    return f"{r.host}:{r.dir}{inside}/{r.path}"


def unlisted_archive(ds: Dataset, r: Replica) -> CampError:
    """The error for a replica in an archive its host's manifest does not list."""
    folder = f"{r.dir}/{r.archive}" if r.archive else r.dir
    return CampError(
        f"dataset {ds.name}: replica {r.path} is in archive {folder} on host {r.host}, "
        "which that host's manifest does not list"
    )


class Rules:
    """Makes each dataset what ADIOS2 2.12.1 can open, noting what it left out or changed.

    ``read_blob`` returns the payload of a blob id; :meth:`read_blob` also resolves the
    ids of the files this class splits out of a ``metadata`` object.
    """

    def __init__(self, hosts: Mapping[str, Host], omit_deleted: bool, read_blob: Callable[[str], bytes],
                 notes: dict[str, list] | None = None, series: Mapping[str, str] | None = None) -> None:
        self.hosts = hosts
        self.omit_deleted = omit_deleted
        self._read_source = read_blob
        self.notes: dict[str, list] = notes if notes is not None else {}
        """Dataset name → notes (``[code, details...]``), for the warnings; JSON-ready."""
        self.series: Mapping[str, str] = series or {}
        """Time-series member → its series."""
        self.outside: set[str] = set()
        """Members written outside their series (see :meth:`_series_member`)."""
        self._derived: dict[str, bytes] = {}
        self._systems = {
            (h.name, a.dir, a.tarname): a.system for h in hosts.values() for a in h.archives
        }
        self._transport_hosts = {h.name for h in hosts.values() if h.default_protocol in TRANSPORT_PROTOCOLS}

    # -- blobs -----------------------------------------------------------------------

    def read_blob(self, blob: str) -> bytes:
        """The payload of ``blob``: a stored blob, or a part split out of a ``metadata`` blob."""
        if _SPLIT not in blob:
            return self._read_source(blob)
        payload = self._derived.get(blob)
        if payload is None:
            source, name = blob.split(_SPLIT, 1)
            parts = _split_metadata(self._read_source(source), 1)
            if parts is None or name not in parts:
                raise CampError(f"cannot split {name} out of metadata object {source}")
            payload = zlib.compress(parts[name])
        return payload

    def forget_payloads(self) -> None:
        """Drop the split payloads kept since the last call (they are made again if needed)."""
        self._derived.clear()

    # -- datasets --------------------------------------------------------------------

    def prepare(self, ds: Dataset) -> Dataset | None:
        """``ds`` as it goes into the archive, or None to leave it out; notes what changed."""
        self.notes.pop(ds.name, None)
        if ds.deltime:
            if self.omit_deleted:
                return None
        elif ds.replicas and ds.name not in self.series and self._plain(ds):
            return ds  # the common case, kept quick: 100,000 datasets pass here in a build
        for r in ds.replicas:
            if r.archive is not None and (r.host, r.dir, r.archive) not in self._systems:
                raise unlisted_archive(ds, r)
        if ds.kind not in ADIOS2_KINDS:  # ADIOS2 ignores the kind: written as recorded
            if self.omit_deleted:
                return replace(ds, replicas=tuple(r for r in ds.replicas if r.live))
            return ds
        notes: list[list] = []
        kept: list[Replica] = []
        deleted_adios = 0
        for r in ds.replicas:
            if ds.deltime or not r.live:
                if self.omit_deleted:
                    continue
                if ds.kind == "ADIOS":  # 2.12.1 would take it for live data
                    deleted_adios += 1
                    continue
                kept.append(r)  # ADIOS2 skips HDF5, TEXT and IMAGE tombstones itself
            elif ds.kind in METADATA_KINDS and not r.files:
                notes.append(["no-metadata", where(r)])
            else:
                kept.append(r)
        if deleted_adios:
            notes.append(["deleted-adios", "dataset" if ds.deltime else str(deleted_adios)])
        if ds.deltime and ds.kind == "ADIOS":
            return self._noted(ds.name, notes, None)
        if ds.kind == "ADIOS":
            kept = [ok for ok in (self._https_files(r, notes) for r in kept) if ok is not None]
        if not ds.deltime:
            live = [r for r in kept if r.live]
            if not any(self.findable(r) for r in live):
                places = [[where(r), self._systems.get((r.host, r.dir, r.archive or ""), ""), r.host]
                          for r in live]
                notes.append(["unreachable", places])
                return self._noted(ds.name, notes, None)
        series = self.series.get(ds.name)
        if series is not None and ds.kind in METADATA_KINDS and not ds.deltime:
            kept = self._series_member(ds.name, series, kept, notes, ds.replicas)
        return self._noted(ds.name, notes, replace(ds, replicas=tuple(kept)))

    def _series_member(self, name: str, series: str, kept: list[Replica], notes: list[list],
                       every: tuple[Replica, ...] = ()) -> list[Replica]:
        """A member's replicas inside TAR files, and those ADIOS2 would read over https or S3, go.

        ADIOS2 2.12.1 reads a member's replica on the reader's own host at ``dir/path``
        (for a series it never applies the TAR offsets it uses for other datasets), so a
        reader on the TAR's host fails on the whole archive. Such replicas go where the
        member is, or was, also outside any archive on that host (``every``: all its
        replicas, tombstones too) — a host people read on, like scratch purged after
        archival; a TAR on an archive-only host stays.

        ADIOS2 2.12.1 opens all members of a series through one I/O object; the https or
        S3 transport it adds for one member is then used for every member, and the series
        shows that member alone (seen with a local and an https member). A member with
        another replica every reader finds keeps that one; one reachable only over https
        is written outside the series, as a dataset of its own.
        """
        # Hosts where the data was (or is) outside any archive: readers work there.
        worked = {r.host for r in every if r.archive is None}
        tarred = [r for r in kept if r.live and r.archive and r.host in worked]
        if tarred:  # findable() never counts these, so another replica keeps the member readable
            notes.append(["series-tar", series, [where(r) for r in tarred]])
            kept = [r for r in kept if r not in tarred]
        over = [r for r in kept if r.live and self._protocol(r.host) in TRANSPORT_PROTOCOLS]
        if not over:
            return kept
        rest = [r for r in kept if not (r.live and self._protocol(r.host) in TRANSPORT_PROTOCOLS)]
        if any(self.findable(r) for r in rest if r.live):
            notes.append(["series-transport", series, [where(r) for r in over]])
            return rest
        notes.append(["series-outside", series])
        self.outside.add(name)
        return kept

    def _plain(self, ds: Dataset) -> bool:
        """True when no rule applies to ``ds``: only live replicas outside archives, with metadata where needed."""
        needs_files = ds.kind in METADATA_KINDS
        transport = self._transport_hosts
        for r in ds.replicas:
            if r.deltime or r.archive is not None or (needs_files and not r.files) or r.host in transport:
                return False
        return True

    def findable(self, r: Replica) -> bool:
        """Whether every ADIOS2 2.12.1 reader lists ``r`` among the replicas it may read.

        Replicas outside archives always are (read locally, or remotely through the
        embedded metadata); archived ones only on an https host. ``fs`` and S3 archives
        count only for readers whose hosts.yaml lists the host, HPSS and Kronos never.
        """
        return r.archive is None or self._protocol(r.host) == "https"

    def _protocol(self, host: str) -> str:
        h = self.hosts.get(host)
        return h.default_protocol if h is not None else ""

    def _noted(self, name: str, notes: list[list], result: Dataset | None) -> Dataset | None:
        if notes:
            self.notes[name] = notes
        return result

    def _https_files(self, r: Replica, notes: list[list]) -> Replica | None:
        """``r`` with its ``metadata`` object split into md.* files when it is in an https archive.

        None (left out) for BP4 data there: ADIOS2 reads https replicas with its BP5 engine
        only, and refuses the whole archive when it picks one in BP4.
        """
        if r.archive is None or self._protocol(r.host) != "https" or not r.live:
            return r
        meta = [f for f in r.files if f.name == "metadata"]
        if not meta:
            return r
        if r.key:
            notes.append(["https-keyed", where(r)])
            return r
        f = meta[0]
        parts = _split_metadata(self._read_source(f.blob), f.compression)
        if parts is None:
            notes.append(["https-unsplit", where(r)])
            return r
        if len(parts) == len(_HEADERS[b"BP4     "]):
            notes.append(["https-bp4", where(r)])
            return None
        files = [g for g in r.files if g.name != "metadata"]
        for name, raw in parts.items():
            blob = f.blob + _SPLIT + name
            payload = self._derived.setdefault(blob, zlib.compress(raw))
            files.append(EmbeddedFile(
                name, BlobId(blob), 1, len(raw), len(payload), f.modtime, hashlib.sha1(raw).hexdigest()
            ))
        return replace(r, files=tuple(files))


def _split_metadata(payload: bytes, compression: int) -> dict[str, bytes] | None:
    """The files a BP ``metadata`` object concatenates (name → bytes), or None if it is not one."""
    try:
        raw = zlib.decompress(payload) if compression else payload
    except zlib.error:
        return None
    names = _HEADERS.get(raw[:8])
    if names is None:
        return None
    head = 8 + 8 * len(names)
    if len(raw) < head:
        return None
    sizes = struct.unpack_from(f"<{len(names)}Q", raw, 8)
    if head + sum(sizes) != len(raw):
        return None
    parts: dict[str, bytes] = {}
    at = head
    for name, size in zip(names, sizes, strict=True):
        parts[name] = raw[at: at + size]
        at += size
    return parts


# -- notes and warnings --------------------------------------------------------------


def dump_notes(notes: Mapping[str, list]) -> str:
    """Canonical JSON of the notes (the same notes give the same text)."""
    return json.dumps(dict(sorted(notes.items())), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load_notes(text: str | None) -> dict[str, list]:
    """Inverse of :func:`dump_notes`; nothing (or something unreadable) gives no notes."""
    if not text:
        return {}
    try:
        notes = json.loads(text)
    except ValueError:
        return {}
    return notes if isinstance(notes, dict) else {}


def load_hdf5(text: str | None) -> tuple[int, list[str]]:
    """The ``[number, first names]`` of :data:`HDF5_KEY` (absent or unreadable: none)."""
    try:
        count, names = json.loads(text) if text else (0, [])
        return int(count), [str(n) for n in names]
    except (ValueError, TypeError):
        return 0, []


def left_out(notes: Mapping[str, list]) -> list[str]:
    """Names of the datasets the rules left out because ADIOS2 could reach none of their replicas."""
    return sorted(name for name, items in notes.items() if any(n[0] == "unreachable" for n in items))


def warnings(notes: Mapping[str, list], hdf5: tuple[int, list[str]]) -> list[str]:
    """One line per thing a reader should know: summaries first, then dataset by dataset (by name).

    ``hdf5`` is (number, first names) of the live HDF5 datasets the archive lists.
    """
    out: list[str] = []
    count, names = hdf5
    if count:
        out.append(
            f"this archive lists {_some(count, names, 'HDF5 dataset')}: ADIOS2 builds without HDF5, "
            "like the PyPI adios2 wheel, cannot open it at all; camp build --exclude-kind HDF5 "
            "writes one they can open"
        )
    deleted = sorted(name for name, items in notes.items() if any(n[0] == "deleted-adios" for n in items))
    if deleted:
        out.append(
            f"--keep-deleted: the deleted rows of {_some(len(deleted), deleted[:MAX_NAMES], 'ADIOS dataset')} "
            "are left out all the same: ADIOS2 2.12.1 ignores the deletion time of ADIOS rows and "
            "would read them as live data"
        )
    for name in sorted(notes):
        for note in notes[name]:
            line = _dataset_warning(name, note)
            if line:
                out.append(line)
    return out


def _some(count: int, names: list[str], noun: str) -> str:
    shown = ", ".join(names[:MAX_NAMES]) + (", ..." if count > len(names[:MAX_NAMES]) else "")
    return f"{count} {noun}{'' if count == 1 else 's'} ({shown})"


def _dataset_warning(name: str, note: list) -> str | None:
    code = note[0]
    if code == "unreachable":
        places = note[1]
        if not places:
            return f"{name} left out of the archive: it has no live replica left that ADIOS2 can read"
        described = "; ".join(
            f"{p} ({system + ' archive, ' if system else ''}"
            f"{_SYSTEM_HINTS.get(system, 'which ADIOS2 does not read').format(host=host)})"
            for p, system, host in places
        )
        return (
            f"{name} left out of the archive: ADIOS2 2.12.1 crashes (exit 139) on a dataset it finds no "
            f"replica of, and not every reader can read its only ones: {described}"
        )

    if code == "no-metadata":
        return (
            f"{name}: replica {note[1]} left out: it carries no embedded metadata, and ADIOS2 refuses the "
            "whole archive when it reads such a replica from another host"
        )
    if code == "series-transport":
        return (
            f"{name}: replica{'s' if len(note[2]) > 1 else ''} {', '.join(note[2])} left out of time series "
            f"{note[1]}: ADIOS2 2.12.1 reads all members of a series through one I/O object, and one member "
            "read over https or S3 makes it read every member that way"
        )
    if code == "series-tar":
        return (
            f"{name}: replica{'s' if len(note[2]) > 1 else ''} {', '.join(note[2])} in a TAR file left out of "
            f"time series {note[1]}: ADIOS2 2.12.1 reads a series member on its own host as a plain path, "
            "never through the TAR index"
        )
    if code == "series-outside":
        return (
            f"{name} written outside time series {note[1]}, as a dataset of its own: ADIOS2 2.12.1 reaches it "
            "only over https, and one member read over https makes it read every member of the series that way "
            "(the series would show this member alone)"
        )
    if code == "https-keyed":
        return (
            f"{name}: encrypted replica {note[1]} keeps its metadata in one object: ADIOS2 opens a dataset "
            "in an https archive from separate md.0, md.idx and mmd.0 files, which camp cannot split out "
            "without the key"
        )
    if code == "https-bp4":
        return (
            f"{name}: replica {note[1]} left out: it holds BP4 data, and ADIOS2 2.12.1 reads replicas in https "
            "archives with its BP5 engine only (it refuses the whole archive when it picks one)"
        )
    if code == "https-unsplit":
        return (
            f"{name}: the metadata of replica {note[1]} is not BP4/BP5 metadata camp can split into md.0, "
            "md.idx and mmd.0: ADIOS2 may fail to open it from the https archive"
        )
    return None  # deleted-adios: summarised above
