"""Object stores: where a campaign's git objects are queued, written and read.

An operation queues the objects it makes (hashing is all that costs) and the store
writes them once, before anything that points at them: a few as loose objects, many as
one pack (:mod:`campaignvcs.packwrite`). Reads look in the queue first, so an operation
sees its own objects before they are written. :class:`DiskObjectStore` is a git
``objects/`` folder; :class:`MemoryObjectStore` keeps everything in a dict, for tests and
for operations that never touch a disk.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from dulwich.objects import Commit, ShaFile

from campaignvcs.errors import CampError
from campaignvcs.gitobjects import (
    TREE_TYPE,
    TYPE_NAMES,
    TYPE_NUMBERS,
    Entry,
    object_id,
    stored_zlib,
    tree_bytes,
    tree_items,
)
from campaignvcs.packreader import PackReader
from campaignvcs.packwrite import write_pack
from campaignvcs.tempfiles import make_temp, remove_quietly

if TYPE_CHECKING:
    from dulwich.object_store import BaseObjectStore

PACK_THRESHOLD = 64
"""Write a pack instead of loose objects when one operation adds more objects than this."""
LOOSE_TEMPORARY = "tmp_obj_"
"""Name prefix of a loose object being written (in ``objects/`` itself)."""

Queued = tuple[int, bytes]
"""A queued object: (git type number, raw content)."""


def sweep_legacy_packs(git_dir: str) -> list[str]:
    """Remove ``tmp_camp_*`` pack temporaries of camp before 0.2 (no live writer makes them now).

    They end in ``.pack``/``.idx``, so git and dulwich load a killed writer's partial
    index and fail on every read; removing them needs no lock, and readers do it too.
    """
    pack_dir = os.path.join(git_dir, "objects", "pack")
    try:
        names = [n for n in os.listdir(pack_dir) if n.startswith("tmp_camp_")]
    except OSError:
        return []
    paths = [os.path.join(pack_dir, n) for n in names]
    remove_quietly(*paths)
    return paths


class ObjectStore:
    """Queue, write and read git objects; subclasses say where written objects live."""

    def __init__(self) -> None:
        self._pending: dict[bytes, Queued] = {}
        self._dense: set[bytes] = set()
        self._trees: dict[bytes, dict[bytes, Entry]] = {}
        self._commits: dict[bytes, Commit] = {}
        self.fault: str | None = None
        """A crash-test kill point handed to the writers (see :mod:`campaignvcs.faults`)."""

    # -- what subclasses provide -----------------------------------------------------

    def _load(self, oid: bytes) -> tuple[bytes, bytes] | None:
        """(type name, raw content) of a written object, or None."""
        raise NotImplementedError

    def _write(self, objects: list[tuple[bytes, Queued]], dense: set[bytes]) -> None:
        """Make queued objects permanent."""
        raise NotImplementedError

    def iter_prefix(self, prefix: bytes) -> Iterator[bytes]:
        """Ids of written objects starting with the hex ``prefix``."""
        raise NotImplementedError

    def holds(self, oid: bytes) -> bool:
        """Whether the object is written here, found without reading it."""
        raise NotImplementedError

    def stored_entry(self, oid: bytes) -> bytes | None:
        """The object's pack entry exactly as stored, for copying into another pack; None: encode it."""
        return None

    def close(self) -> None:
        """Release open files."""

    def refresh(self) -> None:
        """Notice packs another step added since objects were last read (a fetch stores whole packs)."""

    # -- writing -----------------------------------------------------------------------

    def add(self, type_num: int, raw: bytes, dense: bool = False) -> bytes:
        """Queue an object given as its raw content; returns its hex id (identical content → same id).

        ``dense``: the content is compressed or encrypted already, so a pack stores it
        without another zlib pass.
        """
        oid = object_id(type_num, raw)
        if oid not in self._pending:
            self._pending[oid] = (type_num, raw)
        if dense:
            self._dense.add(oid)
        return oid

    def add_tree(self, items: dict[bytes, Entry]) -> bytes:
        """Queue a tree with these entries; returns its id (and remembers its entries)."""
        oid = self.add(TREE_TYPE, tree_bytes(items))
        self._trees[oid] = items
        return oid

    def add_object(self, obj: ShaFile) -> bytes:
        """Queue a dulwich object (a commit); returns its id."""
        return self.add(obj.type_num, obj.as_raw_string())

    def flush(self) -> None:
        """Write queued objects (loose when few, one pack when many)."""
        if not self._pending:
            return
        todo = list(self._pending.items())
        self._pending.clear()
        dense, self._dense = self._dense, set()
        self._write(todo, dense)

    # -- reading -----------------------------------------------------------------------

    def read_raw(self, oid: bytes) -> tuple[bytes, bytes]:
        """(type name, content) of an object, queued or written."""
        queued = self._pending.get(oid)
        if queued is not None:
            return TYPE_NAMES[queued[0]], queued[1]
        got = self._load(oid)
        if got is None:
            raise CampError(f"object {oid.decode()} is missing from the repository")
        return got

    def __contains__(self, oid: bytes) -> bool:
        return oid in self._pending or self._load(oid) is not None

    def read_object(self, oid: bytes) -> ShaFile:
        """An object as dulwich parses it."""
        kind, raw = self.read_raw(oid)
        return ShaFile.from_raw_string(TYPE_NUMBERS[kind], raw, sha=oid)

    def read_blob(self, oid: bytes) -> bytes:
        """The bytes of a blob."""
        kind, data = self.read_raw(oid)
        if kind != b"blob":
            raise CampError(f"object {oid.decode()} is not a blob")
        return data

    def tree_entries(self, oid: bytes) -> dict[bytes, Entry]:
        """Entry name → (mode, hex id) of a tree, cached for the life of the store (trees are immutable)."""
        entries = self._trees.get(oid)
        if entries is None:
            entries = self._trees[oid] = self.read_tree(oid)
        return entries

    def read_tree(self, oid: bytes) -> dict[bytes, Entry]:
        """A tree's entries parsed afresh, not kept: for walks over every folder of a campaign."""
        kind, data = self.read_raw(oid)
        if kind != b"tree":
            raise CampError(f"object {oid.decode()} is not a tree")
        return tree_items(data)

    def read_commit(self, oid: bytes) -> Commit | None:
        """A commit (cached), or None when ``oid`` is another kind of object."""
        commit = self._commits.get(oid)
        if commit is None:
            obj = self.read_object(oid)
            if not isinstance(obj, Commit):
                return None
            commit = self._commits[oid] = obj
        return commit


class MemoryObjectStore(ObjectStore):
    """Objects in a dict: nothing touches a disk (unit tests, scratch computations)."""

    def __init__(self) -> None:
        super().__init__()
        self._objects: dict[bytes, Queued] = {}

    def _load(self, oid: bytes) -> tuple[bytes, bytes] | None:
        got = self._objects.get(oid)
        return None if got is None else (TYPE_NAMES[got[0]], got[1])

    def _write(self, objects: list[tuple[bytes, Queued]], dense: set[bytes]) -> None:
        self._objects.update(objects)

    def iter_prefix(self, prefix: bytes) -> Iterator[bytes]:
        """Ids of written objects starting with the hex ``prefix``."""
        return iter(sorted(oid for oid in self._objects if oid.startswith(prefix)))

    def holds(self, oid: bytes) -> bool:
        """Whether the object is written here."""
        return oid in self._objects


class DiskObjectStore(ObjectStore):
    """A git ``objects/`` folder: loose objects and undeltified packs, read by :class:`PackReader`.

    ``fallback`` gives dulwich's store, used to read what camp's reader does not (deltified
    packs git made) and, when ``plain`` is false, to write loose objects (a config asking
    for shared permissions, other compression levels or fsync'ed object files).
    """

    def __init__(self, objects_dir: str, fallback: Callable[[], BaseObjectStore],
                 plain: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.path = objects_dir
        self.pack_dir = os.path.join(objects_dir, "pack")
        self._fallback = fallback
        self._plain = plain
        self._reader: PackReader | None = None

    @property
    def dulwich(self) -> BaseObjectStore:
        """dulwich's view of the same folder (for walks, prefix searches and pack checks)."""
        return self._fallback()

    def _pack_reader(self) -> PackReader:
        if self._reader is None:
            # Before the first read: camp < 0.2's partial packs would fail git's and dulwich's reads.
            sweep_legacy_packs(os.path.dirname(self.path))
            self._reader = PackReader(self.path)
        return self._reader

    def _load(self, oid: bytes) -> tuple[bytes, bytes] | None:
        got = self._pack_reader().read(oid)
        if got is not None and got[0] in TYPE_NUMBERS:
            return got
        try:
            obj = self._fallback()[oid]
        except KeyError:
            return None
        return obj.type_name, obj.as_raw_string()

    def iter_prefix(self, prefix: bytes) -> Iterator[bytes]:
        """Ids of written objects starting with the hex ``prefix``."""
        return iter(self._fallback().iter_prefix(prefix))

    def stored_entry(self, oid: bytes) -> bytes | None:
        """The object's pack entry as a pack holds it (header and deflated data), or None."""
        return self._pack_reader().stored_entry(oid)

    def holds(self, oid: bytes) -> bool:
        """Whether a loose file or a pack index has the object (dulwich's ``in`` would parse loose objects)."""
        text = oid.decode()
        if os.path.exists(os.path.join(self.path, text[:2], text[2:])):
            return True
        try:
            return bool(self._fallback().contains_packed(oid))
        except Exception:  # noqa: BLE001 - an unreadable pack index: as good as absent here (fsck names it)
            return False

    def _write(self, objects: list[tuple[bytes, Queued]], dense: set[bytes]) -> None:
        if len(objects) > PACK_THRESHOLD:
            # No "already stored?" check: git allows an object in several packs, and probing
            # every pack index for each object costs more than writing the few duplicates.
            write_pack(self.pack_dir, ((oid, t, raw) for oid, (t, raw) in objects), len(objects), dense, self.fault)
            if self._reader is not None:
                self._reader.refresh()
            return
        for oid, (type_num, raw) in objects:
            self._write_loose(oid, type_num, raw, oid in dense)

    def _write_loose(self, oid: bytes, type_num: int, raw: bytes, dense: bool = False) -> None:
        """Store one object as a loose file unless it is stored already.

        As dulwich's ``DiskObjectStore.add_object`` does: mode 0444, zlib's default level,
        a temporary file renamed into place, an existing copy freshened. ``dense`` content
        (compressed or encrypted already) is stored in zlib's uncompressed blocks, as in a
        pack: deflating an HDF5 metadata copy again cost ~1 ms and saved nothing.
        """
        if not self._plain():
            store = self._fallback()
            if oid not in store:
                store.add_object(ShaFile.from_raw_string(type_num, raw, sha=oid))
            return
        hex_id = oid.decode()
        folder = os.path.join(self.path, hex_id[:2])
        path = os.path.join(folder, hex_id[2:])
        try:
            os.utime(path, None)  # there already: freshen it (git gc prunes old unreferenced loose objects)
            return
        except (FileNotFoundError, PermissionError):
            pass  # not there, or another user's object: write it out again for a fresh time
        if self._pack_reader().read(oid) is not None:
            return
        os.makedirs(folder, exist_ok=True)
        # The temporary sits in objects/ itself (same file system), where the next writer's
        # sweep finds a killed writer's leftover with one listing instead of 256.
        fd, tmp = make_temp(self.path, LOOSE_TEMPORARY, "", 0o444)
        try:
            with os.fdopen(fd, "wb") as f:
                content = b"%s %d\0" % (TYPE_NAMES[type_num], len(raw)) + raw
                f.write(stored_zlib(content) if dense else zlib.compress(content))
            os.replace(tmp, path)
        except BaseException:
            remove_quietly(tmp)
            raise

    def refresh(self) -> None:
        """Index packs added since the pack reader opened, so they are read fast (not through dulwich)."""
        if self._reader is not None:
            self._reader.refresh()

    def close(self) -> None:
        """Release the pack reader's maps."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
