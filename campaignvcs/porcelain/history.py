"""log, show, diff and whereis: reading the history of a campaign.

The history of where data lives is git's history of the dataset manifests: each commit
that touched a dataset's folder is a dated, signed-off step, and tombstones keep removed
replicas in the record (docs/history.md explains the model).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dulwich.objects import Commit

from campaignvcs import history_model as hm
from campaignvcs import layout
from campaignvcs.errors import BadInput
from campaignvcs.gitobjects import TREE_MODE, Entry
from campaignvcs.graph import ancestry
from campaignvcs.model import Dataset, Host, TimeSeries
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.provenance import parse_blocks, recorded_by
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class LogEntry:
    """One commit as ``camp log`` shows it."""

    id: str
    author: str
    time: int
    timezone: int
    message: str
    parents: list[str]
    datasets: list[str] = field(default_factory=list)


def _entry(commit: Commit, datasets: list[str] | None = None) -> LogEntry:
    return LogEntry(
        id=commit.id.decode(),
        author=commit.author.decode("utf-8", "replace"),
        time=commit.author_time,
        timezone=commit.author_timezone,
        message=commit.message.decode("utf-8", "replace"),
        parents=[p.decode() for p in commit.parents],
        datasets=datasets or [],
    )


def log(
    name: str | None = None,
    rev: str | None = None,
    max_count: int | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    replicas: bool = False,
) -> list[LogEntry]:
    """Commits reachable from ``rev`` (default HEAD), newest first; with ``name``, only those changing it.

    With ``replicas``, only commits that changed where data lives: the set of live
    replica locations (host, directory, archive, path) of some dataset (or of ``name``)
    differs from every parent's. ``LogEntry.datasets`` then names those datasets.
    """
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        start = camp.resolve(rev)
        out: list[LogEntry] = []
        for commit in _touching(camp, start, name):
            if replicas:
                moved = _relocated(camp, commit, name)
                if not moved:
                    continue
                out.append(_entry(commit, moved))
            else:
                out.append(_entry(commit))
            if max_count is not None and len(out) >= max_count:
                break
        if name is not None and not out:
            raise BadInput(f"no dataset named {name!r} in the history of {rev or 'HEAD'}")
        return out


def _relocated(camp: CampaignRepo, commit: Commit, name: str | None) -> list[str]:
    """Datasets whose live replica locations in ``commit`` differ from those in every parent."""
    parents = [camp.tree_of(p) for p in commit.parents] or [None]
    found: set[str] | None = None
    for parent in parents:
        if name is not None:
            path = layout.dataset_dir(name)
            changes = [(path, camp.lookup(parent, path), camp.lookup(commit.tree, path))]
        else:
            changes = list(hm.changed_paths(camp, parent, commit.tree, layout.DATASETS))
        names = set()
        for path, old, new in changes:
            if not hm.is_dataset_folder(path):
                continue
            what = layout.dataset_name_of(path) or path
            before = hm.folder_dataset(camp, old, f"manifest of {what}")
            after = hm.folder_dataset(camp, new, f"manifest of {what}")
            if hm.live_locations(before) != hm.live_locations(after):
                either = after or before
                names.add(either.name if either is not None else what)
        found = names if found is None else found & names
    return sorted(found or ())


def _touching(camp: CampaignRepo, start: bytes, name: str | None) -> Iterator[Commit]:
    if name is None:
        yield from camp.walk(start)
        return
    path = layout.dataset_dir(name)
    for commit in camp.walk(start):
        mine = camp.lookup(commit.tree, path)
        parents = [camp.lookup(camp.tree_of(p), path) for p in commit.parents] or [None]
        if all(mine != p for p in parents):
            yield commit


@dataclass(frozen=True)
class Shown:
    """A commit and the datasets it holds."""

    commit: LogEntry
    campaign: str
    datasets: list[Dataset]
    recorded_by: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    """Dataset changed by this commit → the writers its trailers name (the Slurm jobs that recorded it)."""


def show(
    rev: str | None = None,
    names: list[str] | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Shown:
    """The datasets and replicas of a commit (all, or only ``names``)."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        oid = camp.resolve(rev)
        commit = camp.read_commit(oid)
        if names:
            datasets = []
            for n in names:
                ds = camp.dataset(n, oid)
                if ds is None:
                    raise BadInput(f"no dataset named {n!r} in {rev or 'HEAD'}")
                datasets.append(ds)
        else:
            datasets = sorted(camp.datasets(commit.tree), key=lambda d: d.name)
        return Shown(_entry(commit), camp.campaign(oid).name, datasets, _writers(camp, commit, datasets))


def _writers(camp: CampaignRepo, commit: Commit, datasets: list[Dataset]) -> dict[str, list[dict[str, str]]]:
    """Who recorded each dataset the commit changed, as its trailers say (nothing to read without trailers)."""
    message = commit.message.decode("utf-8", "replace")
    if not parse_blocks(message):
        return {}
    parent = camp.tree_of(commit.parents[0]) if commit.parents else None
    found: dict[str, list[dict[str, str]]] = {}
    for ds in datasets:
        path = layout.dataset_dir(ds.name)
        if camp.lookup(commit.tree, path) != camp.lookup(parent, path) and (by := recorded_by(message, ds.name)):
            found[ds.name] = by
    return found


# -- diff ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    """The semantic difference between two states of a campaign.

    ``old``/``new`` name the states (a revision as given, or ``staged``); ``old_commit`` /
    ``new_commit`` are their commit ids (None for the staged state). ``campaign`` lists
    changed fields of campaign.json.
    """

    old: str
    new: str
    old_commit: str | None
    new_commit: str | None
    datasets: list[hm.DatasetChange] = field(default_factory=list)
    hosts: list[hm.HostChange] = field(default_factory=list)
    timeseries: list[hm.SeriesChange] = field(default_factory=list)
    campaign: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing differs."""
        return not (self.datasets or self.hosts or self.timeseries or self.campaign)


def diff(
    rev1: str | None = None,
    rev2: str | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Diff:
    """What differs between two states: none given, HEAD → staged; one, REV1 → staged; two, REV1 → REV2.

    The staging area plays git's working tree (the data on disk is what ``camp status``
    compares). Only dataset folders whose tree ids differ are opened, so the cost
    follows the size of the change, not of the campaign.
    """
    if rev1 is None and rev2 is not None:
        raise BadInput("give REV1 before REV2")
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        old_commit = camp.resolve(rev1)
        new_commit = camp.resolve(rev2) if rev2 is not None else None
        old_tree = camp.tree_of(old_commit)
        new_tree = camp.tree_of(new_commit) if new_commit is not None else camp.staged_tree()
        result = Diff(
            old=rev1 or "HEAD",
            new=rev2 or "staged",
            old_commit=old_commit.decode(),
            new_commit=new_commit.decode() if new_commit is not None else None,
        )
        uuids: dict[str, str] = {}
        for path, a, b in hm.changed_paths(camp, old_tree, new_tree):
            _diff_path(camp, path, a, b, result, uuids)
        result.datasets[:] = sorted(hm.pair_renames(result.datasets, uuids), key=lambda c: c.name)
        return result


def _diff_path(camp: CampaignRepo, path: str, a: Entry | None, b: Entry | None, result: Diff,
               uuids: dict[str, str]) -> None:
    if hm.is_dataset_folder(path):
        what = f"manifest of {layout.dataset_name_of(path)}"
        old, new = hm.folder_dataset(camp, a, what), hm.folder_dataset(camp, b, what)
        if old is None and new is None:
            return
        if old is not None and new is None:
            uuids[old.name] = old.uuid
        if new is not None and old is None:
            uuids[new.name] = new.uuid
        change = hm.diff_dataset(old, new)
        if change.change != "modified" or change.fields or change.replicas or change.metadata:
            result.datasets.append(change)
        return
    top, _, rest = path.partition("/")
    blob_a = camp.read_blob(a[1]) if a is not None and a[0] != TREE_MODE else None
    blob_b = camp.read_blob(b[1]) if b is not None and b[0] != TREE_MODE else None
    if top == layout.HOSTS and rest.endswith(".json"):
        name = layout.decode_component(rest[:-5])
        ha = Host.loads(blob_a, what=path) if blob_a is not None else None
        hb = Host.loads(blob_b, what=path) if blob_b is not None else None
        if ha is not None or hb is not None:
            result.hosts.append(hm.diff_host(name, ha, hb))
    elif top == layout.TIMESERIES and rest.endswith(".json"):
        name = layout.decode_component(rest[:-5])
        sa = TimeSeries.loads(blob_a, what=path) if blob_a is not None else None
        sb = TimeSeries.loads(blob_b, what=path) if blob_b is not None else None
        if sa is not None or sb is not None:
            result.timeseries.append(hm.diff_series(name, sa, sb))
    elif path == layout.CAMPAIGN:
        result.campaign.append("campaign.json")
    else:
        result.campaign.append(path)


# -- whereis ------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEvent:
    """One event of a dataset's location history, with the commit that recorded it.

    ``commit`` is None for a change that is staged but not committed yet.
    """

    commit: str | None
    time: int
    timezone: int
    author: str
    message: str
    event: str
    replica: hm.ReplicaRef | None = None
    fields: list[str] = field(default_factory=list)
    recorded_by: list[dict[str, str]] = field(default_factory=list)
    """The provenance trailers the commit gives for this dataset: the Slurm jobs that recorded it."""


@dataclass(frozen=True)
class WhereIs:
    """Where a dataset lives now (staged state) and, on request, where it lived.

    ``state``: ``live``, ``deleted`` (tombstone at ``deltime``) or ``absent`` (known only
    from history: renamed or removed). ``replicas`` are the live ones.
    """

    name: str
    kind: str
    uuid: str
    state: str
    deltime: int
    replicas: list[hm.ReplicaRef]
    history: list[HistoryEvent] | None = None


def whereis(
    name: str,
    history: bool = False,
    rev: str | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> WhereIs:
    """Every live replica of dataset ``name`` (staged, or at ``rev``); with ``history``, where it was.

    The history walks only commits that changed the dataset's folder (oldest first) and
    compares each version with its parent's: replicas that appeared, were archived,
    changed or got a tombstone, with commit, date and author.
    """
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        start = camp.resolve(rev)
        ds = camp.dataset(name) if rev is None else camp.dataset(name, start)
        events: list[HistoryEvent] | None = None
        if history or ds is None:
            events = _location_history(camp, start, name, staged=rev is None)
            if ds is None and not events:
                raise BadInput(f"no dataset named {name!r} in {rev or 'the campaign'}")
        if ds is None:
            last = _last_version(camp, start, name)
            return WhereIs(name, last.kind if last else "", last.uuid if last else "", "absent", 0, [],
                           events if history else None)
        live = [hm.ReplicaRef.of(r) for r in ds.live_replicas()] if ds.live else []
        return WhereIs(ds.name, ds.kind, ds.uuid, "live" if ds.live else "deleted", ds.deltime, live,
                       events if history else None)


def _location_history(camp: CampaignRepo, start: bytes, name: str, staged: bool) -> list[HistoryEvent]:
    path = layout.dataset_dir(name)
    versions: dict[bytes, Dataset | None] = {}

    def version(entry: Entry | None) -> Dataset | None:
        if entry is None:
            return None
        if entry[1] not in versions:
            versions[entry[1]] = hm.folder_dataset(camp, entry, f"manifest of {name}")
        return versions[entry[1]]

    out: list[HistoryEvent] = []
    for oid in ancestry(camp, start):
        commit = camp.read_commit(oid)
        entry_here = camp.lookup(commit.tree, path)
        parent_entries = [camp.lookup(camp.tree_of(p), path) for p in commit.parents] or [None]
        if not all(entry_here != p for p in parent_entries):
            continue  # did not touch the dataset's folder
        mine = version(entry_here)
        parents = [version(e) for e in parent_entries]
        # A merge reports only what is new against every parent (each side's own commits
        # already told the rest).
        common: list[hm.Event] | None = None
        for parent in parents:
            evs = hm.replica_events(parent, mine)
            common = evs if common is None else [e for e in common if e in evs]
        entry = _entry(commit)
        by = recorded_by(entry.message, name) if common else []
        for ev in common or ():
            out.append(HistoryEvent(entry.id, entry.time, entry.timezone, entry.author,
                                    entry.message.split("\n", 1)[0], ev.event, ev.replica, ev.fields, by))
    if staged:
        head = camp.head()
        committed = camp.lookup(camp.tree_of(head), path)
        now = camp.current(path)
        if now != committed:
            for ev in hm.replica_events(version(committed), version(now)):
                out.append(HistoryEvent(None, 0, 0, "", "(staged, not committed)", ev.event, ev.replica,
                                        ev.fields))
    return out


def _last_version(camp: CampaignRepo, start: bytes, name: str) -> Dataset | None:
    path = layout.dataset_dir(name)
    for commit in _touching(camp, start, name):
        for tree in [commit.tree] + [camp.tree_of(p) for p in commit.parents]:
            ds = hm.folder_dataset(camp, camp.lookup(tree, path), f"manifest of {name}")
            if ds is not None:
                return ds
    return None
