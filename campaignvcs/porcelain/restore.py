"""restore --staged: take datasets out of the staging area (``git restore --staged``).

A dataset that HEAD has goes back to HEAD's version (its staged change is dropped, the
data on disk is never touched); one that was only staged (``camp add`` of something
never committed) leaves the staging area altogether, as if it had never been added.
``camp rm`` of such a dataset does the same (:func:`unstage_new`): there is nothing to
tombstone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from campaignvcs.errors import BadInput, UsageError
from campaignvcs.model import Dataset
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class Restored:
    """What ``camp restore --staged`` did, per dataset name."""

    restored: list[str] = field(default_factory=list)
    """Back to HEAD's version."""
    unstaged: list[str] = field(default_factory=list)
    """Never committed: no longer staged at all."""
    unchanged: list[str] = field(default_factory=list)
    """Nothing was staged for them."""


def restore_staged(names: Sequence[str], repo: str | None = None, cwd: str | None = None,
                   env: Mapping[str, str] | None = None) -> Restored:
    """Drop the staged changes of datasets ``names`` (HEAD's version stays, or nothing)."""
    env = environ(env)
    if not names:
        raise UsageError("nothing to restore: give dataset names (camp status lists the staged ones)")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        head = camp.head()
        staged = camp.staged_changes()
        result = Restored()
        back: list[tuple[str, Dataset | None]] = []
        for name in dict.fromkeys(names):
            in_head = camp.dataset(name, head) if head is not None else None
            if camp.dataset_dir(name) not in staged:
                if in_head is None and camp.dataset(name) is None:
                    raise BadInput(f"no dataset named {name!r}")
                result.unchanged.append(name)
                continue
            back.append((name, in_head))
        _unstage(camp, back)
        for name, ds in back:
            (result.restored if ds is not None else result.unstaged).append(name)
        return result


def unstage_new(camp: CampaignRepo, names: Sequence[str]) -> list[str]:
    """Of ``names``, those HEAD does not have: taken out of the staging area (the caller holds the lock)."""
    head = camp.head()
    new = [n for n in dict.fromkeys(names) if head is None or camp.dataset(n, head) is None]
    _unstage(camp, [(n, None) for n in new])
    return new


def _unstage(camp: CampaignRepo, back: Sequence[tuple[str, Dataset | None]]) -> None:
    if not back:
        return
    head_tree = camp.tree_of(camp.head())
    with camp.transaction() as tx:
        for name, _ in back:
            path = camp.dataset_dir(name)
            tx.stage(path, camp.lookup(head_tree, path))
        tx.cache.update([ds for _, ds in back if ds is not None],
                        removed=[name for name, ds in back if ds is None])
