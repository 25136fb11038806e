"""The campaign repository: a git repository (dulwich) of manifests and metadata objects.

A campaign lives in ``<path>/.git`` with ``core.bare = true``: stock ``git log`` and
``git fsck`` work in ``<path>``, while the folder itself stays the scientist's (no
manifests are checked out over their data). camp keeps its own staging area,
``.git/camp/index.json``, holding only the tree paths changed since HEAD, so staging and
committing cost O(change), not O(campaign) as a git index of 200,000 entries would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dulwich.config import ConfigFile, StackedConfig
from dulwich.objects import Commit, ShaFile, Tree, parse_tree, serialize_tree, sorted_tree_items
from dulwich.refs import DiskRefsContainer

from campaignvcs import layout
from campaignvcs.errors import CampError, NotACampaign, UnknownRevision
from campaignvcs.faults import fault
from campaignvcs.lockfile import RepoLock
from campaignvcs.model import Campaign, Dataset, Host, TimeSeries
from campaignvcs.packreader import PackReader
from campaignvcs.tempfiles import make_temp, remove_quietly, sweep, writer_running

if TYPE_CHECKING:
    from dulwich.object_store import BaseObjectStore
    from dulwich.repo import Repo

TREE_MODE = 0o040000
BLOB_MODE = 0o100644
BRANCH = b"refs/heads/main"
LOCK_WAIT_SECONDS = 3.0
REF_LOCK_PATIENCE = 1.0
ORPHAN_PACK_AGE = 600.0
"""Seconds after which a ``.pack`` without its ``.idx`` is a leftover (a live writer renames the idx next)."""
"""Seconds a ref lock must stay unchanged, while camp holds its own lock, to count as a leftover."""
PACK_THRESHOLD = 64
"""Write a pack instead of loose objects when one operation adds more objects than this."""
PACK_COMPRESSION = 1
"""zlib level for packs camp writes: most blobs are zlib streams already."""

BLOB_TYPE, TREE_TYPE = 3, 2
TYPE_NAMES = {1: b"commit", 2: b"tree", 3: b"blob", 4: b"tag"}
"""git object type numbers (as in packs) → type names (as in object headers)."""
TYPE_NUMBERS = {name: number for number, name in TYPE_NAMES.items()}

_UNSET = object()
Entry = tuple[int, bytes]
"""A tree entry value: (mode, hex object id)."""


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never half of one.

    The temporary file names its writer (see :mod:`campaignvcs.tempfiles`), so one left by a
    killed process is swept by the next writer.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = make_temp(folder, "." + os.path.basename(path) + ".", ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def _has(cfg: ConfigFile, section: bytes, name: bytes) -> bool:
    try:
        cfg.get((section,), name)
    except KeyError:
        return False
    return True


def find_root(start: str) -> str:
    """The campaign folder at or above ``start`` (like git's discovery)."""
    path = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(path, ".git", "camp", "campaign")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            raise NotACampaign(f"not a campaign repository (or any parent up to /): {os.path.abspath(start)}")
        path = parent


class Refs(DiskRefsContainer):
    """dulwich's refs on disk, where a ref lock left by a killed process does not wedge the repository.

    camp moves refs only while it holds the repository lock, so then no camp process can
    hold a ref lock (``refs/heads/main.lock``), and stock git holds one for milliseconds: a
    ref lock that stays unchanged for :data:`REF_LOCK_PATIENCE` seconds is a leftover and
    is removed. Without camp's lock the error names the file and the command that clears it.
    """

    under_lock: Callable[[], bool] = staticmethod(lambda: False)

    def set_if_equals(self, *args: Any, **kwargs: Any) -> bool:
        """As dulwich's, past leftover ref locks."""
        return self._past_locks(super().set_if_equals, *args, **kwargs)

    def add_if_new(self, *args: Any, **kwargs: Any) -> bool:
        """As dulwich's, past leftover ref locks."""
        return self._past_locks(super().add_if_new, *args, **kwargs)

    def remove_if_equals(self, *args: Any, **kwargs: Any) -> bool:
        """As dulwich's, past leftover ref locks."""
        return self._past_locks(super().remove_if_equals, *args, **kwargs)

    def set_symbolic_ref(self, *args: Any, **kwargs: Any) -> None:
        """As dulwich's, past leftover ref locks."""
        self._past_locks(super().set_symbolic_ref, *args, **kwargs)

    def _read_loose_ref_file(self, name: bytes) -> bytes | None:
        """As dulwich's, but a ref that cannot be read is an error, not a ref that does not exist.

        dulwich answers None for any OSError, so an unreadable ``refs/heads/main`` looked like
        an empty campaign ("campaign.json is missing"); the error boundary names the file.
        """
        try:
            with open(self.refpath(name), "rb"):
                pass
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except PermissionError:
            raise
        except OSError:
            return None
        return super()._read_loose_ref_file(name)  # type: ignore[misc]

    def _past_locks(self, op: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from dulwich.file import FileLocked

        seen: dict[str, tuple[int, int, float]] = {}
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                return op(*args, **kwargs)
            except FileLocked as exc:
                path = os.fsdecode(exc.lockfilename)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            now = time.monotonic()
            key = (st.st_ino, st.st_mtime_ns)
            first = seen.setdefault(path, (*key, now))
            if first[:2] != key:
                seen[path] = (*key, now)
            elif self.under_lock() and now - first[2] >= REF_LOCK_PATIENCE:
                remove_quietly(path)
                continue
            if now >= deadline:
                raise CampError(
                    f"a git ref is locked: {path} (if no git or camp process is running here, remove it: rm {path})"
                )
            time.sleep(0.05)


@dataclass
class Staging:
    """The staging area: tree paths changed since ``head``; ``None`` marks a removal."""

    head: str | None
    entries: dict[str, Entry | None]

    def to_bytes(self) -> bytes:
        """Serialised form (sorted, so identical staging gives identical bytes)."""
        ent = {p: (None if v is None else [v[0], v[1].decode()]) for p, v in sorted(self.entries.items())}
        return json.dumps({"head": self.head, "entries": ent}, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Staging:
        """Inverse of :meth:`to_bytes`."""
        d = json.loads(data)
        ent = {p: (None if v is None else (int(v[0]), v[1].encode())) for p, v in d["entries"].items()}
        return cls(d.get("head"), ent)


class CampaignRepo:
    """A campaign repository: object store, refs, staging area and lock.

    Use :meth:`open`, :meth:`discover` or :meth:`init`; close with :meth:`close` or a
    ``with`` block.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.git_dir = os.path.join(self.root, ".git")
        self.camp_dir = os.path.join(self.git_dir, "camp")
        self._dulwich: Repo | None = None
        # The refs container dulwich's Repo would make, without opening a Repo (which imports
        # and sets up more than a one-dataset add spends); reflog lines go through _write_reflog.
        self.refs = Refs(self.git_dir, self.git_dir, logger=self._write_reflog)
        self.refs.under_lock = lambda: self._lock.held
        self._plain: bool | None = None
        self._pending: dict[bytes, tuple[int, bytes]] = {}
        """Objects to write: hex id → (git type number, raw content)."""
        self._dense: set[bytes] = set()
        self._dirs: dict[str, str] = {}
        self._tree_cache: dict[bytes, dict[bytes, tuple[int, bytes]]] = {}
        self._reader: PackReader | None = None
        self._commit_cache: dict[bytes, Commit] = {}
        self._head: bytes | None | object = _UNSET
        self._staging: Staging | None = None
        self._lock = RepoLock(os.path.join(self.camp_dir, "lock"))
        self.fault: str | None = None
        """A fault point to die at (``CAMP_FAULT``, set by porcelain; tests only)."""

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: str) -> CampaignRepo:
        """Open the campaign at exactly ``path``."""
        if not os.path.isfile(os.path.join(path, ".git", "camp", "campaign")):
            raise NotACampaign(f"not a campaign repository: {os.path.abspath(path)}")
        return cls(path)

    @classmethod
    def discover(cls, start: str) -> CampaignRepo:
        """Open the campaign at or above ``start``."""
        return cls(find_root(start))

    @classmethod
    def init(cls, path: str, campaign: Campaign, host: str | None, identity: bytes) -> CampaignRepo:
        """Create a campaign repository with a first commit holding ``campaign.json``.

        A failure (a full disk, Ctrl-C) removes what was made, so running it again works.
        """
        path = os.path.abspath(path)
        git_dir = os.path.join(path, ".git")
        if os.path.exists(git_dir):
            if os.path.isfile(os.path.join(git_dir, "camp", "campaign")):
                raise CampError(f"{path} is already a campaign repository")
            if os.path.isdir(os.path.join(git_dir, "camp")):
                raise CampError(f"{path} holds a campaign whose camp init or clone was interrupted (no "
                                f".git/camp/campaign): remove it with rm -rf {git_dir} and run the command again")
            raise CampError(f"{path} is already a git repository")
        made_folder = not os.path.exists(path)
        os.makedirs(path, exist_ok=True)
        try:
            return cls._init(path, campaign, host, identity)
        except BaseException:
            import shutil

            shutil.rmtree(git_dir, ignore_errors=True)
            if made_folder:
                with contextlib.suppress(OSError):
                    os.rmdir(path)
            raise

    @classmethod
    def _init(cls, path: str, campaign: Campaign, host: str | None, identity: bytes) -> CampaignRepo:
        from dulwich.repo import Repo

        repo = Repo.init(path)
        try:
            cfg = repo.get_config()
            cfg.set(b"core", b"bare", True)
            if host:
                cfg.set(b"camp", b"host", host.encode())
            cfg.write_to_path()
            repo.refs.set_symbolic_ref(b"HEAD", BRANCH)
        finally:
            repo.close()
        os.makedirs(os.path.join(path, ".git", "camp"), exist_ok=True)
        self = cls(path)
        try:
            with self.lock():
                blob = self.add_blob(campaign.dumps())
                self.stage(layout.CAMPAIGN, (BLOB_MODE, blob))
                self.commit_staged(f"Initialise campaign {campaign.name}\n", identity)
            # The marker is written last: a half-initialised folder is not mistaken for a campaign.
            atomic_write(os.path.join(self.camp_dir, "campaign"), b"campaignvcs repository format 1\n")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Release the dulwich repository, the pack reader and the lock if held."""
        self._release_lock()
        if self._reader is not None:
            self._reader.close()
        if self._dulwich is not None:
            self._dulwich.close()

    @property
    def _repo(self) -> Repo:
        """The dulwich repository, opened on first use (walks, config writes, unusual settings)."""
        if self._dulwich is None:
            from dulwich.repo import Repo

            self._sweep_legacy_packs()
            self._dulwich = Repo(self.git_dir)
        return self._dulwich

    @property
    def store(self) -> BaseObjectStore:
        """dulwich's object store (camp's own reads and writes use :meth:`read_raw` and :meth:`flush`)."""
        return self._repo.object_store

    def _config(self) -> ConfigFile:
        """``.git/config`` as dulwich's ``Repo.get_config`` reads it."""
        path = os.path.join(self.git_dir, "config")
        try:
            return ConfigFile.from_path(path)
        except FileNotFoundError:
            cfg = ConfigFile()
            cfg.path = path
            return cfg

    def _is_plain(self) -> bool:
        """True unless the config asks for what only dulwich's Repo does right.

        That is shared-repository permissions, other compression levels, fsync'ed object
        files, per-worktree config or a repository format camp does not know; then loose
        objects and reflog lines are written by dulwich instead of by this class.
        """
        if self._plain is None:
            cfg = self._config()
            special = [(b"core", b"sharedRepository"), (b"core", b"looseCompression"),
                       (b"core", b"compression"), (b"core", b"fsyncObjectFiles"),
                       (b"extensions", b"worktreeconfig")]
            self._plain = not any(_has(cfg, sec, key) for sec, key in special)
            if _has(cfg, b"core", b"repositoryformatversion"):
                self._plain = self._plain and cfg.get(b"core", b"repositoryformatversion") in (b"0", b"1")
        return self._plain

    def __enter__(self) -> CampaignRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration -------------------------------------------------------------

    def config_get(self, section: str, name: str) -> str | None:
        """A value from ``.git/config`` (local to this clone, never shared)."""
        try:
            return self._config().get(section.encode(), name.encode()).decode()
        except KeyError:
            return None

    def config_set(self, section: str, name: str, value: str | None) -> None:
        """Set or remove a value in ``.git/config``."""
        cfg = self._repo.get_config()
        if value is None:
            with contextlib.suppress(KeyError):
                del cfg[(section.encode(),)][name.encode()]
        else:
            cfg.set(section.encode(), name.encode(), value.encode())
        cfg.write_to_path()

    def identity_from_config(self) -> bytes | None:
        """``Name <email>`` from git config (repo, then user), if both are set."""
        if self._is_plain():  # what Repo.get_config_stack gives, without opening a Repo
            stack = StackedConfig([self._config(), *StackedConfig.default_backends()])
        else:
            stack = self._repo.get_config_stack()
        try:
            name = stack.get(b"user", b"name")
            email = stack.get(b"user", b"email")
        except KeyError:
            return None
        return name + b" <" + email + b">"

    # -- locking -------------------------------------------------------------------

    @property
    def lock_path(self) -> str:
        """The lock file a writer holds."""
        return os.path.join(self.camp_dir, "lock")

    @contextlib.contextmanager
    def lock(self, wait: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
        """Hold the repository lock; waits briefly, then names the lock and its holder in the error.

        A lock whose holder is gone is broken (see :mod:`campaignvcs.lockfile`); once held,
        the leftovers of killed writers are swept before anything is written.
        """
        if self._lock.held:
            yield
            return
        self._lock.acquire(wait)
        # Another writer may have moved the branch or staged before we got the lock.
        self._head = _UNSET
        self._staging = None
        try:
            self.sweep_leftovers()
            yield
            self.flush()
        finally:
            self._lock.release()

    def _release_lock(self) -> None:
        self._lock.release()

    def sweep_leftovers(self) -> list[str]:
        """Remove temporaries of writers that are gone (half-written packs, objects, files); returns their paths.

        Runs under the lock. Temporaries from camp before 0.2 (``tmp_camp_*`` packs, whose
        partial ``.idx`` git and dulwich would load) have no live writer and always go.
        """
        removed = [path for folder, prefixes, suffix in self._temporaries()
                   for path in sweep(folder, prefixes, suffix)]
        now = time.time()
        for path in self._orphan_packs():
            with contextlib.suppress(OSError):
                if now - os.stat(path).st_mtime > ORPHAN_PACK_AGE:
                    os.unlink(path)
                    removed.append(path)
        return removed + self._sweep_legacy_packs()

    def _temporaries(self) -> list[tuple[str, tuple[str, ...], str]]:
        """(folder, name prefixes, suffix) of every temporary camp writes in the repository."""
        objects = os.path.join(self.git_dir, "objects")
        return [(os.path.join(objects, "pack"), ("tmp_pack_", "tmp_idx_"), ""),  # _write_pack
                (objects, ("tmp_obj_",), ""),                                      # _write_loose
                (self.camp_dir, (".",), ".tmp"),                                   # atomic_write
                (self.camp_dir, ("tmp-fetch-", "tmp-push-"), "")]                  # remote/sync

    def _orphan_packs(self) -> list[str]:
        """``.pack`` files without their ``.idx``: a writer killed between its two renames (never read)."""
        pack_dir = os.path.join(self.git_dir, "objects", "pack")
        try:
            names = set(os.listdir(pack_dir))
        except OSError:
            return []
        return sorted(os.path.join(pack_dir, n) for n in names
                      if n.endswith(".pack") and not n.startswith("tmp_") and n[:-5] + ".idx" not in names)

    def leftovers(self) -> list[tuple[str, str]]:
        """(path, what it is and what clears it) of every lock and temporary a killed process may have left.

        None of them is ever read as data; ``camp status`` and ``camp fsck`` name them so
        nobody has to guess whether a file in ``.git`` matters.
        """
        from campaignvcs.lockfile import leftover_locks

        found = []
        for holder in leftover_locks(self.git_dir):
            if holder.path == self._lock.path:
                clears = ("the next camp command that writes removes it" if holder.state == "gone"
                          else f"if no camp process runs on {holder.host}, remove it: rm {holder.path}")
                found.append((holder.path, f"repository lock held by {holder.describe()}; {clears}"))
            else:
                found.append((holder.path, f"git ref lock left by a killed process ({holder.age:.0f} s old); the next "
                                           f"camp command that moves it removes it, or: rm {holder.path}"))
        for folder, prefixes, suffix in self._temporaries():
            with contextlib.suppress(OSError):
                for name in sorted(os.listdir(folder)):
                    if name.startswith(prefixes) and name.endswith(suffix) and not writer_running(name):
                        found.append((os.path.join(folder, name), "temporary file of an interrupted write; the next "
                                      "camp command that writes removes it"))
        for path in self._orphan_packs():
            found.append((path, "pack without its index (an interrupted write, never read); the next camp command "
                                "that writes removes it once it is ten minutes old"))
        return found

    def _sweep_legacy_packs(self) -> list[str]:
        """Remove ``tmp_camp_*`` pack temporaries of camp before 0.2 (no live writer makes them now).

        They end in ``.pack``/``.idx``, so git and dulwich load a killed writer's partial
        index and fail on every read; removing them needs no lock, and readers do it too.
        """
        pack_dir = os.path.join(self.git_dir, "objects", "pack")
        try:
            names = [n for n in os.listdir(pack_dir) if n.startswith("tmp_camp_")]
        except OSError:
            return []
        paths = [os.path.join(pack_dir, n) for n in names]
        remove_quietly(*paths)
        return paths

    def _require_lock(self) -> None:
        if not self._lock.held:
            raise RuntimeError("repository write without the lock")

    # -- objects -------------------------------------------------------------------

    def add_blob(self, data: bytes, dense: bool = False) -> bytes:
        """Queue a blob for writing; returns its hex id (identical data → same id).

        ``dense``: the data is compressed or encrypted already, so a pack stores it without
        another zlib pass (saves a zlib set-up per object, which costs more than small data).
        """
        oid = self._queue_raw(BLOB_TYPE, bytes(data))
        if dense:
            self._dense.add(oid)
        return oid

    def _queue(self, obj: ShaFile) -> None:
        oid = obj.id
        if oid not in self._pending:
            self._pending[oid] = (obj.type_num, obj.as_raw_string())

    def _queue_raw(self, type_num: int, raw: bytes) -> bytes:
        """Queue an object given as its raw content (no dulwich object: hashing is all it costs)."""
        digest = hashlib.sha1(b"%s %d\0" % (TYPE_NAMES[type_num], len(raw)))
        digest.update(raw)
        oid = digest.hexdigest().encode()
        if oid not in self._pending:
            self._pending[oid] = (type_num, raw)
        return oid

    def flush(self) -> None:
        """Write queued objects: loose when few, one pack when many."""
        if not self._pending:
            return
        todo = list(self._pending.items())
        self._pending.clear()
        dense, self._dense = self._dense, set()
        if len(todo) > PACK_THRESHOLD:
            # No "already stored?" check: git allows an object in several packs, and probing
            # every pack index for each object costs more than writing the few duplicates.
            self._write_pack(todo, dense)
            if self._reader is not None:
                self._reader.refresh()
        else:
            for oid, (type_num, raw) in todo:
                self._write_loose(oid, type_num, raw)

    def _write_loose(self, oid: bytes, type_num: int, raw: bytes) -> None:
        """Store one object as a loose file unless it is stored already.

        As dulwich's ``DiskObjectStore.add_object`` does: mode 0444, zlib's default level,
        a temporary file renamed into place, an existing copy freshened.
        """
        if not self._is_plain():
            if oid not in self.store:
                self.store.add_object(ShaFile.from_raw_string(type_num, raw, sha=oid))
            return
        hex_id = oid.decode()
        folder = os.path.join(self.git_dir, "objects", hex_id[:2])
        path = os.path.join(folder, hex_id[2:])
        try:
            os.utime(path, None)  # there already: freshen it (git gc prunes old unreferenced loose objects)
            return
        except FileNotFoundError:
            pass
        except PermissionError:
            pass  # another user's object: write it out again for a fresh time
        if self._pack_reader().read(oid) is not None:
            return
        os.makedirs(folder, exist_ok=True)
        # The temporary sits in objects/ itself (same file system), where the next writer's
        # sweep finds a killed writer's leftover with one listing instead of 256.
        fd, tmp = make_temp(os.path.dirname(folder), "tmp_obj_", "", 0o444)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(zlib.compress(b"%s %d\0" % (TYPE_NAMES[type_num], len(raw)) + raw))
            os.replace(tmp, path)
        except BaseException:
            remove_quietly(tmp)
            raise

    def _pack_reader(self) -> PackReader:
        if self._reader is None:
            self._reader = PackReader(os.path.join(self.git_dir, "objects"))
        return self._reader

    def _write_reflog(self, ref: bytes, old_sha: bytes, new_sha: bytes, committer: bytes | None,
                      timestamp: int | None, timezone: int | None, message: bytes) -> None:
        """Append one reflog line, as dulwich's Repo does.

        The Repo writes it itself when it must find the committer in git config (a ref
        moved without one) or fix shared-repository permissions.
        """
        if committer is None or not self._is_plain():
            self._repo._write_reflog(ref, old_sha, new_sha, committer, timestamp, timezone, message)
            return
        from dulwich.reflog import format_reflog_line

        path = os.path.join(self.git_dir, "logs", os.fsdecode(ref))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        when = int(time.time()) if timestamp is None else timestamp
        line = format_reflog_line(old_sha, new_sha, committer, when, timezone or 0, message)
        with open(path, "ab") as f:
            f.write(line + b"\n")

    def _write_pack(self, objects: list[tuple[bytes, tuple[int, bytes]]], dense: Collection[bytes] = ()) -> None:
        """Write one undeltified pack and its index, then rename them into place.

        The pack is written here rather than by dulwich's ``write_pack_objects``, whose
        per-object generator chain costs more than the data for small objects, and whose
        ``add_objects`` re-reads and re-indexes the pack it has just written; the index
        comes from the write itself. Objects in ``dense`` (compressed or encrypted
        payloads) are stored in zlib's uncompressed block format instead of deflated
        again. The ``.idx`` appears last, and readers only use a pack whose index exists.
        """
        from dulwich.pack import write_pack_index

        pack_dir = os.path.join(self.git_dir, "objects", "pack")
        os.makedirs(pack_dir, exist_ok=True)
        # git's naming: neither temporary ends in .pack or .idx, so no reader (git, dulwich,
        # PackReader) loads a half-written one; the next writer sweeps them if we are killed.
        fd, tmp_pack = make_temp(pack_dir, "tmp_pack_")
        idx_fd, tmp_idx = make_temp(pack_dir, "tmp_idx_")
        os.close(idx_fd)
        try:
            entries: list[tuple[bytes, int, int]] = []
            digest = hashlib.sha1()
            with os.fdopen(fd, "wb") as f:
                chunks = [b"PACK" + struct.pack(">II", 2, len(objects))]
                offset = len(chunks[0])
                for oid, (type_num, raw) in objects:
                    body = _stored_zlib(raw) if oid in dense else zlib.compress(raw, PACK_COMPRESSION)
                    head = pack_entry_header(type_num, len(raw))
                    entries.append((bytes.fromhex(oid.decode()), offset, zlib.crc32(body, zlib.crc32(head))))
                    chunks += (head, body)
                    offset += len(head) + len(body)
                    if len(chunks) > 512:
                        data = b"".join(chunks)
                        digest.update(data)
                        f.write(data)
                        chunks = []
                data = b"".join(chunks)
                digest.update(data)
                checksum = digest.digest()
                f.write(data[:len(data) // 2])
                f.flush()
                fault(self.fault, "pack-half-written")
                f.write(data[len(data) // 2:] + checksum)
                f.flush()
                os.fsync(f.fileno())
            entries.sort()
            with open(tmp_idx, "wb") as f:
                write_pack_index(f, entries, checksum)
                f.flush()
                fault(self.fault, "pack-index-written")
                os.fsync(f.fileno())
            base = os.path.join(pack_dir, "pack-" + checksum.hex())
            os.chmod(tmp_pack, 0o444)
            os.chmod(tmp_idx, 0o444)
            os.replace(tmp_pack, base + ".pack")
            fault(self.fault, "pack-before-index")
            os.replace(tmp_idx, base + ".idx")
        finally:
            remove_quietly(tmp_pack, tmp_idx)

    def read_object(self, oid: bytes) -> ShaFile:
        """An object from the queue or the store."""
        queued = self._pending.get(oid)
        if queued is not None:
            return ShaFile.from_raw_string(queued[0], queued[1], sha=oid)
        got = self._pack_reader().read(oid)
        if got is not None and got[0] in TYPE_NUMBERS:
            return ShaFile.from_raw_string(TYPE_NUMBERS[got[0]], got[1], sha=oid)
        try:
            return self.store[oid]
        except KeyError:
            raise CampError(f"object {oid.decode()} is missing from the repository") from None

    def read_raw(self, oid: bytes) -> tuple[bytes, bytes]:
        """(type name, content) of an object: the fast path for whole-campaign passes."""
        queued = self._pending.get(oid)
        if queued is not None:
            return TYPE_NAMES[queued[0]], queued[1]
        got = self._pack_reader().read(oid)
        if got is None:
            obj = self.read_object(oid)
            got = obj.type_name, obj.as_raw_string()
        return got

    def read_blob(self, oid: bytes) -> bytes:
        """The bytes of a blob."""
        kind, data = self.read_raw(oid)
        if kind != b"blob":
            raise CampError(f"object {oid.decode()} is not a blob")
        return data

    def read_tree(self, oid: bytes) -> Tree:
        """A tree as a dulwich object (for callers that need one; walks use :meth:`tree_entries`)."""
        obj = self.read_object(oid)
        if not isinstance(obj, Tree):
            raise CampError(f"object {oid.decode()} is not a tree")
        return obj

    def tree_entries(self, oid: bytes) -> dict[bytes, tuple[int, bytes]]:
        """Entry name → (mode, hex id) of a tree, cached for the life of this object."""
        entries = self._tree_cache.get(oid)
        if entries is None:
            kind, data = self.read_raw(oid)
            if kind != b"tree":
                raise CampError(f"object {oid.decode()} is not a tree")
            entries = {name: (mode, sha) for name, mode, sha in parse_tree(data, 20)}
            self._tree_cache[oid] = entries
        return entries

    # -- refs and revisions ----------------------------------------------------------

    def head(self) -> bytes | None:
        """The commit id of the current branch, or None before the first commit.

        Read once per object: under the lock only this object moves the branch, and it
        updates the cached value when it does.
        """
        if self._head is _UNSET:
            try:
                self._head = self.refs[b"HEAD"]
            except KeyError:
                self._head = None
        return self._head  # type: ignore[return-value]

    @property
    def branch(self) -> str:
        """Short name of the checked-out branch."""
        target = self.refs.get_symrefs().get(b"HEAD", BRANCH)
        return target.decode().removeprefix("refs/heads/")

    def resolve(self, rev: str | None) -> bytes:
        """The commit id for ``rev``: HEAD, a branch or ref, a (short) hex id, with ``~N``/``^``."""
        rev = rev or "HEAD"
        base, suffix = rev, ""
        for i, ch in enumerate(rev):
            if ch in "~^":
                base, suffix = rev[:i], rev[i:]
                break
        commit = self._resolve_base(base or "HEAD", rev)
        while suffix:
            ch, suffix = suffix[0], suffix[1:]
            digits = ""
            while suffix and suffix[0].isdigit():
                digits, suffix = digits + suffix[0], suffix[1:]
            steps = int(digits) if digits else 1
            if ch == "^" and digits:
                commit = self._nth_parent(commit, steps, rev)
                continue
            for _ in range(steps):
                commit = self._nth_parent(commit, 1, rev)
        return commit

    def _nth_parent(self, commit: bytes, n: int, rev: str) -> bytes:
        parents = self.read_commit(commit).parents
        if n < 1 or n > len(parents):
            raise UnknownRevision(f"unknown revision: {rev}")
        return parents[n - 1]

    def _resolve_base(self, base: str, rev: str) -> bytes:
        for candidate in (base.encode(), b"refs/heads/" + base.encode(), b"refs/tags/" + base.encode(),
                          b"refs/remotes/" + base.encode()):
            try:
                return self.refs[candidate]
            except (KeyError, ValueError):
                continue
        if 4 <= len(base) <= 40 and all(c in "0123456789abcdef" for c in base.lower()):
            matches = [oid for oid in self._iter_commit_ids_with_prefix(base.lower().encode())]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UnknownRevision(f"ambiguous revision: {rev}")
        if base == "HEAD":
            raise UnknownRevision("the campaign has no commits yet")
        raise UnknownRevision(f"unknown revision: {rev}")

    def _iter_commit_ids_with_prefix(self, prefix: bytes) -> Iterator[bytes]:
        if len(prefix) == 40:
            if prefix in self.store and isinstance(self.store[prefix], Commit):
                yield prefix
            return
        for oid in self.store.iter_prefix(prefix):
            if isinstance(self.store[oid], Commit):
                yield oid

    def read_commit(self, oid: bytes) -> Commit:
        """A commit object (cached: commits are immutable)."""
        commit = self._commit_cache.get(oid)
        if commit is None:
            obj = self.read_object(oid)
            if not isinstance(obj, Commit):
                raise UnknownRevision(f"{oid.decode()} is not a commit")
            commit = self._commit_cache[oid] = obj
        return commit

    def walk(self, start: bytes | None = None) -> Iterator[Commit]:
        """Commits reachable from ``start`` (default HEAD), newest first."""
        start = start or self.head()
        if start is None:
            return
        for entry in self._repo.get_walker(include=[start]):
            yield entry.commit

    # -- trees ---------------------------------------------------------------------

    def lookup(self, tree_id: bytes | None, path: str) -> Entry | None:
        """The (mode, id) at ``path`` below ``tree_id``, or None."""
        if tree_id is None:
            return None
        mode, oid = TREE_MODE, tree_id
        for part in path.split("/"):
            if mode != TREE_MODE:
                return None
            found = self.tree_entries(oid).get(part.encode())
            if found is None:
                return None
            mode, oid = found
        return mode, oid

    def tree_of(self, commit: bytes | None) -> bytes | None:
        """The root tree of a commit (None for None)."""
        return None if commit is None else self.read_commit(commit).tree

    def iter_tree(self, tree_id: bytes, prefix: str = "") -> Iterator[tuple[str, int, bytes]]:
        """Every blob below ``tree_id``, as (path, mode, id), depth first in tree order."""
        for name, (mode, oid) in sorted(self.tree_entries(tree_id).items()):
            path = prefix + name.decode()
            if mode == TREE_MODE:
                yield from self.iter_tree(oid, path + "/")
            else:
                yield path, mode, oid

    def build_tree(self, base: bytes | None, changes: dict[str, Entry | None]) -> bytes:
        """Apply path → entry changes to tree ``base``; queues new trees, returns the root id."""
        root = self._apply(base, {tuple(p.split("/")): v for p, v in changes.items()})
        if root is None:
            return self._queue_raw(TREE_TYPE, b"")
        return root

    def _apply(self, base: bytes | None, changes: dict[tuple[str, ...], Entry | None]) -> bytes | None:
        items: dict[bytes, tuple[int, bytes]] = {}
        if base is not None:
            items = dict(self.tree_entries(base))
        nested: dict[str, dict[tuple[str, ...], Entry | None]] = {}
        for parts, value in changes.items():
            if len(parts) == 1:
                if value is None:
                    items.pop(parts[0].encode(), None)
                else:
                    items[parts[0].encode()] = value
            else:
                nested.setdefault(parts[0], {})[parts[1:]] = value
        for name, sub in nested.items():
            old = items.get(name.encode())
            sub_base = old[1] if old is not None and old[0] == TREE_MODE else None
            new = self._apply(sub_base, sub)
            if new is None:
                items.pop(name.encode(), None)
            else:
                items[name.encode()] = (TREE_MODE, new)
        if not items:
            return None
        tree_id = self._queue_raw(TREE_TYPE, tree_bytes(items))
        self._tree_cache[tree_id] = items
        return tree_id

    # -- staging -------------------------------------------------------------------

    @property
    def index_path(self) -> str:
        """The staging area file."""
        return os.path.join(self.camp_dir, "index.json")

    def staging(self) -> Staging:
        """The staging area (loaded once per object)."""
        if self._staging is None:
            try:
                with open(self.index_path, "rb") as f:
                    self._staging = Staging.from_bytes(f.read())
            except FileNotFoundError:
                head = self.head()
                self._staging = Staging(head.decode() if head else None, {})
            except (ValueError, KeyError) as exc:
                raise CampError(f"staging area {self.index_path} is corrupt ({exc})") from None
        return self._staging

    def stage(self, path: str, entry: Entry | None) -> None:
        """Record that ``path`` becomes ``entry`` (None: removed) in the next commit."""
        self._require_lock()
        self.staging().entries[path] = entry

    def save_staging(self) -> None:
        """Write the staging area atomically (objects first, so it never points at nothing)."""
        self._require_lock()
        self.flush()
        fault(self.fault, "stage-before-index")
        atomic_write(self.index_path, self.staging().to_bytes())

    def staged_changes(self) -> dict[str, tuple[Entry | None, Entry | None]]:
        """Staged paths whose entry differs from HEAD: path → (in HEAD, staged)."""
        head_tree = self.tree_of(self.head())
        out = {}
        for path, entry in self.staging().entries.items():
            old = self.lookup(head_tree, path)
            if old != entry:
                out[path] = (old, entry)
        return out

    def current(self, path: str) -> Entry | None:
        """The entry at ``path`` as the next commit would have it (staged, else HEAD)."""
        entries = self.staging().entries
        if entries:
            # A staged folder (e.g. a whole dataset) answers for the paths below it.
            parts = path.split("/")
            for i in range(len(parts), 0, -1):
                prefix = "/".join(parts[:i])
                if prefix in entries:
                    entry = entries[prefix]
                    if entry is None or i == len(parts):
                        return entry
                    return self.lookup(entry[1], "/".join(parts[i:])) if entry[0] == TREE_MODE else None
        return self.lookup(self.tree_of(self.head()), path)

    def commit_staged(self, message: str, identity: bytes, when: int | None = None,
                      merge_parents: Sequence[bytes] = ()) -> bytes:
        """Commit HEAD's tree with the staged changes; moves the branch by compare-and-swap.

        ``merge_parents`` follow HEAD as further parents (a merge commit).
        """
        self._require_lock()
        staging = self.staging()
        head = self.head()
        tree = self.build_tree(self.tree_of(head), staging.entries)
        commit = Commit()
        commit.tree = tree
        commit.parents = ([head] if head else []) + list(merge_parents)
        commit.author = commit.committer = identity
        now = int(time.time()) if when is None else when
        offset = -time.timezone if time.localtime(now).tm_isdst == 0 else -time.altzone
        commit.author_time = commit.commit_time = now
        commit.author_timezone = commit.commit_timezone = offset
        commit.message = message.encode("utf-8") if message.endswith("\n") else (message + "\n").encode("utf-8")
        self._queue(commit)
        self.flush()
        fault(self.fault, "commit-before-ref")
        if not self.refs.set_if_equals(b"HEAD", head, commit.id, committer=identity, timestamp=now,
                                       timezone=offset, message=b"commit: " + message.encode()[:60]):
            raise CampError("the branch moved while committing; nothing was committed, run the command again")
        fault(self.fault, "commit-after-ref")
        self._head = commit.id
        self._staging = Staging(commit.id.decode(), {})
        atomic_write(self.index_path, self._staging.to_bytes())
        return commit.id

    def set_branch(self, old: bytes | None, new: bytes) -> None:
        """Move the current branch from ``old`` to ``new`` (compare-and-swap)."""
        self._require_lock()
        if not self.refs.set_if_equals(b"HEAD", old, new):
            raise CampError("the branch moved concurrently; run the command again")
        self._head = new

    # -- reading manifests ---------------------------------------------------------

    def campaign(self, commit: bytes | None = None) -> Campaign:
        """``campaign.json`` of a commit (default: as the next commit would have it)."""
        entry = self.current(layout.CAMPAIGN) if commit is None else self.lookup(self.tree_of(commit), layout.CAMPAIGN)
        if entry is None:
            raise CampError(f"{self.root}: campaign.json is missing")
        return Campaign.loads(self.read_blob(entry[1]))

    def dataset(self, name: str, commit: bytes | None = None) -> Dataset | None:
        """A dataset by name (default: staged state), or None."""
        path = self._dataset_dir(name) + "/" + layout.MANIFEST
        entry = self.current(path) if commit is None else self.lookup(self.tree_of(commit), path)
        if entry is None:
            return None
        return Dataset.loads(self.read_blob(entry[1]), what=f"manifest of {name}")

    def host(self, name: str, commit: bytes | None = None) -> Host | None:
        """A host manifest by short host name (default: staged state), or None."""
        path = layout.host_path(name)
        entry = self.current(path) if commit is None else self.lookup(self.tree_of(commit), path)
        return None if entry is None else Host.loads(self.read_blob(entry[1]), what=f"host {name}")

    def iter_manifests(self, tree_id: bytes | None, folder: str) -> Iterator[tuple[str, bytes]]:
        """(path, blob id) of every ``*.json`` manifest below ``folder`` of a tree."""
        entry = self.lookup(tree_id, folder)
        if entry is None or entry[0] != TREE_MODE:
            return
        for path, _mode, oid in self.iter_tree(entry[1], folder + "/"):
            if path.endswith(".json"):
                yield path, oid

    def datasets(self, tree_id: bytes | None) -> Iterator[Dataset]:
        """Every dataset manifest of a tree, in tree order (streamed)."""
        entry = self.lookup(tree_id, layout.DATASETS)
        if entry is None:
            return
        for path, _mode, oid in self.iter_tree(entry[1], layout.DATASETS + "/"):
            if path.endswith("/" + layout.MANIFEST):
                yield Dataset.loads(self.read_blob(oid), what=path)

    def hosts(self, tree_id: bytes | None) -> Iterator[Host]:
        """Every host manifest of a tree."""
        for path, oid in self.iter_manifests(tree_id, layout.HOSTS):
            yield Host.loads(self.read_blob(oid), what=path)

    def timeseries(self, tree_id: bytes | None) -> Iterator[TimeSeries]:
        """Every time-series manifest of a tree."""
        for path, oid in self.iter_manifests(tree_id, layout.TIMESERIES):
            yield TimeSeries.loads(self.read_blob(oid), what=path)

    def staged_tree(self) -> bytes | None:
        """A tree id for HEAD plus staged changes (objects queued, not written)."""
        head_tree = self.tree_of(self.head())
        if not self.staging().entries:
            return head_tree
        return self.build_tree(head_tree, self.staging().entries)

    # -- writing manifests ---------------------------------------------------------

    def stage_dataset(self, dataset: Dataset, payloads: dict[bytes, bytes]) -> bytes:
        """Stage a dataset folder: manifest plus every embedded object it references.

        ``payloads`` maps blob id → bytes for objects not yet in the store. Returns the id
        of the dataset's tree.
        """
        for data in payloads.values():
            self.add_blob(data)
        items = {layout.MANIFEST.encode(): (BLOB_MODE, self.add_blob(dataset.dumps()))}
        for entry_name, blob in embedded_entries(dataset).items():
            items[entry_name.encode()] = (BLOB_MODE, blob.encode())
        tree_id = self._queue_raw(TREE_TYPE, tree_bytes(items))
        self.stage(self._dataset_dir(dataset.name), (TREE_MODE, tree_id))
        return tree_id

    def _dataset_dir(self, name: str) -> str:
        """:func:`layout.dataset_dir`, remembered: an add looks each name up, then stages it."""
        found = self._dirs.get(name)
        if found is None:
            found = self._dirs[name] = layout.dataset_dir(name)
        return found

    def stage_json(self, path: str, data: bytes | None) -> None:
        """Stage a manifest file at ``path`` (None: remove it)."""
        self.stage(path, None if data is None else (BLOB_MODE, self.add_blob(data)))


def tree_bytes(items: dict[bytes, tuple[int, bytes]]) -> bytes:
    """Raw content of a git tree with these entries (name → (mode, hex id)), in git's order."""
    return b"".join(serialize_tree(sorted_tree_items(items, False)))


def pack_entry_header(type_num: int, size: int) -> bytes:
    """A pack entry's type and size (git's variable-length encoding, 4 bits then 7 per byte)."""
    out = bytearray()
    byte = (type_num << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


_STORED_BLOCK = 0xFFFF


def _stored_zlib(data: bytes) -> bytes:
    """``data`` as a valid zlib stream of uncompressed (stored) deflate blocks, without zlib's set-up."""
    out = [b"\x78\x01"]  # deflate, 32 KiB window, no dictionary; (0x78 << 8 | 0x01) % 31 == 0
    if not data:
        out.append(b"\x01\x00\x00\xff\xff")
    for start in range(0, len(data), _STORED_BLOCK):
        block = data[start:start + _STORED_BLOCK]
        final = 1 if start + _STORED_BLOCK >= len(data) else 0
        out += (struct.pack("<BHH", final, len(block), len(block) ^ 0xFFFF), block)
    out.append(struct.pack(">I", zlib.adler32(data)))
    return b"".join(out)


def embedded_entries(dataset: Dataset) -> dict[str, str]:
    """Tree entry name → blob id for every embedded object of a dataset.

    An object is stored under its own file name; where replicas hold different objects
    of the same name, each is stored as ``<name>@<first 12 hex of its id>``.
    """
    by_name: dict[str, set[str]] = {}
    for replica in dataset.replicas:
        for f in replica.files:
            by_name.setdefault(f.name, set()).add(f.blob)
    out: dict[str, str] = {}
    for name, blobs in by_name.items():
        safe = layout.encode_component(name)
        if safe == layout.MANIFEST:
            safe = "%64ataset.json"
        if len(blobs) == 1:
            out[safe] = next(iter(blobs))
        else:
            for blob in blobs:
                out[f"{safe}@{blob[:12]}"] = blob
    return out
