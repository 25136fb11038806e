"""Shards: staged work of writers that never wait for one another, gathered by the next commit.

Many writers (the tasks of a batch array on many nodes, dozens of local processes) record
into one campaign at once. Each writer reads its datasets and stages them into a staging
area of its own, in memory, against the branch as it found it (:func:`shard_transaction`,
an ordinary :class:`~campaignvcs.transaction.Transaction` whose staging area is private),
writes the objects, then one file, ``.git/camp/shards/<host>~<job>~<random>.shard``:
the commit it started from, the tree paths it changed and its provenance (see
:mod:`campaignvcs.provenance`). No lock is taken and nothing shared is rewritten, so no
writer waits for or refuses another.

Designed for shared parallel file systems (Lustre, GPFS, NFS): a shard is written under
a temporary name in the same folder and renamed (atomic there), so a reader sees a whole
shard or none, and a writer killed half-way leaves only a temporary that the next writer
sweeps (:mod:`campaignvcs.leftovers`) and objects nothing refers to. Names carry the host,
the job and 16 random hex digits, never a pid that another node would have to check; no
``fcntl`` lock is used.

``camp commit`` (under the repository lock: only the branch update is serialised)
gathers every shard (:func:`gather`): for each path a shard changed, the version at the
shard's starting commit is the base of a 3-way merge with what is staged now and the
shard's version (replica sets merge as unions, :mod:`campaignvcs.merge`); conflicts
stop the commit and name the shard. Gathering twice changes nothing, so a commit killed
before it removed the shards it gathered leaves nothing wrong behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from campaignvcs import layout
from campaignvcs.errors import CampError
from campaignvcs.faults import fault
from campaignvcs.gitobjects import TREE_MODE, Entry
from campaignvcs.history_model import folder_dataset
from campaignvcs.merge import merge_dataset
from campaignvcs.model import Dataset
from campaignvcs.staging import StagingArea
from campaignvcs.statcache import MEMORY, StatCache
from campaignvcs.tempfiles import atomic_write, remove_quietly
from campaignvcs.transaction import Transaction

if TYPE_CHECKING:
    from campaignvcs.repo import CampaignRepo

FOLDER = "shards"
"""Inside ``.git/camp``."""
SUFFIX = ".shard"
FORMAT = 1


def shard_dir(camp_dir: str) -> str:
    """Where a repository's shards live."""
    return os.path.join(camp_dir, FOLDER)


def _safe(text: str, limit: int = 64) -> str:
    """``text`` reduced to characters safe in a file name (no ``~``, the temporaries' separator)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:limit]


@dataclass(frozen=True)
class Shard:
    """One writer's staged work: what it changed against commit ``base``, and who it was."""

    path: str
    base: str | None
    entries: dict[str, Entry | None]
    provenance: dict[str, str] = field(default_factory=dict)
    host: str = ""
    created: int = 0

    @property
    def name(self) -> str:
        """The shard's file name."""
        return os.path.basename(self.path)

    @property
    def datasets(self) -> list[str]:
        """The datasets this shard changed."""
        return sorted(n for n in map(layout.dataset_name_of, self.entries) if n is not None)


def list_shards(camp_dir: str) -> list[str]:
    """Paths of the complete shards, oldest name first (temporaries start with a dot and are never listed)."""
    try:
        names = os.listdir(shard_dir(camp_dir))
    except FileNotFoundError:
        return []
    return sorted(os.path.join(shard_dir(camp_dir), n) for n in names
                  if n.endswith(SUFFIX) and not n.startswith("."))


def read_shard(path: str) -> Shard | None:
    """The shard at ``path``; None when it is gone (another commit gathered it)."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
        entries = {p: (None if v is None else (int(v[0]), v[1].encode())) for p, v in data["entries"].items()}
        return Shard(path, data.get("base"), entries, dict(data.get("provenance", {})), data.get("host", ""),
                     int(data.get("created", 0)))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise CampError(f"shard {path} is damaged ({exc}); move it away to commit without it") from None


def pending(camp_dir: str) -> list[Shard]:
    """Every shard waiting to be gathered."""
    return [s for s in map(read_shard, list_shards(camp_dir)) if s is not None]


@contextlib.contextmanager
def shard_transaction(repo: CampaignRepo) -> Iterator[Transaction]:
    """A transaction into a private, in-memory staging area against HEAD as it is now: no lock.

    The stat cache is a private, in-memory one (the shared one is the committer's, and
    SQLite must not be shared over NFS). Call :func:`save_shard` inside.
    """
    head = repo.head()
    shared = repo.staging
    repo.staging = StagingArea(None, lambda: head)
    cache = StatCache(MEMORY)
    try:
        yield Transaction(repo, cache)
    finally:
        cache.close()
        repo.staging = shared


def save_shard(tx: Transaction, provenance: Mapping[str, str], host: str, job: str) -> str | None:
    """Write the objects, then the shard of what ``tx`` staged (inside :func:`shard_transaction`).

    Returns the shard's path, None when nothing was staged.
    """
    repo = tx.repo
    entries = dict(repo.staging.entries)
    if not entries:
        return None
    repo.flush()
    fault(repo.fault, "shard-before-write")
    base = repo.staging.base
    folder = shard_dir(repo.camp_dir)
    os.makedirs(folder, exist_ok=True)
    name = f"{_safe(host)}~{_safe(job) or 'local'}~{os.urandom(8).hex()}{SUFFIX}"
    data = {"format": FORMAT, "base": base, "host": host, "created": time.time_ns(), "provenance": dict(provenance),
            "entries": {p: (None if e is None else [e[0], e[1].decode()]) for p, e in sorted(entries.items())}}
    path = os.path.join(folder, name)
    atomic_write(path, json.dumps(data, indent=0).encode())  # not sorted: provenance keeps its order
    return path


@dataclass
class Gathered:
    """What :func:`gather` staged: the shard files read and, per shard, its provenance and datasets."""

    paths: list[str] = field(default_factory=list)
    groups: list[tuple[dict[str, str], list[str]]] = field(default_factory=list)


def gather(tx: Transaction) -> Gathered:
    """Stage every shard into the staging area (under the lock); raises naming the conflicts, staging nothing."""
    repo = tx.repo
    shards = pending(repo.camp_dir)
    out = Gathered()
    if not shards:
        return out
    repo.objects.refresh()  # packs the writers added since this process first read one
    conflicts: list[str] = []
    changed: dict[str, Dataset] = {}
    bases: dict[str | None, bytes | None] = {}
    for shard in shards:
        if shard.base not in bases:
            bases[shard.base] = repo.tree_of(shard.base.encode()) if shard.base else None
        names: list[str] = []
        for path, theirs in sorted(shard.entries.items()):
            ours = repo.current(path)
            if ours == theirs:
                continue
            name = layout.dataset_name_of(path)
            base = repo.lookup(bases[shard.base], path)
            what = f"manifest of {name} in shard {shard.name}"
            if ours == base:
                tx.stage(path, theirs)
                merged = folder_dataset(repo, theirs, what) if name is not None else None
            elif name is not None and all(e is None or e[0] == TREE_MODE for e in (base, ours, theirs)):
                result = merge_dataset(folder_dataset(repo, base, what), folder_dataset(repo, ours, what),
                                       folder_dataset(repo, theirs, what))
                if result.conflicts:
                    conflicts.append(f"{name}: {'; '.join(result.conflicts)} (shard {shard.path})")
                    continue
                merged = result.value
                if merged is None:
                    tx.stage(path, None)
                else:
                    tx.stage_dataset(merged)
            elif path.startswith(layout.HOSTS + "/"):
                continue  # a host manifest another writer created first: keep that one
            else:
                conflicts.append(f"{path}: changed by shard {shard.path} and since its start")
                continue
            if name is not None:
                names.append(name)
                if merged is not None:
                    changed[name] = merged
        out.paths.append(shard.path)
        out.groups.append((shard.provenance, names))
    if conflicts:
        more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
        raise CampError(f"cannot gather the shards, conflict in dataset {conflicts[0]}{more}; nothing was "
                        "committed: move that shard away, then camp add the dataset again")
    if changed:
        tx.cache.update(changed.values())
    return out


def remove(paths: list[str]) -> None:
    """Remove gathered shards (after the branch moved; a shard gathered twice changes nothing)."""
    remove_quietly(*paths)
