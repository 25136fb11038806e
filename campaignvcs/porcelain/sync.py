"""push, fetch, pull: sharing a campaign's history (and its archive) through rclone remotes.

The verbs only: which remote (:mod:`campaignvcs.remote.config`), the order of uploads and
the checks on downloads (:mod:`campaignvcs.remote.sync`), the merge a pull makes
(:mod:`campaignvcs.treemerge`) and the state it leaves (:mod:`.merging`) live in their
own modules; ``remote add/list/remove`` is :mod:`.remotes` and ``clone`` :mod:`.cloning`.
The archive a push uploads and a pull rebuilds is built here, at the porcelain level,
and handed down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from campaignvcs.aca.read import read_provenance
from campaignvcs.config import load_user_config
from campaignvcs.errors import CampError
from campaignvcs.faults import fault
from campaignvcs.graph import is_ancestor, merge_base
from campaignvcs.hooks import run_hook
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.hooks import post_hook
from campaignvcs.porcelain.merging import (
    MERGE_HEAD,
    begin_merge,
    record_merge,
    recover_interrupted_merge,
    refresh_cache,
)
from campaignvcs.porcelain.workspace import commit_staged
from campaignvcs.remote import sync
from campaignvcs.remote.config import RemoteOptions, pick_remote, remote_options
from campaignvcs.remote.endpoint import Remote
from campaignvcs.remote.layout import RemoteLayout
from campaignvcs.remote.rclone import Rclone
from campaignvcs.remote.tracking import remote_state_dir
from campaignvcs.repo import CampaignRepo
from campaignvcs.transaction import Transaction
from campaignvcs.treemerge import merge_trees

Progress = Callable[[str, int, int], None]
"""(what, bytes done, bytes total): ``pack``, ``archive`` or ``fetch``."""

PULL_FAULT_POINTS = ("pull-mid-fast-forward", "pull-mid-merge", "pull-after-branch")
"""Where ``CAMP_FAULT`` kills a pull (tests), besides the fetch's points (remote.sync.FETCH_FAULT_POINTS)."""


def _remote(camp: CampaignRepo, name: str | None, env: Mapping[str, str]) -> Remote:
    """Remote ``name`` (else the default one) of this campaign, ready to use."""
    name, url = pick_remote(camp, name)
    return Remote(name, url, RemoteLayout(url, camp.campaign(camp.head()).name), Rclone(env))


# -- push ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    """What ``camp push`` did."""

    remote: str
    url: str
    old: str | None
    new: str
    up_to_date: bool
    objects: int
    pack_bytes: int
    archive_bytes: int
    bytes_sent: int
    warnings: list[str] = field(default_factory=list)
    archive: str = ""
    """How the archive sent was made: ``store copy``, ``patched``, ``built in full``; "" when none was sent."""


def push(remote: str | None = None, build: bool = True, repo: str | None = None, cwd: str | None = None,
         env: Mapping[str, str] | None = None, progress: Progress | None = None) -> PushResult:
    """Send the current branch's history, and its built archive, to a remote.

    Only objects the remote lacks travel (one pack). Refused when the remote has commits
    this clone lacks (pull first). ``CAMP_FAULT`` in ``env`` (tests only) kills the
    process at a named point, as ``kill -9`` would.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    warnings: list[str] = []
    with open_repo(repo, cwd, env) as camp:
        if os.path.exists(os.path.join(camp.camp_dir, MERGE_HEAD)):
            raise CampError("a merge is in progress: resolve it and 'camp commit' before pushing")
        head = camp.head()
        if head is None:
            raise CampError("nothing to push: the campaign has no commits")
        r = _remote(camp, remote, env)
        # pre-push can refuse (verify-before-push); it sees where the push goes.
        run_hook(camp, "pre-push", env, commit=head,
                 extra={"CAMP_REMOTE": r.name, "CAMP_REMOTE_URL": r.shown_url})
        options = remote_options(camp, r.name)
        how: list[str] = []
        builder = _archive_builder(camp, head, env, warnings, r.name, options, how.append) \
            if build and options.archive else None
        with r.rclone:
            out = sync.push(camp, r, head, builder, progress=progress)
    return PushResult(
        remote=r.name, url=r.shown_url, old=out.old.decode() if out.old else None, new=out.new.decode(),
        up_to_date=out.up_to_date, objects=out.objects, pack_bytes=out.pack_bytes,
        archive_bytes=out.aca_bytes, bytes_sent=out.pack_bytes + out.aca_bytes, warnings=warnings,
        archive=how[-1] if how and out.aca_bytes else "",
    )


def _archive_builder(camp: CampaignRepo, head: bytes, env: Mapping[str, str], warnings: list[str],
                     remote: str, options: RemoteOptions,
                     made: Callable[[str], None]) -> Callable[[str], str] | None:
    """A function that builds the archive of ``head`` for ``remote`` to a path, or None if build is unavailable.

    Never a full build when an earlier archive exists: the build starts from a copy of
    the store's archive (at ``head``, it is uploaded as it is) or of the archive this
    clone last pushed to ``remote`` (kept in ``.git/camp/remotes/<name>/``), and only
    the datasets changed since are rewritten. The result is kept for the next push;
    ``made`` is told how the archive came about. Defined here and handed down, so the
    core push never reaches back up into porcelain.
    """
    try:
        from campaignvcs.porcelain.archive import build
    except ImportError as exc:
        warnings.append(f"archive not pushed: camp build is not available ({exc})")
        return None
    kept = os.path.join(remote_state_dir(camp, remote), PUSHED_ARCHIVE)
    whole = not options.include and not options.exclude

    def run(path: str) -> str:
        have_kept = os.path.isfile(kept)
        if whole and _copy_store_archive(camp, head, env, path, only_at_head=have_kept) == head.decode():
            made("store copy")
            return path
        if have_kept:
            shutil.copyfile(kept, path)  # this remote's last archive: patched below
        # A temporary file for the upload, not a build of the store's archive: no build hooks.
        built = build(rev=head.decode(), output=path, repo=camp, cwd=camp.root, env=env, hooks=False,
                      include=options.include, exclude=options.exclude)
        warnings.extend(built.warnings)
        made("patched" if built.incremental else "built in full")
        _keep(built.path, kept)
        return built.path

    return run


PUSHED_ARCHIVE = "pushed.aca"
"""The archive last pushed to a remote, kept in its state folder so the next push patches it."""


def _keep(path: str, kept: str) -> None:
    """Keep the archive at ``path`` as ``kept`` (a hard link renamed into place; a copy across file systems)."""
    os.makedirs(os.path.dirname(kept), exist_ok=True)
    tmp = kept + ".tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, kept)


def _copy_store_archive(camp: CampaignRepo, head: bytes, env: Mapping[str, str], path: str,
                        only_at_head: bool = False) -> str | None:
    """Copy the store's archive to ``path`` if this repository built it with default options.

    Returns the commit it was built from (None: nothing copied). At the pushed commit
    (the build-on-commit hook keeps the store current) the copy is uploaded as it is;
    otherwise the push's build patches it. The copy, not the store's file, is checked,
    so a build replacing the store's archive meanwhile cannot slip a different commit in.
    With ``only_at_head`` (the push kept an archive of its own to patch) an archive of an
    older commit is not copied at all: at a million datasets that is 286 MiB for nothing.
    """
    store = load_user_config(env).campaign_store
    if not store:
        return None
    source = os.path.join(camp.root, store, camp.campaign(head).name + ".aca")
    if only_at_head and (read_provenance(source) or {}).get("commit") != head.decode():
        return None
    try:
        shutil.copyfile(source, path)
    except OSError:
        return None
    built = read_provenance(path) or {}
    wanted = {"repository": camp.root, "omit_deleted": "1", "exclude_kinds": "", "selection": ""}
    if built.get("commit") and all(built.get(k, "") == v for k, v in wanted.items()):
        return built["commit"]
    os.unlink(path)
    return None


# -- fetch --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    """What ``camp fetch`` received."""

    remote: str
    url: str
    old: str | None
    new: str | None
    packs: int
    objects: int
    bytes_received: int
    warnings: list[str] = field(default_factory=list)


def fetch(remote: str | None = None, repo: str | CampaignRepo | None = None, cwd: str | None = None,
          env: Mapping[str, str] | None = None, progress: Progress | None = None) -> FetchResult:
    """Download what the remote has and this clone lacks; record its branch as ``<remote>/main``."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        r = _remote(camp, remote, env)
        with r.rclone:
            return _fetch(camp, r, progress)


def _fetch(camp: CampaignRepo, r: Remote, progress: Progress | None) -> FetchResult:
    """Fetch from ``r`` into ``camp``, as a result with warnings."""
    out = sync.fetch(camp, r, progress)
    warnings = [f"removed {out.dropped}: an older camp recorded it; the remote's ref is recorded again "
                "once it checks out"] if out.dropped else []
    return FetchResult(r.name, r.shown_url, _hex(out.old), _hex(out.new), out.packs, out.objects,
                       out.bytes_received, warnings)


def _hex(oid: bytes | None) -> str | None:
    return oid.decode() if oid else None


# -- pull ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConflictInfo:
    """One conflicting manifest: dataset name (or tree path) and what conflicted."""

    name: str
    details: list[str]


@dataclass(frozen=True)
class PullResult:
    """What ``camp pull`` did: ``up to date``, ``fast-forward``, ``merged`` or ``conflicts``."""

    remote: str
    action: str
    old: str | None
    new: str | None
    fetched: FetchResult
    changed: int
    conflicts: list[ConflictInfo] = field(default_factory=list)
    archive: str | None = None
    warnings: list[str] = field(default_factory=list)


def pull(remote: str | None = None, build: bool = True, repo: str | None = None, cwd: str | None = None,
         env: Mapping[str, str] | None = None, progress: Progress | None = None) -> PullResult:
    """Fetch, then bring the remote's commits into the current branch.

    Fast-forwards when possible; otherwise merges manifest by manifest (replicas as
    unions, deletions win over stale copies) and commits the merge, or stops with the
    conflicts staged around and named (``camp resolve``, then ``camp commit``). Then
    rebuilds the archive into the campaign store, if one is configured. A pull killed
    part-way is completed by running it again: a merge it was staging is recognised and
    redone, and a store archive left at an older commit is rebuilt even when there is
    nothing new to pull. ``CAMP_FAULT`` in ``env`` (tests only) kills the process at one
    of :data:`PULL_FAULT_POINTS` or of the fetch's points.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    with open_repo(repo, cwd, env) as camp:
        with camp.transaction() as tx:
            recover_interrupted_merge(tx)
            if os.path.exists(os.path.join(camp.camp_dir, MERGE_HEAD)):
                raise CampError("a merge is in progress: 'camp resolve' the conflicts and 'camp commit', "
                                "or 'camp pull --abort'")
            if camp.staged_changes():
                raise CampError("you have staged changes: commit them first ('camp commit -m MESSAGE'), "
                                "then pull")
            r = _remote(camp, remote, env)
            with r.rclone:
                fetched = _fetch(camp, r, progress)
            ours, theirs = camp.head(), (fetched.new.encode() if fetched.new else None)
            if theirs is None or theirs == ours or (ours is not None and is_ancestor(camp, theirs, ours)):
                result = PullResult(r.name, "up to date", _hex(ours), _hex(ours), fetched, 0)
            elif ours is None or is_ancestor(camp, ours, theirs):
                changed = _fast_forward(tx, ours, theirs)
                result = PullResult(r.name, "fast-forward", _hex(ours), _hex(theirs), fetched, changed)
            else:
                result = _merge(tx, r.name, ours, theirs, fetched, env)
        if fetched.warnings:
            result = dataclasses.replace(result, warnings=[*fetched.warnings, *result.warnings])
        if result.action != "up to date":
            fault(camp.fault, "pull-after-branch")
        if not result.conflicts and build:
            result = _rebuild(result, camp, env)
        if not result.conflicts:
            result = _post_pull(camp, result, env)
    return result


def _post_pull(camp: CampaignRepo, result: PullResult, env: Mapping[str, str]) -> PullResult:
    """Run ``post-pull`` once the new commit is in place (and the lock released); a failure only warns."""
    if result.action == "up to date":
        return result
    extra = {"CAMP_REMOTE": result.remote, "CAMP_PULL_ACTION": result.action}
    if result.old:
        extra["CAMP_OLD_HEAD"] = result.old
    warned = post_hook(camp, "post-pull", env, commit=result.new, archive=result.archive, extra=extra)
    return dataclasses.replace(result, warnings=[*result.warnings, *warned]) if warned else result


def _fast_forward(tx: Transaction, ours: bytes | None, theirs: bytes) -> int:
    """Move the branch to ``theirs``, the staging area (and stat cache) first; returns datasets changed."""
    camp = tx.repo
    diff = merge_trees(camp, camp.tree_of(ours), camp.tree_of(ours), camp.tree_of(theirs))
    # Only no-op entries can be left (staged changes were refused), but against the new
    # branch they would undo its changes: the emptied staging area, already naming the
    # new commit, is on disk before the branch moves.
    tx.clear(theirs)
    tx.save()
    fault(camp.fault, "pull-mid-fast-forward")
    tx.move_branch(ours, theirs)
    return refresh_cache(camp, tx.cache, diff.changes)


def _merge(tx: Transaction, remote: str, ours: bytes, theirs: bytes, fetched: FetchResult,
           env: Mapping[str, str]) -> PullResult:
    """Merge ``theirs`` into ``ours``: commit when clean, else stage the clean part and name the conflicts."""
    camp = tx.repo
    base = merge_base(camp, ours, theirs)
    if base is None:
        raise CampError(f"cannot pull from {remote}: its history is unrelated to this campaign's "
                        "(it was not cloned from the same campaign)")
    tm = merge_trees(camp, camp.tree_of(base), camp.tree_of(ours), camp.tree_of(theirs))
    tx.clear()
    for path, entry in tm.changes.items():
        tx.stage(path, entry)
    begin_merge(camp, ours, theirs)  # before the staging area is saved: a killed pull is redone
    count = refresh_cache(camp, tx.cache, tm.changes)
    tx.save()
    tx.cache.set_token(camp.state_token())
    fault(camp.fault, "pull-mid-merge")
    conflicts = [ConflictInfo(c.name, list(c.details)) for c in tm.conflicts]
    record_merge(camp, theirs, tm.conflicts)  # after the staging area, MERGE_HEAD last
    if conflicts:
        return PullResult(remote, "conflicts", _hex(ours), None, fetched, count, conflicts)
    done = commit_staged(tx, f"Merge {remote}/main into {camp.branch}", env)
    return PullResult(remote, "merged", _hex(ours), done.id, fetched, count)


def _rebuild(result: PullResult, camp: CampaignRepo, env: Mapping[str, str]) -> PullResult:
    """Rebuild the archive into the campaign store after a pull, when a store is configured.

    After an up-to-date pull only when this repository's archive there is missing or was
    built from another commit (a pull killed before its rebuild, rerun).
    """
    store = load_user_config(env).campaign_store
    if not store or (result.action == "up to date" and _store_archive_current(camp, store, result.new)):
        return result
    try:
        from campaignvcs.porcelain.archive import build

        built = build(repo=camp, cwd=camp.root, env=env, elsewhere_if_taken=True)
    except (ImportError, CampError) as exc:
        return dataclasses.replace(result, warnings=[*result.warnings, f"archive not rebuilt: {exc}"])
    return dataclasses.replace(result, archive=built.path, warnings=[*result.warnings, *built.warnings])


def _store_archive_current(camp: CampaignRepo, store: str, head: str | None) -> bool:
    """Whether the store's archive of this campaign is at ``head``, or is not this repository's to rebuild."""
    if head is None:
        return True
    path = os.path.join(camp.root, store, camp.campaign(head.encode()).name + ".aca")
    if not os.path.exists(path):
        return False
    built = read_provenance(path)
    return built is None or built.get("repository") != camp.root or built.get("commit") == head
