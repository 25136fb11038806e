"""init, add, status, commit: recording datasets into a campaign."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from campaignvcs import layout, provenance
from campaignvcs.errors import BadInput, NothingToCommit, UsageError
from campaignvcs.extract import Options, Payload, extract
from campaignvcs.model import Campaign, HostName
from campaignvcs.porcelain.changes import renamed_from, replica_change
from campaignvcs.porcelain.common import (
    environ,
    identity,
    local_host,
    open_repo,
    resolve_host,
)
from campaignvcs.porcelain.reading import Progress, Reading, start_reading
from campaignvcs.porcelain.staging import AddResult, stage_sources
from campaignvcs.repo import CampaignRepo
from campaignvcs.tempfiles import hostname
from campaignvcs.transaction import Transaction


def init(path: str, name: str, host: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Make ``path`` a campaign repository whose archive will be ``<name>.aca``; returns its root."""
    env = environ(env)
    validate_archive_name(name)
    if host is not None:
        resolve_host_name(host)
    campaign = Campaign(name=name, uuid=uuid.uuid4().hex, created=time.time_ns())
    repo = CampaignRepo.init(path, campaign, host, identity(None, env))
    try:
        return repo.root
    finally:
        repo.close()


def validate_archive_name(name: str) -> None:
    """An archive name is a relative path like ``proj/run_001`` (no ``..``, not absolute)."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\0" in name:
        raise BadInput(f"invalid archive name: {name!r} (use a relative path such as proj/run_001)")
    if name.endswith(".aca"):
        raise BadInput(f"invalid archive name: {name!r} (give it without the .aca suffix)")


def resolve_host_name(host: str) -> str:
    """A host name usable in a campaign (non-empty, no slash, no surrounding blanks)."""
    if not host or "/" in host or host.strip() != host or "\0" in host:
        raise BadInput(f"invalid host name: {host!r}")
    return host


def _unstable_name(name: str) -> bool:
    """A default name that changes with the folder camp add runs in (absolute, or with ``..``)."""
    return name.startswith("/") or ".." in name.split("/")


def add(
    paths: Sequence[str],
    repo: str | None = None,
    host: str | None = None,
    name: str | None = None,
    store: bool = False,
    thumbnail: tuple[int, int] | None = None,
    kind: str = "auto",
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    encrypt: Callable[[Payload], tuple[bytes, str]] | None = None,
    key_id: str = "",
    message: str | None = None,
    shard_staging: bool | None = None,
    meta: Mapping[str, str] | None = None,
    reading: Reading | None = None,
) -> AddOutcome:
    """Record datasets found at ``paths`` (relative to ``cwd``) into the staging area.

    Paths are read by worker processes while staging takes what they deliver
    (:mod:`campaignvcs.porcelain.reading`, :mod:`campaignvcs.porcelain.staging`); one bad
    path stages nothing. ``reading``: the same paths, name and options, started earlier
    with :func:`~campaignvcs.porcelain.reading.start_reading` (the CLI starts it before
    this module loads); closed here in every case. ``encrypt``
    (from :mod:`campaignvcs.keys`) turns a payload into (stored bytes, checksum) for keyed
    replicas. With ``message``, the staged changes are committed under the same lock
    (one process instead of two: what a batch job's epilog wants). Hooks: ``pre-add``
    (and ``pre-commit`` with ``message``) run under the lock before anything is staged
    (committed); ``post-commit`` runs after the lock is released (a failure is a warning).
    ``shard_staging`` (None: if ``SLURM_JOB_ID`` is set, or ``meta`` without ``message``): into a
    shard of its own, without the lock (:mod:`campaignvcs.shards`); ``meta``: provenance trailers.
    """
    try:
        if message is not None and not message.strip():
            raise BadInput("empty commit message: pass -m MESSAGE")
        env = environ(env)
        cwd = cwd or os.getcwd()
        if not paths:
            raise BadInput("nothing to add: give one or more paths")
        if name is not None and len(paths) != 1:
            raise UsageError("--name needs exactly one path")
        if thumbnail is not None and (thumbnail[0] < 1 or thumbnail[1] < 1):
            raise BadInput(f"invalid thumbnail size: {thumbnail[0]} {thumbnail[1]}")
        if reading is None:
            reading = start_reading(paths, name, store, thumbnail, kind, cwd, env, progress)
        elif reading.paths != list(paths) or reading.name != name:
            raise ValueError("add: reading was started for other paths or another name")
        return _record(reading, cwd, env, repo, host, name, store, thumbnail, encrypt, key_id, message,
                       shard_staging, meta)
    finally:
        if reading is not None:
            reading.close()  # stops worker processes still reading when something failed


def _record(reading: Reading, cwd: str, env: Mapping[str, str], repo: str | None, host: str | None,
            name: str | None, store: bool, thumbnail: tuple[int, int] | None,
            encrypt: Callable[[Payload], tuple[bytes, str]] | None, key_id: str, message: str | None,
            shard_staging: bool | None, meta: Mapping[str, str] | None) -> AddOutcome:
    """:func:`add` once its arguments are checked and its paths are being read."""
    paths, sources, started = reading.paths, reading.sources, reading.started
    with open_repo(repo, cwd, env) as camp:
        host_name = HostName(resolve_host(camp, host, env))
        root = os.path.realpath(camp.root)
        if shard_staging or (shard_staging is None and (env.get("SLURM_JOB_ID") or (meta and message is None))):
            return _add_to_shard(camp, env, [os.path.normpath(os.path.join(cwd, p)) for p in paths], name,
                                 host_name, reading, root, (encrypt, key_id), meta or {}, message)
        committed = None
        with camp.transaction() as tx:
            if _installed(camp, "pre-add"):
                from campaignvcs.porcelain.hooks import pre_add_hook

                pre_add_hook(camp, env, [os.path.normpath(os.path.join(cwd, p)) for p in paths], host_name)
            results = stage_sources(tx, sources, host_name, encrypt, key_id, read_at=started, root=root)
            if message is not None and camp.staged_changes():
                committed = commit_staged(tx, message, env, before=lambda: _pre_commit(camp, env, message),
                                          meta=meta)
        warnings = _name_warnings(results, name)
        if encrypt is not None:
            from campaignvcs.aca.check import encrypted_add_warnings

            warnings += encrypted_add_warnings([(r.name, r.kind, r.host) for r in results if r.action != "unchanged"],
                                               store, thumbnail is not None)
        if committed is not None:  # after the lock: a post-commit hook may run camp push
            committed = replace(committed, warnings=_post_commit(camp, env, committed.id))
        return AddOutcome(results, committed, warnings)


def _name_warnings(results: list[AddResult], name: str | None) -> list[str]:
    return [f"dataset name {r.name!r} depends on the folder camp add ran in ('..' or an absolute "
            "path); give --name NAME for a stable one, or add it from a folder above it"
            for r in results if name is None and r.action == "added" and _unstable_name(r.name)]


def _add_to_shard(camp: CampaignRepo, env: Mapping[str, str], full_paths: list[str], name: str | None,
                  host: HostName, reading: Reading, root: str,
                  key: tuple[Callable[[Payload], tuple[bytes, str]] | None, str],
                  meta: Mapping[str, str], message: str | None) -> AddOutcome:
    """``camp add`` into a shard of its own (no lock: never waits, never refused); ``message``: then commit."""
    if _installed(camp, "pre-add"):
        from campaignvcs.porcelain.hooks import pre_add_hook

        pre_add_hook(camp, env, full_paths, host)
    from campaignvcs.porcelain.sharded import add_to_shard  # here: shards weigh on every add's start-up

    done = add_to_shard(camp, env, meta,
                        lambda tx: stage_sources(tx, reading.sources, host, key[0], key[1],
                                                 read_at=reading.started, root=root),
                        message, lambda tx: commit_staged(tx, message or "", env,
                                                          before=lambda: _pre_commit(camp, env, message or "")))
    committed = done.committed
    if committed is not None:
        committed = replace(committed, warnings=_post_commit(camp, env, committed.id))
    return AddOutcome(done.results, committed, _name_warnings(done.results, name) + done.warnings, done.path,
                      done.gathered)


def _installed(camp: CampaignRepo, hook: str) -> bool:
    """Whether a ``hook`` hook is installed.

    The hook runner is loaded only then: one stat instead of an import that costs more
    than a whole one-dataset ``camp add``.
    """
    from campaignvcs.hooks import find_hook

    return find_hook(camp.camp_dir, hook) is not None


def _pre_commit(camp: CampaignRepo, env: Mapping[str, str], message: str) -> None:
    if _installed(camp, "pre-commit"):
        from campaignvcs.porcelain.hooks import pre_commit_hook

        pre_commit_hook(camp, env, message)


def _post_commit(camp: CampaignRepo, env: Mapping[str, str], commit: str) -> list[str]:
    if not _installed(camp, "post-commit"):
        return []
    from campaignvcs.porcelain.hooks import post_hook

    return post_hook(camp, "post-commit", env, commit=commit)


@dataclass(frozen=True)
class Change:
    """One line of ``camp status``: what changed, for which dataset (or other manifest)."""

    change: str
    name: str
    path: str = ""
    """Unstaged: the local path; ``renamed``: the old name."""


@dataclass(frozen=True)
class Status:
    """Staged changes against HEAD, and tracked local replicas that changed on disk."""

    campaign: str
    branch: str
    head: str | None
    host: str | None
    staged: list[Change] = field(default_factory=list)
    unstaged: list[Change] = field(default_factory=list)
    tracking: str | None = None
    """``<remote>/main`` as last fetched or pushed (porcelain.remote_status.tracking), with counts."""
    ahead: int = 0
    behind: int = 0
    merging: bool = False
    conflicts: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    """Locks and temporaries a killed process left (``path: what clears it``); see CampaignRepo.leftovers."""
    sharded: list[Change] = field(default_factory=list)
    """Datasets recorded in shards (``path``: the shard's file name), gathered by the next commit."""


def status(repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None) -> Status:
    """What ``camp commit`` would record, and which local replicas no longer match their record."""
    from campaignvcs.shards import pending  # here, not at the top: a plain add does not load shards

    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        head = camp.head()
        staged = [_describe_change(camp, p, old, new) for p, (old, new) in camp.staged_changes().items()]
        renames = renamed_from(camp, [c.name for c in staged if c.change == "removed"],
                               [c.name for c in staged if c.change == "new"])
        staged = [Change("renamed", c.name, renames[c.name]) if c.change == "new" and c.name in renames else c
                  for c in staged if not (c.change == "removed" and c.name in renames.values())]
        staged.sort(key=lambda c: (c.name, c.change))
        head_tree = camp.tree_of(head)
        sharded = [Change("modified" if in_head else "new", n, s.name) for s in pending(camp.camp_dir)
                   for p, e in s.entries.items() if (n := layout.dataset_name_of(p))
                   and (in_head := camp.lookup(head_tree, p)) != e]
        here = local_host(camp, env)
        unstaged: list[Change] = []
        if here:
            cache = camp.stat_cache()
            try:
                unstaged = [Change(state, name, path)
                            for state, name, path in cache.changed_on_host(here, content_digests)]
            finally:
                cache.close()
        from campaignvcs.porcelain.merging import merge_head, unresolved
        from campaignvcs.porcelain.remote_status import remote_ref_problems, tracking

        track = tracking(camp)
        return Status(
            campaign=camp.campaign().name,
            branch=camp.branch,
            head=head.decode() if head else None,
            host=here,
            staged=staged,
            unstaged=unstaged,
            tracking=f"{track.remote}/main" if track else None,
            ahead=track.ahead if track else 0,
            behind=track.behind if track else 0,
            merging=merge_head(camp) is not None,
            conflicts=unresolved(camp),
            leftovers=[f"{path}: {what}" for path, what in [*camp.leftovers(), *remote_ref_problems(camp)]],
            sharded=sharded,
        )


def content_digests(items: list[tuple[str, str]]) -> list[str | None]:
    """:func:`content_digest` of each (kind, path), spread over processes when there are many (None: unreadable).

    After the stat cache is rebuilt (another tool moved HEAD, a new camp version) every
    local replica needs one, which at 100,000 datasets is minutes of reading.
    """
    from campaignvcs.extract.parallel import map_in_order

    return map_in_order(_digest_or_none, items)


def _digest_or_none(item: tuple[str, str]) -> str | None:
    try:
        return content_digest(*item)
    except Exception:  # noqa: BLE001 - unreadable now (damaged, permissions): not what was recorded
        return None


def content_digest(kind: str, path: str) -> str:
    """The checksum ``camp add`` would record for ``path`` now: what status compares when a stat is not enough.

    BP datasets, text and images are hashed directly (no compression, no image decoding);
    an HDF5 file's checksum is that of its metadata-only copy, so it is extracted.
    """
    if kind == "ADIOS":
        from campaignvcs.extract import bp5

        return bp5.checksum(path)
    if kind in ("TEXT", "IMAGE", "SCALAR_FIELD"):
        from campaignvcs.extract.text import file_sha1

        return file_sha1(path)
    return extract(path, kind, Options()).replicas[0].checksum


def _describe_change(camp: CampaignRepo, path: str, old: object, new: object) -> Change:
    name = layout.dataset_name_of(path)
    if name is not None:
        if old is None:
            return Change("new", name)
        if new is None:
            return Change("removed", name)
        before, after = camp.dataset(name, camp.head()), camp.dataset(name)
        if before is not None and after is not None and before.live and not after.live:
            return Change("deleted", name)
        moved = replica_change(before, after) if before is not None and after is not None else None
        return Change(moved or "modified", name)
    what = path.split("/")[0]
    label = {"hosts": "host", "timeseries": "time series"}.get(what, what)
    return Change(("new " if old is None else "removed " if new is None else "modified ") + label, path)


@dataclass(frozen=True)
class CommitResult:
    """A new commit and how many datasets it changed."""

    id: str
    message: str
    datasets: int
    warnings: list[str] = field(default_factory=list)
    """What the caller should know although the commit succeeded (a failed post-commit hook)."""


@dataclass(frozen=True)
class AddOutcome:
    """What ``camp add`` did: one result per path, the commit when ``message`` was given, warnings."""

    added: list[AddResult]
    committed: CommitResult | None = None
    warnings: list[str] = field(default_factory=list)
    """Names that depend on where add ran; a failed post-commit hook is in ``committed.warnings``."""
    shard: str | None = None
    """The shard the datasets were recorded in (shard staging), else None."""
    gathered: bool = False
    """With ``message``: another writer's commit gathered the shard before this one could."""


def commit(message: str, repo: str | CampaignRepo | None = None, cwd: str | None = None,
           env: Mapping[str, str] | None = None) -> CommitResult:
    """Commit the staging area.

    The ``pre-commit`` hook runs under the lock just before the commit is written (it
    can refuse); ``post-commit`` runs once the lock is released (a failure is in ``warnings``).
    """
    env = environ(env)
    if not message or not message.strip():
        raise BadInput("empty commit message: pass -m MESSAGE")
    with open_repo(repo, cwd, env) as camp:
        with camp.transaction() as tx:
            result = commit_staged(tx, message, env, before=lambda: _pre_commit(camp, env, message))
        return replace(result, warnings=_post_commit(camp, env, result.id))


def commit_staged(tx: Transaction, message: str, env: Mapping[str, str],
                  before: Callable[[], object] | None = None, meta: Mapping[str, str] | None = None) -> CommitResult:
    """Commit the staging area and every shard inside a transaction. ``before`` runs once there is something to commit.

    The message gets provenance trailers: this process's (Slurm, ``meta``) for what was
    staged here, each shard's for what it recorded (see :mod:`campaignvcs.provenance`).
    """
    from campaignvcs.shards import gather, remove  # here, not at the top: a plain add does not load shards

    camp = tx.repo
    own = provenance.from_environment(env, hostname(), meta)
    mine = [n for n in map(layout.dataset_name_of, camp.staged_changes()) if n is not None] if own else []
    gathered = gather(tx)
    parents: list[bytes] = []
    # A pull may have left a merge to finish (porcelain.merging keeps it in MERGE_HEAD); the
    # check comes first because importing that module costs more than a commit.
    if os.path.exists(os.path.join(camp.camp_dir, "MERGE_HEAD")):
        from campaignvcs.porcelain.merging import merge_parents

        parents = merge_parents(camp)
    changes = camp.staged_changes()
    if not changes and not parents:
        remove(gathered.paths)  # committed before (a commit killed before it removed them)
        raise NothingToCommit("nothing to commit (use 'camp add' to record datasets)")
    if before is not None:
        tx.save()  # a pre-commit hook sees the change staged (camp status, camp diff)
        before()
    names = [n for n in map(layout.dataset_name_of, changes) if n is not None]
    full = provenance.with_trailers(message, [(own, mine), *gathered.groups], names)
    oid = tx.commit(full, identity(camp, env), merge_parents=parents)
    remove(gathered.paths)
    if parents:
        from campaignvcs.porcelain.merging import end_merge

        end_merge(camp)
    count = sum(1 for p in changes if layout.dataset_name_of(p) is not None)
    return CommitResult(oid.decode(), message, count)
