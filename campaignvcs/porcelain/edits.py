"""What the verbs that change where data lives share: finding datasets, checking names, staging.

``rm``, ``mv`` and ``replica add`` (:mod:`.replicas`), the archive verbs (:mod:`.archival`)
and ``timeseries`` (:mod:`.series`) all check every argument before anything is staged,
then stage the changed manifests in one step that keeps the stat cache valid
(:func:`stage_changes`). Nothing is ever forgotten silently: removing a dataset or a
replica sets its ``deltime`` (a tombstone) and keeps the record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from campaignvcs import layout
from campaignvcs.errors import BadInput
from campaignvcs.model import Dataset, Host, HostName, Replica, TarMember
from campaignvcs.repo import CampaignRepo
from campaignvcs.statcache import is_thumbnail


def stage_changes(
    camp: CampaignRepo,
    datasets: Iterable[Dataset] = (),
    removed: Iterable[str] = (),
    manifests: Mapping[str, bytes | None] | None = None,
) -> None:
    """Stage changed datasets, removed dataset folders and other manifests in one transaction.

    The caller holds the lock and has validated everything: this only writes. The stat
    cache is validated against the state before this change, then only updated.
    """
    changed = list(datasets)
    gone = list(removed)
    with camp.transaction() as tx:
        for ds in changed:
            tx.stage_dataset(ds)
        for name in gone:
            tx.remove_dataset(name)
        for path, data in (manifests or {}).items():
            tx.stage_json(path, data)
        tx.cache.update(changed, removed=gone)


def dataset_named(camp: CampaignRepo, name: str) -> Dataset:
    """The dataset ``name`` of the staged state (deleted ones too), or BadInput."""
    ds = camp.dataset(name)
    if ds is None:
        raise BadInput(f"no dataset named {name!r}")
    return ds


def live_dataset(camp: CampaignRepo, name: str) -> Dataset:
    """The dataset ``name`` if it is live, else BadInput (a deleted one says how to revive it)."""
    ds = dataset_named(camp, name)
    if not ds.live:
        raise BadInput(f"dataset {name!r} is deleted (camp add it again to revive it)")
    return ds


def check_name(name: str, what: str) -> str:
    """``name`` if usable as a ``what`` (one non-empty line, no NUL, no surrounding blanks)."""
    if not name or "\0" in name or name.strip() != name or "\n" in name:
        raise BadInput(f"invalid {what}: {name!r}")
    return name


def check_relative(path: str) -> None:
    """BadInput unless ``path`` is a usable replica path relative to its directory."""
    if not path or path.startswith("/") or "\0" in path:
        raise BadInput(f"invalid replica path: {path!r} (give it relative to the directory)")


def choose_source(ds: Dataset, source: str | None, allow_archived: bool = False) -> Replica:
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


def copy_replica(
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


def host_manifest(camp: CampaignRepo, host: str) -> dict[str, bytes | None]:
    """A manifest for a host the campaign has not seen yet (long name unknown: ADIOS2 reads NULL)."""
    if camp.current(layout.host_path(host)) is not None:
        return {}
    return {layout.host_path(host): Host(HostName(host), None, "", time.time_ns()).dumps()}
