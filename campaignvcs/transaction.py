"""A change to the staging area, and commits: what ``CampaignRepo.transaction`` hands its caller.

Every writer of the staging area (add, rm, mv, import, pull, resolve, commit) goes through
one of these, so the order that keeps a repository consistent after a kill is written
once: objects first, then the staging area that points at them, then the branch, and the
stat cache's token last.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from dulwich.objects import Commit

from campaignvcs.errors import CampError
from campaignvcs.faults import fault
from campaignvcs.gitobjects import BLOB_MODE, TREE_MODE, Entry
from campaignvcs.model import Dataset
from campaignvcs.statcache import StatCache

if TYPE_CHECKING:
    from campaignvcs.repo import CampaignRepo


class Transaction:
    """Changes to the staging area, and commits, made while :meth:`CampaignRepo.transaction` holds the lock.

    ``cache`` is the stat cache, valid for the state before the change; callers update it
    for what they stage (``cache.update``), the transaction records its new token last.
    """

    def __init__(self, repo: CampaignRepo, cache: StatCache) -> None:
        self.repo = repo
        self.cache = cache
        self._unsaved = False
        self._changed = False

    @property
    def entries(self) -> Mapping[str, Entry | None]:
        """What is staged (read-only)."""
        return self.repo.staging.entries

    def stage(self, path: str, entry: Entry | None) -> None:
        """Record that ``path`` becomes ``entry`` (None: removed) in the next commit."""
        self.repo.staging.stage(path, entry)
        self._unsaved = self._changed = True

    def stage_json(self, path: str, data: bytes | None) -> None:
        """Stage a manifest file at ``path`` (None: remove it)."""
        self.stage(path, None if data is None else (BLOB_MODE, self.repo.add_blob(data)))

    def stage_dataset(self, dataset: Dataset, tree_id: bytes | None = None) -> bytes:
        """Stage a dataset folder: manifest plus every embedded object it references; returns its tree id.

        The embedded objects were queued (``add_blob``) or stored before; ``tree_id``: the
        dataset's tree, queued already (``repo.dataset_tree``).
        """
        repo = self.repo
        if tree_id is None:
            tree_id = repo.dataset_tree(dataset)
        self.stage(repo.dataset_dir(dataset.name), (TREE_MODE, tree_id))
        return tree_id

    def remove_dataset(self, name: str) -> None:
        """Stage the removal of a dataset's whole folder."""
        self.stage(self.repo.dataset_dir(name), None)

    def clear(self, base: bytes | None = None) -> dict[str, Entry | None]:
        """Empty the staging area (against commit ``base`` when given); returns what was staged."""
        self._unsaved = self._changed = True
        return self.repo.staging.clear(base)

    def save(self) -> None:
        """Write queued objects, then the staging area that points at them (a durable point mid-change)."""
        self.repo.flush()
        fault(self.repo.fault, "stage-before-index")
        self.repo.staging.save()
        self._unsaved = False

    def move_branch(self, old: bytes | None, new: bytes) -> None:
        """Move the branch (compare-and-swap), e.g. a fast-forward; the staging area was saved first."""
        self.repo.set_branch(old, new)
        self._changed = True

    def commit(self, message: str, identity: bytes, when: int | None = None,
               merge_parents: Sequence[bytes] = ()) -> bytes:
        """Commit HEAD's tree with the staged changes; moves the branch by compare-and-swap.

        ``merge_parents`` follow HEAD as further parents (a merge commit). What is staged is
        saved first, so a commit killed before the branch moves leaves it staged.
        """
        repo = self.repo
        if self._unsaved:
            self.save()
        head = repo.head()
        tree = repo.build_tree(repo.tree_of(head), repo.staging.entries)
        commit = Commit()
        commit.tree = tree
        commit.parents = ([head] if head else []) + list(merge_parents)
        commit.author = commit.committer = identity
        now = int(time.time()) if when is None else when
        offset = -time.timezone if time.localtime(now).tm_isdst == 0 else -time.altzone
        commit.author_time = commit.commit_time = now
        commit.author_timezone = commit.commit_timezone = offset
        commit.message = message.encode("utf-8") if message.endswith("\n") else (message + "\n").encode("utf-8")
        repo.objects.add_object(commit)
        repo.flush()
        fault(repo.fault, "commit-before-ref")
        if not repo.refs.set_if_equals(b"HEAD", head, commit.id, committer=identity, timestamp=now,
                                       timezone=offset, message=b"commit: " + message.encode()[:60]):
            raise CampError("the branch moved while committing; nothing was committed, run the command again")
        fault(repo.fault, "commit-after-ref")
        repo.remember_head(commit.id)
        repo.staging.clear(commit.id)
        repo.staging.save()
        self._unsaved, self._changed = False, True
        return commit.id

    def finish(self) -> None:
        """Save what is unsaved, then record the stat cache's token (called by the transaction)."""
        if self._unsaved:
            self.save()
        if self._changed:
            self.cache.set_token(self.repo.state_token())
