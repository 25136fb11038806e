"""This clone's record of its remotes: ``refs/remotes/<name>/main`` and ``.git/camp/remotes/<name>/``.

Push and fetch write these records; ``camp status``, ``camp fsck`` and ``camp remote
remove`` read or clear them. Nothing here talks to a remote, so status can use it
without loading rclone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from campaignvcs.errors import CampError, RepoLocked
from campaignvcs.repo import CampaignRepo
from campaignvcs.tempfiles import atomic_write

TRACKING_PREFIX = b"refs/remotes/"


def tracking_ref(name: str) -> bytes:
    """``refs/remotes/<name>/main``: the remote's branch as last seen."""
    return TRACKING_PREFIX + name.encode() + b"/main"


def read_local_ref(camp: CampaignRepo, ref: bytes) -> bytes | None:
    """The id a local ref holds, or None when it is absent or unreadable."""
    try:
        return camp.refs[ref]
    except (KeyError, ValueError):
        return None


def set_tracking(camp: CampaignRepo, name: str, commit: bytes) -> None:
    """Record the remote's branch (``<name>/main``) unless it already says so."""
    ref = tracking_ref(name)
    if read_local_ref(camp, ref) != commit:
        with moving_refs(camp):
            camp.refs[ref] = commit


def moving_refs(camp: CampaignRepo) -> contextlib.ExitStack:
    """The repository lock while a ref moves, when it is free (push and fetch need not hold it).

    Under it, a ref lock (``<ref>.lock``) that a killed camp left is broken (see
    :mod:`campaignvcs.lockfile`); without it, a busy repository does not hold the ref up.
    """
    stack = contextlib.ExitStack()
    with contextlib.suppress(RepoLocked):
        stack.enter_context(camp.lock())
    return stack


def tracking_ref_problem(camp: CampaignRepo, ref: bytes) -> str | None:
    """Why a remote-tracking ref does not name a commit here (None: it does, or it does not exist).

    camp before 0.2 recorded whatever a remote's ref named; such a ref made status, fsck
    and pull fail until it was removed by hand.
    """
    try:
        oid = camp.refs[ref]
    except KeyError:
        return None
    except ValueError:
        return "cannot be read"
    if len(oid) != 40:
        return f"holds {oid[:40]!r}, not an object id"
    if not camp.objects.holds(oid):
        return f"points at {oid.decode()}, which is missing here"
    try:
        kind, _data = camp.read_raw(oid)
    except CampError as exc:
        return f"points at {oid.decode()}, which cannot be read ({exc})"
    if kind != b"commit":
        return f"points at {oid.decode()}, which is a {kind.decode()}, not a commit"
    return None


def drop_bad_tracking_ref(camp: CampaignRepo, name: str) -> str | None:
    """Remove ``refs/remotes/<name>/main`` if it names no commit here; returns what was wrong.

    It is only a record of what the remote named, so nothing is lost: the fetch that
    follows records the remote's ref again once it checks out.
    """
    ref = tracking_ref(name)
    problem = tracking_ref_problem(camp, ref)
    if problem is None:
        return None
    with moving_refs(camp):
        camp.refs.remove_if_equals(ref, None)
    return f"{ref.decode()} ({problem})"


# -- packs this clone has -----------------------------------------------------------------------


def remote_state_dir(camp: CampaignRepo, name: str) -> str:
    """``.git/camp/remotes/<name>``: what camp knows about a remote (never shared)."""
    return os.path.join(camp.camp_dir, "remotes", name)


def known_packs(camp: CampaignRepo, name: str) -> set[str]:
    """Pack names of the remote that this clone has (fetched, or pushed from here)."""
    try:
        with open(os.path.join(remote_state_dir(camp, name), "packs"), encoding="utf-8") as f:
            return {line.strip() for line in f if line.strip()}
    except FileNotFoundError:
        return set()


def add_known_packs(camp: CampaignRepo, name: str, packs: Iterable[str]) -> None:
    """Record packs this clone has, so fetch never downloads them."""
    folder = remote_state_dir(camp, name)
    os.makedirs(folder, exist_ok=True)
    names = known_packs(camp, name) | set(packs)
    atomic_write(os.path.join(folder, "packs"), "".join(n + "\n" for n in sorted(names)).encode())


def local_packs(camp: CampaignRepo) -> set[str]:
    """Names (``pack-<sha>``) of the packs in this repository that have their index."""
    folder = os.path.join(camp.git_dir, "objects", "pack")
    try:
        return {f[:-4] for f in os.listdir(folder) if f.startswith("pack-") and f.endswith(".idx")}
    except FileNotFoundError:
        return set()
