"""Merge state a pull leaves: MERGE_HEAD, the conflicts, resolve and abort.

A pull that conflicts leaves ``.git/camp/MERGE_HEAD`` and ``.git/camp/CONFLICTS`` until
``camp resolve`` and ``camp commit`` (or ``camp pull --abort``); a pull killed while it
merges is recognised by ``.git/camp/MERGE_PENDING`` and redone by the next pull. This
module owns those files. ``camp status`` and ``camp commit`` (porcelain.workspace) read
them through :func:`merge_head`, :func:`unresolved`, :func:`merge_parents` and
:func:`end_merge`, so it must never import workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from campaignvcs import layout
from campaignvcs.errors import BadInput, CampError, ExitStatus
from campaignvcs.gitobjects import Entry
from campaignvcs.graph import is_ancestor
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo
from campaignvcs.statcache import StatCache
from campaignvcs.tempfiles import atomic_write
from campaignvcs.transaction import Transaction

if TYPE_CHECKING:  # status and commit read the merge state without loading the merge code
    from campaignvcs.treemerge import Conflict

MERGE_HEAD = "MERGE_HEAD"
CONFLICTS = "CONFLICTS"
MERGE_PENDING = "MERGE_PENDING"
"""Written before a pull stages a merge: what it merges and the staging area it wrote."""


class MergeConflict(CampError):
    """A pull left conflicts to resolve."""

    exit_code = ExitStatus.CONFLICT


# -- reading the state (status, commit) --------------------------------------------------------


def merge_head(camp: CampaignRepo) -> bytes | None:
    """The commit a pull is merging (``.git/camp/MERGE_HEAD``), or None."""
    try:
        with open(os.path.join(camp.camp_dir, MERGE_HEAD), "rb") as f:
            value = f.read().strip()
    except FileNotFoundError:
        return None
    return value or None


def unresolved(camp: CampaignRepo) -> list[str]:
    """Names of the conflicts a pull left that are not resolved yet."""
    if merge_head(camp) is None:
        return []
    return sorted(_read_conflicts(camp))


def merge_parents(camp: CampaignRepo) -> list[bytes]:
    """Extra parents for the next commit: the merged commit, if a merge is in progress.

    Refuses while conflicts are unresolved, so ``camp commit`` cannot record half a merge.
    """
    head = merge_head(camp)
    if head is None:
        return []
    left = unresolved(camp)
    if left:
        shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        raise MergeConflict(f"cannot commit: {len(left)} unresolved conflict(s): {shown} "
                            "(camp resolve NAME --ours|--theirs)")
    return [head]


def end_merge(camp: CampaignRepo) -> None:
    """Forget the merge state (after the merge commit, or on abort)."""
    for name in (MERGE_HEAD, CONFLICTS, MERGE_PENDING):
        try:
            os.unlink(os.path.join(camp.camp_dir, name))
        except FileNotFoundError:
            pass


# -- writing it (pull) -------------------------------------------------------------------------


def begin_merge(camp: CampaignRepo, ours: bytes, theirs: bytes) -> None:
    """Record that a pull is about to save the staging area it merged (``MERGE_PENDING``).

    Written before the staging area: a pull killed from here on is recognised by the next
    pull (the staging area still being exactly this one) and redone.
    """
    pending = {"ours": ours.decode(), "theirs": theirs.decode(), "staging": _staging_digest(camp)}
    atomic_write(os.path.join(camp.camp_dir, MERGE_PENDING), json.dumps(pending).encode() + b"\n")


def record_merge(camp: CampaignRepo, theirs: bytes, conflicts: Iterable[Conflict]) -> None:
    """Write the conflicts, then ``MERGE_HEAD`` last (after the staging area was saved).

    A crash before ``MERGE_HEAD`` never leaves a merge commit that claims changes it lacks.
    With conflicts, ``MERGE_PENDING`` goes: from here they are the user's to resolve.
    """
    conflicts = list(conflicts)
    _write_conflicts(camp, {c.name: {"path": c.path, "ours": _entry_json(c.ours),
                                     "theirs": _entry_json(c.theirs), "details": list(c.details)}
                            for c in conflicts})
    atomic_write(os.path.join(camp.camp_dir, MERGE_HEAD), theirs + b"\n")
    if conflicts:
        _forget_pending(camp)


def recover_interrupted_merge(tx: Transaction) -> bool:
    """Undo what a pull killed while merging left; True when there was something to undo.

    A ``MERGE_HEAD`` the branch already contains is left from a merge commit whose state
    was not yet removed: it goes. ``MERGE_PENDING`` names the staging area that pull
    wrote. When it is still exactly that, nobody has worked on it since: it is emptied
    and any merge state forgotten, so the pull can start again. Otherwise the user has
    moved on (committed it, resolved conflicts, staged other changes) and only the
    marker goes.
    """
    camp = tx.repo
    merging, head = merge_head(camp), camp.head()
    if merging is not None and head is not None and merging != head:
        try:
            committed = is_ancestor(camp, merging, head)
        except CampError:
            committed = False
        if committed:  # killed after the merge commit, before its state was removed
            end_merge(camp)
            return True
    path = os.path.join(camp.camp_dir, MERGE_PENDING)
    try:
        with open(path, "rb") as f:
            pending = json.loads(f.read())
    except FileNotFoundError:
        return False
    except ValueError:
        pending = {}
    if not isinstance(pending, dict) or pending.get("staging") != _staging_digest(camp):
        _forget_pending(camp)
        return False
    _reset_staging(tx)
    end_merge(camp)
    return True


def refresh_cache(camp: CampaignRepo, cache: StatCache, changes: Iterable[str]) -> int:
    """Update the stat cache rows of the datasets at changed paths; returns how many changed."""
    datasets, removed = [], []
    for path in changes:
        name = layout.dataset_name_of(path)
        if name is None:
            continue
        ds = camp.dataset(name)
        if ds is None:
            removed.append(name)
        else:
            datasets.append(ds)
    cache.update(datasets, removed)
    return len(datasets) + len(removed)


# -- the verbs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveResult:
    """A conflict resolved by taking one side; how many remain."""

    name: str
    side: str
    remaining: list[str]


def resolve(name: str, side: str, repo: str | CampaignRepo | None = None, cwd: str | None = None,
            env: Mapping[str, str] | None = None) -> ResolveResult:
    """Resolve conflict ``name`` by staging our (``ours``) or their (``theirs``) side of it.

    Everything of that manifest that merged cleanly (e.g. replicas only one side added)
    is kept either way; only the conflicting values come from the chosen side.
    """
    if side not in ("ours", "theirs"):
        raise BadInput(f"invalid side: {side} (ours or theirs)")
    with open_repo(repo, cwd, environ(env)) as camp, camp.transaction() as tx:
        if merge_head(camp) is None:
            raise CampError("no merge in progress: nothing to resolve")
        conflicts = _read_conflicts(camp)
        item = conflicts.get(name)
        if item is None:
            known = ", ".join(sorted(conflicts)) or "none left"
            raise BadInput(f"no conflict named {name} (conflicts: {known})")
        path = str(item["path"])
        tx.stage(path, _entry_from_json(item[side]))  # type: ignore[arg-type]
        refresh_cache(camp, tx.cache, [path])
        tx.save()
        del conflicts[name]
        _write_conflicts(camp, conflicts)
        return ResolveResult(name, side, sorted(conflicts))


def abort_merge(repo: str | CampaignRepo | None = None, cwd: str | None = None,
                env: Mapping[str, str] | None = None) -> str:
    """Give up a conflicted (or killed) pull: empty the staging area and forget the merge; returns HEAD."""
    with open_repo(repo, cwd, environ(env)) as camp, camp.transaction() as tx:
        if merge_head(camp) is None and not recover_interrupted_merge(tx):
            raise CampError("no merge in progress")
        _reset_staging(tx)
        end_merge(camp)
        head = camp.head()
        return head.decode() if head else ""


# -- helpers -----------------------------------------------------------------------------------


def _reset_staging(tx: Transaction) -> None:
    """Empty the staging area, keeping the stat cache in step."""
    staged = tx.clear()
    refresh_cache(tx.repo, tx.cache, staged)


def _staging_digest(camp: CampaignRepo) -> str:
    return hashlib.sha1(camp.staging.to_bytes()).hexdigest()


def _forget_pending(camp: CampaignRepo) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(camp.camp_dir, MERGE_PENDING))


def _entry_json(entry: Entry | None) -> list[object] | None:
    return None if entry is None else [entry[0], entry[1].decode()]


def _entry_from_json(value: list[object] | None) -> Entry | None:
    return None if value is None else (int(value[0]), str(value[1]).encode())  # type: ignore[call-overload]


def _read_conflicts(camp: CampaignRepo) -> dict[str, dict[str, object]]:
    path = os.path.join(camp.camp_dir, CONFLICTS)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise CampError(f"{path} is corrupt (camp pull --abort starts over)") from None
    return data if isinstance(data, dict) else {}


def _write_conflicts(camp: CampaignRepo, conflicts: Mapping[str, object]) -> None:
    atomic_write(os.path.join(camp.camp_dir, CONFLICTS),
                 json.dumps(conflicts, sort_keys=True, indent=1).encode() + b"\n")
