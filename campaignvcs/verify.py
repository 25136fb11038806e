"""Does a replica on disk still match its record? The check behind ``camp verify``.

A replica this host can reach is read again with the extractor ``camp add`` used and
compared with its manifest: it exists, its size, modification time and checksum (for a
keyed replica, the plaintext lengths of its embedded objects) are those recorded. Replicas
on other hosts, inside archives, thumbnails and those whose directory is not mounted here
are reported as not checked. Nothing is changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from campaignvcs.errors import CampError
from campaignvcs.extract import Options, extract
from campaignvcs.model import Dataset, Replica
from campaignvcs.statcache import is_thumbnail


@dataclass(frozen=True)
class ReplicaCheck:
    """One replica and what ``camp verify`` found.

    ``state`` is ``ok``, ``changed`` (``problems`` says what), ``missing``,
    ``unreadable`` or ``not checked`` (``reason`` says why: another host, an archive).
    """

    dataset: str
    replica: str
    host: str
    path: str
    state: str
    problems: list[str] = field(default_factory=list)
    reason: str = ""


def check_replica(ds: Dataset, r: Replica, host: str) -> ReplicaCheck:
    """Re-read one replica from disk (if this host can) and compare it with its record."""
    full = os.path.normpath(os.path.join(r.dir, r.path))

    def result(state: str, problems: list[str] | None = None, reason: str = "") -> ReplicaCheck:
        shown = full if r.archive is None else f"{os.path.join(r.dir, r.archive)}:{r.path}"
        return ReplicaCheck(ds.name, r.id, r.host, shown, state, problems or [], reason)

    if r.host != host:
        return result("not checked", reason=f"on host {r.host}")
    if r.archive is not None:
        return result("not checked", reason="inside an archive")
    if is_thumbnail(ds, r.path):
        return result("not checked", reason="thumbnail (kept in the campaign only)")
    if not os.path.isdir(r.dir):
        return result("not checked", reason=f"directory {r.dir} is not present on this machine")
    if not os.path.lexists(full):
        return result("missing", [f"{full} does not exist"])
    store = bool(r.files) and ds.kind in ("TEXT", "IMAGE")
    try:
        extracted = extract(full, ds.kind, Options(store=store))
    except CampError as exc:
        return result("unreadable", [str(exc)])
    main = extracted.replicas[0]
    problems = []
    if main.size != r.size:
        problems.append(f"size {r.size} recorded, {main.size} found")
    if main.mtime != r.mtime and not (ds.kind == "ADIOS" and _folder_mtime(full) == r.mtime):
        # hpc-campaign (and so `camp import`) records a BP folder's mtime, camp its md.idx's.
        problems.append(f"mtime {r.mtime} recorded, {main.mtime} found")
    if r.key:
        # Encrypted: no plaintext checksum is recorded; the plaintext length is.
        stored = {f.name: f.lenorig for f in r.files}
        for p in main.payloads:
            if p.name in stored and stored[p.name] != p.lenorig:
                problems.append(f"metadata {p.name}: {stored[p.name]} bytes recorded, {p.lenorig} found")
    else:
        if r.checksum and r.checksum != main.checksum:
            problems.append(f"checksum {r.checksum[:12]} recorded, {main.checksum[:12]} found")
        stored_sums = {f.name: f.checksum for f in r.files}
        for p in main.payloads:
            if p.name in stored_sums and stored_sums[p.name] != p.checksum and p.checksum != main.checksum:
                problems.append(f"metadata {p.name}: checksum {stored_sums[p.name][:12]} recorded, "
                                f"{p.checksum[:12]} found")
    return result("changed" if problems else "ok", problems)


def _folder_mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None
