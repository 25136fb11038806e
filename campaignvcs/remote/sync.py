"""Push, fetch and clone mechanics, and the tree-level 3-way merge a pull needs.

Push order (see docs/remotes.md): one pack of the objects the remote lacks (and its
index) under temporary names, renamed into place; the built archive uploaded under a
temporary name; then, holding a short lease on the remote, the remote ref is read again
(refuse if it moved), the archive is renamed into place and the ref is written LAST. A
push killed at any point leaves the ref, and so the history a reader sees, as it was;
everything it uploaded before is either ignored (``tmp-*`` names) or unreferenced.

Fetch reads the ref FIRST and lists packs after, so every pack the ref needs is listed;
downloaded packs are verified here (pack checksum, index checksum, every object id
recomputed) rather than trusting the transport.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from campaignvcs import layout as tree_layout
from campaignvcs.errors import CampError
from campaignvcs.merge import Merged, merge_campaign, merge_dataset, merge_host, merge_timeseries
from campaignvcs.model import Campaign, Dataset, Host, TimeSeries
from campaignvcs.remote.layout import PACK_RE, RemoteLayout, parse_ref
from campaignvcs.remote.rclone import Rclone, RemoteError, redact
from campaignvcs.repo import (
    BLOB_MODE,
    TREE_MODE,
    TYPE_NUMBERS,
    CampaignRepo,
    Entry,
    atomic_write,
    embedded_entries,
    pack_entry_header,
)

Progress = Callable[[str, int, int], None]
"""Called with (what, bytes done, bytes total) during transfers."""

TRACKING_PREFIX = b"refs/remotes/"
LEASE_SECONDS = 600
"""A remote lock older than this is abandoned (its pusher died on another host)."""
LOCK_WAIT_SECONDS = 30.0
LOCK_SETTLE_SECONDS = 0.3
"""Time between writing the lock and reading it back: a concurrent writer shows up by then."""
PACK_COMPRESSION = 1
FAULT_POINTS = ("after-pack", "after-aca", "before-ref")


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


def _fault(fault: str | None, point: str) -> None:
    """Fault injection for tests (``CAMP_FAULT``): die here as ``kill -9`` would."""
    if fault == point:
        os.kill(os.getpid(), signal.SIGKILL)


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


@dataclass(frozen=True)
class PackFiles:
    """A pack and its index written to local files."""

    name: str
    """``pack-<40 hex>`` (the pack's own checksum, so equal packs have equal names)."""
    pack: str
    idx: str
    objects: int

    @property
    def size(self) -> int:
        """Bytes of both files."""
        return os.path.getsize(self.pack) + os.path.getsize(self.idx)


def write_pack(camp: CampaignRepo, oids: Iterable[bytes], folder: str) -> PackFiles:
    """Write the objects as one undeltified pack + index into ``folder``.

    Objects are copied from the raw store reader without being parsed; the same objects
    in the same order give byte-identical files (a retried push re-sends the same pack).
    """
    from dulwich.pack import write_pack_index

    oids = list(oids)
    tmp_pack = os.path.join(folder, "new.pack")
    entries: list[tuple[bytes, int, int]] = []
    sha = hashlib.sha1()
    with open(tmp_pack, "wb") as f:
        def write(data: bytes) -> None:
            sha.update(data)
            f.write(data)

        write(b"PACK" + struct.pack(">LL", 2, len(oids)))
        offset = 12
        for oid in oids:
            kind, data = camp.read_raw(oid)
            header = pack_entry_header(TYPE_NUMBERS[kind], len(data))
            body = header + zlib.compress(data, PACK_COMPRESSION)
            entries.append((bytes.fromhex(oid.decode()), offset, zlib.crc32(body) & 0xFFFFFFFF))
            write(body)
            offset += len(body)
        checksum = sha.digest()
        f.write(checksum)
    name = "pack-" + checksum.hex()
    pack = os.path.join(folder, name + ".pack")
    os.replace(tmp_pack, pack)
    idx = os.path.join(folder, name + ".idx")
    with open(idx, "wb") as f:
        write_pack_index(f, sorted(entries), checksum)
    return PackFiles(name, pack, idx, len(oids))


def verify_pack(camp: CampaignRepo, pack: str, idx: str, name: str) -> int:
    """Check a downloaded pack before it joins the store; returns its object count.

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
        return len(actual)
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
    fault: str | None = None,
) -> PushOutcome:
    """Send ``head``'s history (and its archive, from ``build_aca(tmp_path)``) to ``remote``.

    Refuses (NonFastForward) when the remote's commit is unknown here or not an ancestor
    of ``head``: the user pulls first. The caller need not hold the repository lock:
    objects are immutable and only the tracking ref and bookkeeping are written.
    """
    rc, lay = remote.rclone, remote.layout
    if "\n" in lay.name or "\r" in lay.name:
        raise RemoteError(f"archive name {lay.name!r} holds a line break: it cannot be pushed")
    old = remote.read_ref()
    _check_fast_forward(camp, remote, old, head)
    if old == head:
        return PushOutcome(old, head, 0, 0, 0, up_to_date=True)
    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="camp-push-") as tmp:
        pack = write_pack(camp, missing_objects(camp, head, old), tmp)
        pack_bytes = pack.size
        pack_rel = {s: f"{lay.pack_rel}/{pack.name}{s}" for s in (".pack", ".idx")}
        # Everything travels in one rclone call, under temporary names in a tree that
        # mirrors the remote; the renames below publish it.
        staged = {lay.tmp_rel(pack_rel[".pack"], token): pack.pack, lay.tmp_rel(pack_rel[".idx"], token): pack.idx}
        aca_bytes = 0
        if build_aca is not None:
            local_aca = build_aca(os.path.join(tmp, "archive.aca"))
            aca_bytes = os.path.getsize(local_aca)
            staged[lay.tmp_rel(lay.aca_rel, token)] = local_aca
        ref_file = os.path.join(tmp, "ref")
        with open(ref_file, "wb") as f:
            f.write(head + b"\n")
        staged[lay.tmp_rel(lay.ref_rel, token)] = ref_file
        upload = os.path.join(tmp, "upload")
        for rel, local in staged.items():
            os.makedirs(os.path.dirname(os.path.join(upload, rel)), exist_ok=True)
            os.link(local, os.path.join(upload, rel))
        total = sum(os.path.getsize(p) for p in staged.values())
        rc.upload_tree(upload, lay.url, sorted(staged), total, _stage(progress, "upload", 0, total))
        for suffix in (".pack", ".idx"):  # the index appears last: readers only use paired packs
            rc.moveto(lay.url, lay.tmp_rel(pack_rel[suffix], token), pack_rel[suffix])
        add_known_packs(camp, remote.name, [pack.name])
        _fault(fault, "after-pack")
        lease = RemoteLease(remote)
        lease.acquire()
        try:
            if remote.read_ref() != old:
                for rel in (lay.aca_rel, lay.ref_rel):
                    rc.deletefile(lay.url, lay.tmp_rel(rel, token))
                raise NonFastForward(
                    f"push rejected: remote {remote.name} moved while pushing (another push finished first); "
                    "run 'camp pull' first"
                )
            if build_aca is not None:
                rc.moveto(lay.url, lay.tmp_rel(lay.aca_rel, token), lay.aca_rel)
            _fault(fault, "after-aca")
            _fault(fault, "before-ref")
            rc.moveto(lay.url, lay.tmp_rel(lay.ref_rel, token), lay.ref_rel)
            if remote.read_ref() != head:
                raise RemoteError(
                    f"remote {remote.name} changed while its ref was written (a concurrent push without the lock?); "
                    "run 'camp pull', then push again"
                )
        finally:
            lease.release()
    camp.refs[tracking_ref(remote.name)] = head
    return PushOutcome(old, head, pack.objects, pack_bytes, aca_bytes)


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


def fetch(camp: CampaignRepo, remote: Remote, progress: Progress | None = None) -> FetchOutcome:
    """Download the packs the remote has and this clone lacks; update ``refs/remotes/<name>/main``.

    The ref is read first: a pusher writes it last, so every pack it needs is listed by
    the time the folder is read. Packs are verified before they join the store.
    """
    rc, lay = remote.rclone, remote.layout
    old = _read_local_ref(camp, tracking_ref(remote.name))
    ref = remote.read_ref()
    if ref is None:
        return FetchOutcome(old, None, 0, 0, 0)
    sizes: dict[str, dict[str, int]] = {}
    for entry in rc.lsjson(lay.url, lay.pack_rel):
        m = PACK_RE.match(str(entry.get("Name", "")))
        if m:
            sizes.setdefault("pack-" + m.group(1), {})[m.group(2)] = int(entry.get("Size") or 0)  # type: ignore[call-overload]
    complete = {n for n, s in sizes.items() if "pack" in s and "idx" in s}
    todo = sorted(complete - known_packs(camp, remote.name) - _local_packs(camp))
    received = objects = 0
    if todo:
        pack_dir = os.path.join(camp.git_dir, "objects", "pack")
        os.makedirs(pack_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="tmp-fetch-", dir=camp.camp_dir)
        try:
            files = [n + s for n in todo for s in (".pack", ".idx")]
            total = sum(sizes[n]["pack"] + sizes[n]["idx"] for n in todo)
            rc.download(lay.pack_dir, files, tmp, total, _stage(progress, "fetch", 0, total))
            for name in todo:
                pack, idx = os.path.join(tmp, name + ".pack"), os.path.join(tmp, name + ".idx")
                if not (os.path.isfile(pack) and os.path.isfile(idx)):
                    raise RemoteError(f"pack {name} did not arrive from remote {remote.name}")
                objects += verify_pack(camp, pack, idx, name)
                received += os.path.getsize(pack) + os.path.getsize(idx)
            for name in todo:  # only after every pack checked out; the index last, as git does
                os.replace(os.path.join(tmp, name + ".pack"), os.path.join(pack_dir, name + ".pack"))
                os.replace(os.path.join(tmp, name + ".idx"), os.path.join(pack_dir, name + ".idx"))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        add_known_packs(camp, remote.name, todo)
    if ref not in camp.store:
        raise RemoteError(
            f"remote {remote.name} names commit {ref.decode()[:10]} but holds no pack with it "
            "(damaged remote?)"
        )
    camp.refs[tracking_ref(remote.name)] = ref
    return FetchOutcome(old, ref, len(todo), objects, received)


def _read_local_ref(camp: CampaignRepo, ref: bytes) -> bytes | None:
    try:
        return camp.refs[ref]
    except KeyError:
        return None


# -- clone --------------------------------------------------------------------------------------


def init_clone(path: str, host: str | None) -> CampaignRepo:
    """An empty repository shaped like ``CampaignRepo.init`` makes, without the marker yet.

    The caller fetches into it, sets the branch and writes the marker last, so a clone
    that fails half-way is never mistaken for a campaign.
    """
    from dulwich.repo import Repo

    os.makedirs(path, exist_ok=True)
    repo = Repo.init(path)
    try:
        cfg = repo.get_config()
        cfg.set(b"core", b"bare", True)
        if host:
            cfg.set(b"camp", b"host", host.encode())
        cfg.write_to_path()
        repo.refs.set_symbolic_ref(b"HEAD", b"refs/heads/main")
    finally:
        repo.close()
    os.makedirs(os.path.join(path, ".git", "camp"), exist_ok=True)
    return CampaignRepo(path)


MARKER = b"campaignvcs repository format 1\n"
"""What ``CampaignRepo.init`` writes to ``.git/camp/campaign`` (the same text)."""


def finish_clone(camp: CampaignRepo, head: bytes) -> None:
    """Point the branch at ``head`` and mark the folder a campaign (last)."""
    camp.refs[b"refs/heads/main"] = head
    atomic_write(os.path.join(camp.camp_dir, "campaign"), MARKER)


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
        to_entry = lambda d: None if d is None else (TREE_MODE, dataset_tree(camp, d))  # noqa: E731
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


def dataset_tree(camp: CampaignRepo, dataset: Dataset) -> bytes:
    """The folder tree of a dataset (manifest + embedded objects), as ``stage_dataset`` builds it."""
    entries: dict[str, Entry | None] = {tree_layout.MANIFEST: (BLOB_MODE, camp.add_blob(dataset.dumps()))}
    for entry_name, blob in embedded_entries(dataset).items():
        entries[entry_name] = (BLOB_MODE, blob.encode())
    return camp.build_tree(None, entries)
