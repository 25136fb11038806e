"""Push, fetch and clone mechanics, and the tree-level 3-way merge a pull needs.

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
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from campaignvcs import layout as tree_layout
from campaignvcs.errors import CampError, RepoLocked
from campaignvcs.faults import fault
from campaignvcs.gitobjects import BLOB_MODE, TREE_MODE, TYPE_NUMBERS, Entry
from campaignvcs.merge import Merged, merge_campaign, merge_dataset, merge_host, merge_timeseries
from campaignvcs.model import Campaign, Dataset, Host, TimeSeries
from campaignvcs.packwrite import PackFiles, write_pack
from campaignvcs.remote.layout import LEGACY_TMP_RE, PACK_RE, TMP_RE, RemoteLayout, parse_ref, tmp_writer
from campaignvcs.remote.rclone import Rclone, RemoteError, redact, transfer_timeout
from campaignvcs.repo import CampaignRepo
from campaignvcs.tempfiles import atomic_write, hostname, make_temp_dir, process_start, sweep, writer_alive

Progress = Callable[[str, int, int], None]
"""Called with (what, bytes done, bytes total) during transfers."""

TRACKING_PREFIX = b"refs/remotes/"
LEASE_SECONDS = 600
"""A remote lock older than this is abandoned (its pusher died on another host)."""
LOCK_WAIT_SECONDS = 30.0
LOCK_SETTLE_SECONDS = 0.3
"""Time between writing the lock and reading it back: a concurrent writer shows up by then."""
TMP_GRACE_SECONDS = 2 * LEASE_SECONDS
"""Added to a push's upload time limit to give the expiry of its temporaries: the renames
and the lease wait that follow the upload, and clocks that disagree between hosts."""
PACK_COMPRESSION = 1
PUSH_FAULT_POINTS = ("push-after-upload", "push-after-pack", "push-after-lease", "push-after-aca",
                     "push-after-ref", "push-after-sweep")
"""Where ``CAMP_FAULT`` kills a push (tests), in order; each after a different step."""
FETCH_FAULT_POINTS = ("fetch-after-download", "fetch-after-packs", "fetch-after-ref")
"""Where ``CAMP_FAULT`` kills a fetch (and so a pull or a clone), in order."""
GITLINK_MODE = 0o160000


class NonFastForward(RemoteError):
    """The remote has commits this clone does not have."""


class RemoteLocked(RemoteError):
    """Another push holds the remote's lease."""


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


def tracking_ref(name: str) -> bytes:
    """``refs/remotes/<name>/main``: the remote's branch as last seen."""
    return TRACKING_PREFIX + name.encode() + b"/main"


# -- history walking ---------------------------------------------------------------------


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


# -- objects the remote lacks ------------------------------------------------------------


def missing_objects(camp: CampaignRepo, head: bytes, have: bytes | None) -> list[bytes]:
    """Objects reachable from ``head`` that a remote holding ``have``'s history lacks.

    Each new commit's tree is compared with its parents' trees path by path and only
    subtrees that differ are entered, so a one-dataset change costs a handful of tree
    reads, not a walk of the whole campaign. An object that moved to another path is
    sent again (harmless: git allows duplicates across packs).
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
    out: list[bytes] = []
    sent: set[bytes] = set()
    for oid in new_commits:
        commit = camp.read_commit(oid)
        out.append(oid)
        parents = [camp.read_commit(p).tree for p in commit.parents]
        _new_in_tree(camp, commit.tree, parents, out, sent)
    return out


def _new_in_tree(camp: CampaignRepo, tree: bytes, olds: list[bytes], out: list[bytes], sent: set[bytes]) -> None:
    if tree in olds or tree in sent:
        return
    sent.add(tree)
    out.append(tree)
    old_entries = [camp.tree_entries(o) for o in olds]
    for name, (mode, oid) in sorted(camp.tree_entries(tree).items()):
        prev = [e[name] for e in old_entries if name in e]
        if any(p[1] == oid for p in prev):
            continue
        if mode == TREE_MODE:
            _new_in_tree(camp, oid, [p[1] for p in prev if p[0] == TREE_MODE], out, sent)
        elif oid not in sent:
            sent.add(oid)
            out.append(oid)


def pack_for_push(camp: CampaignRepo, oids: Iterable[bytes], folder: str) -> PackFiles:
    """Write the objects as one undeltified pack + index into ``folder`` (copied raw, never parsed).

    The same objects in the same order give byte-identical files (a retried push re-sends the same pack).
    """
    oids = list(oids)
    objects = ((oid, TYPE_NUMBERS[kind], raw) for oid in oids for kind, raw in (camp.read_raw(oid),))
    return write_pack(folder, objects, len(oids))


def verify_pack(camp: CampaignRepo, pack: str, idx: str, name: str) -> set[bytes]:
    """Check a downloaded pack before it joins the store; returns the (hex) ids of its objects.

    The pack's trailing checksum must match its name and the index; the index's own
    checksum must hold; and every object id, recomputed from the pack's content, must
    be exactly the set the index lists (at the offsets and CRCs it lists).
    """
    from dulwich.pack import PackData, load_pack_index

    what = f"pack {name} from the remote"
    try:
        data = PackData(pack, camp.store.object_format)
        index = load_pack_index(idx, camp.store.object_format)
    except Exception as exc:  # dulwich raises assorted types for a malformed file
        raise RemoteError(f"{what} is damaged ({type(exc).__name__}: {exc})") from None
    try:
        try:
            data.check()
            index.check()
        except Exception as exc:
            raise RemoteError(f"{what} is damaged (checksum mismatch: {exc})") from None
        stored = data.get_stored_checksum()
        if "pack-" + stored.hex() != name or index.get_pack_checksum() != stored:
            raise RemoteError(f"{what} does not match its name or index")
        try:
            actual = sorted((bytes(s), o, c) for s, o, c in data.iterentries())
        except Exception as exc:
            raise RemoteError(f"{what} is damaged ({type(exc).__name__}: {exc})") from None
        listed = sorted((bytes(s), o, c) for s, o, c in index.iterentries())
        if actual != listed:
            raise RemoteError(f"{what} holds objects its index does not list")
        return {sha.hex().encode() for sha, _offset, _crc in actual}
    finally:
        data.close()
        index.close()


# -- local bookkeeping ---------------------------------------------------------------------


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


def _local_packs(camp: CampaignRepo) -> set[str]:
    folder = os.path.join(camp.git_dir, "objects", "pack")
    try:
        return {f[:-4] for f in os.listdir(folder) if f.startswith("pack-") and f.endswith(".idx")}
    except FileNotFoundError:
        return set()


# -- the remote lease ----------------------------------------------------------------------------


class RemoteLease:
    """A lock file on a store without compare-and-swap: write a unique token, read it back.

    Best effort by design (see docs/remotes.md): two pushers that both find the lock
    absent, write within the settle time and read back in an unlucky order could both
    believe they hold it; the ref is therefore also re-read under the lease and checked
    after it is written. A lease expires after :data:`LEASE_SECONDS`; one left by a dead
    process on this host is broken at once.
    """

    def __init__(self, remote: Remote, wait: float = LOCK_WAIT_SECONDS) -> None:
        self.remote = remote
        self.wait = wait
        self.token = secrets.token_hex(16)
        self.held = False

    def _content(self) -> bytes:
        return json.dumps({"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": int(time.time()) + LEASE_SECONDS}, sort_keys=True).encode() + b"\n"

    def acquire(self) -> None:
        """Take the lease, waiting up to ``wait`` seconds for another pusher to finish."""
        rclone, lay = self.remote.rclone, self.remote.layout
        path = lay.lock
        deadline = time.monotonic() + self.wait
        while True:
            current = rclone.cat(lay.url, lay.lock_rel)
            if current is not None:
                holder = _parse_lease(current)
                if holder is None or _lease_abandoned(holder):
                    rclone.deletefile(lay.url, lay.lock_rel)
                    continue
                if time.monotonic() >= deadline:
                    raise RemoteLocked(
                        f"remote {self.remote.name} is locked by a push from {holder.get('host')} "
                        f"(pid {holder.get('pid')}); try again later, or delete {redact(path)} if no push is running"
                    )
                time.sleep(0.5)
                continue
            mine = self._content()
            rclone.rcat(lay.url, lay.lock_rel, mine)
            time.sleep(LOCK_SETTLE_SECONDS)
            if rclone.cat(lay.url, lay.lock_rel) == mine:
                self.held = True
                return

    def release(self) -> None:
        """Drop the lease."""
        if not self.held:
            return
        self.held = False
        # Not read back first: the lease outlives any push's final renames by minutes, so
        # the file is ours (one call saved on every push).
        with contextlib.suppress(RemoteError):
            self.remote.rclone.deletefile(self.remote.layout.url, self.remote.layout.lock_rel)


def _parse_lease(data: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "token" in value else None


def _lease_abandoned(holder: dict[str, object]) -> bool:
    expires = holder.get("expires")
    if not isinstance(expires, int) or expires < time.time():
        return True
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


# -- temporaries on the remote ---------------------------------------------------------------------


def new_tmp_token(total: int) -> str:
    """The writer part of this push's temporary names (see :func:`campaignvcs.remote.layout.tmp_writer`).

    They expire once the upload of ``total`` bytes has certainly ended (rclone is stopped
    at :func:`transfer_timeout`), plus :data:`TMP_GRACE_SECONDS` for what follows it.
    """
    pid = os.getpid()
    expires = int(time.time() + transfer_timeout(total) + TMP_GRACE_SECONDS)
    return tmp_writer(hostname(), pid, process_start(pid), expires, secrets.token_hex(4))


def _mod_time(entry: dict[str, object]) -> float | None:
    try:
        return datetime.fromisoformat(str(entry.get("ModTime"))).timestamp()
    except ValueError:
        return None


def stale_tmps(remote: Remote, own: str = "", now: float | None = None) -> list[str]:
    """This campaign's ``tmp-*`` files on the remote whose writers are gone (paths relative to the root).

    A temporary is stale when it is not this push's (``own``) and either its writer ran on
    this host and no longer runs (pid and process start), or its expiry has passed: by
    then the writer's upload was stopped and the lease it waited for was given up, so it
    never uses the file again (at worst a push frozen for that long fails its rename;
    the remote ref is written last, from the writer's own temporary, so it is never
    left pointing at something missing). A temporary of camp before 0.2 names no writer:
    it is stale once its modification time is older than the longest upload of its
    push's files plus the same grace. Only names a push of this campaign makes are
    considered (the archive's folder may be shared with other campaigns and files).
    """
    rc, lay = remote.rclone, remote.layout
    now = time.time() if now is None else now
    found: list[tuple[str, dict[str, str], dict[str, object]]] = []
    legacy_sizes: dict[str, int] = {}
    for folder in lay.tmp_folders():
        try:
            entries = rc.lsjson(lay.url, folder)
        except RemoteError:
            continue
        for entry in entries:
            name = str(entry.get("Name", ""))
            m = TMP_RE.match(name) or LEGACY_TMP_RE.match(name)
            if m is None or not lay.owns_tmp(folder, m.group("rest")):
                continue
            found.append((f"{folder}/{name}" if folder else name, m.groupdict(), entry))
            if "token" in m.groupdict():
                token = m.group("token")
                legacy_sizes[token] = legacy_sizes.get(token, 0) + int(str(entry.get("Size") or 0))
    stale = []
    for rel, g, entry in found:
        if "token" in g:  # camp before 0.2: no writer, no expiry
            written = _mod_time(entry)
            if written is not None and now > written + transfer_timeout(legacy_sizes[g["token"]]) + TMP_GRACE_SECONDS:
                stale.append(rel)
            continue
        writer = f"{g['host']}~{g['pid']}~{g['start']}~{g['expires']}~{g['rand']}"
        if writer == own:
            continue
        if now > int(g["expires"]) or writer_alive(g["host"], g["pid"], g["start"]) is False:
            stale.append(rel)
    return sorted(stale)


def sweep_remote(remote: Remote, own: str = "", now: float | None = None) -> list[str]:
    """Delete :func:`stale_tmps` (the caller holds the lease); returns what was deleted.

    Housekeeping never fails a push: a file that cannot be deleted is left for the next one.
    """
    removed = []
    for rel in stale_tmps(remote, own, now):
        with contextlib.suppress(RemoteError):
            remote.rclone.deletefile(remote.layout.url, rel)
            removed.append(rel)
    return removed


def tidy_remote(remote: Remote) -> list[str]:
    """After a push found nothing to send: break a lease a killed push left, and sweep under it.

    One read when there is no lease (the usual case); never fails.
    """
    rc, lay = remote.rclone, remote.layout
    try:
        current = rc.cat(lay.url, lay.lock_rel)
        if current is None:
            return []
        holder = _parse_lease(current)
        if holder is not None and not _lease_abandoned(holder):
            return []  # a live push: it sweeps itself
        lease = RemoteLease(remote, wait=0.0)
        lease.acquire()
    except RemoteError:
        return []
    try:
        return sweep_remote(remote)
    finally:
        lease.release()


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
            _set_tracking(camp, remote.name, head)
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
        _set_tracking(camp, remote.name, head)
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
                f"remote {remote.name} changed while its ref was written (a concurrent push without the lock?); "
                "run 'camp pull', then push again"
            )
        fault(camp.fault, "push-after-ref")
        sweep_remote(remote, token)
        fault(camp.fault, "push-after-sweep")
    finally:
        lease.release()


def _set_tracking(camp: CampaignRepo, name: str, commit: bytes) -> None:
    """Record the remote's branch (``<name>/main``) unless it already says so."""
    ref = tracking_ref(name)
    if _read_local_ref(camp, ref) != commit:
        with _moving_refs(camp):
            camp.refs[ref] = commit


def _moving_refs(camp: CampaignRepo) -> contextlib.ExitStack:
    """The repository lock while a ref moves, when it is free (push and fetch need not hold it).

    Under it, a ref lock (``<ref>.lock``) that a killed camp left is broken (see
    :mod:`campaignvcs.lockfile`); without it, a busy repository does not hold the ref up.
    """
    stack = contextlib.ExitStack()
    with contextlib.suppress(RepoLocked):
        stack.enter_context(camp.lock())
    return stack


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


def _stage(progress: Progress | None, what: str, before: int, total: int) -> Callable[[int, int], None] | None:
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
    old = _read_local_ref(camp, tracking_ref(remote.name))
    ref = remote.read_ref()
    if ref is None:
        return FetchOutcome(old, None, 0, 0, 0, dropped)
    sizes: dict[str, dict[str, int]] = {}
    for entry in rc.lsjson(lay.url, lay.pack_rel):
        m = PACK_RE.match(str(entry.get("Name", "")))
        if m:
            sizes.setdefault("pack-" + m.group(1), {})[m.group(2)] = int(str(entry.get("Size") or 0))
    complete = {n for n, s in sizes.items() if "pack" in s and "idx" in s}
    todo = sorted(complete - known_packs(camp, remote.name) - _local_packs(camp))
    received = objects = 0
    sweep(camp.camp_dir, ("tmp-fetch-",))  # what a killed fetch downloaded
    tmp = make_temp_dir(camp.camp_dir, "tmp-fetch-")
    try:
        incoming = os.path.join(tmp, "pack")
        ids: set[bytes] = set()
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
                ids.update(found)
                objects += len(found)
                received += os.path.getsize(pack) + os.path.getsize(idx)
            fault(camp.fault, "fetch-after-download")
        with _Objects(camp, tmp if todo else None, ids) as available:
            check_history(camp, remote.name, ref, available)
        if todo:
            pack_dir = os.path.join(camp.git_dir, "objects", "pack")
            os.makedirs(pack_dir, exist_ok=True)
            for name in todo:  # only after every pack and the history checked out; the index last, as git does
                os.replace(os.path.join(incoming, name + ".pack"), os.path.join(pack_dir, name + ".pack"))
                os.replace(os.path.join(incoming, name + ".idx"), os.path.join(pack_dir, name + ".idx"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if todo:
        add_known_packs(camp, remote.name, todo)
    fault(camp.fault, "fetch-after-packs")
    _set_tracking(camp, remote.name, ref)
    fault(camp.fault, "fetch-after-ref")
    return FetchOutcome(old, ref, len(todo), objects, received, dropped)


def _read_local_ref(camp: CampaignRepo, ref: bytes) -> bytes | None:
    try:
        return camp.refs[ref]
    except (KeyError, ValueError):
        return None


# -- checking what a ref names ------------------------------------------------------------------


def _stored(camp: CampaignRepo, oid: bytes) -> bool:
    """Whether the repository holds the object (without reading it)."""
    text = oid.decode()
    if os.path.exists(os.path.join(camp.git_dir, "objects", text[:2], text[2:])):
        return True
    try:
        return bool(camp.store.contains_packed(oid))
    except Exception:  # noqa: BLE001 - an unreadable index: as good as absent here (fsck names it)
        return False


class _Objects:
    """The objects a fetch can rely on: those of packs downloaded but not stored yet, then the repository's."""

    def __init__(self, camp: CampaignRepo, folder: str | None, ids: set[bytes]) -> None:
        from campaignvcs.packreader import PackReader

        self.camp = camp
        self.folder = folder
        self.ids = ids
        self.reader = PackReader(folder) if folder else None
        self._dulwich: list[object] = []

    def __enter__(self) -> _Objects:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.close()
        for pack in self._dulwich:
            pack.close()  # type: ignore[attr-defined]

    def has(self, oid: bytes) -> bool:
        """Whether the object is at hand."""
        return oid in self.ids or _stored(self.camp, oid)

    def stored(self, oid: bytes) -> bool:
        """Whether the repository itself already holds it."""
        return oid not in self.ids and _stored(self.camp, oid)

    def read(self, oid: bytes) -> tuple[bytes, bytes] | None:
        """(type name, content), or None when the object is not at hand."""
        if oid in self.ids:
            got = self.reader.read(oid) if self.reader is not None else None
            return got if got is not None else self._read_dulwich(oid)
        if not _stored(self.camp, oid):
            return None
        try:
            return self.camp.read_raw(oid)
        except CampError:
            return None

    def _read_dulwich(self, oid: bytes) -> tuple[bytes, bytes] | None:
        """A deltified object (packs camp writes have none; another tool's might)."""
        from dulwich.objects import object_class
        from dulwich.pack import Pack

        assert self.folder is not None
        if not self._dulwich:
            folder = os.path.join(self.folder, "pack")
            bases = [os.path.join(folder, n[:-4]) for n in sorted(os.listdir(folder)) if n.endswith(".idx")]
            self._dulwich = [Pack(base) for base in bases]
        for pack in self._dulwich:
            try:
                type_num, data = pack.get_raw(oid)  # type: ignore[attr-defined]
            except KeyError:
                continue
            return object_class(type_num).type_name, data
        return None


def check_history(camp: CampaignRepo, remote: str, ref: bytes, objects: _Objects) -> int:
    """Refuse (RemoteError, one line) unless ``ref`` names a commit whose whole history is at hand.

    Every commit reachable from ``ref`` must be a commit, and every tree and blob reachable
    from those commits must be present (trees and commits are read and parsed; blobs need
    only be there, as for git's connectivity check). Commits reachable from a local
    branch are taken as complete (``camp fsck`` checks those); each other commit's tree is
    compared with its parents' trees and only the subtrees that differ are entered, so a
    pull of one new commit reads a handful of trees, and a clone reads every tree once.
    Returns the number of commits checked.
    """
    what = f"remote {remote}: refs/heads/main"
    got = objects.read(ref)
    if got is None:
        raise RemoteError(f"{what} points at {ref.decode()}, which none of its packs holds (damaged remote?)")
    if got[0] != b"commit":
        raise RemoteError(f"{what} points at {ref.decode()}, which is a {got[0].decode()}, not a commit")
    incomplete = f"{what} ({ref.decode()[:10]}): history is incomplete:"
    trusted: set[bytes] | None = None
    trees: dict[bytes, tuple[bytes, list[bytes]]] = {}
    stack = [(ref, "the ref")]
    while stack:
        oid, where = stack.pop()
        if oid in trees:
            continue
        if objects.stored(oid):
            if trusted is None:
                trusted = _branch_history(camp)
            if oid in trusted:
                continue
        got = objects.read(oid)
        if got is None:
            raise RemoteError(f"{incomplete} commit {oid.decode()} missing ({where})")
        if got[0] != b"commit":
            raise RemoteError(f"{incomplete} object {oid.decode()} ({where}) is a {got[0].decode()}, not a commit")
        tree, parents = _parse_commit(got[1], oid, incomplete)
        trees[oid] = (tree, parents)
        stack.extend((p, f"parent of {oid.decode()[:10]}") for p in parents)
    done: set[bytes] = set()
    blobs: set[bytes] = set()
    for oid, (tree, parents) in trees.items():
        olds = [trees[p][0] if p in trees else camp.read_commit(p).tree for p in parents]
        _check_tree(objects, tree, olds, done, blobs, f"commit {oid.decode()[:10]}", "", incomplete)
    return len(trees)


def _branch_history(camp: CampaignRepo) -> set[bytes]:
    """Commits reachable from the local branches (whose history is taken as complete)."""
    out: set[bytes] = set()
    for name in camp.refs.subkeys(b"refs/heads/"):
        try:
            out |= ancestors(camp, camp.refs[b"refs/heads/" + name])
        except (CampError, KeyError, ValueError):
            continue  # a damaged branch vouches for nothing (camp fsck reports it)
    return out


def _parse_commit(data: bytes, oid: bytes, incomplete: str) -> tuple[bytes, list[bytes]]:
    """(tree, parents) of a commit's raw content."""
    tree = b""
    parents = []
    for line in data.split(b"\n"):
        if not line:
            break
        if line.startswith(b"tree "):
            tree = line[5:]
        elif line.startswith(b"parent "):
            parents.append(line[7:])
    if len(tree) != 40 or any(len(p) != 40 for p in parents):
        raise RemoteError(f"{incomplete} commit {oid.decode()} is malformed")
    return tree, parents


def _check_tree(objects: _Objects, tree: bytes, olds: list[bytes], done: set[bytes], blobs: set[bytes],
                commit: str, path: str, incomplete: str) -> None:
    if tree in done or tree in olds:
        return
    where = f"{path or 'root tree'} of {commit}"
    entries = _tree_entries(objects, tree, where, incomplete)
    old_entries = [_tree_entries(objects, o, where, incomplete) for o in olds]
    for name, (mode, sha) in entries.items():
        prev = [e[name] for e in old_entries if name in e]
        if any(p[1] == sha for p in prev):
            continue
        sub = path + "/" + name.decode("utf-8", "replace") if path else name.decode("utf-8", "replace")
        if stat.S_ISDIR(mode):
            _check_tree(objects, sha, [p[1] for p in prev if stat.S_ISDIR(p[0])], done, blobs, commit, sub,
                        incomplete)
        elif mode == GITLINK_MODE or sha in blobs:
            continue
        elif not objects.has(sha):
            raise RemoteError(f"{incomplete} object {sha.decode()} missing ({sub} in {commit})")
        else:
            blobs.add(sha)
    done.add(tree)


def _tree_entries(objects: _Objects, tree: bytes, where: str, incomplete: str) -> dict[bytes, tuple[int, bytes]]:
    from dulwich.objects import ObjectFormatException, parse_tree

    got = objects.read(tree)
    if got is None:
        raise RemoteError(f"{incomplete} tree {tree.decode()} missing ({where})")
    if got[0] != b"tree":
        raise RemoteError(f"{incomplete} object {tree.decode()} ({where}) is a {got[0].decode()}, not a tree")
    try:
        return {name: (mode, sha) for name, mode, sha in parse_tree(got[1], 20)}
    except (ObjectFormatException, ValueError):
        raise RemoteError(f"{incomplete} tree {tree.decode()} is malformed ({where})") from None


# -- remote-tracking refs ------------------------------------------------------------------------


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
    if not _stored(camp, oid):
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
    with _moving_refs(camp):
        camp.refs.remove_if_equals(ref, None)
    return f"{ref.decode()} ({problem})"


# -- clone --------------------------------------------------------------------------------------


def finish_clone(camp: CampaignRepo, head: bytes) -> None:
    """Point the branch at ``head`` and mark the folder a campaign (last)."""
    camp.refs[b"refs/heads/main"] = head
    camp.mark()


def find_campaigns(rclone: Rclone, url: str) -> list[str]:
    """Archive names of the campaigns below ``url`` (folders named ``*.camp``)."""
    names = []
    for folder in rclone.lsdirs(url):
        parts = folder.split("/")
        if parts[-1].endswith(".camp") and not any(p.endswith(".camp") for p in parts[:-1]):
            names.append(folder[: -len(".camp")])
    return sorted(names)


# -- tree merge ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conflict:
    """A manifest both sides changed incompatibly, with both ways to resolve it."""

    name: str
    """Dataset name, or tree path for other manifests (``hosts/x.json``)."""
    path: str
    ours: Entry | None
    theirs: Entry | None
    details: tuple[str, ...]


@dataclass
class TreeMerge:
    """The merge of theirs into ours: changes to stage on top of ours, and conflicts."""

    changes: dict[str, Entry | None] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)


def merge_trees(camp: CampaignRepo, base: bytes | None, ours: bytes | None, theirs: bytes | None) -> TreeMerge:
    """3-way merge of three root trees, entering only subtrees that differ.

    Merge units are whole manifests: ``campaign.json``, ``hosts/<h>.json``,
    ``timeseries/<s>.json`` and each dataset folder (manifest + embedded objects, rebuilt
    from the merged manifest). Anything else changed on both sides is a conflict by path.
    """
    out = TreeMerge()
    _merge_dir(camp, "", (TREE_MODE, base) if base else None, (TREE_MODE, ours) if ours else None,
               (TREE_MODE, theirs) if theirs else None, out)
    return out


def _merge_dir(camp: CampaignRepo, prefix: str, b: Entry | None, o: Entry | None, t: Entry | None,
               out: TreeMerge) -> None:
    entries = [camp.tree_entries(e[1]) if e is not None and e[0] == TREE_MODE else {} for e in (b, o, t)]
    for name in sorted(entries[0].keys() | entries[1].keys() | entries[2].keys()):
        eb, eo, et = (e.get(name) for e in entries)
        if eo == et or et == eb:
            continue
        path = prefix + name.decode("utf-8", "surrogateescape")
        kind = _unit(path)
        folder = kind == "dir" and all(e is None or e[0] == TREE_MODE for e in (eb, eo, et))
        if eo == eb and not folder:
            out.changes[path] = et
            continue
        if folder:
            # Entered even when only one side changed, so changes are per manifest (the
            # stat cache and the change count need dataset names), at O(change) cost.
            _merge_dir(camp, path + "/", eb, eo, et, out)
        elif kind is None or kind == "dir":
            out.conflicts.append(Conflict(path, path, eo, et, ("changed differently on both sides",)))
        else:
            _merge_unit(camp, kind, path, eb, eo, et, out)


def _unit(path: str) -> str | None:
    """What a tree path is for merging: a folder to enter, a manifest kind, or unknown (None)."""
    parts = path.split("/")
    top = parts[0]
    if path == tree_layout.CAMPAIGN:
        return "campaign"
    if top == tree_layout.DATASETS:
        return "dir" if len(parts) < 4 else "dataset" if len(parts) == 4 else None
    if top in (tree_layout.HOSTS, tree_layout.TIMESERIES):
        if len(parts) == 1:
            return "dir"
        return ("host" if top == tree_layout.HOSTS else "timeseries") if len(parts) == 2 and path.endswith(".json") \
            else None
    return None


def _merge_unit(camp: CampaignRepo, kind: str, path: str, eb: Entry | None, eo: Entry | None, et: Entry | None,
                out: TreeMerge) -> None:
    merged: Merged[object]
    if kind == "dataset":
        name = tree_layout.dataset_name_of(path) or path
        db, do, dt = (_load_dataset(camp, e, path) for e in (eb, eo, et))
        merged_ds = merge_dataset(db, do, dt)
        to_entry = lambda d: None if d is None else (TREE_MODE, camp.dataset_tree(d))  # noqa: E731
        _record(out, name, path, merged_ds, eo, to_entry)
        return
    loaders: dict[str, tuple[Callable[[bytes], object], Callable[..., Merged[object]]]] = {
        "campaign": (lambda data: Campaign.loads(data, what=path), merge_campaign),  # type: ignore[dict-item]
        "host": (lambda data: Host.loads(data, what=path), merge_host),  # type: ignore[dict-item]
        "timeseries": (lambda data: TimeSeries.loads(data, what=path), merge_timeseries),  # type: ignore[dict-item]
    }
    load, merge = loaders[kind]
    values = [None if e is None or e[0] == TREE_MODE else load(camp.read_blob(e[1])) for e in (eb, eo, et)]
    merged = merge(*values)
    blob_of = lambda v: None if v is None else (BLOB_MODE, camp.add_blob(v.dumps()))  # type: ignore[attr-defined]  # noqa: E731
    _record(out, path, path, merged, eo, blob_of)


def _record(out: TreeMerge, name: str, path: str, merged: Merged[object], ours: Entry | None,
            to_entry: Callable[[object], Entry | None]) -> None:
    if merged.clean:
        entry = to_entry(merged.value)
        if entry != ours:
            out.changes[path] = entry
        return
    out.conflicts.append(Conflict(name, path, to_entry(merged.ours), to_entry(merged.theirs), merged.conflicts))


def _load_dataset(camp: CampaignRepo, entry: Entry | None, path: str) -> Dataset | None:
    if entry is None or entry[0] != TREE_MODE:
        return None
    manifest = camp.tree_entries(entry[1]).get(tree_layout.MANIFEST.encode())
    if manifest is None:
        raise CampError(f"{path}: dataset folder without {tree_layout.MANIFEST}")
    return Dataset.loads(camp.read_blob(manifest[1]), what=path)
