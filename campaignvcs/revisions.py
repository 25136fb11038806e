"""Naming commits: ``HEAD``, branches, (short) ids with ``~N``/``^N``, and walking history.

The grammar is the part of git's that scientists use; anything else is an unknown
revision with a one-line error.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from dulwich.objects import Commit
from dulwich.refs import RefsContainer

from campaignvcs.errors import UnknownRevision
from campaignvcs.objectstore import ObjectStore


def commit_of(store: ObjectStore, oid: bytes) -> Commit:
    """The commit ``oid``; an unknown revision error when it is another kind of object."""
    commit = store.read_commit(oid)
    if commit is None:
        raise UnknownRevision(f"{oid.decode()} is not a commit")
    return commit


def resolve(refs: RefsContainer, store: ObjectStore, rev: str | None) -> bytes:
    """The commit id for ``rev``: HEAD, a branch or ref, a (short) hex id, with ``~N``/``^``."""
    rev = rev or "HEAD"
    base, suffix = rev, ""
    for i, ch in enumerate(rev):
        if ch in "~^":
            base, suffix = rev[:i], rev[i:]
            break
    commit = _resolve_base(refs, store, base or "HEAD", rev)
    while suffix:
        ch, suffix = suffix[0], suffix[1:]
        digits = ""
        while suffix and suffix[0].isdigit():
            digits, suffix = digits + suffix[0], suffix[1:]
        steps = int(digits) if digits else 1
        if ch == "^" and digits:
            commit = _nth_parent(store, commit, steps, rev)
            continue
        for _ in range(steps):
            commit = _nth_parent(store, commit, 1, rev)
    return commit


def _nth_parent(store: ObjectStore, commit: bytes, n: int, rev: str) -> bytes:
    parents = commit_of(store, commit).parents
    if n < 1 or n > len(parents):
        raise UnknownRevision(f"unknown revision: {rev}")
    return parents[n - 1]


def _resolve_base(refs: RefsContainer, store: ObjectStore, base: str, rev: str) -> bytes:
    for candidate in (base.encode(), b"refs/heads/" + base.encode(), b"refs/tags/" + base.encode(),
                      b"refs/remotes/" + base.encode()):
        try:
            return refs[candidate]
        except (KeyError, ValueError):
            continue
    if 4 <= len(base) <= 40 and all(c in "0123456789abcdef" for c in base.lower()):
        prefix = base.lower().encode()
        candidates = [prefix] if len(prefix) == 40 else list(store.iter_prefix(prefix))
        matches = [oid for oid in candidates if oid in store and store.read_commit(oid) is not None]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise UnknownRevision(f"ambiguous revision: {rev}")
    if base == "HEAD":
        raise UnknownRevision("the campaign has no commits yet")
    raise UnknownRevision(f"unknown revision: {rev}")


def walk(store: ObjectStore, start: bytes) -> Iterator[Commit]:
    """Commits reachable from ``start``, newest commit time first (as ``git log``), each once."""
    seen = {start}
    queue = [(-commit_of(store, start).commit_time, 0, start)]
    counter = 1
    while queue:
        _when, _n, oid = heapq.heappop(queue)
        commit = commit_of(store, oid)
        yield commit
        for parent in commit.parents:
            if parent not in seen:
                seen.add(parent)
                heapq.heappush(queue, (-commit_of(store, parent).commit_time, counter, parent))
                counter += 1
