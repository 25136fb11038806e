"""remote add/list/remove, push, fetch, pull, clone, resolve: sharing a campaign through rclone.

Remotes are stored in the clone's ``.git/config`` as ``[camp-remote "NAME"] url = ...``
(not git's ``[remote]``, so stock git is not confused by URLs it cannot use), with any
credentials shown as ``***`` there; the URL with its credentials lives in
``.git/camp/credentials`` (mode 0600), so no world-readable file holds a secret whatever
git or dulwich do to ``.git/config``. What camp knows about a remote lives in
``.git/camp/remotes/<name>/`` and ``refs/remotes/<name>/main``. A pull that conflicts
leaves ``.git/camp/MERGE_HEAD`` and ``.git/camp/CONFLICTS`` until ``camp resolve`` and
``camp commit`` (or ``camp pull --abort``); a pull killed while it merges is recognised
by ``.git/camp/MERGE_PENDING`` and redone by the next pull.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from campaignvcs import layout
from campaignvcs.errors import BadInput, CampError, ExitStatus, RepoLocked
from campaignvcs.faults import fault
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo, Transaction
from campaignvcs.tempfiles import atomic_write

if TYPE_CHECKING:
    from campaignvcs.remote.endpoint import Remote

Progress = Callable[[str, int, int], None]
"""(what, bytes done, bytes total): ``pack``, ``archive`` or ``fetch``."""

SECTION = b"camp-remote"
CREDENTIALS = "credentials"
"""``.git/camp/credentials``: remote name → URL with credentials (JSON, mode 0600)."""
MERGE_HEAD = "MERGE_HEAD"
CONFLICTS = "CONFLICTS"
MERGE_PENDING = "MERGE_PENDING"
"""Written before a pull stages a merge: what it merges and the staging area it wrote."""
PULL_FAULT_POINTS = ("pull-mid-fast-forward", "pull-mid-merge", "pull-after-branch")
"""Where ``CAMP_FAULT`` kills a pull (tests), besides the fetch's points (remote.sync.FETCH_FAULT_POINTS)."""


class MergeConflict(CampError):
    """A pull left conflicts to resolve."""

    exit_code = ExitStatus.CONFLICT


# -- remote configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteInfo:
    """A configured remote (URL shown with credentials redacted)."""

    name: str
    url: str


def _config(camp: CampaignRepo):  # type: ignore[no-untyped-def]
    from dulwich.config import ConfigFile

    return ConfigFile.from_path(os.path.join(camp.git_dir, "config"))


def _credentials_path(git_dir: str) -> str:
    return os.path.join(git_dir, "camp", CREDENTIALS)


def _read_credentials(git_dir: str) -> dict[str, str]:
    try:
        with open(_credentials_path(git_dir), "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CampError(f"cannot read the remote credentials {_credentials_path(git_dir)} ({exc})") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_credentials(git_dir: str, creds: Mapping[str, str]) -> None:
    """Write the credentials file, 0600 whatever the umask (atomically: a reader never sees half)."""
    path = _credentials_path(git_dir)
    if not creds:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    atomic_write(path, json.dumps(dict(creds), sort_keys=True, indent=1).encode() + b"\n", mode=0o600)


def _load_remotes(camp: CampaignRepo) -> tuple[dict[str, str], list[str]]:
    """(name → URL with credentials, names whose credentials are missing), migrating old configs.

    A URL in ``.git/config`` that still holds credentials (camp before 0.2 kept them there)
    is moved to the credentials file on first use, under the repository lock; when
    another camp process holds the lock, it is used as it is and moved next time.
    """
    cfg = _config(camp)
    shown: dict[str, str] = {}
    for section in cfg.sections():
        if len(section) == 2 and section[0] == SECTION:
            try:
                shown[section[1].decode()] = cfg.get(section, b"url").decode()
            except KeyError:
                try:
                    shown[section[1].decode()] = base64.b64decode(cfg.get(section, b"url64")).decode()
                except (KeyError, ValueError):
                    continue
    if not shown:
        return {}, []
    from campaignvcs.remote.rclone import redact  # only here: camp status without remotes never loads it

    exposed = {n: u for n, u in shown.items() if redact(u) != u}
    if exposed:
        _move_credentials(camp, exposed)
    creds = _read_credentials(camp.git_dir) if any(_redacted(u) for u in shown.values()) else {}
    out, missing = {}, []
    for name, url in shown.items():
        full = creds.get(name)
        if full is not None and redact(full) == url:
            out[name] = full
        else:
            out[name] = url
            if _redacted(url):
                missing.append(name)
    return out, missing


def _redacted(url: str) -> bool:
    """Whether ``url`` is a shown form whose credentials were replaced by ``***``."""
    return "=***" in url or ":***@" in url


def _move_credentials(camp: CampaignRepo, exposed: Mapping[str, str]) -> bool:
    """Move credentials from ``.git/config`` to the 0600 file; False when the lock is busy (next time, then)."""
    try:
        with camp.lock(wait=0.0):
            cfg = _config(camp)
            for name, url in exposed.items():
                _set_url(cfg, name, url)
            cfg.write_to_path()
    except RepoLocked:
        with contextlib.suppress(OSError):  # meanwhile, at least nobody else reads them
            os.chmod(os.path.join(camp.git_dir, "config"), 0o600)
        return False
    return True


def _remotes(camp: CampaignRepo) -> dict[str, str]:
    return _load_remotes(camp)[0]


def _set_url(cfg, name: str, url: str) -> None:  # type: ignore[no-untyped-def]
    """Store a remote's URL, its credentials apart.

    ``.git/config`` gets the URL with credentials shown as ``***``, and
    ``.git/camp/credentials`` (0600) the whole URL when it holds any.
    The credentials file is written first: a process killed in between leaves an unused
    entry, never a URL that lost its password. One URL with ';' goes base64-encoded as
    ``url64``: dulwich writes a value holding ';' unquoted, and git config reads ';' as
    the start of a comment, so such a URL would come back cut short (an rclone connection
    string or a folder name may contain ';').
    """
    from campaignvcs.remote.rclone import redact

    git_dir = os.path.dirname(os.path.abspath(cfg.path))
    shown = redact(url)
    creds = _read_credentials(git_dir)
    wanted = dict(creds)
    if shown != url:
        wanted[name] = url
    else:
        wanted.pop(name, None)
    if wanted != creds:
        _write_credentials(git_dir, wanted)
    section = (SECTION, name.encode())
    for key in (b"url", b"url64"):
        with contextlib.suppress(KeyError):
            del cfg[section][key]
    if ";" in shown:
        cfg.set(section, b"url64", base64.b64encode(shown.encode()))
    else:
        cfg.set(section, b"url", shown.encode())


def remote_add(name: str, url: str, repo: str | None = None, cwd: str | None = None,
               env: Mapping[str, str] | None = None) -> RemoteInfo:
    """Add remote ``name`` at ``url`` (any rclone path; a relative folder is made absolute)."""
    from campaignvcs.remote.layout import normalize_url, validate_remote_name
    from campaignvcs.remote.rclone import redact

    env = environ(env)
    cwd = cwd or os.getcwd()
    validate_remote_name(name)
    url = normalize_url(url, cwd)
    with open_repo(repo, cwd, env) as camp, camp.lock():
        if name in _remotes(camp):
            raise BadInput(f"remote {name} already exists (camp remote remove {name} first)")
        cfg = _config(camp)
        _set_url(cfg, name, url)
        cfg.write_to_path()
    return RemoteInfo(name, redact(url))


def remote_list(repo: str | None = None, cwd: str | None = None,
                env: Mapping[str, str] | None = None) -> list[RemoteInfo]:
    """The configured remotes, by name."""
    from campaignvcs.remote.rclone import redact

    with open_repo(repo, cwd, environ(env)) as camp:
        return [RemoteInfo(n, redact(u)) for n, u in sorted(_remotes(camp).items())]


def remote_remove(name: str, repo: str | None = None, cwd: str | None = None,
                  env: Mapping[str, str] | None = None) -> RemoteInfo:
    """Forget remote ``name`` here (nothing on the remote is touched)."""
    from campaignvcs.remote.rclone import redact
    from campaignvcs.remote.tracking import remote_state_dir, tracking_ref

    with open_repo(repo, cwd, environ(env)) as camp, camp.lock():
        url = _remotes(camp).get(name)
        if url is None:
            raise BadInput(f"no such remote: {name}")
        cfg = _config(camp)
        del cfg[(SECTION, name.encode())]
        cfg.write_to_path()
        creds = _read_credentials(camp.git_dir)
        if creds.pop(name, None) is not None:
            _write_credentials(camp.git_dir, creds)
        camp.refs.remove_if_equals(tracking_ref(name), None)
        shutil.rmtree(remote_state_dir(camp, name), ignore_errors=True)
    return RemoteInfo(name, redact(url))


def _pick_remote(camp: CampaignRepo, name: str | None, use: bool = True) -> tuple[str, str]:
    """(name, URL with credentials) of remote ``name``, else origin, else the only one.

    With ``use``, a remote whose credentials are missing is refused here rather than
    handed to rclone with ``***`` in place of a password.
    """
    remotes, missing = _load_remotes(camp)
    if name is None:
        if "origin" in remotes:
            name = "origin"
        elif len(remotes) == 1:
            name = next(iter(remotes))
        else:
            raise BadInput("no remote given and none named origin (camp remote add origin URL)")
    url = remotes.get(name)
    if url is None:
        raise BadInput(f"no such remote: {name} (camp remote list shows the remotes)")
    if use and name in missing:
        raise CampError(f"the credentials of remote {name} are missing from {_credentials_path(camp.git_dir)}: "
                        f"'camp remote remove {name}', then 'camp remote add {name} URL' again")
    return name, url


def _remote(camp: CampaignRepo, name: str | None, env: Mapping[str, str], archive: str | None = None) -> Remote:
    from campaignvcs.remote.layout import RemoteLayout
    from campaignvcs.remote.rclone import Rclone
    from campaignvcs.remote.endpoint import Remote

    name, url = _pick_remote(camp, name)
    archive = archive or camp.campaign(camp.head()).name
    return Remote(name, url, RemoteLayout(url, archive), Rclone(env))


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


def push(remote: str | None = None, build: bool = True, repo: str | None = None, cwd: str | None = None,
         env: Mapping[str, str] | None = None, progress: Progress | None = None) -> PushResult:
    """Send the current branch's history, and its built archive, to a remote.

    Only objects the remote lacks travel (one pack). Refused when the remote has commits
    this clone lacks (pull first). ``CAMP_FAULT`` in ``env`` (tests only) kills the
    process at a named point, as ``kill -9`` would.
    """
    from campaignvcs.remote import sync

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
        from campaignvcs.hooks import run_hook

        # pre-push can refuse (verify-before-push); it sees where the push goes.
        run_hook(camp, "pre-push", env, commit=head, extra={"CAMP_REMOTE": r.name, "CAMP_REMOTE_URL": r.shown_url})
        builder = _archive_builder(camp.root, head, env, warnings) if build else None
        with r.rclone:
            out = sync.push(camp, r, head, builder, progress=progress)
    return PushResult(
        remote=r.name, url=r.shown_url, old=out.old.decode() if out.old else None, new=out.new.decode(),
        up_to_date=out.up_to_date, objects=out.objects, pack_bytes=out.pack_bytes,
        archive_bytes=out.aca_bytes, bytes_sent=out.pack_bytes + out.aca_bytes, warnings=warnings,
    )


def _archive_builder(root: str, head: bytes, env: Mapping[str, str],
                     warnings: list[str]) -> Callable[[str], str] | None:
    """A function that builds the archive of ``head`` to a path, or None if build is unavailable."""
    try:
        from campaignvcs.porcelain.archive import build
    except ImportError as exc:
        warnings.append(f"archive not pushed: camp build is not available ({exc})")
        return None

    def run(path: str) -> str:
        if _copy_store_archive(root, head, env, path) == head.decode():
            return path
        # A temporary file for the upload, not a build of the store's archive: no build hooks.
        # Started from the store's copy, the build only rewrites the datasets changed since.
        return build(rev=head.decode(), output=path, repo=root, cwd=root, env=env, hooks=False).path

    return run


def _copy_store_archive(root: str, head: bytes, env: Mapping[str, str], path: str) -> str | None:
    """Copy the store's archive to ``path`` if this repository built it with default options.

    Returns the commit it was built from (None: nothing copied). At the pushed commit
    (the build-on-commit hook keeps the store current) the copy is uploaded as it is;
    otherwise the push's build patches it. The copy, not the store's file, is checked,
    so a build replacing the store's archive meanwhile cannot slip a different commit in.
    """
    from campaignvcs.aca.read import read_provenance
    from campaignvcs.config import load_user_config

    store = load_user_config(env).campaign_store
    if not store:
        return None
    with open_repo(root, root, env) as camp:
        source = os.path.join(root, store, camp.campaign(head).name + ".aca")
    try:
        shutil.copyfile(source, path)
    except OSError:
        return None
    built = read_provenance(path) or {}
    wanted = {"repository": root, "omit_deleted": "1", "exclude_kinds": ""}
    if built.get("commit") and all(built.get(k) == v for k, v in wanted.items()):
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


def fetch(remote: str | None = None, repo: str | None = None, cwd: str | None = None,
          env: Mapping[str, str] | None = None, progress: Progress | None = None) -> FetchResult:
    """Download what the remote has and this clone lacks; record its branch as ``<remote>/main``."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        r = _remote(camp, remote, env)
        with r.rclone:
            return _fetch(camp, r, progress)


def _fetch(camp: CampaignRepo, r: Remote, progress: Progress | None) -> FetchResult:
    from campaignvcs.remote import sync

    out = sync.fetch(camp, r, progress)
    warnings = [f"removed {out.dropped}: an older camp recorded it; the remote's ref is recorded again once it "
                "checks out"] if out.dropped else []
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
    from campaignvcs.graph import is_ancestor

    env = environ(env)
    cwd = cwd or os.getcwd()
    with open_repo(repo, cwd, env) as camp:
        with camp.transaction() as tx:
            _recover_interrupted_merge(tx)
            if os.path.exists(os.path.join(camp.camp_dir, MERGE_HEAD)):
                raise CampError("a merge is in progress: 'camp resolve' the conflicts and 'camp commit', "
                                "or 'camp pull --abort'")
            if camp.staged_changes():
                raise CampError("you have staged changes: commit them first ('camp commit -m MESSAGE'), then pull")
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
        root = camp.root
        if not result.conflicts and build:
            result = _rebuild(result, root, env)
        if not result.conflicts:
            result = _post_pull(camp, result, env)
    return result


def _post_pull(camp: CampaignRepo, result: PullResult, env: Mapping[str, str]) -> PullResult:
    """Run ``post-pull`` once the new commit is in place (and the lock released); a failure only warns."""
    import dataclasses

    from campaignvcs.porcelain.hooks import post_hook

    if result.action == "up to date":
        return result
    warned: list[str] = []
    extra = {"CAMP_REMOTE": result.remote, "CAMP_PULL_ACTION": result.action}
    if result.old:
        extra["CAMP_OLD_HEAD"] = result.old
    post_hook(camp, "post-pull", env, warned.append, commit=result.new, archive=result.archive, extra=extra)
    return dataclasses.replace(result, warnings=[*result.warnings, *warned]) if warned else result


def _fast_forward(tx: Transaction, ours: bytes | None, theirs: bytes) -> int:
    from campaignvcs.treemerge import merge_trees

    camp = tx.repo
    diff = merge_trees(camp, camp.tree_of(ours), camp.tree_of(ours), camp.tree_of(theirs))
    # Only no-op entries can be left (staged changes were refused), but against the new
    # branch they would undo its changes: the emptied staging area, already naming the
    # new commit, is on disk before the branch moves.
    tx.clear(theirs)
    tx.save()
    fault(camp.fault, "pull-mid-fast-forward")
    tx.move_branch(ours, theirs)
    return _refresh_cache(camp, tx.cache, diff.changes)


def _merge(tx: Transaction, remote: str, ours: bytes, theirs: bytes, fetched: FetchResult,
           env: Mapping[str, str]) -> PullResult:
    from campaignvcs.porcelain.workspace import commit_staged
    from campaignvcs.graph import merge_base
    from campaignvcs.treemerge import merge_trees

    camp = tx.repo
    base = merge_base(camp, ours, theirs)
    if base is None:
        raise CampError(f"cannot pull from {remote}: its history is unrelated to this campaign's "
                        "(it was not cloned from the same campaign)")
    tm = merge_trees(camp, camp.tree_of(base), camp.tree_of(ours), camp.tree_of(theirs))
    tx.clear()
    for path, entry in tm.changes.items():
        tx.stage(path, entry)
    # Written before the staging area: a pull killed from here on is recognised by the
    # next pull (the staging area still being exactly this one) and redone.
    atomic_write(os.path.join(camp.camp_dir, MERGE_PENDING), json.dumps(
        {"ours": ours.decode(), "theirs": theirs.decode(), "staging": _staging_digest(camp)}).encode() + b"\n")
    count = _refresh_cache(camp, tx.cache, tm.changes)
    tx.save()
    tx.cache.set_token(camp.state_token())
    fault(camp.fault, "pull-mid-merge")
    conflicts = [ConflictInfo(c.name, list(c.details)) for c in tm.conflicts]
    # The merge state is written after the staging area and MERGE_HEAD last: a crash
    # before it never leaves a merge commit that claims changes it lacks.
    _write_conflicts(camp, {c.name: {"path": c.path, "ours": _entry_json(c.ours), "theirs": _entry_json(c.theirs),
                                     "details": list(c.details)} for c in tm.conflicts})
    atomic_write(os.path.join(camp.camp_dir, MERGE_HEAD), theirs + b"\n")
    if conflicts:
        _forget_pending(camp)  # from here the conflicts are the user's to resolve
        return PullResult(remote, "conflicts", _hex(ours), None, fetched, count, conflicts)
    done = commit_staged(tx, f"Merge {remote}/main into {camp.branch}", env)
    return PullResult(remote, "merged", _hex(ours), done.id, fetched, count)


def _staging_digest(camp: CampaignRepo) -> str:
    import hashlib  # here: it costs camp status more to import than it spends

    return hashlib.sha1(camp.staging.to_bytes()).hexdigest()


def _forget_pending(camp: CampaignRepo) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(camp.camp_dir, MERGE_PENDING))


def _recover_interrupted_merge(tx: Transaction) -> bool:
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
        from campaignvcs.graph import is_ancestor

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


def _reset_staging(tx: Transaction) -> None:
    """Empty the staging area, keeping the stat cache in step."""
    staged = tx.clear()
    _refresh_cache(tx.repo, tx.cache, staged)


def _refresh_cache(camp: CampaignRepo, cache: object, changes: Mapping[str, object]) -> int:
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
    cache.update(datasets, removed)  # type: ignore[attr-defined]
    return len(datasets) + len(removed)


def _rebuild(result: PullResult, root: str, env: Mapping[str, str]) -> PullResult:
    """Rebuild the archive into the campaign store after a pull, when a store is configured.

    After an up-to-date pull only when this repository's archive there is missing or was
    built from another commit (a pull killed before its rebuild, rerun).
    """
    from campaignvcs.config import load_user_config

    store = load_user_config(env).campaign_store
    if not store or (result.action == "up to date" and _store_archive_current(root, store, result.new, env)):
        return result
    try:
        from campaignvcs.porcelain.archive import build

        built = build(repo=root, cwd=root, env=env, elsewhere_if_taken=True)
    except (ImportError, CampError) as exc:
        return dataclasses.replace(result, warnings=[*result.warnings, f"archive not rebuilt: {exc}"])
    return dataclasses.replace(result, archive=built.path, warnings=[*result.warnings, *built.warnings])


def _store_archive_current(root: str, store: str, head: str | None, env: Mapping[str, str]) -> bool:
    """Whether the store's archive of this campaign is at ``head``, or is not this repository's to rebuild."""
    from campaignvcs.aca.read import read_provenance

    if head is None:
        return True
    with open_repo(root, root, env) as camp:
        path = os.path.join(root, store, camp.campaign(head.encode()).name + ".aca")
    if not os.path.exists(path):
        return False
    built = read_provenance(path)
    return built is None or built.get("repository") != root or built.get("commit") == head


# -- merge state ----------------------------------------------------------------------------------


def _entry_json(entry: tuple[int, bytes] | None) -> list[object] | None:
    return None if entry is None else [entry[0], entry[1].decode()]


def _entry_from_json(value: list[object] | None) -> tuple[int, bytes] | None:
    return None if value is None else (int(value[0]), str(value[1]).encode())  # type: ignore[call-overload]


def _read_conflicts(camp: CampaignRepo) -> dict[str, dict[str, object]]:
    try:
        with open(os.path.join(camp.camp_dir, CONFLICTS), "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise CampError(f"{os.path.join(camp.camp_dir, CONFLICTS)} is corrupt (camp pull --abort starts over)") from None
    return data if isinstance(data, dict) else {}


def _write_conflicts(camp: CampaignRepo, conflicts: Mapping[str, object]) -> None:
    atomic_write(os.path.join(camp.camp_dir, CONFLICTS),
                 json.dumps(conflicts, sort_keys=True, indent=1).encode() + b"\n")


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


@dataclass(frozen=True)
class ResolveResult:
    """A conflict resolved by taking one side; how many remain."""

    name: str
    side: str
    remaining: list[str]


def resolve(name: str, side: str, repo: str | None = None, cwd: str | None = None,
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
        _refresh_cache(camp, tx.cache, {path: None})
        tx.save()
        del conflicts[name]
        _write_conflicts(camp, conflicts)
        return ResolveResult(name, side, sorted(conflicts))


def abort_merge(repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Give up a conflicted (or killed) pull: empty the staging area and forget the merge; returns HEAD."""
    with open_repo(repo, cwd, environ(env)) as camp, camp.transaction() as tx:
        if merge_head(camp) is None and not _recover_interrupted_merge(tx):
            raise CampError("no merge in progress")
        _reset_staging(tx)
        end_merge(camp)
        head = camp.head()
        return head.decode() if head else ""


# -- status helper ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tracking:
    """How the branch compares with the default remote's, as last fetched."""

    remote: str
    ahead: int
    behind: int


def tracking(camp: CampaignRepo) -> Tracking | None:
    """Ahead/behind against ``refs/remotes/<default remote>/main``, if it was ever fetched or pushed."""
    try:
        name, _url = _pick_remote(camp, None)
    except BadInput:
        return None
    from campaignvcs.graph import ahead_behind
    from campaignvcs.remote.tracking import tracking_ref, tracking_ref_problem

    try:
        theirs = camp.refs[tracking_ref(name)]
    except (KeyError, ValueError):
        return None
    if tracking_ref_problem(camp, tracking_ref(name)) is not None:
        return None  # named by remote_ref_problems (camp status, camp fsck)
    ahead, behind = ahead_behind(camp, camp.head(), theirs)
    return Tracking(name, ahead, behind)


def remote_ref_problems(camp: CampaignRepo) -> list[tuple[str, str]]:
    """(ref, what is wrong and the command that clears it) for each remote-tracking ref naming no commit.

    camp before 0.2 recorded whatever a remote's ref named, even a tree; status, fsck and
    pull then failed. Such a ref is only a record of the remote, so the fix is to fetch
    again (the fetch drops it first, and records the remote's ref again once it checks out).
    """
    prefix = b"refs/remotes/"
    keys = sorted(camp.refs.subkeys(prefix))
    if not keys:
        return []  # the usual case without remotes: nothing to import
    from campaignvcs.remote.tracking import tracking_ref_problem

    out = []
    for key in keys:
        ref = prefix + key
        problem = tracking_ref_problem(camp, ref)
        if problem is None:
            continue
        configured = _remotes(camp)
        name = key.decode("utf-8", "replace").rsplit("/", 1)[0]
        fix = (f"'camp fetch {name}' replaces it" if name in configured
               else f"'git update-ref -d {ref.decode('utf-8', 'replace')}' removes it (no remote {name} is configured)")
        out.append((ref.decode("utf-8", "replace"), f"{problem} (recorded by an older camp); {fix}"))
    return out


# -- clone ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloneResult:
    """A new clone: where, of what, and what it received."""

    path: str
    name: str
    url: str
    head: str
    packs: int
    objects: int
    bytes_received: int
    archive: str | None = None
    warnings: list[str] = field(default_factory=list)


def clone(url: str, path: str | None = None, name: str | None = None, host: str | None = None,
          build: bool = True, cwd: str | None = None, env: Mapping[str, str] | None = None,
          progress: Progress | None = None) -> CloneResult:
    """Make a new campaign repository from a remote; its remote ``origin`` is the remote root.

    ``url`` is the remote root (as ``camp remote add`` takes it; the campaign below it is
    found, or named with ``name``) or the ``<archive name>.camp`` folder itself. ``path``
    defaults to the last component of the archive name.
    """
    from campaignvcs.porcelain.workspace import resolve_host_name
    from campaignvcs.remote import sync
    from campaignvcs.remote.endpoint import Remote
    from campaignvcs.remote.layout import RemoteLayout, is_local, normalize_url
    from campaignvcs.remote.rclone import Rclone, redact

    env = environ(env)
    cwd = cwd or os.getcwd()
    if host is not None:
        resolve_host_name(host)
    url = normalize_url(url, cwd)
    with Rclone(env) as rclone:
        root, archive, guessed = _locate_campaign(rclone, url, name)
        target = os.path.abspath(os.path.join(cwd, path or archive.rsplit("/", 1)[-1]))
        if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
            raise BadInput(f"destination {target} already exists and is not an empty folder")
        created = not os.path.exists(target)
        remote = Remote("origin", root, RemoteLayout(root, archive), rclone)
        if remote.read_ref() is None:
            raise CampError(f"no campaign {archive} at {redact(root)} (nothing was pushed there)")
        try:
            camp = CampaignRepo.create(target, host)
            try:
                got = sync.fetch(camp, remote, progress)
                assert got.new is not None
                real = camp.campaign(got.new).name
                if real != archive:
                    folder = url.rstrip("/")
                    if not (guessed and folder.endswith(real + ".camp") and
                            (len(folder) == len(real) + 5 or folder[-len(real) - 6] in "/:")):
                        raise CampError(f"the campaign at {redact(url)} is named {real}, not {archive}")
                    root, archive = folder[: len(folder) - len(real) - 5], real
                if is_local(root) and len(root) > 1:
                    root = root.rstrip("/")
                cfg = _config(camp)
                _set_url(cfg, "origin", root)
                cfg.write_to_path()
                sync.finish_clone(camp, got.new)
            finally:
                camp.close()
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            else:
                shutil.rmtree(os.path.join(target, ".git"), ignore_errors=True)
            raise
    result = CloneResult(target, archive, redact(root), got.new.decode(), got.packs, got.objects, got.bytes_received)
    return _rebuild_clone(result, env) if build else result


def _locate_campaign(rclone: object, url: str, name: str | None) -> tuple[str, str, bool]:
    """(remote root, archive name, guessed) for a clone URL.

    For a ``.../<x>.camp`` URL the archive name may hold more components than ``x`` (it
    may contain '/'); the guess is corrected from the campaign's own name after fetching.
    """
    from campaignvcs.remote.rclone import redact
    from campaignvcs.remote.endpoint import find_campaigns

    if name is not None:
        return url, name, False
    folder = url.rstrip("/")
    if folder.endswith(".camp"):
        sep = max(folder.rfind("/"), folder.rfind(":"))
        return folder[: sep + 1], folder[sep + 1: -len(".camp")], True
    found = find_campaigns(rclone, url)  # type: ignore[arg-type]
    if not found:
        raise CampError(f"no campaign at {redact(url)} (no <archive name>.camp folder below it)")
    if len(found) > 1:
        raise BadInput(f"several campaigns at {redact(url)}: {', '.join(found)} (pick one with --name)")
    return url, found[0], False


def _rebuild_clone(result: CloneResult, env: Mapping[str, str]) -> CloneResult:
    """Build the new clone's archive into the campaign store, beside another clone's if that one is there.

    Another repository's archive at the store's name (a first clone of the same campaign
    on this machine) is left alone: this clone's goes to ``<archive name>-<n>.aca``, and a
    warning says so.
    """
    import dataclasses

    from campaignvcs.config import load_user_config

    if not load_user_config(env).campaign_store:
        return result
    try:
        from campaignvcs.porcelain.archive import build

        built = build(repo=result.path, cwd=result.path, env=env, elsewhere_if_taken=True)
    except (ImportError, CampError) as exc:
        return dataclasses.replace(result, warnings=[f"archive not built: {exc}"])
    warnings = [*result.warnings, *built.warnings]
    if built.instead_of is not None:
        warnings.append(f"{built.instead_of} was built by another repository, so this clone's archive is "
                        f"{built.path} (camp build and camp pull keep it up to date)")
    return dataclasses.replace(result, archive=built.path, warnings=warnings)

