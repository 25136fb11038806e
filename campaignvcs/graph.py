"""Walks over the commit graph: ancestry, merge bases, and the objects one side lacks.

Push (what to send, is it a fast-forward), pull (fast-forward or merge, from which base),
fetch (which history is already vouched for) and ``camp status`` (ahead/behind) all ask
these questions of the local repository; none of them is remote-specific.
"""

from __future__ import annotations

from campaignvcs.gitobjects import TREE_MODE
from campaignvcs.oidsets import OidList, OidSet
from campaignvcs.repo import CampaignRepo


def ancestors(camp: CampaignRepo, start: bytes | None) -> set[bytes]:
    """Every commit reachable from ``start`` (inclusive)."""
    seen: set[bytes] = set()
    stack = [start] if start else []
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        stack.extend(camp.read_commit(oid).parents)
    return seen


def ancestry(camp: CampaignRepo, start: bytes) -> list[bytes]:
    """Every commit reachable from ``start``, parents before children (commit dates may tie).

    The order ``whereis --history`` and the web catalog's timelines replay a dataset's changes in.
    """
    order: list[bytes] = []
    seen: set[bytes] = set()
    stack: list[tuple[bytes, bool]] = [(start, False)]
    while stack:
        oid, done = stack.pop()
        if done:
            order.append(oid)
            continue
        if oid in seen:
            continue
        seen.add(oid)
        stack.append((oid, True))
        stack.extend((p, False) for p in reversed(camp.read_commit(oid).parents) if p not in seen)
    return order


def is_ancestor(camp: CampaignRepo, older: bytes, newer: bytes) -> bool:
    """True when ``older`` is reachable from ``newer``."""
    return older == newer or older in ancestors(camp, newer)


def merge_base(camp: CampaignRepo, a: bytes, b: bytes) -> bytes | None:
    """The best common ancestor of ``a`` and ``b`` (the newest when there are several)."""
    common = ancestors(camp, a) & ancestors(camp, b)
    if not common:
        return None
    below: set[bytes] = set()
    for oid in common:
        for parent in camp.read_commit(oid).parents:
            below |= ancestors(camp, parent)
    best = common - below or common
    return max(best, key=lambda c: (camp.read_commit(c).commit_time, c))


def ahead_behind(camp: CampaignRepo, head: bytes | None, other: bytes | None) -> tuple[int, int]:
    """(commits only in ``head``, commits only in ``other``)."""
    if head == other:
        return 0, 0
    mine, theirs = ancestors(camp, head), ancestors(camp, other)
    return len(mine - theirs), len(theirs - mine)


def missing_objects(camp: CampaignRepo, head: bytes, have: bytes | None) -> OidList:
    """Objects reachable from ``head`` that a repository holding ``have``'s history lacks, in the order to send them.

    Each new commit's tree is compared with its parents' trees path by path and only
    subtrees that differ are entered, so a one-dataset change costs a handful of tree
    reads, not a walk of the whole campaign. An object that moved to another path is
    sent again (harmless: git allows duplicates across packs). Trees are parsed without
    the repository's tree cache: a first push walks every folder of the campaign once,
    and keeping them all (~165,000 at 100,000 datasets) would cost hundreds of MiB. The
    ids are held as 20 binary bytes each (:mod:`campaignvcs.oidsets`): a first push of a
    million datasets collects 2.6 million of them.
    """
    known = ancestors(camp, have)
    new_commits: list[bytes] = []
    seen: set[bytes] = set()
    stack = [head]
    while stack:
        oid = stack.pop()
        if oid in seen or oid in known:
            continue
        seen.add(oid)
        new_commits.append(oid)
        stack.extend(camp.read_commit(oid).parents)
    out = OidList()
    sent = OidSet()
    for oid in new_commits:
        commit = camp.read_commit(oid)
        out.append(oid)
        parents = [camp.read_commit(p).tree for p in commit.parents]
        _new_in_tree(camp, commit.tree, parents, out, sent)
    return out


def _new_in_tree(camp: CampaignRepo, tree: bytes, olds: list[bytes], out: OidList, sent: OidSet) -> None:
    if tree in olds or not sent.add(tree):
        return
    out.append(tree)
    old_entries = [camp.objects.read_tree(o) for o in olds]
    for name, (mode, oid) in sorted(camp.objects.read_tree(tree).items()):
        prev = [e[name] for e in old_entries if name in e]
        if any(p[1] == oid for p in prev):
            continue
        if mode == TREE_MODE:
            _new_in_tree(camp, oid, [p[1] for p in prev if p[0] == TREE_MODE], out, sent)
        elif sent.add(oid):
            out.append(oid)
