"""What ``camp status`` and ``camp fsck`` say about remotes: ahead/behind, and tracking refs naming no commit.

Reads only this clone's records (``.git/config`` and ``refs/remotes/``), never a remote,
and loads neither rclone nor the push/fetch code, so a status stays cheap. It must never
import porcelain.workspace (which imports it).
"""

from __future__ import annotations

from dataclasses import dataclass

from campaignvcs.errors import BadInput
from campaignvcs.graph import ahead_behind
from campaignvcs.remote.config import pick_remote, remote_urls
from campaignvcs.remote.tracking import TRACKING_PREFIX, tracking_ref, tracking_ref_problem
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class Tracking:
    """How the branch compares with the default remote's, as last fetched."""

    remote: str
    ahead: int
    behind: int


def tracking(camp: CampaignRepo) -> Tracking | None:
    """Ahead/behind against ``refs/remotes/<default remote>/main``, if it was ever fetched or pushed."""
    try:
        name, _url = pick_remote(camp, None)
    except BadInput:
        return None
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
    out = []
    for key in sorted(camp.refs.subkeys(TRACKING_PREFIX)):
        ref = TRACKING_PREFIX + key
        problem = tracking_ref_problem(camp, ref)
        if problem is None:
            continue
        configured = remote_urls(camp)
        name = key.decode("utf-8", "replace").rsplit("/", 1)[0]
        shown = ref.decode("utf-8", "replace")
        fix = (f"'camp fetch {name}' replaces it" if name in configured
               else f"'git update-ref -d {shown}' removes it (no remote {name} is configured)")
        out.append((shown, f"{problem} (recorded by an older camp); {fix}"))
    return out
