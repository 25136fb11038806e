"""A remote as push, fetch and clone reach it: name, URL, layout and the rclone that talks to it.

Kept apart from :mod:`~campaignvcs.remote.layout` (paths only, no rclone) because reading
the remote's ref needs both the paths and rclone: with it here, layout and rclone never
import each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from campaignvcs.remote.layout import RemoteLayout, redact
from campaignvcs.remote.rclone import Rclone, RemoteError

HEX40 = re.compile(rb"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Remote:
    """A named remote of one campaign: where it is and how to reach it."""

    name: str
    url: str
    layout: RemoteLayout
    rclone: Rclone

    @property
    def shown_url(self) -> str:
        """The URL with any credentials redacted."""
        return redact(self.url)

    def read_ref(self) -> bytes | None:
        """The commit the remote's branch names (None: nothing pushed yet)."""
        return parse_ref(self.rclone.cat(self.layout.url, self.layout.ref_rel), self.layout.ref)


def parse_ref(data: bytes | None, where: str) -> bytes | None:
    """The commit id a remote ref file holds (None when absent)."""
    if data is None:
        return None
    value = data.strip()
    if not HEX40.match(value):
        raise RemoteError(f"{redact(where)}: not a commit id (the remote ref is damaged)")
    return value


def find_campaigns(rclone: Rclone, url: str) -> list[str]:
    """Archive names of the campaigns below ``url`` (folders named ``*.camp``)."""
    names = []
    for folder in rclone.lsdirs(url):
        parts = folder.split("/")
        if parts[-1].endswith(".camp") and not any(p.endswith(".camp") for p in parts[:-1]):
            names.append(folder[: -len(".camp")])
    return sorted(names)
