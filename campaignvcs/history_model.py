"""What changed between two states of a campaign, in campaign terms rather than text.

Two questions are answered here, both from manifests only:

* between two trees (:func:`changed_paths`, :func:`diff_datasets`): which datasets,
  replicas, embedded metadata objects, hosts, archives and time series changed. The
  trees are walked in parallel and equal subtree ids are skipped, so the cost follows
  the size of the change, not of the campaign: at 100,000 datasets a one-dataset
  change reads five small trees per side and two manifests.
* between two versions of one dataset (:func:`replica_events`): the events of its
  location history (a replica appeared, was archived, changed, or got a tombstone),
  which ``camp whereis --history`` strings together commit by commit.

A replica is identified inside its dataset by its location (host, directory, archive,
path; :attr:`campaignvcs.model.Replica.location`), so "the same replica" in two
versions means the same place.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from campaignvcs import layout
from campaignvcs.gitobjects import TREE_MODE, Entry
from campaignvcs.model import Archive, Dataset, Host, Replica, TimeSeries
from campaignvcs.repo import CampaignRepo

# -- walking two trees ----------------------------------------------------------------


def changed_paths(
    camp: CampaignRepo, old: bytes | None, new: bytes | None, folder: str = ""
) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """(path, old entry, new entry) of every manifest that differs between two trees.

    A dataset folder (``datasets/<aa>/<bb>/<name>``) is reported as one path; its
    manifest and embedded objects change together. Subtrees with equal ids are never
    opened. ``folder`` limits the walk to one top-level folder (e.g. ``datasets``).
    """
    if folder:
        a, b = camp.lookup(old, folder), camp.lookup(new, folder)
        if a == b:
            return
        yield from _walk(camp, _tree_id(a), _tree_id(b), folder + "/")
        return
    if old == new:
        return
    yield from _walk(camp, old, new, "")


def _tree_id(entry: Entry | None) -> bytes | None:
    return entry[1] if entry is not None and entry[0] == TREE_MODE else None


def _walk(
    camp: CampaignRepo, old: bytes | None, new: bytes | None, prefix: str
) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    a = camp.tree_entries(old) if old is not None else {}
    b = camp.tree_entries(new) if new is not None else {}
    for name in sorted(a.keys() | b.keys()):
        x, y = a.get(name), b.get(name)
        if x == y:
            continue
        path = prefix + name.decode("utf-8", "surrogateescape")
        is_tree = (x is None or x[0] == TREE_MODE) and (y is None or y[0] == TREE_MODE)
        if is_tree and not is_dataset_folder(path):
            yield from _walk(camp, _tree_id(x), _tree_id(y), path + "/")
        else:
            yield path, x, y


def is_dataset_folder(path: str) -> bool:
    """True for ``datasets/<aa>/<bb>/<name>``, the unit a dataset changes in."""
    return path.startswith(layout.DATASETS + "/") and path.count("/") == 3


def folder_dataset(camp: CampaignRepo, entry: Entry | None, what: str) -> Dataset | None:
    """The dataset manifest inside a dataset folder entry (None for no folder)."""
    if entry is None or entry[0] != TREE_MODE:
        return None
    found = camp.tree_entries(entry[1]).get(layout.MANIFEST.encode())
    if found is None:
        return None
    return Dataset.loads(camp.read_blob(found[1]), what=what)


# -- plain views of model objects -------------------------------------------------------


@dataclass(frozen=True)
class ReplicaRef:
    """A replica as history shows it: its id, where it is, and what was recorded."""

    id: str
    host: str
    dir: str
    path: str
    archive: str | None
    size: int
    mtime: int
    checksum: str
    key: str
    deltime: int

    @classmethod
    def of(cls, r: Replica) -> ReplicaRef:
        """The view of a model replica."""
        return cls(r.id, r.host, r.dir, r.path, r.archive, r.size, r.mtime, r.checksum, r.key, r.deltime)

    @property
    def where(self) -> str:
        """``host:dir/path``, with ``[tarname]`` after the directory for archived replicas."""
        inside = "" if self.archive is None else f"[{self.archive}]" if self.archive else "[archive]"
        return f"{self.host}:{self.dir}{inside}/{self.path}"


REPLICA_FIELDS = ("size", "mtime", "checksum", "key", "resolution", "accuracy", "files", "tarindex")
"""Recorded facts about a replica at one location; a difference in any is a change."""


def _changed_fields(a: Replica, b: Replica) -> list[str]:
    return [f for f in REPLICA_FIELDS if getattr(a, f) != getattr(b, f)]


# -- one dataset: semantic diff ---------------------------------------------------------


@dataclass(frozen=True)
class ReplicaChange:
    """One replica-level difference.

    ``change`` is ``added`` (a new live replica), ``removed`` (it got a tombstone or its
    record vanished), ``revived`` (a tombstoned location is live again), ``changed``
    (same location, other facts: ``fields``) or ``moved`` (a replica was removed and an
    identical one — same size and checksum — added elsewhere; ``before`` is the old one).
    """

    change: str
    replica: ReplicaRef
    before: ReplicaRef | None = None
    fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MetadataChange:
    """An embedded metadata object that appeared, vanished, or got other content."""

    name: str
    change: str
    old: list[str]
    new: list[str]


@dataclass(frozen=True)
class DatasetChange:
    """Everything that differs about one dataset.

    ``change``: ``added``, ``removed`` (its record left the campaign), ``deleted`` (it
    got a tombstone), ``revived``, ``renamed`` (``old_name`` → ``name``, same uuid) or
    ``modified``. ``fields`` lists dataset-level facts that differ (kind, uuid, modtime).
    """

    name: str
    kind: str
    change: str
    old_name: str | None = None
    fields: list[str] = field(default_factory=list)
    replicas: list[ReplicaChange] = field(default_factory=list)
    metadata: list[MetadataChange] = field(default_factory=list)


def diff_dataset(old: Dataset | None, new: Dataset | None) -> DatasetChange:
    """The semantic difference between two versions of a dataset (either may be None)."""
    ref = new if new is not None else old
    assert ref is not None
    if old is None:
        change = "added"
    elif new is None:
        change = "removed"
    elif old.live and not new.live:
        change = "deleted"
    elif not old.live and new.live:
        change = "revived"
    else:
        change = "modified"
    fields = []
    if old is not None and new is not None:
        fields = [f for f in ("kind", "uuid", "modtime") if getattr(old, f) != getattr(new, f)]
    return DatasetChange(
        name=ref.name,
        kind=ref.kind,
        change=change,
        fields=fields,
        replicas=diff_replicas(old.replicas if old else (), new.replicas if new else ()),
        metadata=diff_metadata(old, new),
    )


def diff_replicas(old: tuple[Replica, ...], new: tuple[Replica, ...]) -> list[ReplicaChange]:
    """Replica changes by location, with a removal and an identical addition paired as a move."""
    before = {r.location: r for r in old}
    after = {r.location: r for r in new}
    out: list[ReplicaChange] = []
    added: list[Replica] = []
    removed: list[Replica] = []
    for loc in sorted(before.keys() | after.keys()):
        a, b = before.get(loc), after.get(loc)
        if a == b:
            continue
        if b is None:
            if a is not None and a.live:
                removed.append(a)
            continue
        if a is None or (not a.live and b.live):
            if b.live:
                if a is None:
                    added.append(b)
                else:
                    out.append(ReplicaChange("revived", ReplicaRef.of(b)))
            continue
        if a.live and not b.live:
            removed.append(b)
            continue
        fields = _changed_fields(a, b) or ["deltime"]
        out.append(ReplicaChange("changed", ReplicaRef.of(b), ReplicaRef.of(a), fields))
    for gone in removed:
        twin = next((n for n in added if _same_content(gone, n)), None)
        if twin is not None:
            added.remove(twin)
            out.append(ReplicaChange("moved", ReplicaRef.of(twin), ReplicaRef.of(gone)))
        else:
            out.append(ReplicaChange("removed", ReplicaRef.of(gone)))
    out.extend(ReplicaChange("added", ReplicaRef.of(n)) for n in added)
    order = {"moved": 0, "added": 1, "revived": 2, "removed": 3, "changed": 4}
    return sorted(out, key=lambda c: (order[c.change], c.replica.where))


def _same_content(a: Replica, b: Replica) -> bool:
    """Two records of the same bytes: equal size and checksum (or, without checksums, equal metadata)."""
    if a.size != b.size:
        return False
    if a.checksum or b.checksum:
        return a.checksum == b.checksum
    return a.files == b.files


def diff_metadata(old: Dataset | None, new: Dataset | None) -> list[MetadataChange]:
    """Embedded objects by file name: which appeared, vanished, or changed content (blob ids)."""
    a, b = _objects(old), _objects(new)
    out = []
    for name in sorted(a.keys() | b.keys()):
        x, y = a.get(name, []), b.get(name, [])
        if x == y:
            continue
        change = "added" if not x else "removed" if not y else "changed"
        out.append(MetadataChange(name, change, x, y))
    return out


def _objects(ds: Dataset | None) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {}
    for r in ds.replicas if ds is not None else ():
        for f in r.files:
            found.setdefault(f.name, set()).add(f.blob)
    return {name: sorted(blobs) for name, blobs in found.items()}


def pair_renames(changes: list[DatasetChange], uuids: dict[str, str]) -> list[DatasetChange]:
    """Report a removed and an added dataset with the same uuid as one rename (``camp mv``)."""
    removed = {uuids[c.name]: c for c in changes if c.change == "removed" and c.name in uuids}
    out = []
    paired: set[str] = set()
    for c in changes:
        if c.change == "added" and uuids.get(c.name) in removed:
            gone = removed[uuids[c.name]]
            paired.add(gone.name)
            out.append(DatasetChange(c.name, c.kind, "renamed", old_name=gone.name))
        else:
            out.append(c)
    return [c for c in out if not (c.change == "removed" and c.name in paired)]


# -- hosts and series -------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class ArchiveRef:
    """An archival location: a directory (``tarname`` "") or a TAR file in it (ordered, for listings)."""

    dir: str
    tarname: str
    system: str


@dataclass(frozen=True)
class HostChange:
    """A host manifest that appeared, vanished or changed (fields, archival locations)."""

    name: str
    change: str
    fields: list[str] = field(default_factory=list)
    archives_added: list[ArchiveRef] = field(default_factory=list)
    archives_removed: list[ArchiveRef] = field(default_factory=list)


def diff_host(name: str, old: Host | None, new: Host | None) -> HostChange:
    """What differs between two versions of a host manifest."""
    change = "added" if old is None else "removed" if new is None else "modified"
    a = set(old.archives if old else ())
    b = set(new.archives if new else ())
    fields = []
    if old is not None and new is not None:
        fields = [f for f in ("longhostname", "default_protocol") if getattr(old, f) != getattr(new, f)]
    return HostChange(name, change, fields, _archive_refs(b - a), _archive_refs(a - b))


def _archive_refs(archives: set[Archive]) -> list[ArchiveRef]:
    return sorted(ArchiveRef(a.dir, a.tarname, a.system) for a in archives)


@dataclass(frozen=True)
class SeriesChange:
    """A time series that appeared, vanished, or changed members or order."""

    name: str
    change: str
    before: list[str]
    after: list[str]


def diff_series(name: str, old: TimeSeries | None, new: TimeSeries | None) -> SeriesChange:
    """What differs between two versions of a time-series manifest."""
    change = "added" if old is None else "removed" if new is None else "modified"
    return SeriesChange(name, change, list(old.datasets) if old else [], list(new.datasets) if new else [])


# -- one dataset: location history ------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One step in a dataset's location history.

    ``event``: ``created``, ``deleted`` (dataset tombstone), ``revived``, ``dropped``
    (its record left the campaign: renamed or removed) for the dataset; ``appeared``,
    ``archived`` (appeared inside an archive), ``changed`` or ``removed`` (tombstone,
    ``replica.deltime`` says when) for a replica.
    """

    event: str
    replica: ReplicaRef | None = None
    fields: list[str] = field(default_factory=list)


def replica_events(old: Dataset | None, new: Dataset | None) -> list[Event]:
    """The location-history events between two consecutive versions of one dataset."""
    events: list[Event] = []
    if old is None and new is None:
        return events
    if old is None:
        events.append(Event("created"))
    elif new is None:
        events.append(Event("dropped"))
    elif old.live and not new.live:
        events.append(Event("deleted"))
    elif not old.live and new.live:
        events.append(Event("revived"))
    before = {r.location: r for r in (old.replicas if old else ())}
    after = {r.location: r for r in (new.replicas if new else ())}
    for loc in sorted(before.keys() | after.keys()):
        a, b = before.get(loc), after.get(loc)
        if a == b:
            continue
        a_live = a is not None and a.live
        b_live = b is not None and b.live
        if b_live and not a_live:
            assert b is not None
            events.append(Event("archived" if b.archive is not None else "appeared", ReplicaRef.of(b)))
        elif a_live and not b_live:
            assert a is not None
            events.append(Event("removed", ReplicaRef.of(b if b is not None else a)))
        elif a_live and b_live:
            assert a is not None and b is not None
            events.append(Event("changed", ReplicaRef.of(b), _changed_fields(a, b)))
    return sorted(events, key=lambda e: EVENT_ORDER[e.event])


EVENT_ORDER = {
    "created": 0,
    "revived": 1,
    "appeared": 2,
    "archived": 3,
    "changed": 4,
    "removed": 5,
    "deleted": 6,
    "dropped": 7,
}
"""How the events of one commit are told: arrivals first, departures last (sorting is stable)."""


def live_locations(ds: Dataset | None) -> frozenset[tuple[str, str, str, str]]:
    """Where a dataset's data lives: the locations of its live replicas (none if deleted)."""
    if ds is None or not ds.live:
        return frozenset()
    return frozenset(r.location for r in ds.live_replicas())
