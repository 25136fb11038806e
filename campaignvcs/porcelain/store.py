"""store ls / rm / pull: the built archives in the local campaign store.

The campaign store (``Campaign.campaignstorepath`` in ``~/.config/hpc-campaign/config.yaml``)
is the folder ADIOS2 opens ``<archive name>.aca`` files from. Archives camp built carry
a ``camp_build`` table saying which repository and commit built them, so ``store ls``
can tell which ones are behind their repository. ``store pull`` is for readers who never
edit a campaign: it copies the ``.aca`` files from a remote; run inside a clone of the
campaign, it fetches that campaign's history instead and rebuilds its archive locally.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ContextManager

from campaignvcs.aca.read import read_provenance
from campaignvcs.config import load_user_config
from campaignvcs.errors import BadInput, CampError
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.remote.config import remote_urls
from campaignvcs.remote.layout import redact
from campaignvcs.repo import CampaignRepo

ACA_SUFFIX = ".aca"
Progress = Callable[[str, int, int], None]
"""(what, bytes done, bytes total)."""


@dataclass(frozen=True)
class StoreEntry:
    """One archive in the store and what built it."""

    name: str
    """The archive name: the path below the store without ``.aca`` (``proj/run_001``)."""
    path: str
    size: int
    mtime: float
    built_by_camp: bool
    commit: str | None = None
    repository: str | None = None
    repository_exists: bool | None = None
    """Whether the repository that built it is still a campaign there (None: not camp's)."""
    stale: bool | None = None
    """True: its repository's HEAD has moved on; None: unknown (not camp's, or the repository is gone)."""


@dataclass(frozen=True)
class StoreListing:
    """``camp store ls``: the store folder and its archives, by name."""

    store: str
    entries: list[StoreEntry] = field(default_factory=list)


@dataclass(frozen=True)
class StorePullResult:
    """``camp store pull``: the archives copied from a remote into the store."""

    remote: str
    store: str
    archives: list[str]
    """Archives downloaded whole."""
    bytes_received: int
    rebuilt: list[str] = field(default_factory=list)
    """Archives built here from the fetched history instead (this campaign's own)."""


def store_path(env: Mapping[str, str]) -> str:
    """The campaign store folder, or a one-line error saying how to set it."""
    store = load_user_config(env).campaign_store
    if not store:
        raise CampError("no campaign store: set Campaign.campaignstorepath in ~/.config/hpc-campaign/config.yaml")
    return os.path.abspath(store)


def store_ls(pattern: str | None = None, env: Mapping[str, str] | None = None) -> StoreListing:
    """Every ``.aca`` below the store (or those whose name matches the glob ``pattern``)."""
    env = environ(env)
    store = store_path(env)
    heads: dict[str, str | None] = {}
    entries = [_entry(store, name, heads, env) for name in _archive_names(store)
               if pattern is None or _matches(name, pattern)]
    return StoreListing(store, entries)


def store_match(patterns: Sequence[str], env: Mapping[str, str] | None = None) -> StoreListing:
    """The archives ``store rm`` would delete; a pattern matching none is an error (nothing is deleted)."""
    env = environ(env)
    if not patterns:
        raise BadInput("name the archives to remove (glob patterns on archive names, e.g. 'proj/*')")
    store = store_path(env)
    names = _archive_names(store)
    chosen: list[str] = []
    for pattern in patterns:
        hits = [n for n in names if _matches(n, pattern)]
        if not hits:
            raise BadInput(f"no archive in {store} matches {pattern!r} (camp store ls lists them)")
        chosen.extend(n for n in hits if n not in chosen)
    heads: dict[str, str | None] = {}
    return StoreListing(store, [_entry(store, n, heads, env) for n in sorted(chosen)])


def store_rm(patterns: Sequence[str], yes: bool = False, env: Mapping[str, str] | None = None,
             confirmed: Collection[str] | None = None) -> StoreListing:
    """Delete the matching archives; empty folders they leave are removed too.

    ``yes`` says the user confirmed (the CLI asks, showing ``store_match``): without it
    nothing is deleted, so no caller deletes a whole store by passing ``"."`` alone.
    ``confirmed`` (the names the user was shown) leaves alone archives that started
    matching after the question was asked.
    """
    listing = store_match(patterns, env)
    if not yes:
        raise BadInput(f"camp store rm would delete {len(listing.entries)} archive(s): confirm, or pass --yes")
    if confirmed is not None:
        listing = StoreListing(listing.store, [e for e in listing.entries if e.name in set(confirmed)])
    for entry in listing.entries:
        try:
            os.unlink(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise CampError(f"cannot remove {entry.path}: {exc.strerror or exc}") from None
        _prune_empty(os.path.dirname(entry.path), listing.store)
    return listing


def store_pull(remote: str, pattern: str | None = None, repo: str | None = None, cwd: str | None = None,
               env: Mapping[str, str] | None = None, progress: Progress | None = None) -> StorePullResult:
    """Bring the archives of a remote (a remote name of this campaign, or any rclone path) into the store.

    When ``remote`` names a remote of the campaign here, that campaign's archive is not
    downloaded: its history is fetched (bytes in proportion to what changed) and the
    archive rebuilt locally, patching the one already in the store. Every other archive
    there is copied; each appears atomically (downloaded beside its place, then renamed),
    so ADIOS2 never opens half a file; the ``.camp`` histories are never downloaded.
    """
    from campaignvcs.remote.rclone import Rclone  # heavy (ssl, http.client): only store pull needs it

    env = environ(env)
    cwd = cwd or os.getcwd()
    store = store_path(env)
    rebuilt: list[str] = []
    received = 0
    with _campaign_here(repo, cwd, env) as camp:  # opened once: the fetch and the build use it too
        url = _remote_url(remote, camp)
        own = _own_archive(remote, camp, pattern)
        if camp is not None and own is not None:
            received, name = _rebuild_from_history(remote, camp, own, store, env, progress)
            rebuilt.append(name)
    with Rclone(env) as rclone:
        found = [(rel, size) for rel, size in rclone.find_files(url, ACA_SUFFIX)
                 if ".camp/" not in rel and (pattern is None or _matches(rel[: -len(ACA_SUFFIX)], pattern))
                 and rel != own]
        if not found and not rebuilt:
            what = f" matching {pattern!r}" if pattern else ""
            raise CampError(f"no archives{what} at {redact(url)}")
        os.makedirs(store, exist_ok=True)
        total = sum(size for _rel, size in found)
        if found:
            with tempfile.TemporaryDirectory(dir=store, prefix=".camp-pull-") as tmp:
                rclone.download(url, [rel for rel, _size in found], tmp, total,
                                (lambda done, all_: progress("store", done, all_)) if progress else None)
                for rel, _size in found:
                    target = os.path.join(store, rel)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    os.replace(os.path.join(tmp, rel), target)
    return StorePullResult(redact(url), store, sorted(rel[: -len(ACA_SUFFIX)] for rel, _size in found),
                           total + received, rebuilt)


def _campaign_here(repo: str | None, cwd: str, env: Mapping[str, str]) -> ContextManager[CampaignRepo | None]:
    """The campaign ``repo`` names or the folder is in; None outside one (a reader who never edits)."""
    try:
        return open_repo(repo, cwd, env)
    except CampError:
        if repo is not None:
            raise
        return contextlib.nullcontext(None)


def _own_archive(remote: str, camp: CampaignRepo | None, pattern: str | None) -> str | None:
    """The archive's path on the remote when ``remote`` is a remote of the campaign here (with commits)."""
    head = camp.head() if camp is not None else None
    if camp is None or head is None or remote not in remote_urls(camp):
        return None
    name = camp.campaign(head).name
    if pattern is not None and not _matches(name, pattern):
        return None
    return name + ACA_SUFFIX


def _rebuild_from_history(remote: str, camp: CampaignRepo, rel: str, store: str, env: Mapping[str, str],
                          progress: Progress | None) -> tuple[int, str]:
    """Fetch ``remote``'s history and build its commit into the store; (bytes received, archive name)."""
    from campaignvcs.porcelain.archive import build
    from campaignvcs.porcelain.sync import fetch

    fetched = fetch(remote, repo=camp, env=env, progress=progress)
    if fetched.new is None:
        raise CampError(f"nothing pushed to {remote} yet: no history to build its archive from")
    build(rev=fetched.new, output=os.path.join(store, rel), repo=camp, cwd=camp.root, env=env, hooks=False,
          elsewhere_if_taken=True)
    return fetched.bytes_received, rel[: -len(ACA_SUFFIX)]


def _remote_url(remote: str, camp: CampaignRepo | None) -> str:
    """A remote name of the campaign here (if there is one) → its URL; anything else is an rclone path."""
    url = remote_urls(camp).get(remote) if camp is not None else None
    if url is not None:
        return url
    if remote.startswith("-"):
        raise BadInput(f"{remote!r} would be read as an rclone option: give a remote name or an rclone path")
    return remote


def _archive_names(store: str) -> list[str]:
    """Names of every ``.aca`` below ``store`` (hidden folders skipped: pulls in progress), sorted."""
    names: list[str] = []
    for folder, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.endswith(ACA_SUFFIX) and not f.startswith("."):
                rel = os.path.relpath(os.path.join(folder, f), store)
                names.append(rel[: -len(ACA_SUFFIX)].replace(os.sep, "/"))
    return sorted(names)


def _matches(name: str, pattern: str) -> bool:
    """Glob on archive names; a folder name matches everything below it (``proj`` → ``proj/*``).

    ``.`` is the whole store, as in ``hpc_campaign manager rm .``.
    """
    pattern = pattern.removesuffix(ACA_SUFFIX).strip("/")
    if pattern in (".", ""):
        return True
    return fnmatch.fnmatchcase(name, pattern) or name.startswith(pattern + "/")


def _entry(store: str, name: str, heads: dict[str, str | None], env: Mapping[str, str]) -> StoreEntry:
    path = os.path.join(store, name + ACA_SUFFIX)
    st = os.stat(path)
    built = read_provenance(path)
    if not built or "commit" not in built:
        return StoreEntry(name, path, st.st_size, st.st_mtime, False)
    repository = built.get("repository")
    head = _head_of(repository, heads, env) if repository else None
    stale = None if head is None else head != built["commit"]
    return StoreEntry(name, path, st.st_size, st.st_mtime, True, built["commit"], repository,
                      head is not None, stale)


def _head_of(repository: str, heads: dict[str, str | None], env: Mapping[str, str]) -> str | None:
    """HEAD of a campaign repository (cached per listing); None if it is gone or not a campaign."""
    if repository not in heads:
        try:
            with CampaignRepo.open(repository) as camp:
                head = camp.head()
            heads[repository] = head.decode() if head else None
        except (CampError, OSError):
            heads[repository] = None
    return heads[repository]


def _prune_empty(folder: str, store: str) -> None:
    while os.path.abspath(folder) != os.path.abspath(store):
        try:
            os.rmdir(folder)
        except OSError:
            return
        folder = os.path.dirname(folder)

