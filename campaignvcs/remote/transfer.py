"""What travels as git objects: the pack a push sends, and the checks on what a fetch receives.

A push sends one undeltified pack of the objects the remote lacks, written by the one pack
writer (:mod:`campaignvcs.packwrite`). A fetch trusts nothing the transport says: each
downloaded pack is verified (:func:`verify_pack`) and the remote's ref must name a commit
whose whole history is at hand (:func:`check_history`) before any pack joins the
repository or any ref moves.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Collection
from collections.abc import Set as AbstractSet

from dulwich.objects import ObjectFormatException, object_class

from campaignvcs.errors import CampError
from campaignvcs.gitobjects import TYPE_NUMBERS, Entry, tree_items
from campaignvcs.graph import ancestors
from campaignvcs.oidsets import ID_BYTES
from campaignvcs.packcheck import PackRefused, check_undeltified
from campaignvcs.packreader import PackReader
from campaignvcs.packwrite import PackFiles, encode_entry, write_pack_entries
from campaignvcs.remote.rclone import RemoteError
from campaignvcs.repo import CampaignRepo

GITLINK_MODE = 0o160000


def pack_for_push(camp: CampaignRepo, oids: Collection[bytes], folder: str) -> PackFiles:
    """Write the objects as one undeltified pack + index into ``folder``, never parsed.

    An object a local pack holds travels as the bytes stored there (no inflating and
    deflating again: at 100,000 datasets that was most of a first push); a loose object
    is encoded once. The same objects in the same order give byte-identical files (a
    retried push re-sends the same pack). The pack is uploaded and thrown away, so it is
    not fsynced.
    """
    return write_pack_entries(folder, ((oid, _entry(camp, oid)) for oid in oids), len(oids), durable=False)


def _entry(camp: CampaignRepo, oid: bytes) -> bytes:
    stored = camp.objects.stored_entry(oid)
    if stored is not None:
        return stored
    kind, raw = camp.read_raw(oid)
    return encode_entry(TYPE_NUMBERS[kind], raw)


def verify_pack(camp: CampaignRepo, pack: str, idx: str, name: str) -> AbstractSet[bytes]:
    """Check a downloaded pack before it joins the store; returns the (hex) ids of its objects.

    The pack's trailing checksum must match its name and the index; the index's own
    checksum must hold; and every object id, recomputed from the pack's content, must
    be exactly the set the index lists (at the offsets and CRCs it lists).

    An undeltified pack (every pack camp writes) is checked in memory that does not grow
    with it: the pack is hashed as it is read, its entries are inflated one at a time and
    looked up in the index's own sorted tables, and the ids returned are a view of those
    tables (:class:`PackIds`, 28 bytes an object). A pack with deltas (another tool's) is
    left to dulwich, which keeps every entry in lists.
    """
    from dulwich.pack import PackData, PackIndex2, load_pack_index  # loaded only when packs arrive

    what = f"pack {name} from the remote"
    try:
        data = PackData(pack, camp.store.object_format)
        index = load_pack_index(idx, camp.store.object_format)
    except Exception as exc:  # dulwich raises assorted types for a malformed file
        raise RemoteError(f"{what} is damaged ({type(exc).__name__}: {exc})") from None
    if isinstance(index, PackIndex2) and camp.store.object_format.oid_length == ID_BYTES:
        data.close()  # dulwich opened them for their headers; the tables are read below
        index.close()
        try:
            found = check_undeltified(pack, idx, name, what)
        except PackRefused as exc:
            raise RemoteError(str(exc)) from None
        if found is not None:
            return found
        data = PackData(pack, camp.store.object_format)
        index = load_pack_index(idx, camp.store.object_format)
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
        with contextlib.suppress(BufferError):  # a failed iterentries leaves the map exported
            data.close()
        index.close()


# -- checking what a fetch received ------------------------------------------------------------


class IncomingObjects:
    """The objects a fetch can rely on: of packs downloaded but not stored yet, then the repository's."""

    def __init__(self, camp: CampaignRepo, folder: str | None, ids: Collection[AbstractSet[bytes]]) -> None:
        self.camp = camp
        self.folder = folder
        self.ids = list(ids)  # one set per downloaded pack, as verify_pack gave them
        self.reader = PackReader(folder) if folder else None
        self._dulwich: list[object] = []

    def __enter__(self) -> IncomingObjects:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.close()
        for pack in self._dulwich:
            pack.close()  # type: ignore[attr-defined]

    def has(self, oid: bytes) -> bool:
        """Whether the object is at hand."""
        return self._incoming(oid) or self.camp.objects.holds(oid)

    def stored(self, oid: bytes) -> bool:
        """Whether the repository itself already holds it."""
        return not self._incoming(oid) and self.camp.objects.holds(oid)

    def _incoming(self, oid: bytes) -> bool:
        for ids in self.ids:
            if oid in ids:
                return True
        return False

    def read(self, oid: bytes) -> tuple[bytes, bytes] | None:
        """(type name, content), or None when the object is not at hand."""
        if self.reader is not None:  # the downloaded packs only (their folder holds no loose objects)
            got = self.reader.read(oid)
            if got is not None:
                return got
        if self._incoming(oid):
            return self._read_dulwich(oid)
        if not self.camp.objects.holds(oid):
            return None
        try:
            return self.camp.read_raw(oid)
        except CampError:
            return None

    def _read_dulwich(self, oid: bytes) -> tuple[bytes, bytes] | None:
        """A deltified object (packs camp writes have none; another tool's might)."""
        from dulwich.pack import Pack  # only for another tool's deltified packs

        assert self.folder is not None
        if not self._dulwich:
            folder = os.path.join(self.folder, "pack")
            bases = [os.path.join(folder, n[:-4]) for n in sorted(os.listdir(folder)) if n.endswith(".idx")]
            self._dulwich = [Pack(base, object_format=self.camp.store.object_format) for base in bases]
        for pack in self._dulwich:
            try:
                type_num, data = pack.get_raw(oid)  # type: ignore[attr-defined]
            except KeyError:
                continue
            return object_class(type_num).type_name, data
        return None


def check_history(camp: CampaignRepo, remote: str, ref: bytes, objects: IncomingObjects) -> int:
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
            raise RemoteError(f"{incomplete} object {oid.decode()} ({where}) is a {got[0].decode()}, "
                              "not a commit")
        tree, parents = _parse_commit(got[1], oid, incomplete)
        trees[oid] = (tree, parents)
        stack.extend((p, f"parent of {oid.decode()[:10]}") for p in parents)
    done: set[bytes] = set()
    for oid, (tree, parents) in trees.items():
        olds = [trees[p][0] if p in trees else camp.read_commit(p).tree for p in parents]
        _check_tree(objects, tree, olds, done, f"commit {oid.decode()[:10]}", "", incomplete)
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


def _check_tree(objects: IncomingObjects, tree: bytes, olds: list[bytes], done: set[bytes], commit: str, path: str,
                incomplete: str) -> None:
    """Check a tree and what it holds that its old versions (``olds``) do not.

    ``done`` remembers only trees that hold trees (~65,000 at a million datasets, not the
    million dataset folders): a folder of files met again is read again, which costs what
    reading its parent's entry did, and a clone keeps no id per object.
    """
    if tree in done or tree in olds:
        return
    where = f"{path or 'root tree'} of {commit}"
    entries = _tree_entries(objects, tree, where, incomplete)
    old_entries = [_tree_entries(objects, o, where, incomplete) for o in olds]
    holds_trees = False
    for name, (mode, sha) in entries.items():
        prev = [e[name] for e in old_entries if name in e]
        if any(p[1] == sha for p in prev):
            continue
        sub = path + "/" + name.decode("utf-8", "replace") if path else name.decode("utf-8", "replace")
        if stat.S_ISDIR(mode):
            holds_trees = True
            _check_tree(objects, sha, [p[1] for p in prev if stat.S_ISDIR(p[0])], done, commit, sub, incomplete)
        elif mode != GITLINK_MODE and not objects.has(sha):
            raise RemoteError(f"{incomplete} object {sha.decode()} missing ({sub} in {commit})")
    if holds_trees:
        done.add(tree)


def _tree_entries(objects: IncomingObjects, tree: bytes, where: str, incomplete: str) -> dict[bytes, Entry]:
    got = objects.read(tree)
    if got is None:
        raise RemoteError(f"{incomplete} tree {tree.decode()} missing ({where})")
    if got[0] != b"tree":
        raise RemoteError(f"{incomplete} object {tree.decode()} ({where}) is a {got[0].decode()}, not a tree")
    try:
        return tree_items(got[1])
    except (ObjectFormatException, ValueError):
        raise RemoteError(f"{incomplete} tree {tree.decode()} is malformed ({where})") from None
