"""Push, fetch and clone mechanics: the order in which objects, archive and ref reach a remote.

Push order (see docs/remotes.md): one pack of the objects the remote lacks (and its
index) under temporary names, renamed into place; the built archive uploaded under a
temporary name; then, holding a short lease on the remote, the remote ref is read again
(refuse if it moved), the archive is renamed into place and the ref is written LAST. A
push killed at any point leaves the ref, and so the history a reader sees, as it was;
everything it uploaded before is either ignored (``tmp-*`` names) or unreferenced, and
the next push removes those temporaries under its lease (:func:`sweep_remote`).

Fetch reads the ref FIRST and lists packs after, so every pack the ref needs is listed;
downloaded packs are verified here (pack checksum, index checksum, every object id
recomputed) rather than trusting the transport, and the ref must name a commit whose
whole history is then at hand (:func:`check_history`) before anything is recorded.

The pieces live beside this module: :mod:`~campaignvcs.remote.transfer` (the pack sent,
the checks on packs received), :mod:`~campaignvcs.remote.lease` (the lease and the sweep),
:mod:`~campaignvcs.remote.tracking` (this clone's record of the remote) and
:mod:`campaignvcs.graph` (what the remote lacks). The archive a push uploads is built by
the caller (``build_aca``): this layer never reaches back up into porcelain.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from campaignvcs.errors import CampError
from campaignvcs.faults import fault
from campaignvcs.graph import is_ancestor, missing_objects
from campaignvcs.remote.endpoint import Remote
from campaignvcs.remote.layout import PACK_RE
from campaignvcs.remote.lease import RemoteLease, new_tmp_token, sweep_remote, tidy_remote
from campaignvcs.remote.rclone import RemoteError
from campaignvcs.remote.tracking import (
    add_known_packs,
    drop_bad_tracking_ref,
    known_packs,
    local_packs,
    read_local_ref,
    set_tracking,
    tracking_ref,
)
from campaignvcs.remote.transfer import IncomingObjects, check_history, pack_for_push, verify_pack
from campaignvcs.repo import CampaignRepo
from campaignvcs.tempfiles import make_temp_dir, sweep

Progress = Callable[[str, int, int], None]
"""Called with (what, bytes done, bytes total) during transfers."""

PUSH_FAULT_POINTS = ("push-after-upload", "push-after-pack", "push-after-lease", "push-after-aca",
                     "push-after-ref", "push-after-sweep")
"""Where ``CAMP_FAULT`` kills a push (tests), in order; each after a different step."""
FETCH_FAULT_POINTS = ("fetch-after-download", "fetch-after-packs", "fetch-after-ref")
"""Where ``CAMP_FAULT`` kills a fetch (and so a pull or a clone), in order."""


class NonFastForward(RemoteError):
    """The remote has commits this clone does not have."""


# -- push --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushOutcome:
    """What one push sent."""

    old: bytes | None
    new: bytes
    objects: int
    pack_bytes: int
    aca_bytes: int
    up_to_date: bool = False


def push(
    camp: CampaignRepo,
    remote: Remote,
    head: bytes,
    build_aca: Callable[[str], str] | None,
    progress: Progress | None = None,
) -> PushOutcome:
    """Send ``head``'s history (and its archive, from ``build_aca(tmp_path)``) to ``remote``.

    Refuses (NonFastForward) when the remote's commit is unknown here or not an ancestor
    of ``head``: the user pulls first. The caller need not hold the repository lock:
    objects are immutable and only the tracking ref and bookkeeping are written.
    ``camp.fault`` (``CAMP_FAULT``, tests) kills the process at one of
    :data:`PUSH_FAULT_POINTS`.
    """
    rc, lay = remote.rclone, remote.layout
    if "\n" in lay.name or "\r" in lay.name:
        raise RemoteError(f"archive name {lay.name!r} holds a line break: it cannot be pushed")
    sweep(camp.camp_dir, ("tmp-push-",))  # a killed push's local folder (pack and archive copies)
    old = remote.read_ref()
    _check_fast_forward(camp, remote, old, head)
    if old == head:
        # Nothing to send; a push killed after writing the ref may have left its lease
        # (and this clone's record of the remote) behind.
        tidy_remote(remote)
        with contextlib.suppress(CampError):
            set_tracking(camp, remote.name, head)
        return PushOutcome(old, head, 0, 0, 0, up_to_date=True)
    tmp = make_temp_dir(camp.camp_dir, "tmp-push-")
    try:
        pack = pack_for_push(camp, missing_objects(camp, head, old), tmp)
        pack_bytes = pack.size
        pack_rel = {s: f"{lay.pack_rel}/{pack.name}{s}" for s in (".pack", ".idx")}
        local: dict[str, str] = {pack_rel[".pack"]: pack.pack, pack_rel[".idx"]: pack.idx}
        aca_bytes = 0
        if build_aca is not None:
            local_aca = build_aca(os.path.join(tmp, "archive.aca"))
            aca_bytes = os.path.getsize(local_aca)
            local[lay.aca_rel] = local_aca
        ref_file = os.path.join(tmp, "ref")
        with open(ref_file, "wb") as f:
            f.write(head + b"\n")
        local[lay.ref_rel] = ref_file
        total = sum(os.path.getsize(p) for p in local.values())
        token = new_tmp_token(total)
        tmp_of = {rel: lay.tmp_rel(rel, token) for rel in local}
        # Everything travels in one rclone call, under temporary names in a tree that
        # mirrors the remote; the renames below publish it.
        upload = os.path.join(tmp, "upload")
        for rel, path in local.items():
            os.makedirs(os.path.dirname(os.path.join(upload, tmp_of[rel])), exist_ok=True)
            os.link(path, os.path.join(upload, tmp_of[rel]))
        left = set(tmp_of.values())
        try:
            rc.upload_tree(upload, lay.url, sorted(left), total, _stage(progress, "upload", 0, total))
            fault(camp.fault, "push-after-upload")
            for rel in (pack_rel[".pack"], pack_rel[".idx"]):  # the index last: readers only use paired packs
                rc.moveto(lay.url, tmp_of[rel], rel)
                left.discard(tmp_of[rel])
            add_known_packs(camp, remote.name, [pack.name])
            fault(camp.fault, "push-after-pack")
            _publish(camp, remote, old, head, tmp_of, left, token)
        except Exception:
            # This push's own temporaries go now (a killed push's go with the next push's sweep).
            for rel in sorted(left):
                with contextlib.suppress(RemoteError):
                    rc.deletefile(lay.url, rel)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(CampError):  # the remote has it; the record catches up at the next fetch
        set_tracking(camp, remote.name, head)
    return PushOutcome(old, head, pack.objects, pack_bytes, aca_bytes)


def _publish(camp: CampaignRepo, remote: Remote, old: bytes | None, head: bytes, tmp_of: dict[str, str],
             left: set[str], token: str) -> None:
    """Under the lease: check the ref did not move, rename the archive, write the ref last, sweep."""
    rc, lay = remote.rclone, remote.layout
    lease = RemoteLease(remote)
    lease.acquire()
    try:
        fault(camp.fault, "push-after-lease")
        if remote.read_ref() != old:
            raise NonFastForward(
                f"push rejected: remote {remote.name} moved while pushing (another push finished first); "
                "run 'camp pull' first"
            )
        if lay.aca_rel in tmp_of:
            rc.moveto(lay.url, tmp_of[lay.aca_rel], lay.aca_rel)
            left.discard(tmp_of[lay.aca_rel])
        fault(camp.fault, "push-after-aca")
        rc.moveto(lay.url, tmp_of[lay.ref_rel], lay.ref_rel)
        left.discard(tmp_of[lay.ref_rel])
        if remote.read_ref() != head:
            raise RemoteError(
                f"remote {remote.name} changed while its ref was written "
                "(a concurrent push without the lock?); "
                "run 'camp pull', then push again"
            )
        fault(camp.fault, "push-after-ref")
        sweep_remote(remote, token)
        fault(camp.fault, "push-after-sweep")
    finally:
        lease.release()


def _check_fast_forward(camp: CampaignRepo, remote: Remote, old: bytes | None, head: bytes) -> None:
    if old is None or old == head:
        return
    try:
        known = old in camp.store and is_ancestor(camp, old, head)
    except CampError:
        known = False
    if not known:
        raise NonFastForward(
            f"push rejected: remote {remote.name} has commits you do not have; run 'camp pull' first"
        )


def _stage(progress: Progress | None, what: str, before: int,
           total: int) -> Callable[[int, int], None] | None:
    """Turn rclone's per-call byte counts into progress of a whole stage."""
    if progress is None:
        return None
    return lambda done, _total: progress(what, min(before + done, total), total)


# -- fetch ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchOutcome:
    """What one fetch received."""

    old: bytes | None
    new: bytes | None
    packs: int
    objects: int
    bytes_received: int
    dropped: str | None = None
    """A remote-tracking ref that named no commit (left by camp before 0.2), removed first."""


def fetch(camp: CampaignRepo, remote: Remote, progress: Progress | None = None) -> FetchOutcome:
    """Download the packs the remote has and this clone lacks; update ``refs/remotes/<name>/main``.

    The ref is read first: a pusher writes it last, so every pack it needs is listed by
    the time the folder is read. Packs are verified and the ref's whole history is
    checked (:func:`check_history`) while they are still in a temporary folder: a refused
    fetch stores no pack and moves no ref. ``camp.fault`` (``CAMP_FAULT``, tests) kills
    the process at one of :data:`FETCH_FAULT_POINTS`.
    """
    rc, lay = remote.rclone, remote.layout
    dropped = drop_bad_tracking_ref(camp, remote.name)
    old = read_local_ref(camp, tracking_ref(remote.name))
    ref = remote.read_ref()
    if ref is None:
        return FetchOutcome(old, None, 0, 0, 0, dropped)
    sizes: dict[str, dict[str, int]] = {}
    for entry in rc.lsjson(lay.url, lay.pack_rel):
        m = PACK_RE.match(str(entry.get("Name", "")))
        if m:
            sizes.setdefault("pack-" + m.group(1), {})[m.group(2)] = int(str(entry.get("Size") or 0))
    complete = {n for n, s in sizes.items() if "pack" in s and "idx" in s}
    todo = sorted(complete - known_packs(camp, remote.name) - local_packs(camp))
    received = objects = 0
    sweep(camp.camp_dir, ("tmp-fetch-",))  # what a killed fetch downloaded
    tmp = make_temp_dir(camp.camp_dir, "tmp-fetch-")
    try:
        incoming = os.path.join(tmp, "pack")
        ids: list[AbstractSet[bytes]] = []  # each pack's, as verify_pack gives them (compact: no set of millions)
        if todo:
            os.makedirs(incoming)
            files = [n + s for n in todo for s in (".pack", ".idx")]
            total = sum(sizes[n]["pack"] + sizes[n]["idx"] for n in todo)
            rc.download(lay.pack_dir, files, incoming, total, _stage(progress, "fetch", 0, total))
            for name in todo:
                pack, idx = os.path.join(incoming, name + ".pack"), os.path.join(incoming, name + ".idx")
                if not (os.path.isfile(pack) and os.path.isfile(idx)):
                    raise RemoteError(f"pack {name} did not arrive from remote {remote.name}")
                found = verify_pack(camp, pack, idx, name)
                ids.append(found)
                objects += len(found)
                received += os.path.getsize(pack) + os.path.getsize(idx)
            fault(camp.fault, "fetch-after-download")
        with IncomingObjects(camp, tmp if todo else None, ids) as available:
            check_history(camp, remote.name, ref, available)
        if todo:
            pack_dir = os.path.join(camp.git_dir, "objects", "pack")
            os.makedirs(pack_dir, exist_ok=True)
            # Only after every pack and the history checked out; the index last, as git does.
            for name in todo:
                os.replace(os.path.join(incoming, name + ".pack"), os.path.join(pack_dir, name + ".pack"))
                os.replace(os.path.join(incoming, name + ".idx"), os.path.join(pack_dir, name + ".idx"))
            camp.objects.refresh()  # what follows (a merge, a build) reads the new packs the fast way
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if todo:
        add_known_packs(camp, remote.name, todo)
    fault(camp.fault, "fetch-after-packs")
    set_tracking(camp, remote.name, ref)
    fault(camp.fault, "fetch-after-ref")
    return FetchOutcome(old, ref, len(todo), objects, received, dropped)


# -- clone --------------------------------------------------------------------------------------


def finish_clone(camp: CampaignRepo, head: bytes) -> None:
    """Point the branch at ``head`` and mark the folder a campaign (last)."""
    camp.refs[b"refs/heads/main"] = head
    camp.mark()
