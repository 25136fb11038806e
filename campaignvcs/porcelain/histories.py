"""Every dataset's location history at once: ``camp whereis --history`` for a whole campaign.

``whereis`` walks the whole ancestry for one dataset; a static catalog needs the history
of every dataset, and 100,000 walks would cost 100,000 × the history. Here each commit is
compared once with each parent, opening only the subtrees that differ
(:func:`campaignvcs.history_model.changed_paths`), so the cost follows the number of
changes ever made. The events are the same as ``whereis(name, history=True, rev=...)``
gives (the tests compare them): a commit counts for a dataset when its folder differs
from every parent's, and a merge reports only what is new against every parent.
"""

from __future__ import annotations

from campaignvcs import history_model as hm
from campaignvcs import layout
from campaignvcs.gitobjects import Entry
from campaignvcs.graph import ancestry
from campaignvcs.model import Dataset
from campaignvcs.porcelain.history import HistoryEvent, LogEntry
from campaignvcs.repo import CampaignRepo


def all_histories(camp: CampaignRepo, start: bytes) -> dict[str, list[HistoryEvent]]:
    """Dataset folder path (``layout.dataset_dir(name)``) → its events up to ``start``, oldest first."""
    out: dict[str, list[HistoryEvent]] = {}
    versions: dict[bytes, Dataset | None] = {}

    def version(entry: Entry | None, path: str) -> Dataset | None:
        if entry is None:
            return None
        if entry[1] not in versions:
            versions[entry[1]] = hm.folder_dataset(camp, entry, f"manifest of {path}")
        return versions[entry[1]]

    for oid in ancestry(camp, start):
        commit = camp.read_commit(oid)
        parent_trees = [camp.tree_of(p) for p in commit.parents] or [None]
        touched: dict[str, tuple[Entry | None, list[Entry | None]]] | None = None
        for parent in parent_trees:
            changed = {path: (new, old) for path, old, new in
                       hm.changed_paths(camp, parent, commit.tree, layout.DATASETS) if hm.is_dataset_folder(path)}
            if touched is None:
                touched = {path: (new, [old]) for path, (new, old) in changed.items()}
            else:
                touched = {path: (new, olds + [changed[path][1]]) for path, (new, olds) in touched.items()
                           if path in changed}
        entry = LogEntry(commit.id.decode(), commit.author.decode("utf-8", "replace"), commit.author_time,
                         commit.author_timezone, commit.message.decode("utf-8", "replace"), [])
        subject = entry.message.split("\n", 1)[0]
        for path, (new, olds) in sorted((touched or {}).items()):
            mine = version(new, path)
            common: list[hm.Event] | None = None
            for old in olds:
                evs = hm.replica_events(version(old, path), mine)
                common = evs if common is None else [e for e in common if e in evs]
            for ev in common or ():
                out.setdefault(path, []).append(HistoryEvent(entry.id, entry.time, entry.timezone, entry.author,
                                                             subject, ev.event, ev.replica, ev.fields))
    return out
