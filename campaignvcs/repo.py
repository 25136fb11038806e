"""The campaign repository, assembled from parts: object store, refs, staging area, lock.

A campaign lives in ``<path>/.git`` with ``core.bare = true``: stock ``git log`` and
``git fsck`` work in ``<path>``, while the folder itself stays the scientist's (no
manifests are checked out over their data). As dulwich's ``BaseRepo(object_store, refs)``,
:class:`CampaignRepo` is built from its parts — :mod:`~campaignvcs.objectstore`,
:mod:`~campaignvcs.refs`, :mod:`~campaignvcs.staging`, :mod:`~campaignvcs.lockfile` — and
can be built in memory for unit tests (:meth:`CampaignRepo.in_memory`). Every change to the
staging area goes through :meth:`CampaignRepo.transaction`: lock held, objects written
before the staging area that points at them, stat cache kept in step.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from dulwich.config import ConfigFile, StackedConfig
from dulwich.objects import Commit, ShaFile
from dulwich.refs import RefsContainer

from campaignvcs import layout
from campaignvcs.errors import CampError, NotACampaign
from campaignvcs.gitobjects import BLOB_MODE, BLOB_TYPE, TREE_MODE, Entry
from campaignvcs.leftovers import describe_leftovers, sweep_repository
from campaignvcs.lockfile import RepoLock
from campaignvcs.model import Campaign, Dataset, Host, TimeSeries
from campaignvcs.objectstore import DiskObjectStore, MemoryObjectStore, ObjectStore, sweep_legacy_packs
from campaignvcs.refs import BRANCH, LOCK_WAIT_SECONDS, Refs, append_reflog, memory_refs
from campaignvcs.revisions import commit_of, resolve, walk
from campaignvcs.staging import StagingArea, staging_file
from campaignvcs.statcache import MEMORY, StatCache, state_token
from campaignvcs.tempfiles import atomic_write
from campaignvcs.transaction import Transaction
from campaignvcs.trees import apply_changes, iter_tree, lookup

if TYPE_CHECKING:
    from dulwich.object_store import BaseObjectStore
    from dulwich.repo import Repo

MARKER = b"campaignvcs repository format 1\n"
"""``.git/camp/campaign``: written last by init and clone, so a half-made folder is no campaign."""
STAT_CACHE = "statcache.sqlite"


def _has(cfg: ConfigFile, section: bytes, name: bytes) -> bool:
    try:
        cfg.get((section,), name)
    except KeyError:
        return False
    return True


def find_root(start: str) -> str:
    """The campaign folder at or above ``start`` (like git's discovery)."""
    path = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(path, ".git", "camp", "campaign")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise NotACampaign(f"not a campaign repository (or any parent up to /): {os.path.abspath(start)}")
        path = parent


class _NoLock:
    """The lock of a repository nobody else can see (in memory): always held by its owner."""

    path = ""
    held = False

    def acquire(self, wait: float) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False


class CampaignRepo:
    """A campaign repository: object store, refs, staging area and lock, plus reading manifests.

    Use :meth:`open`, :meth:`discover`, :meth:`init` or :meth:`in_memory`; close with
    :meth:`close` or a ``with`` block.
    """

    def __init__(self, root: str, objects: ObjectStore, refs: RefsContainer, staging_path: str | None,
                 lock: RepoLock | _NoLock, config: Callable[[], ConfigFile] = ConfigFile) -> None:
        self.root = root
        self.git_dir = os.path.join(root, ".git")
        self.camp_dir = os.path.join(self.git_dir, "camp")
        self.objects = objects
        """Where objects are queued, written and read."""
        self.refs = refs
        self.staging = StagingArea(staging_path, self.head)
        """Changed only inside :meth:`transaction`."""
        self._lock = lock
        self._config = config
        self._dulwich: Repo | None = None
        self._head: bytes | None = None
        self._head_known = False
        self._dirs: dict[str, str] = {}
        self._plain: bool | None = None
        self._fault: str | None = None

    # -- construction ------------------------------------------------------------------

    @classmethod
    def on_disk(cls, root: str) -> CampaignRepo:
        """The repository in ``root/.git``, whether or not it is a complete campaign yet."""
        root = os.path.abspath(root)
        git_dir = os.path.join(root, ".git")
        camp_dir = os.path.join(git_dir, "camp")
        repo: CampaignRepo

        def config() -> ConfigFile:
            path = os.path.join(git_dir, "config")
            try:
                return ConfigFile.from_path(path)
            except FileNotFoundError:
                cfg = ConfigFile()
                cfg.path = path
                return cfg

        objects = DiskObjectStore(os.path.join(git_dir, "objects"), lambda: repo._repo.object_store,
                                  lambda: repo._is_plain())
        refs = Refs(git_dir, git_dir, logger=lambda *a: repo._write_reflog(*a))
        lock = RepoLock(os.path.join(camp_dir, "lock"))
        refs.under_lock = lambda: lock.held
        repo = cls(root, objects, refs, staging_file(camp_dir), lock, config)
        return repo

    @classmethod
    def in_memory(cls, campaign: Campaign | None = None, identity: bytes = b"test <test@example.org>") -> CampaignRepo:
        """A repository that never touches a disk (unit tests); with ``campaign``, a first commit holds it."""
        repo = cls("/nonexistent-in-memory-campaign", MemoryObjectStore(), memory_refs(), None, _NoLock())
        if campaign is not None:
            with repo.transaction() as tx:
                tx.stage_json(layout.CAMPAIGN, campaign.dumps())
                tx.commit(f"Initialise campaign {campaign.name}\n", identity)
        return repo

    @classmethod
    def open(cls, path: str) -> CampaignRepo:
        """Open the campaign at exactly ``path``."""
        if not os.path.isfile(os.path.join(path, ".git", "camp", "campaign")):
            raise NotACampaign(f"not a campaign repository: {os.path.abspath(path)}")
        return cls.on_disk(path)

    @classmethod
    def discover(cls, start: str) -> CampaignRepo:
        """Open the campaign at or above ``start``."""
        return cls.on_disk(find_root(start))

    @classmethod
    def create(cls, path: str, host: str | None) -> CampaignRepo:
        """An empty repository without its campaign marker: :meth:`init` and clone fill it, then :meth:`mark`.

        Refuses a folder that already holds a git repository or an interrupted one.
        """
        path = os.path.abspath(path)
        git_dir = os.path.join(path, ".git")
        if os.path.exists(git_dir):
            if os.path.isfile(os.path.join(git_dir, "camp", "campaign")):
                raise CampError(f"{path} is already a campaign repository")
            if os.path.isdir(os.path.join(git_dir, "camp")):
                raise CampError(f"{path} holds a campaign whose camp init or clone was interrupted (no "
                                f".git/camp/campaign): remove it with rm -rf {git_dir} and run the command again")
            raise CampError(f"{path} is already a git repository")
        from dulwich.repo import Repo

        os.makedirs(path, exist_ok=True)
        repo = Repo.init(path)
        try:
            cfg = repo.get_config()
            cfg.set(b"core", b"bare", True)
            if host:
                cfg.set(b"camp", b"host", host.encode())
            cfg.write_to_path()
            repo.refs.set_symbolic_ref(b"HEAD", BRANCH)
        finally:
            repo.close()
        os.makedirs(os.path.join(git_dir, "camp"), exist_ok=True)
        return cls.on_disk(path)

    @classmethod
    def init(cls, path: str, campaign: Campaign, host: str | None, identity: bytes) -> CampaignRepo:
        """Create a campaign repository with a first commit holding ``campaign.json``.

        A failure (a full disk, Ctrl-C) removes what was made, so running it again works.
        """
        path = os.path.abspath(path)
        made_folder = not os.path.exists(path)
        try:
            self = cls.create(path, host)
        except CampError:
            raise
        except BaseException:
            cls.remove_unfinished(path, made_folder)
            raise
        try:
            with self.transaction() as tx:
                tx.stage_json(layout.CAMPAIGN, campaign.dumps())
                tx.commit(f"Initialise campaign {campaign.name}\n", identity)
            self.mark()
        except BaseException:
            self.close()
            cls.remove_unfinished(path, made_folder)
            raise
        return self

    @staticmethod
    def remove_unfinished(path: str, made_folder: bool) -> None:
        """Remove what a failed init or clone made (``.git``, and the folder when it made that too)."""
        shutil.rmtree(os.path.join(path, ".git"), ignore_errors=True)
        if made_folder:
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def mark(self) -> None:
        """Mark the folder a campaign: the last step of init and clone."""
        atomic_write(os.path.join(self.camp_dir, "campaign"), MARKER)

    def close(self) -> None:
        """Release the lock if held, the object store's files and dulwich's repository."""
        self._lock.release()
        self.objects.close()
        if self._dulwich is not None:
            self._dulwich.close()

    def __enter__(self) -> CampaignRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def fault(self) -> str | None:
        """A crash-test kill point (``CAMP_FAULT``, set by porcelain; see :mod:`campaignvcs.faults`)."""
        return self._fault

    @fault.setter
    def fault(self, point: str | None) -> None:
        """Set the kill point for this repository and its object store."""
        self._fault = point
        self.objects.fault = point

    # -- dulwich, for what camp does not do itself ----------------------------------------

    @property
    def _repo(self) -> Repo:
        """dulwich's repository, opened on first use (unusual configurations, prefix searches)."""
        if self._dulwich is None:
            from dulwich.repo import Repo

            sweep_legacy_packs(self.git_dir)
            self._dulwich = Repo(self.git_dir)
        return self._dulwich

    @property
    def store(self) -> BaseObjectStore:
        """dulwich's object store over the same folder (pack checks, membership of packed objects)."""
        return self._repo.object_store

    def _is_plain(self) -> bool:
        """True unless the config asks for what only dulwich's Repo does right.

        That is shared-repository permissions, other compression levels, fsync'ed object
        files, per-worktree config or a repository format camp does not know; then loose
        objects and reflog lines are written by dulwich.
        """
        if self._plain is not None:
            return self._plain
        cfg = self.config_file()
        special = [(b"core", b"sharedRepository"), (b"core", b"looseCompression"), (b"core", b"compression"),
                   (b"core", b"fsyncObjectFiles"), (b"extensions", b"worktreeconfig")]
        plain = not any(_has(cfg, sec, key) for sec, key in special)
        if _has(cfg, b"core", b"repositoryformatversion"):
            plain = plain and cfg.get(b"core", b"repositoryformatversion") in (b"0", b"1")
        self._plain = plain
        return plain

    def _write_reflog(self, ref: bytes, old_sha: bytes, new_sha: bytes, committer: bytes | None,
                      timestamp: int | None, timezone: int | None, message: bytes) -> None:
        """One reflog line; dulwich's Repo writes it when it must find the committer or fix permissions."""
        if committer is None or not self._is_plain():
            self._repo._write_reflog(ref, old_sha, new_sha, committer, timestamp, timezone, message)
        else:
            append_reflog(self.git_dir, ref, old_sha, new_sha, committer, timestamp, timezone, message)

    # -- configuration -----------------------------------------------------------------

    def config_file(self) -> ConfigFile:
        """``.git/config`` as read now (an empty one, ready to be written, before it exists)."""
        return self._config()

    def config_get(self, section: str, name: str) -> str | None:
        """A value from ``.git/config`` (local to this clone, never shared)."""
        try:
            return self.config_file().get(section.encode(), name.encode()).decode()
        except KeyError:
            return None

    def identity_from_config(self) -> bytes | None:
        """``Name <email>`` from git config (repo, then user), if both are set."""
        stack = StackedConfig([self.config_file(), *StackedConfig.default_backends()])
        try:
            name = stack.get(b"user", b"name")
            email = stack.get(b"user", b"email")
        except KeyError:
            return None
        return name + b" <" + email + b">"

    # -- lock and transactions ---------------------------------------------------------

    @property
    def lock_path(self) -> str:
        """The lock file a writer holds."""
        return self._lock.path

    @contextlib.contextmanager
    def lock(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the repository lock; waits briefly, then names the lock and its holder in the error.

        A lock whose holder is gone is broken (see :mod:`campaignvcs.lockfile`); once held,
        the leftovers of killed writers are swept before anything is written, and queued
        objects are written before it is released.
        """
        if self._lock.held:
            yield
            return
        self._lock.acquire(wait)
        # Another writer may have moved the branch or staged before we got the lock.
        self._head_known = False
        self.staging.forget()
        try:
            self.sweep_leftovers()
            yield
            self.objects.flush()
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def transaction(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[Transaction]:
        """Change the staging area (and commit): the only way to.

        Holds the lock (waiting up to ``wait`` seconds for it); the stat cache is validated
        against the state before the change. On success, queued objects, then the staging
        area, then the stat cache's token are written; on an exception nothing of the change is saved.
        """
        with self.lock(wait):
            cache = self.stat_cache()
            tx = Transaction(self, cache)
            try:
                yield tx
                tx.finish()
            except BaseException:
                self.staging.forget()
                raise
            finally:
                cache.close()

    def stat_cache(self) -> StatCache:
        """The stat cache, rebuilt first when it does not match the staged state (it is derived data)."""
        cache = StatCache(os.path.join(self.camp_dir, STAT_CACHE) if self.staging.path else MEMORY)
        token = self.state_token()
        if cache.token() != token:
            cache.replace_all(self.datasets(self.staged_tree()), token)
        return cache

    def state_token(self) -> str:
        """What the stat cache must have been built for: HEAD and the staging area."""
        return state_token(self.head(), self.staging.to_bytes())

    def sweep_leftovers(self) -> list[str]:
        """Remove temporaries of writers that are gone (see :mod:`campaignvcs.leftovers`); runs under the lock."""
        return sweep_repository(self.git_dir) if self.staging.path else []

    def leftovers(self) -> list[tuple[str, str]]:
        """(path, what it is and what clears it) of every lock and temporary a killed process may have left."""
        return describe_leftovers(self.git_dir, self._lock.path) if self.staging.path else []

    # -- objects (see ObjectStore) -------------------------------------------------------

    def add_blob(self, data: bytes, dense: bool = False) -> bytes:
        """Queue a blob; returns its hex id (``dense``: compressed or encrypted already)."""
        return self.objects.add(BLOB_TYPE, bytes(data), dense)

    def flush(self) -> None:
        """Write queued objects."""
        self.objects.flush()

    def read_object(self, oid: bytes) -> ShaFile:
        """An object from the queue or the store."""
        return self.objects.read_object(oid)

    def read_raw(self, oid: bytes) -> tuple[bytes, bytes]:
        """(type name, content) of an object: the fast path for whole-campaign passes."""
        return self.objects.read_raw(oid)

    def read_blob(self, oid: bytes) -> bytes:
        """The bytes of a blob."""
        return self.objects.read_blob(oid)

    def tree_entries(self, oid: bytes) -> dict[bytes, Entry]:
        """Entry name → (mode, hex id) of a tree."""
        return self.objects.tree_entries(oid)

    def read_commit(self, oid: bytes) -> Commit:
        """A commit object."""
        return commit_of(self.objects, oid)

    # -- refs and revisions ------------------------------------------------------------

    def head(self) -> bytes | None:
        """The commit id of the current branch, or None before the first commit.

        Read once per lock: under the lock only this object moves the branch, and it
        updates the cached value when it does.
        """
        if not self._head_known:
            try:
                self._head = self.refs[b"HEAD"]
            except KeyError:
                self._head = None
            self._head_known = True
        return self._head

    @property
    def branch(self) -> str:
        """Short name of the checked-out branch."""
        target = self.refs.get_symrefs().get(b"HEAD", BRANCH)
        return target.decode().removeprefix("refs/heads/")

    def resolve(self, rev: str | None) -> bytes:
        """The commit id for ``rev`` (see :mod:`campaignvcs.revisions`)."""
        return resolve(self.refs, self.objects, rev)

    def walk(self, start: bytes | None = None) -> Iterator[Commit]:
        """Commits reachable from ``start`` (default HEAD), newest first."""
        start = start or self.head()
        if start is not None:
            yield from walk(self.objects, start)

    def set_branch(self, old: bytes | None, new: bytes) -> None:
        """Move the current branch from ``old`` to ``new`` (compare-and-swap; the caller holds the lock)."""
        self._require_lock()
        if not self.refs.set_if_equals(b"HEAD", old, new):
            raise CampError("the branch moved concurrently; run the command again")
        self.remember_head(new)

    def remember_head(self, head: bytes) -> None:
        """Record where this object moved the branch (under the lock nobody else moves it)."""
        self._head, self._head_known = head, True

    def _require_lock(self) -> None:
        if not self._lock.held:
            raise RuntimeError("repository write without the lock")

    # -- trees -------------------------------------------------------------------------

    def lookup(self, tree_id: bytes | None, path: str) -> Entry | None:
        """The (mode, id) at ``path`` below ``tree_id``, or None."""
        return lookup(self.objects, tree_id, path)

    def tree_of(self, commit: bytes | None) -> bytes | None:
        """The root tree of a commit (None for None)."""
        return None if commit is None else self.read_commit(commit).tree

    def iter_tree(self, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, int, bytes]]:
        """Every blob below ``tree_id``, as (path, mode, id), depth first in tree order."""
        return iter_tree(self.objects, tree_id, prefix)

    def build_tree(self, base: bytes | None, changes: Mapping[str, Entry | None]) -> bytes:
        """Apply path → entry changes to tree ``base``; queues new trees, returns the root id."""
        return apply_changes(self.objects, base, changes)

    def staged_tree(self) -> bytes | None:
        """A tree id for HEAD plus staged changes (objects queued, not written)."""
        head_tree = self.tree_of(self.head())
        if not self.staging.entries:
            return head_tree
        return self.build_tree(head_tree, self.staging.entries)

    def staged_changes(self) -> dict[str, tuple[Entry | None, Entry | None]]:
        """Staged paths whose entry differs from HEAD: path → (in HEAD, staged)."""
        head_tree = self.tree_of(self.head())
        out = {}
        for path, entry in self.staging.entries.items():
            old = self.lookup(head_tree, path)
            if old != entry:
                out[path] = (old, entry)
        return out

    def current(self, path: str) -> Entry | None:
        """The entry at ``path`` as the next commit would have it (staged, else HEAD)."""
        return self.staging.current(path, lambda p: self.lookup(self.tree_of(self.head()), p),
                                    lambda tree, rest: self.lookup(tree, rest))

    # -- reading manifests -------------------------------------------------------------

    def campaign(self, commit: bytes | None = None) -> Campaign:
        """``campaign.json`` of a commit (default: as the next commit would have it)."""
        entry = self.current(layout.CAMPAIGN) if commit is None else self.lookup(self.tree_of(commit), layout.CAMPAIGN)
        if entry is None:
            raise CampError(f"{self.root}: campaign.json is missing")
        return Campaign.loads(self.read_blob(entry[1]))

    def dataset(self, name: str, commit: bytes | None = None) -> Dataset | None:
        """A dataset by name (default: staged state), or None."""
        path = self.dataset_dir(name) + "/" + layout.MANIFEST
        entry = self.current(path) if commit is None else self.lookup(self.tree_of(commit), path)
        if entry is None:
            return None
        return Dataset.loads(self.read_blob(entry[1]), what=f"manifest of {name}")

    def host(self, name: str, commit: bytes | None = None) -> Host | None:
        """A host manifest by short host name (default: staged state), or None."""
        path = layout.host_path(name)
        entry = self.current(path) if commit is None else self.lookup(self.tree_of(commit), path)
        return None if entry is None else Host.loads(self.read_blob(entry[1]), what=f"host {name}")

    def iter_manifests(self, tree_id: bytes | None, folder: str) -> Iterator[tuple[str, bytes]]:
        """(path, blob id) of every ``*.json`` manifest below ``folder`` of a tree."""
        entry = self.lookup(tree_id, folder)
        if entry is None or entry[0] != TREE_MODE:
            return
        for path, _mode, oid in self.iter_tree(entry[1], folder + "/"):
            if path.endswith(".json"):
                yield path, oid

    def datasets(self, tree_id: bytes | None) -> Iterator[Dataset]:
        """Every dataset manifest of a tree, in tree order (streamed)."""
        entry = self.lookup(tree_id, layout.DATASETS)
        if entry is None:
            return
        for path, _mode, oid in self.iter_tree(entry[1], layout.DATASETS + "/"):
            if path.endswith("/" + layout.MANIFEST):
                yield Dataset.loads(self.read_blob(oid), what=path)

    def hosts(self, tree_id: bytes | None) -> Iterator[Host]:
        """Every host manifest of a tree."""
        for path, oid in self.iter_manifests(tree_id, layout.HOSTS):
            yield Host.loads(self.read_blob(oid), what=path)

    def timeseries(self, tree_id: bytes | None) -> Iterator[TimeSeries]:
        """Every time-series manifest of a tree."""
        for path, oid in self.iter_manifests(tree_id, layout.TIMESERIES):
            yield TimeSeries.loads(self.read_blob(oid), what=path)

    def dataset_tree(self, dataset: Dataset) -> bytes:
        """Queue a dataset's folder tree (manifest plus the embedded objects it names); returns its id."""
        items = {layout.MANIFEST.encode(): (BLOB_MODE, self.add_blob(dataset.dumps()))}
        for entry_name, blob in layout.embedded_entries(dataset).items():
            items[entry_name.encode()] = (BLOB_MODE, blob.encode())
        return self.objects.add_tree(items)

    def dataset_dir(self, name: str) -> str:
        """:func:`layout.dataset_dir`, remembered: an add looks each name up, then stages it."""
        found = self._dirs.get(name)
        if found is None:
            found = self._dirs[name] = layout.dataset_dir(name)
        return found
