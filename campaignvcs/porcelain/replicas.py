"""rm, mv, replica add: which datasets exist and where their copies are.

Every verb here stages, like ``git rm``/``git mv``; ``camp commit`` records it. Nothing
is ever forgotten silently: removing a dataset or a replica sets its ``deltime``
(a tombstone) and keeps the record and its metadata objects, so history and
``camp whereis --history`` can still tell where the data was. Every argument is checked
before anything is staged: a bad name, an unknown replica or an ambiguous choice stages
nothing. Archival copies are :mod:`.archival`'s, time series :mod:`.series`'s.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from campaignvcs import layout
from campaignvcs.errors import BadInput, UsageError
from campaignvcs.history_model import ReplicaRef
from campaignvcs.model import Dataset, DatasetName, Replica, TimeSeries
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.edits import (
    check_name,
    check_relative,
    choose_source,
    copy_replica,
    dataset_named,
    host_manifest,
    live_dataset,
    stage_changes,
)
from campaignvcs.porcelain.restore import unstage_new
from campaignvcs.porcelain.workspace import resolve_host_name
from campaignvcs.repo import CampaignRepo

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
    unstaged: list[str] = field(default_factory=list)
    """Datasets only staged, never committed: taken out of the staging area, no tombstone."""


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
                ds = dataset_named(camp, name)
                if not ds.live:
                    raise BadInput(f"dataset {name!r} is already deleted")
                targets.append(ds)
            unstaged = unstage_new(camp, [ds.name for ds in targets])  # nothing to tombstone
            changed = [_tombstone_dataset(ds, now) for ds in targets if ds.name not in unstaged]
            if changed:
                stage_changes(camp, changed)
            return Removed(datasets=[ds.name for ds in changed], unstaged=unstaged)
        scope = [dataset_named(camp, n) for n in dict.fromkeys(names)] if names else None
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
        stage_changes(camp, updated.values())
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
    check_name(new, "dataset name")
    if old == new:
        raise BadInput(f"{old!r} and the new name are the same")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        ds = dataset_named(camp, old)
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
        stage_changes(camp, [renamed], removed=[old], manifests=manifests)
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
    check_name(directory, "directory")
    if path is not None:
        check_relative(path)
    with open_repo(repo, cwd, env) as camp, camp.lock():
        ds = live_dataset(camp, name)
        src = choose_source(ds, source)
        rel = path if path is not None else src.path
        if check:
            _check_size(ds, src, directory, rel)
        new = copy_replica(src, host, directory, rel, None)
        return record_replica(camp, ds, new, host_manifest(camp, host))


def _check_size(ds: Dataset, src: Replica, directory: str, path: str) -> None:
    """Refuse a copy that is visibly not the recorded data (only when it is reachable here)."""
    from campaignvcs.extract.bp5 import folder_size  # with its BP checks: loaded only to check a copy

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


def record_replica(
    camp: CampaignRepo,
    ds: Dataset,
    new: Replica,
    manifests: dict[str, bytes | None],
    moved: Replica | None = None,
    now: int = 0,
) -> ReplicaAdded:
    """Stage ``new`` as a replica of ``ds`` (with ``manifests``); ``moved`` gets a tombstone dated ``now``.

    Refuses a different live replica at the same place; re-recording the same one is
    ``unchanged``, one at a tombstoned place ``revived``.
    """
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
        stage_changes(camp, [updated] if updated != ds else [], manifests=manifests)
    return ReplicaAdded(
        ds.name, action, ReplicaRef.of(new), ReplicaRef.of(gone) if gone is not None else None
    )
