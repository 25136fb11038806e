"""Which recorded datasets a TAR file holds: a TAR index matched against the campaign's replicas.

``camp archive add --index`` gives every live dataset whose own replica path is a member of
an archived TAR an archived replica with the member's offsets (the ACA ``archiveidx``
rows ADIOS2 reads the data through). The index comes from :mod:`campaignvcs.tarindex`;
the datasets to look at come from the caller (the porcelain asks the stat cache, so only
plausible manifests are read). Nothing here stages or writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from campaignvcs import tarindex
from campaignvcs.errors import BadInput
from campaignvcs.history_model import ReplicaRef
from campaignvcs.model import Dataset, HostName, Replica, TarMember
from campaignvcs.statcache import is_thumbnail


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
class TarMatch:
    """What a TAR index matched: archived replicas, members skipped and why, members nobody claimed.

    ``changed`` are the datasets with their new archived replicas (those not already
    recorded exactly so), ready to stage.
    """

    archived: list[ArchivedDataset] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    unmatched: int = 0
    changed: list[Dataset] = field(default_factory=list)


def match_tar(
    entries: list[tarindex.IndexEntry],
    candidates: Callable[[set[str]], Iterable[Dataset | None]],
    host: str,
    directory: str,
    tarname: str,
    source_dir: str | None,
) -> TarMatch:
    """Archived replicas for the datasets whose own replica paths are members of the TAR.

    ``candidates`` returns, for the set of member names, the datasets that may have a live
    replica at one of them (more is fine, fewer is not; None for a name no longer there).
    A replica matches when its path is a member of the recorded size (a BP folder: its
    regular files add up to it); ``source_dir`` restricts the replicas that may match.
    Two datasets claiming one member is refused (BadInput), so nothing is half-matched.
    """
    # "tar -cf run.tar ." stores ./heat.bp: the same path as heat.bp.
    entries = [dataclasses.replace(e, name=member_path(e.name)) for e in entries]
    members = {e.name: e for e in entries}
    children: dict[str, list[tarindex.IndexEntry]] = {}
    for e in entries:
        parts = e.name.split("/")
        for i in range(1, len(parts)):
            children.setdefault("/".join(parts[:i]), []).append(e)
    claims: dict[str, list[tuple[Dataset, Replica, tuple[TarMember, ...]]]] = {}
    skipped: list[Skipped] = []
    for ds in candidates(set(members)):
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
        # The same bytes in the TAR: size, checksum and embedded metadata are the source's.
        new = dataclasses.replace(
            src, host=HostName(host), dir=directory, archive=tarname, deltime=0, tarindex=rows
        )
        before = next((r for r in ds.replicas if r.location == new.location), None)
        if before != new:
            changed[ds.name] = ds.with_replica(new)
        archived.append(ArchivedDataset(ds.name, ReplicaRef.of(new), ReplicaRef.of(src), len(rows)))
    covered = set(claims) | {e.name for n in claims if members[n].is_dir for e in children.get(n, [])}
    unmatched = sum(1 for e in entries if (e.is_regular or e.is_dir) and e.name not in covered)
    return TarMatch(archived, skipped, unmatched, list(changed.values()))


def member_path(name: str) -> str:
    """A member name as a replica path: ``./run/heat.bp/`` is ``run/heat.bp``."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/") or name


def ends_in_member(full: str, names: set[str]) -> bool:
    """Whether the absolute path ``full`` ends in one of the member ``names`` (after a slash)."""
    return any(full[i + 1 :] in names for i in _slashes(full))


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
