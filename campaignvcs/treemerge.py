"""The tree-level 3-way merge a pull makes: three root trees in, changes to stage and conflicts out.

:mod:`campaignvcs.merge` merges one manifest (pure functions over model objects); this
module walks the three trees, enters only subtrees that differ, and hands each manifest
that changed on both sides to it. It reads and queues objects in the local repository
and knows nothing of remotes (a pull merges whatever the fetch brought in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from campaignvcs import layout
from campaignvcs.errors import CampError
from campaignvcs.gitobjects import BLOB_MODE, TREE_MODE, Entry
from campaignvcs.merge import Merged, merge_campaign, merge_dataset, merge_host, merge_timeseries
from campaignvcs.model import Campaign, Dataset, Host, TimeSeries
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class Conflict:
    """A manifest both sides changed incompatibly, with both ways to resolve it."""

    name: str
    """Dataset name, or tree path for other manifests (``hosts/x.json``)."""
    path: str
    ours: Entry | None
    theirs: Entry | None
    details: tuple[str, ...]


@dataclass
class TreeMerge:
    """The merge of theirs into ours: changes to stage on top of ours, and conflicts."""

    changes: dict[str, Entry | None] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def merge_trees(camp: CampaignRepo, base: bytes | None, ours: bytes | None,
                theirs: bytes | None) -> TreeMerge:
    """3-way merge of three root trees, entering only subtrees that differ.

    Merge units are whole manifests: ``campaign.json``, ``hosts/<h>.json``,
    ``timeseries/<s>.json`` and each dataset folder (manifest + embedded objects, rebuilt
    from the merged manifest). Anything else changed on both sides is a conflict by path.
    """
    out = TreeMerge()
    _merge_dir(camp, "", (TREE_MODE, base) if base else None, (TREE_MODE, ours) if ours else None,
               (TREE_MODE, theirs) if theirs else None, out)
    return out


def _merge_dir(camp: CampaignRepo, prefix: str, b: Entry | None, o: Entry | None, t: Entry | None,
               out: TreeMerge) -> None:
    entries = [camp.tree_entries(e[1]) if e is not None and e[0] == TREE_MODE else {} for e in (b, o, t)]
    for name in sorted(entries[0].keys() | entries[1].keys() | entries[2].keys()):
        eb, eo, et = (e.get(name) for e in entries)
        if eo == et or et == eb:
            continue
        path = prefix + name.decode("utf-8", "surrogateescape")
        kind = _unit(path)
        folder = kind == "dir" and all(e is None or e[0] == TREE_MODE for e in (eb, eo, et))
        if eo == eb and not folder:
            out.changes[path] = et
            continue
        if folder:
            # Entered even when only one side changed, so changes are per manifest (the
            # stat cache and the change count need dataset names), at O(change) cost.
            _merge_dir(camp, path + "/", eb, eo, et, out)
        elif kind is None or kind == "dir":
            out.conflicts.append(Conflict(path, path, eo, et, ("changed differently on both sides",)))
        else:
            _merge_unit(camp, kind, path, eb, eo, et, out)


def _unit(path: str) -> str | None:
    """What a tree path is for merging: a folder to enter, a manifest kind, or unknown (None)."""
    parts = path.split("/")
    top = parts[0]
    if path == layout.CAMPAIGN:
        return "campaign"
    if top == layout.DATASETS:
        return "dir" if len(parts) < 4 else "dataset" if len(parts) == 4 else None
    if top in (layout.HOSTS, layout.TIMESERIES):
        if len(parts) == 1:
            return "dir"
        if len(parts) == 2 and path.endswith(".json"):
            return "host" if top == layout.HOSTS else "timeseries"
        return None
    return None


def _merge_unit(camp: CampaignRepo, kind: str, path: str, eb: Entry | None, eo: Entry | None,
                et: Entry | None, out: TreeMerge) -> None:
    merged: Merged[object]
    if kind == "dataset":
        name = layout.dataset_name_of(path) or path
        db, do, dt = (_load_dataset(camp, e, path) for e in (eb, eo, et))
        merged_ds = merge_dataset(db, do, dt)
        to_entry = lambda d: None if d is None else (TREE_MODE, camp.dataset_tree(d))  # noqa: E731
        _record(out, name, path, merged_ds, eo, to_entry)
        return
    loaders: dict[str, tuple[Callable[[bytes], object], Callable[..., Merged[object]]]] = {
        "campaign": (lambda data: Campaign.loads(data, what=path), merge_campaign),  # type: ignore[dict-item]
        "host": (lambda data: Host.loads(data, what=path), merge_host),  # type: ignore[dict-item]
        "timeseries": (lambda data: TimeSeries.loads(data, what=path), merge_timeseries),  # type: ignore[dict-item]
    }
    load, merge = loaders[kind]
    values = [None if e is None or e[0] == TREE_MODE else load(camp.read_blob(e[1])) for e in (eb, eo, et)]
    merged = merge(*values)
    blob_of = lambda v: None if v is None else (BLOB_MODE, camp.add_blob(v.dumps()))  # noqa: E731
    _record(out, path, path, merged, eo, blob_of)


def _record(out: TreeMerge, name: str, path: str, merged: Merged[Any], ours: Entry | None,
            to_entry: Callable[[Any], Entry | None]) -> None:
    if merged.clean:
        entry = to_entry(merged.value)
        if entry != ours:
            out.changes[path] = entry
        return
    out.conflicts.append(Conflict(name, path, to_entry(merged.ours), to_entry(merged.theirs),
                                  merged.conflicts))


def _load_dataset(camp: CampaignRepo, entry: Entry | None, path: str) -> Dataset | None:
    if entry is None or entry[0] != TREE_MODE:
        return None
    manifest = camp.tree_entries(entry[1]).get(layout.MANIFEST.encode())
    if manifest is None:
        raise CampError(f"{path}: dataset folder without {layout.MANIFEST}")
    return Dataset.loads(camp.read_blob(manifest[1]), what=path)
