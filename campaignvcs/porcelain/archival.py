"""archive add / replica / list and tar-index: copies of datasets in archival storage.

An archival location (a directory, or a TAR file in it, on a tape or object store) is
registered in its host's manifest; ``archive replica`` records that a dataset was copied
there, ``archive add --index`` records every dataset a TAR holds at once (the matching is
:mod:`campaignvcs.tarmatch`'s), ``tar-index`` writes the index that needs. Like the other
verbs that change where data lives (:mod:`.replicas`), these stage and check every
argument first.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from campaignvcs import layout, tarindex
from campaignvcs.aca.schema import ARCHIVE_SYSTEMS, PROTOCOL_SYSTEMS
from campaignvcs.errors import BadInput, CampError
from campaignvcs.model import Archive, BlobId, Dataset, Host, HostName
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.edits import (
    check_name,
    check_relative,
    choose_source,
    copy_replica,
    live_dataset,
    stage_changes,
)
from campaignvcs.porcelain.replicas import ReplicaAdded, record_replica
from campaignvcs.porcelain.workspace import resolve_host_name
from campaignvcs.repo import CampaignRepo
from campaignvcs.tarmatch import ArchivedDataset, Skipped, TarMatch, ends_in_member, match_tar
from campaignvcs.tempfiles import atomic_write

__all__ = ["ArchiveAdded", "ArchiveInfo", "ArchivedDataset", "Skipped", "TarIndexWritten", "archive_add",
           "archive_list", "archive_replica", "tar_index"]


@dataclass(frozen=True)
class ArchiveAdded:
    """What ``camp archive add`` recorded.

    ``action`` for the archival location: ``added``, ``updated`` (notes or long host
    name) or ``unchanged``. ``archived``/``skipped``/``unmatched`` report the TAR index.
    """

    host: str
    dir: str
    tarname: str
    system: str
    action: str
    archived: list[ArchivedDataset] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unmatched: int = 0


def archive_add(
    system: str,
    host: str,
    directory: str,
    tarname: str | None = None,
    index: str | None = None,
    long_host_name: str | None = None,
    note: str | None = None,
    source_dir: str | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ArchiveAdded:
    """Register an archival location (a directory, or a TAR file in it) on ``host``.

    ``system`` is one of :data:`ARCHIVE_SYSTEMS`; a new host gets ``default_protocol``
    ``system.lower()`` for web/S3 systems. With ``index`` (a TAR index file, ``camp
    tar-index``), every live dataset whose own live replica path is a member of the TAR
    (a regular file of the recorded size, or a BP folder whose files add up to it) gets
    an archived replica with its TAR offsets. ``source_dir`` restricts which replicas
    may match (when datasets in different folders share a path).
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    if system not in ARCHIVE_SYSTEMS:
        raise BadInput(f"unknown archival system {system!r} (one of {', '.join(ARCHIVE_SYSTEMS)})")
    resolve_host_name(host)
    check_name(directory, "archive directory")
    if tarname is not None:
        _check_tarname(tarname)
    if index is not None and tarname is None:
        raise BadInput("a TAR index needs the TAR file name too")
    notes_data = _read_file(os.path.join(cwd, note), "note") if note is not None else None
    entries = tarindex.load(os.path.join(cwd, index)) if index is not None else None
    with open_repo(repo, cwd, env) as camp, camp.lock():
        current = camp.host(host)
        notes = BlobId(camp.add_blob(notes_data).decode()) if notes_data is not None else None
        location = Archive(directory, tarname or "", system, notes)
        host_obj, action = _with_archive(current, host, location, long_host_name, note is not None)
        manifests: dict[str, bytes | None] = {}
        if current is None or host_obj != current:
            manifests[layout.host_path(host)] = host_obj.dumps()
        found = TarMatch()
        if entries is not None:
            assert tarname is not None
            found = match_tar(
                entries, lambda names: _candidates(camp, names), host, directory, tarname, source_dir
            )
        if manifests or found.changed:
            stage_changes(camp, found.changed, manifests=manifests)
        return ArchiveAdded(
            host, directory, tarname or "", system, action, found.archived, found.skipped, found.unmatched
        )


def _check_tarname(tarname: str) -> None:
    if not tarname or tarname.startswith("/") or "\0" in tarname or "\n" in tarname:
        raise BadInput(f"invalid TAR file name: {tarname!r} (give it relative to the archive directory)")


def _read_file(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def _with_archive(
    current: Host | None, host: str, location: Archive, long_host_name: str | None, new_note: bool
) -> tuple[Host, str]:
    """The host manifest with ``location`` listed; refuses a location registered with another system."""
    if current is None:
        protocol = location.system.lower() if location.system.lower() in PROTOCOL_SYSTEMS else ""
        return Host(HostName(host), long_host_name, protocol, time.time_ns(), (location,)), "added"
    existing = next(
        (a for a in current.archives if (a.dir, a.tarname) == (location.dir, location.tarname)), None
    )
    updated = current
    if long_host_name is not None and long_host_name != current.longhostname:
        updated = dataclasses.replace(updated, longhostname=long_host_name)
    if existing is None:
        return dataclasses.replace(updated, archives=(*current.archives, location)), "added"
    if existing.system != location.system:
        where = location.dir + (f" (TAR {location.tarname})" if location.tarname else "")
        raise BadInput(f"archive {host}:{where} is already registered with system {existing.system}")
    if new_note and existing.notes != location.notes:
        archives = tuple(location if a is existing else a for a in current.archives)
        updated = dataclasses.replace(updated, archives=archives)
    return updated, "unchanged" if updated == current else "updated"


def _candidates(camp: CampaignRepo, names: set[str]) -> list[Dataset | None]:
    """Datasets with a live replica whose ``dir/path`` ends in a member name, by the stat cache.

    The cache lists exactly the live, non-archived replicas of the staged state, so only
    the manifests of plausible datasets are read (not 100,000); the exact match on each
    dataset's own replica paths follows.
    """
    cache = camp.stat_cache()
    try:
        found = {ds for ds, full in cache.paths() if ends_in_member(full, names)}
    finally:
        cache.close()
    return [camp.dataset(n) for n in sorted(found)]


def archive_replica(
    name: str,
    archive: str,
    path: str | None = None,
    move: bool = False,
    source: str | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ReplicaAdded:
    """Record a copy of dataset ``name`` in a registered archive ``HOST:DIR[:TARFILE]``.

    The archived replica carries the source's embedded metadata, size and resolution;
    ``move`` tombstones the source (the data left it for the archive).
    """
    env = environ(env)
    if path is not None:
        check_relative(path)
    host, sep, rest = archive.partition(":")
    if not sep or not host or not rest:
        raise BadInput(f"invalid archive {archive!r} (expected HOST:DIR or HOST:DIR:TARFILE)")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        location = _find_archive(camp.host(host), archive, rest)
        ds = live_dataset(camp, name)
        src = choose_source(ds, source, allow_archived=True)
        new = copy_replica(src, host, location.dir, path if path is not None else src.path, location.tarname)
        return record_replica(camp, ds, new, {}, moved=src if move else None, now=time.time_ns())


def _find_archive(host: Host | None, spec: str, rest: str) -> Archive:
    for a in host.archives if host is not None else ():
        if (a.tarname == "" and rest == a.dir) or (a.tarname and rest == f"{a.dir}:{a.tarname}"):
            return a
    raise BadInput(f"no archive {spec!r} in the campaign; add it with camp archive add")


@dataclass(frozen=True)
class ArchiveInfo:
    """A registered archival location, as ``camp archive list`` shows it."""

    host: str
    longhostname: str | None
    default_protocol: str
    dir: str
    tarname: str
    system: str
    notes: str | None


def archive_list(
    repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> list[ArchiveInfo]:
    """Every archival location of the staged state, by host, directory and TAR name."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        out = []
        for h in camp.hosts(camp.staged_tree()):
            for a in h.archives:
                out.append(
                    ArchiveInfo(
                        h.name, h.longhostname, h.default_protocol, a.dir, a.tarname, a.system, a.notes
                    )
                )
        return sorted(out, key=lambda a: (a.host, a.dir, a.tarname))


# -- tar-index ------------------------------------------------------------------------


@dataclass(frozen=True)
class TarIndexWritten:
    """The index file ``camp tar-index`` wrote and how many members of each type it lists."""

    path: str
    members: int
    regular: int
    directories: int
    other: int


def tar_index(tarfile: str, output: str | None = None, cwd: str | None = None) -> TarIndexWritten:
    """Write the TAR index of ``tarfile`` to ``output`` (default ``<tarfile>.idx``), atomically.

    Needs no campaign: the index is made where the TAR is, then used by ``camp archive
    add`` wherever the campaign is.
    """
    cwd = cwd or os.getcwd()
    src = os.path.join(cwd, tarfile)
    dst = os.path.join(cwd, output) if output is not None else src + ".idx"
    if os.path.abspath(dst) == os.path.abspath(src):
        raise BadInput(f"{output}: the index would overwrite the TAR file")
    entries = tarindex.scan(src)
    if os.path.isdir(dst):
        raise BadInput(f"cannot write {dst}: it is a directory")
    try:
        atomic_write(dst, tarindex.encode(entries))
    except OSError as exc:
        raise CampError(f"cannot write {dst}: {exc.strerror or exc}") from None
    regular = sum(1 for e in entries if e.is_regular)
    dirs = sum(1 for e in entries if e.is_dir)
    return TarIndexWritten(os.path.abspath(dst), len(entries), regular, dirs, len(entries) - regular - dirs)
