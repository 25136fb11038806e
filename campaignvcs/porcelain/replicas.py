"""rm, mv, replica add, archive add/replica/list, timeseries, tar-index: changing where data lives.

Every verb here stages, like ``git rm``/``git mv``; ``camp commit`` records it. Nothing
is ever forgotten silently: removing a dataset or a replica sets its ``deltime``
(a tombstone) and keeps the record and its metadata objects, so history and
``camp whereis --history`` can still tell where the data was. Every argument is checked
before anything is staged: a bad name, an unknown replica or an ambiguous choice stages
nothing.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from campaignvcs import layout, tarindex
from campaignvcs.aca.schema import ARCHIVE_SYSTEMS, PROTOCOL_SYSTEMS
from campaignvcs.errors import BadInput, CampError, UsageError
from campaignvcs.history_model import ReplicaRef
from campaignvcs.model import (
    Archive,
    BlobId,
    Dataset,
    DatasetName,
    Host,
    HostName,
    Replica,
    TarMember,
    TimeSeries,
)
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.workspace import _open_cache, _token, resolve_host_name
from campaignvcs.repo import CampaignRepo, atomic_write
from campaignvcs.statcache import is_thumbnail

SERIES_KINDS = ("ADIOS", "HDF5")
"""Kinds ADIOS2 can join into one time series."""


# -- staging --------------------------------------------------------------------------


def _stage(
    camp: CampaignRepo,
    datasets: Iterable[Dataset] = (),
    removed: Iterable[str] = (),
    manifests: Mapping[str, bytes | None] | None = None,
) -> None:
    """Stage changed datasets, removed dataset folders and other manifests; keep the stat cache valid.

    The caller holds the lock and has validated everything: this only writes.
    """
    changed = list(datasets)
    gone = list(removed)
    cache = _open_cache(camp)  # validated against the state before this change, then only updated
    try:
        for ds in changed:
            camp.stage_dataset(ds, {})
        for name in gone:
            camp.stage(layout.dataset_dir(name), None)
        for path, data in (manifests or {}).items():
            camp.stage_json(path, data)
        cache.update(changed, removed=gone)
        camp.save_staging()
        cache.set_token(_token(camp))
    finally:
        cache.close()


def _dataset(camp: CampaignRepo, name: str) -> Dataset:
    ds = camp.dataset(name)
    if ds is None:
        raise BadInput(f"no dataset named {name!r}")
    return ds


def _live_dataset(camp: CampaignRepo, name: str) -> Dataset:
    ds = _dataset(camp, name)
    if not ds.live:
        raise BadInput(f"dataset {name!r} is deleted (camp add it again to revive it)")
    return ds


def _check_name(name: str, what: str) -> str:
    if not name or "\0" in name or name.strip() != name or "\n" in name:
        raise BadInput(f"invalid {what}: {name!r}")
    return name


def _choose_source(ds: Dataset, source: str | None, allow_archived: bool = False) -> Replica:
    """The replica to copy: ``source`` (an id), else the one live non-archived replica.

    With ``allow_archived``, a single live archived replica serves when no ordinary one
    is left (archiving from one archive to another). Thumbnails never count: they are
    virtual replicas of an image.
    """
    live = [r for r in ds.live_replicas() if not is_thumbnail(ds, r.path)]
    if source is not None:
        for r in live:
            if r.id == source:
                return r
        raise BadInput(f"dataset {ds.name!r} has no live replica {source!r} (see camp whereis {ds.name})")
    plain = [r for r in live if r.archive is None]
    candidates = plain or ([r for r in live if r.archive is not None] if allow_archived else [])
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise BadInput(f"dataset {ds.name!r} has no live replica to copy from")
    ids = ", ".join(f"{r.id} ({r.host}:{r.dir}/{r.path})" for r in candidates)
    raise BadInput(
        f"dataset {ds.name!r} has {len(candidates)} live replicas; choose one with --from ID: {ids}"
    )


def _copy(
    src: Replica, host: str, directory: str, path: str, archive: str | None, tar: tuple[TarMember, ...] = ()
) -> Replica:
    """A new replica recording the same bytes as ``src`` at another place."""
    return Replica(
        host=HostName(host),
        dir=directory,
        path=path,
        size=src.size,
        mtime=src.mtime,
        checksum=src.checksum,
        archive=archive,
        key=src.key,
        resolution=src.resolution,
        accuracy=src.accuracy,
        files=src.files,
        tarindex=tar,
    )


def _host_manifest(camp: CampaignRepo, host: str) -> dict[str, bytes | None]:
    """A manifest for a host the campaign has not seen yet (long name unknown: ADIOS2 reads NULL)."""
    if camp.current(layout.host_path(host)) is not None:
        return {}
    return {layout.host_path(host): Host(HostName(host), None, "", time.time_ns()).dumps()}


# -- rm -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemovedReplica:
    """A replica ``camp rm --replica`` tombstoned, and its dataset."""

    dataset: str
    replica: ReplicaRef


@dataclass(frozen=True)
class Removed:
    """What ``camp rm`` tombstoned: whole datasets, and single replicas."""

    datasets: list[str] = field(default_factory=list)
    replicas: list[RemovedReplica] = field(default_factory=list)


def rm(
    names: Sequence[str] = (),
    replicas: Sequence[str] = (),
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Removed:
    """Tombstone datasets (and their live replicas), or with ``replicas`` single replicas.

    A replica is named by its id (``camp whereis`` shows it) or as ``HOST:DIR[:PATH]``;
    with ``names`` too, only those datasets are searched (fast at any campaign size).
    A dataset whose last live replica goes gets a tombstone as well (as hpc-campaign
    does). Unknown or ambiguous names change nothing.
    """
    env = environ(env)
    if not names and not replicas:
        raise UsageError("nothing to remove: give dataset names or --replica ID")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        now = time.time_ns()
        if not replicas:
            targets = []
            for name in dict.fromkeys(names):
                ds = _dataset(camp, name)
                if not ds.live:
                    raise BadInput(f"dataset {name!r} is already deleted")
                targets.append(ds)
            changed = [_tombstone_dataset(ds, now) for ds in targets]
            _stage(camp, changed)
            return Removed(datasets=[ds.name for ds in changed])
        scope = [_dataset(camp, n) for n in dict.fromkeys(names)] if names else None
        found = _find_replicas(camp, replicas, scope)
        updated: dict[str, Dataset] = {}
        removed: list[RemovedReplica] = []
        deleted: list[str] = []
        for ds, rep in found:
            current = updated.get(ds.name, ds)
            gone = dataclasses.replace(rep, deltime=now)
            current = dataclasses.replace(
                current, replicas=tuple(gone if r.location == rep.location else r for r in current.replicas)
            )
            removed.append(RemovedReplica(ds.name, ReplicaRef.of(gone)))
            updated[ds.name] = current
        for name, ds in list(updated.items()):
            if ds.live and not ds.live_replicas():
                updated[name] = dataclasses.replace(ds, deltime=now)
                deleted.append(name)
        _stage(camp, updated.values())
        return Removed(datasets=deleted, replicas=removed)


def _tombstone_dataset(ds: Dataset, now: int) -> Dataset:
    reps = tuple(dataclasses.replace(r, deltime=now) if r.live else r for r in ds.replicas)
    return dataclasses.replace(ds, deltime=now, replicas=reps)


def _find_replicas(
    camp: CampaignRepo, specs: Sequence[str], scope: list[Dataset] | None
) -> list[tuple[Dataset, Replica]]:
    """Resolve every spec to exactly one live replica, or fail naming the spec."""
    datasets: Iterable[Dataset] = scope if scope is not None else camp.datasets(camp.staged_tree())
    matches: dict[str, list[tuple[Dataset, Replica]]] = {s: [] for s in specs}
    for ds in datasets:
        for r in ds.live_replicas():
            forms = {r.id, f"{r.host}:{r.dir}", f"{r.host}:{r.dir}:{r.path}"}
            if r.archive:
                forms |= {f"{r.host}:{r.dir}:{r.archive}", f"{r.host}:{r.dir}:{r.archive}:{r.path}"}
            for spec in specs:
                if spec in forms:
                    matches[spec].append((ds, r))
    where = "" if scope is None else " in " + ", ".join(repr(d.name) for d in scope)
    out: list[tuple[Dataset, Replica]] = []
    seen: set[tuple[str, tuple[str, str, str, str]]] = set()
    for spec, found in matches.items():
        if not found:
            raise BadInput(f"no live replica {spec!r}{where} (ids are shown by camp whereis NAME)")
        if len(found) > 1:
            ids = ", ".join(f"{r.id} ({ds.name}: {r.host}:{r.dir}/{r.path})" for ds, r in found[:10])
            raise BadInput(f"replica {spec!r} is ambiguous, it matches {len(found)} replicas: {ids}")
        ds, r = found[0]
        if (ds.name, r.location) not in seen:
            seen.add((ds.name, r.location))
            out.append(found[0])
    return out


# -- mv -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    """A dataset renamed, and the time series whose membership followed it."""

    old: str
    new: str
    series: list[str] = field(default_factory=list)


def mv(
    old: str, new: str, repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> Moved:
    """Rename a dataset's representation name; uuid and replicas stay, series follow."""
    env = environ(env)
    _check_name(new, "dataset name")
    if old == new:
        raise BadInput(f"{old!r} and the new name are the same")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        ds = _dataset(camp, old)
        other = camp.dataset(new)
        if other is not None:
            state = "" if other.live else " (deleted, kept for its history)"
            raise BadInput(f"dataset {new!r} already exists{state}")
        renamed = dataclasses.replace(ds, name=DatasetName(new))
        manifests: dict[str, bytes | None] = {}
        series = []
        for ts in camp.timeseries(camp.staged_tree()):
            if old in ts.datasets:
                members = tuple(DatasetName(new) if n == old else n for n in ts.datasets)
                manifests[layout.timeseries_path(ts.name)] = TimeSeries(ts.name, members).dumps()
                series.append(ts.name)
        _stage(camp, [renamed], removed=[old], manifests=manifests)
        return Moved(old, new, series)


# -- replica add ------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaAdded:
    """A replica recorded by ``camp replica add`` or ``camp archive replica``.

    ``action``: ``added``, ``revived`` (the location had a tombstone) or ``unchanged``;
    ``moved_from`` is the replica ``--move`` tombstoned.
    """

    dataset: str
    action: str
    replica: ReplicaRef
    moved_from: ReplicaRef | None = None


def replica_add(
    name: str,
    host: str,
    directory: str,
    path: str | None = None,
    source: str | None = None,
    check: bool = True,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ReplicaAdded:
    """Record that a copy of dataset ``name`` exists at ``host:directory/path`` (after a transfer).

    The new replica carries the same embedded metadata, size, checksum and resolution
    as its source (``source`` id, else the one live non-archived replica). When
    ``directory/path`` is reachable from this machine and ``check`` is on, its size must
    match the record (BP: all files below the folder; else the file's size).
    """
    env = environ(env)
    resolve_host_name(host)
    _check_name(directory, "directory")
    if path is not None:
        _check_relative(path)
    with open_repo(repo, cwd, env) as camp, camp.lock():
        ds = _live_dataset(camp, name)
        src = _choose_source(ds, source)
        rel = path if path is not None else src.path
        if check:
            _check_size(ds, src, directory, rel)
        new = _copy(src, host, directory, rel, None)
        return _record(camp, ds, new, _host_manifest(camp, host))


def _check_relative(path: str) -> None:
    if not path or path.startswith("/") or "\0" in path:
        raise BadInput(f"invalid replica path: {path!r} (give it relative to the directory)")


def _check_size(ds: Dataset, src: Replica, directory: str, path: str) -> None:
    """Refuse a copy that is visibly not the recorded data (only when it is reachable here)."""
    from campaignvcs.extract.bp5 import folder_size

    full = os.path.join(directory, path)
    if not os.path.lexists(full):
        return
    try:
        if ds.kind == "ADIOS" and os.path.isdir(full):
            size = folder_size(full)
        elif os.path.isdir(full):
            raise BadInput(f"{full} is a directory, dataset {ds.name!r} is {ds.kind} (a file)")
        else:
            size = os.stat(full).st_size
    except OSError as exc:
        raise BadInput(
            f"{full}: cannot check the copy ({exc.strerror or exc}); pass --no-check to skip"
        ) from None
    if size != src.size:
        raise BadInput(
            f"{full} has {size} bytes but dataset {ds.name!r} was recorded with {src.size}: "
            "not the same data "
            "(pass --no-check to record it anyway)"
        )


def _record(
    camp: CampaignRepo,
    ds: Dataset,
    new: Replica,
    manifests: dict[str, bytes | None],
    moved: Replica | None = None,
    now: int = 0,
) -> ReplicaAdded:
    before = next((r for r in ds.replicas if r.location == new.location), None)
    if moved is not None and moved.location == new.location:
        raise BadInput("the archived replica would replace its own source; give another --path or archive")
    if before is not None and before.live and before != new:
        raise BadInput(
            f"dataset {ds.name!r} already has a replica at {new.host}:{new.dir}/{new.path} "
            f"(id {before.id}); remove it first with camp rm --replica {before.id}"
        )
    action = "unchanged" if before == new else "revived" if before is not None else "added"
    updated = ds.with_replica(new)
    gone = None
    if moved is not None:
        gone = dataclasses.replace(moved, deltime=now)
        updated = dataclasses.replace(
            updated, replicas=tuple(gone if r.location == moved.location else r for r in updated.replicas)
        )
    if updated != ds or manifests:
        _stage(camp, [updated] if updated != ds else [], manifests=manifests)
    return ReplicaAdded(
        ds.name, action, ReplicaRef.of(new), ReplicaRef.of(gone) if gone is not None else None
    )


# -- archives -------------------------------------------------------------------------


@dataclass(frozen=True)
class ArchivedDataset:
    """A dataset that got an archived replica from a TAR index, with its index rows."""

    dataset: str
    replica: ReplicaRef
    source: ReplicaRef
    rows: int


@dataclass(frozen=True)
class Skipped:
    """A TAR member named like a dataset's replica that was not taken, and why."""

    member: str
    dataset: str
    reason: str


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
    _check_name(directory, "archive directory")
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
        archived: list[ArchivedDataset] = []
        skipped: list[Skipped] = []
        unmatched = 0
        changed: list[Dataset] = []
        if entries is not None:
            assert tarname is not None
            archived, skipped, unmatched, changed = _match_tar(
                camp, entries, host, directory, tarname, source_dir
            )
        if manifests or changed:
            _stage(camp, changed, manifests=manifests)
        return ArchiveAdded(host, directory, tarname or "", system, action, archived, skipped, unmatched)


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


def _match_tar(
    camp: CampaignRepo,
    entries: list[tarindex.IndexEntry],
    host: str,
    directory: str,
    tarname: str,
    source_dir: str | None,
) -> tuple[list[ArchivedDataset], list[Skipped], int, list[Dataset]]:
    """Archived replicas for the datasets whose own replica paths are members of the TAR."""
    # "tar -cf run.tar ." stores ./heat.bp: the same path as heat.bp.
    entries = [dataclasses.replace(e, name=_member_path(e.name)) for e in entries]
    members = {e.name: e for e in entries}
    children: dict[str, list[tarindex.IndexEntry]] = {}
    for e in entries:
        parts = e.name.split("/")
        for i in range(1, len(parts)):
            children.setdefault("/".join(parts[:i]), []).append(e)
    claims: dict[str, list[tuple[Dataset, Replica, tuple[TarMember, ...]]]] = {}
    skipped: list[Skipped] = []
    for ds in _candidates(camp, set(members)):
        if ds is None or not ds.live:
            continue
        taken: set[str] = set()
        for r in ds.live_replicas():
            if r.archive is not None or is_thumbnail(ds, r.path) or r.path in taken:
                continue
            if source_dir is not None and r.dir != source_dir:
                continue
            member = members.get(r.path)
            if member is None:
                continue
            rows, reason = _rows_for(ds, r, member, children.get(r.path, []))
            if rows is None:
                skipped.append(Skipped(member.name, ds.name, reason))
                continue
            taken.add(r.path)
            claims.setdefault(member.name, []).append((ds, r, rows))
    archived: list[ArchivedDataset] = []
    changed: dict[str, Dataset] = {}
    for member_name, found in sorted(claims.items()):
        owners = sorted({ds.name for ds, _, _ in found})
        if len(owners) > 1:
            dirs = sorted({f"{r.host}:{r.dir}" for _, r, _ in found})
            raise BadInput(
                f"TAR member {member_name!r} matches replicas of {len(owners)} datasets "
                f"({', '.join(owners)}) "
                f"in {', '.join(dirs)}: pass --source-dir to say which folder the TAR was made from"
            )
        ds, src, rows = found[0]
        ds = changed.get(ds.name, ds)
        new = _copy(src, host, directory, src.path, tarname, rows)
        before = next((r for r in ds.replicas if r.location == new.location), None)
        if before != new:
            changed[ds.name] = ds.with_replica(new)
        archived.append(ArchivedDataset(ds.name, ReplicaRef.of(new), ReplicaRef.of(src), len(rows)))
    covered = set(claims) | {e.name for n in claims if members[n].is_dir for e in children.get(n, [])}
    unmatched = sum(1 for e in entries if (e.is_regular or e.is_dir) and e.name not in covered)
    return archived, skipped, unmatched, list(changed.values())


def _member_path(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/") or name


def _candidates(camp: CampaignRepo, names: set[str]) -> list[Dataset | None]:
    """Datasets with a live replica whose ``dir/path`` ends in a member name, by the stat cache.

    The cache lists exactly the live, non-archived replicas of the staged state, so only
    the manifests of plausible datasets are read (not 100,000); the exact match on each
    dataset's own replica paths follows.
    """
    cache = _open_cache(camp)
    try:
        found = {ds for ds, full in cache.paths() if any(full[i + 1 :] in names for i in _slashes(full))}
    finally:
        cache.close()
    return [camp.dataset(n) for n in sorted(found)]


def _slashes(path: str) -> Iterator[int]:
    i = path.find("/")
    while i >= 0:
        yield i
        i = path.find("/", i + 1)


def _rows_for(
    ds: Dataset, r: Replica, member: tarindex.IndexEntry, inside: list[tarindex.IndexEntry]
) -> tuple[tuple[TarMember, ...] | None, str]:
    """TAR index rows for replica ``r`` found as ``member``, or None and why not."""
    if ds.kind == "ADIOS":
        if not member.is_dir:
            return None, f"is not a directory in the TAR (type {member.type}), dataset is an ADIOS folder"
        files = [e for e in inside if e.is_regular]
        total = sum(e.size for e in files)
        if total != r.size:
            return None, f"holds {total} bytes in the TAR, the replica was recorded with {r.size}"
        prefix = len(member.name) + 1
        rows = [TarMember("", member.offset, member.offset_data, 0)]
        rows += [TarMember(e.name[prefix:], e.offset, e.offset_data, e.size) for e in files]
        return tuple(rows), ""
    if not member.is_regular:
        return None, f"is not a regular file in the TAR (type {member.type})"
    if member.size != r.size:
        return None, f"has {member.size} bytes in the TAR, the replica was recorded with {r.size}"
    return (TarMember("", member.offset, member.offset_data, member.size),), ""


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
        _check_relative(path)
    host, sep, rest = archive.partition(":")
    if not sep or not host or not rest:
        raise BadInput(f"invalid archive {archive!r} (expected HOST:DIR or HOST:DIR:TARFILE)")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        location = _find_archive(camp.host(host), archive, rest)
        ds = _live_dataset(camp, name)
        src = _choose_source(ds, source, allow_archived=True)
        new = _copy(src, host, location.dir, path if path is not None else src.path, location.tarname)
        return _record(camp, ds, new, {}, moved=src if move else None, now=time.time_ns())


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


# -- time series ----------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesResult:
    """A time series after ``camp timeseries``: its members in order, and what moved.

    ``moved`` lists (dataset, series it left); ``emptied`` the series that lost their
    last member and were removed; ``removed`` is True when the series itself was deleted.
    """

    name: str
    datasets: list[str]
    added: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    removed: bool = False


def timeseries(
    name: str,
    datasets: Sequence[str] = (),
    replace: bool = False,
    remove: bool = False,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SeriesResult:
    """Append datasets to series ``name`` (``replace``: set its members; ``remove``: delete it).

    Members are live ADIOS or HDF5 datasets of one kind, each in at most one series:
    adding a dataset to this series takes it out of another. ADIOS2 reads the series as
    one dataset ``<name>/<variable>`` whose steps are the members in this order.
    """
    env = environ(env)
    _check_name(name, "time-series name")
    if replace and remove:
        raise UsageError("--replace and --remove exclude each other")
    if remove and datasets:
        raise UsageError("--remove deletes the whole series; give no datasets")
    if not remove and not datasets:
        raise UsageError("give the datasets to put into the series")
    dupes = sorted({d for d in datasets if list(datasets).count(d) > 1})
    if dupes:
        raise BadInput(f"dataset {dupes[0]!r} is given twice")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        all_series = {ts.name: ts for ts in camp.timeseries(camp.staged_tree())}
        mine = all_series.get(name)
        path = layout.timeseries_path(name)
        if remove:
            if mine is None:
                raise BadInput(f"no time series named {name!r}")
            _stage(camp, manifests={path: None})
            return SeriesResult(name, [], removed=True)
        members = _series_members(camp, datasets)
        kinds = {k for k in members.values()}
        current = [] if mine is None or replace else list(mine.datasets)
        if current:
            first = camp.dataset(current[0])
            if first is not None:
                kinds.add(first.kind)
        if len(kinds) > 1:
            raise BadInput(
                f"time series {name!r} would mix {' and '.join(sorted(kinds))} datasets (ADIOS2 reads "
                "one kind per series)"
            )
        new_order = current + [d for d in datasets if d not in current]
        manifests: dict[str, bytes | None] = {
            path: TimeSeries(name, tuple(DatasetName(d) for d in new_order)).dumps()
        }
        moved: list[tuple[str, str]] = []
        emptied: list[str] = []
        for other in all_series.values():
            if other.name == name:
                continue
            leaving = [d for d in other.datasets if d in members]
            if leaving:
                moved += [(d, other.name) for d in leaving]
                rest = tuple(d for d in other.datasets if d not in members)
                if rest:
                    manifests[layout.timeseries_path(other.name)] = TimeSeries(other.name, rest).dumps()
                else:
                    manifests[layout.timeseries_path(other.name)] = None
                    emptied.append(other.name)
        _stage(camp, manifests=manifests)
        added = [d for d in datasets if d not in current]
        return SeriesResult(name, new_order, added, moved, emptied)


def _series_members(camp: CampaignRepo, names: Sequence[str]) -> dict[str, str]:
    out = {}
    for n in names:
        ds = _live_dataset(camp, n)
        if ds.kind not in SERIES_KINDS:
            raise BadInput(f"dataset {n!r} is {ds.kind}: a time series holds ADIOS or HDF5 datasets")
        out[n] = ds.kind
    return out


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
