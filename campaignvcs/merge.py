"""3-way merge of manifests: replica sets merge as unions, deletions win, conflicts are named.

Pure functions over model objects (no repository, no I/O), so they can be tested with
hypothesis. Each takes the version at the merge base and both sides (``None`` where the
manifest does not exist) and returns a :class:`Merged`: the merge taking our side of any
conflict, the merge taking their side, and what conflicted. When nothing conflicts both
results are the same value.

The rules, per value (a replica, a host archive, a field):

* unchanged on one side → the other side's version (this is how replica sets become
  unions: a replica added on one side is absent, i.e. unchanged, on the other);
* changed the same way on both sides → that version;
* changed differently on both sides → a conflict, except where both sides agree on the
  meaning: two tombstones of the same replica (the earlier deletion is kept), two
  modification times (the later is kept), two independently created datasets of the
  same name and kind (the smaller uuid is kept, so the merge is commutative).

So a tombstone beats a stale copy (one unchanged since the base), and a replica deleted
on one side and changed on the other is a conflict, never silently resurrected or dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from campaignvcs.model import Archive, Campaign, Dataset, Host, Replica, TimeSeries

T = TypeVar("T")
V = TypeVar("V")


@dataclass(frozen=True)
class Merged(Generic[T]):
    """The result of merging one manifest.

    ``ours`` resolves every conflict in favour of our side and ``theirs`` in favour of
    theirs; everything that merged cleanly is the same in both. ``None`` means the
    manifest does not exist in that result.
    """

    ours: T | None
    theirs: T | None
    conflicts: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        """True when nothing conflicted."""
        return not self.conflicts

    @property
    def value(self) -> T | None:
        """The merge result; only meaningful when :attr:`clean`."""
        return self.ours


def _pick(base: V | None, ours: V | None, theirs: V | None, conflict: str,
          both: Callable[[V, V], V] | None = None) -> tuple[V | None, V | None, str | None]:
    """3-way choice of one value: (our result, their result, conflict description or None)."""
    if ours == theirs:
        return ours, ours, None
    if ours == base:
        return theirs, theirs, None
    if theirs == base:
        return ours, ours, None
    if both is not None and ours is not None and theirs is not None:
        value = both(ours, theirs)
        return value, value, None
    return ours, theirs, conflict


def _trivial(base: Any, ours: Any, theirs: Any) -> Merged[Any] | None:
    """The merge when at most one side changed, else None."""
    value, _, conflict = _pick(base, ours, theirs, "x")
    return None if conflict else Merged(value, value)


# -- datasets --------------------------------------------------------------------------


def merge_dataset(base: Dataset | None, ours: Dataset | None, theirs: Dataset | None) -> Merged[Dataset]:
    """Merge one dataset manifest (see the module docstring for the rules)."""
    done = _trivial(base, ours, theirs)
    if done is not None:
        return done
    if ours is None or theirs is None:
        return Merged(ours, theirs, ("removed on one side, changed on the other",))
    base_del = base.deltime if base is not None else 0
    for deleted, live in ((ours, theirs), (theirs, ours)):
        if deleted.deltime and deleted.deltime != base_del and not live.deltime and live != base:
            return Merged(ours, theirs, ("deleted on one side, changed on the other",))
    conflicts: list[str] = []
    fields_o: dict[str, Any] = {}
    fields_t: dict[str, Any] = {}

    def field(name: str, both: Callable[[Any, Any], Any] | None = None) -> None:
        b = getattr(base, name) if base is not None else None
        o, t, c = _pick(b, getattr(ours, name), getattr(theirs, name), f"{name} differs", both)
        fields_o[name], fields_t[name] = o, t
        if c:
            conflicts.append(c)

    field("kind")
    field("uuid", min if base is None else None)  # created independently on both sides
    field("modtime", max)
    field("deltime", _earlier_deletion)
    reps_o, reps_t = _merge_replicas(base, ours, theirs, conflicts)
    merged_o = Dataset(name=ours.name, replicas=reps_o, **fields_o)
    merged_t = Dataset(name=ours.name, replicas=reps_t, **fields_t)
    return Merged(merged_o, merged_t, tuple(conflicts))


def _earlier_deletion(a: int, b: int) -> int:
    """Both sides changed a tombstone: the earlier deletion, or live if neither is deleted.

    Only reached when neither side is live-and-changed against a new deletion (checked
    before), so a live side here means the base was deleted and both sides touched it.
    """
    if a and b:
        return min(a, b)
    return a or b


def _merge_replicas(base: Dataset | None, ours: Dataset, theirs: Dataset,
                    conflicts: list[str]) -> tuple[tuple[Replica, ...], tuple[Replica, ...]]:
    by_base = {r.location: r for r in base.replicas} if base is not None else {}
    by_ours = {r.location: r for r in ours.replicas}
    by_theirs = {r.location: r for r in theirs.replicas}
    out_o: list[Replica] = []
    out_t: list[Replica] = []
    for loc in sorted(by_base.keys() | by_ours.keys() | by_theirs.keys()):
        o, t, c = merge_replica(by_base.get(loc), by_ours.get(loc), by_theirs.get(loc))
        if o is not None:
            out_o.append(o)
        if t is not None:
            out_t.append(t)
        if c:
            some = by_ours.get(loc) or by_theirs.get(loc) or by_base[loc]
            where = f"{some.host}:{some.dir}/{some.path}" + (f" (in {some.archive})" if some.archive else "")
            conflicts.append(f"replica {where}: {c}")
    return tuple(out_o), tuple(out_t)


def merge_replica(base: Replica | None, ours: Replica | None,
                  theirs: Replica | None) -> tuple[Replica | None, Replica | None, str | None]:
    """One replica location: (our result, their result, conflict or None)."""
    o, t, c = _pick(base, ours, theirs, "changed differently on both sides")
    if c is None:
        return o, t, None
    if ours is None or theirs is None:
        return ours, theirs, "removed on one side, changed on the other"
    if not ours.live and not theirs.live:
        # Both deleted it: keep the earlier tombstone (ties broken on content, for commutativity).
        first = min(ours, theirs, key=lambda r: (r.deltime, repr(r.to_dict())))
        return first, first, None
    if ours.live != theirs.live:
        return ours, theirs, "deleted on one side, changed on the other"
    return ours, theirs, "changed differently on both sides (size, time, checksum or embedded metadata)"


# -- hosts, time series, campaign.json -------------------------------------------------------


def _newer(a: Any, b: Any) -> Any:
    return max(a, b)


def merge_host(base: Host | None, ours: Host | None, theirs: Host | None) -> Merged[Host]:
    """Merge a host manifest: archival locations as a union, other fields 3-way."""
    done = _trivial(base, ours, theirs)
    if done is not None:
        return done
    if ours is None or theirs is None:
        return Merged(ours, theirs, ("removed on one side, changed on the other",))
    conflicts: list[str] = []
    fo: dict[str, Any] = {}
    ft: dict[str, Any] = {}
    for name, both in (("longhostname", None), ("default_protocol", None), ("modtime", _newer)):
        b = getattr(base, name) if base is not None else None
        o, t, c = _pick(b, getattr(ours, name), getattr(theirs, name), f"{name} differs", both)
        fo[name], ft[name] = o, t
        if c:
            conflicts.append(c)
    key: Callable[[Archive], tuple[str, str]] = lambda a: (a.dir, a.tarname)  # noqa: E731
    by_b = {key(a): a for a in base.archives} if base is not None else {}
    by_o = {key(a): a for a in ours.archives}
    by_t = {key(a): a for a in theirs.archives}
    arch_o: list[Archive] = []
    arch_t: list[Archive] = []
    for k in sorted(by_b.keys() | by_o.keys() | by_t.keys()):
        o, t, c = _pick(by_b.get(k), by_o.get(k), by_t.get(k), "changed differently on both sides")
        if o is not None:
            arch_o.append(o)
        if t is not None:
            arch_t.append(t)
        if c:
            conflicts.append(f"archive {k[0]}/{k[1]}: {c}" if k[1] else f"archive {k[0]}: {c}")
    return Merged(
        dataclasses.replace(ours, archives=tuple(arch_o), **fo),
        dataclasses.replace(ours, archives=tuple(arch_t), **ft),
        tuple(conflicts),
    )


def merge_timeseries(base: TimeSeries | None, ours: TimeSeries | None,
                     theirs: TimeSeries | None) -> Merged[TimeSeries]:
    """Merge a time series: an ordered list, so both sides changing it differently conflicts."""
    o, t, c = _pick(base, ours, theirs, "changed differently on both sides")
    return Merged(o, t, (c,) if c else ())


def merge_campaign(base: Campaign | None, ours: Campaign | None, theirs: Campaign | None) -> Merged[Campaign]:
    """Merge ``campaign.json`` field by field."""
    done = _trivial(base, ours, theirs)
    if done is not None:
        return done
    if ours is None or theirs is None:
        return Merged(ours, theirs, ("removed on one side, changed on the other",))
    conflicts: list[str] = []
    fo: dict[str, Any] = {}
    ft: dict[str, Any] = {}
    for name in ("name", "uuid", "created", "description"):
        b = getattr(base, name) if base is not None else None
        o, t, c = _pick(b, getattr(ours, name), getattr(theirs, name), f"{name} differs")
        fo[name], ft[name] = o, t
        if c:
            conflicts.append(c)
    return Merged(Campaign(**fo), Campaign(**ft), tuple(conflicts))
