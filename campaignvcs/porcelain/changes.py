"""What a staged dataset change is, in the user's words: a rename, a replica added, removed or moved.

``camp status`` compares tree paths, where ``camp mv`` looks like a removal plus a new
dataset and ``camp replica add`` like any modification; these helpers name them as the
user did them (the uuid survives a rename, the live replica locations tell the rest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from campaignvcs.model import Dataset
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo


def renamed_from(camp: CampaignRepo, removed: Sequence[str], new: Sequence[str]) -> dict[str, str]:
    """New name → old name for the staged datasets that are renames (same uuid) of ones HEAD has."""
    if not removed or not new:
        return {}
    head = camp.head()
    by_uuid = {}
    for name in removed:
        ds = camp.dataset(name, head)
        if ds is not None:
            by_uuid[ds.uuid] = name
    out = {}
    for name in new:
        ds = camp.dataset(name)
        if ds is not None and ds.uuid in by_uuid:
            out[name] = by_uuid.pop(ds.uuid)
    return out


def replica_change(before: Dataset, after: Dataset) -> str | None:
    """``replica added``/``removed``/``moved`` (``2 replicas added``), or None: same live locations."""
    old = {r.location for r in before.live_replicas()}
    new = {r.location for r in after.live_replicas()}
    added, gone = len(new - old), len(old - new)
    if not added and not gone:
        return None
    if added and gone:
        what = "moved"
    else:
        what = "added" if added else "removed"
    n = max(added, gone)
    return f"replica {what}" if n == 1 else f"{n} replicas {what}"


@dataclass(frozen=True)
class MergeState:
    """A merge ``camp pull`` left to finish: the commit being merged and the conflicts still open."""

    merging: str
    conflicts: list[str] = field(default_factory=list)


def merge_state(repo: str | None = None, cwd: str | None = None,
                env: Mapping[str, str] | None = None) -> MergeState | None:
    """The merge in progress, or None (cheap: two small files are read)."""
    from campaignvcs.porcelain.merging import merge_head, unresolved

    with open_repo(repo, cwd, environ(env)) as camp:
        head = merge_head(camp)
        return None if head is None else MergeState(head.decode(), unresolved(camp))
