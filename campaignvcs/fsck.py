"""Is the repository whole? The checks behind ``camp fsck``.

Every object reachable from a ref (and from the staging area) is read once and its content
hashed again (git's object id); commits and trees are parsed; every manifest is loaded;
each dataset folder holds exactly the embedded objects its manifest names, at the recorded
lengths (plus :data:`campaignvcs.keys.OVERHEAD` when keyed). At each branch tip (and in the
staged state) archived replicas must name an archive their host manifest lists, and
time-series members must exist. Pack files are checked against their checksums. Problems
are collected, never repaired; nothing here takes the lock or writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dulwich.object_format import SHA1
from dulwich.objects import Commit, ObjectFormatException, ShaFile, Tree, parse_tree

from campaignvcs import layout
from campaignvcs.errors import CampError
from campaignvcs.gitobjects import TREE_MODE, TYPE_NUMBERS, object_id
from campaignvcs.keys import OVERHEAD
from campaignvcs.layout import embedded_entries
from campaignvcs.model import Campaign, Dataset, Host, TimeSeries
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class FsckProblem:
    """One thing wrong with the repository.

    ``kind``: ``missing-object``, ``corrupt-object``, ``bad-object`` (wrong type or
    unparsable), ``bad-manifest``, ``bad-reference`` (a manifest points at something
    absent or inconsistent), ``bad-pack``, ``bad-ref``, ``bad-staging``.
    """

    kind: str
    what: str
    message: str


_MISSING = "missing"


class Fsck:
    """One pass over a repository; collects problems instead of stopping at the first.

    ``bad_refs`` maps refs already known to be wrong (remote-tracking refs an older camp
    recorded wrongly; the porcelain finds them) to what is wrong: they are reported, not read.
    """

    def __init__(self, camp: CampaignRepo, bad_refs: Mapping[str, str] | None = None) -> None:
        self.camp = camp
        self.bad_refs = dict(bad_refs or {})
        self.problems: list[FsckProblem] = []
        self.seen: dict[bytes, tuple[bytes, int] | str] = {}
        """Object id → (type, length) once read, or a failure marker."""
        self.ref_count = self.commit_count = self.manifest_count = self.pack_count = 0
        self._tips: list[tuple[str, bytes]] = []

    def problem(self, kind: str, what: str, message: str) -> None:
        """Record one finding."""
        self.problems.append(FsckProblem(kind, what, message))

    # objects -----------------------------------------------------------------------------------

    def read(self, oid: bytes, want: bytes, where: str, keep: bool = False) -> bytes | None:
        """Content of a verified object (only when ``keep``), or None; records problems once per object."""
        known = self.seen.get(oid)
        if isinstance(known, str):
            return None
        if known is not None and not keep:
            if known[0] != want:
                self.problem("bad-object", oid.decode(), f"{where}: object {oid.decode()} is a "
                             f"{known[0].decode()}, expected a {want.decode()}")
                return None
            return b""
        text = oid.decode()
        try:
            kind, data = self.camp.read_raw(oid)
        except Exception as exc:  # noqa: BLE001 - any failure to read an object is a finding
            self.seen[oid] = _MISSING
            if not self.camp.objects.holds(oid):
                self.problem("missing-object", text, f"object {text} is missing ({where})")
            else:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.problem("corrupt-object", text, f"object {text} cannot be read ({where}): {reason}")
            return None
        actual = object_id(TYPE_NUMBERS[kind], data).decode()
        if actual != text:
            self.seen[oid] = _MISSING
            self.problem("corrupt-object", text,
                         f"object {text} is corrupt ({where}): its content hashes to {actual}")
            return None
        self.seen[oid] = (kind, len(data))
        if kind != want:
            self.problem("bad-object", text, f"{where}: object {text} is a {kind.decode()}, expected a "
                         f"{want.decode()}")
            return None
        return data

    def length(self, oid: bytes) -> int | None:
        """Length of an object already read and verified, else None."""
        known = self.seen.get(oid)
        return known[1] if isinstance(known, tuple) else None

    # walk --------------------------------------------------------------------------------------

    def run(self) -> None:
        """Check packs, walk every ref's history and the staging area, then the references at each tip."""
        self.check_packs()
        roots = self.refs()
        for name, oid in roots:
            self.walk_commits(name, oid)
        self.check_staging()
        done: set[bytes] = set()
        for name, tree in self._tips:
            if tree not in done:
                done.add(tree)
                self.check_references(name, tree)

    def refs(self) -> list[tuple[str, bytes]]:
        """The refs to walk from (and MERGE_HEAD during a merge), as (name, commit id); bad ones reported."""
        out = []
        refs = self.camp.refs
        bad = self.bad_refs
        for ref, what in sorted(bad.items()):
            self.problem("bad-ref", ref, f"{ref}: {what}")
        for name in sorted(refs.allkeys()):
            if name.decode("utf-8", "replace") in bad:
                continue
            if name == b"HEAD" and b"HEAD" in refs.get_symrefs():
                continue  # the branch it points to is checked under its own name
            try:
                oid = refs[name]
            except (KeyError, ValueError) as exc:
                self.problem("bad-ref", name.decode(), f"{name.decode()} cannot be read ({exc})")
                continue
            out.append((name.decode(), oid))
        merge_head = os.path.join(self.camp.camp_dir, "MERGE_HEAD")
        if os.path.isfile(merge_head):
            with open(merge_head, "rb") as f:
                value = f.read().strip()
            if len(value) == 40:
                out.append(("MERGE_HEAD", value))
        self.ref_count = len(out)
        return out

    def walk_commits(self, ref: str, start: bytes) -> None:
        """Every commit reachable from ``start`` (once each) and the tree of each."""
        stack = [(start, ref)]
        first = True
        while stack:
            oid, where = stack.pop()
            if oid in self.seen:
                if first and isinstance(self.seen[oid], tuple) and self.seen[oid][0] == b"commit":
                    self._tips.append((ref, self.camp.read_commit(oid).tree))  # also reached from another ref
                first = False
                continue
            data = self.read(oid, b"commit", f"commit of {where}", keep=True)
            if data is None:
                if first:
                    self.problem("bad-ref", ref,
                                 f"{ref} points to {oid.decode()}, which is not a readable commit")
                first = False
                continue
            self.commit_count += 1
            try:
                commit = ShaFile.from_raw_string(Commit.type_num, data, sha=oid)
                commit.check()
            except (ObjectFormatException, ValueError, AssertionError) as exc:
                self.problem("bad-object", oid.decode(), f"commit {oid.decode()} is malformed ({exc})")
                continue
            assert isinstance(commit, Commit)
            short = oid.decode()[:10]
            if first:
                self._tips.append((ref, commit.tree))
            first = False
            self.walk_tree(commit.tree, "", f"commit {short}")
            for parent in commit.parents:
                stack.append((parent, f"parent of {short}"))

    def walk_tree(self, oid: bytes, prefix: str, where: str) -> None:
        """A tree and everything below it; dataset folders are checked as a whole."""
        if oid in self.seen:
            return
        data = self.read(oid, b"tree", f"tree {prefix or '/'} in {where}", keep=True)
        if data is None:
            return
        try:
            Tree.from_raw_string(Tree.type_num, data, sha=oid).check()
            entries = list(parse_tree(data, 20))
        except (ObjectFormatException, ValueError) as exc:
            self.problem("bad-object", oid.decode(),
                         f"tree {prefix or '/'} ({oid.decode()}) is malformed ({exc})")
            return
        parts = prefix.rstrip("/").split("/") if prefix else []
        if len(parts) == 4 and parts[0] == layout.DATASETS:
            self.check_dataset_folder(prefix.rstrip("/"), entries, where)
            return
        for name_b, mode, sha in entries:
            path = prefix + name_b.decode("utf-8", "replace")
            if mode == TREE_MODE:
                self.walk_tree(sha, path + "/", where)
            else:
                self.check_blob(path, sha, where)

    def check_blob(self, path: str, oid: bytes, where: str) -> None:
        """A blob; a manifest (campaign, host, time series) is parsed too."""
        parser = _PARSERS.get(path.split("/")[0]) if path.endswith(".json") else None
        if path == layout.CAMPAIGN:
            parser = Campaign.loads
        if parser is None or oid in self.seen:
            self.read(oid, b"blob", f"{path} in {where}")
            return
        data = self.read(oid, b"blob", f"{path} in {where}", keep=True)
        if data is None:
            return
        self.manifest_count += 1
        try:
            parser(data, path)
        except CampError as exc:
            self.problem("bad-manifest", path, f"{path} in {where}: {exc}")
        except (KeyError, TypeError, ValueError) as exc:
            self.problem("bad-manifest", path, f"{path} in {where}: malformed manifest ({exc!r})")

    def check_dataset_folder(self, folder: str, entries: list[tuple[bytes, int, bytes]], where: str) -> None:
        """A dataset folder: its manifest, and exactly the embedded objects it names."""
        blobs = {n.decode("utf-8", "replace"): sha for n, mode, sha in entries if mode != TREE_MODE}
        for n, mode, _sha in entries:
            if mode == TREE_MODE:
                self.problem("bad-reference", folder, f"{folder} in {where}: unexpected folder {n.decode()}")
        manifest_id = blobs.pop(layout.MANIFEST, None)
        if manifest_id is None:
            self.problem("bad-manifest", folder, f"{folder} in {where}: no {layout.MANIFEST}")
            return
        path = f"{folder}/{layout.MANIFEST}"
        data = self.read(manifest_id, b"blob", f"{path} in {where}", keep=True)
        if data is None:
            return
        self.manifest_count += 1
        try:
            ds = Dataset.loads(data, what=path)
        except CampError as exc:
            self.problem("bad-manifest", path, f"{exc} (in {where})")
            return
        if layout.dataset_dir(ds.name) != folder:
            self.problem("bad-manifest", path, f"{path} in {where}: names dataset {ds.name!r}, which belongs "
                         f"in {layout.dataset_dir(ds.name)}")
        expected = {k: v.encode() for k, v in embedded_entries(ds).items()}
        for entry in sorted(set(expected) | set(blobs)):
            want, have = expected.get(entry), blobs.get(entry)
            if want is None:
                self.problem("bad-reference", f"{folder}/{entry}",
                             f"dataset {ds.name} ({where}): {entry} is in its folder but not in its manifest")
            elif have is None:
                self.problem("bad-reference", f"{folder}/{entry}",
                             f"dataset {ds.name} ({where}): embedded object {entry} ({want.decode()}) "
                             "is not in its folder")
            elif want != have:
                self.problem("bad-reference", f"{folder}/{entry}",
                             f"dataset {ds.name} ({where}): {entry} is {have.decode()} in its folder, "
                             f"{want.decode()} in its manifest")
        for entry, sha in blobs.items():
            self.read(sha, b"blob", f"{folder}/{entry} in {where}")
        checked: set[tuple[str, int]] = set()
        for r in ds.replicas:
            extra = OVERHEAD if r.key else 0
            for f in r.files:
                if (f.blob, f.lencompressed + extra) in checked:
                    continue
                checked.add((f.blob, f.lencompressed + extra))
                if self.read(f.blob.encode(), b"blob", f"{f.name} of dataset {ds.name} in {where}") is None:
                    continue
                size = self.length(f.blob.encode())
                if size is not None and size != f.lencompressed + extra:
                    self.problem("bad-reference", f.blob,
                                 f"dataset {ds.name} ({where}): embedded {f.name} is {size} bytes, "
                                 f"the manifest says {f.lencompressed}" + (" + 40 (keyed)" if extra else ""))

    def check_staging(self) -> None:
        """The staging area: every entry it points at, and the tree it makes (a tip of its own)."""
        where = self.camp.staging.path or "the staging area"
        try:
            entries = dict(self.camp.staging.entries)
        except CampError as exc:
            self.problem("bad-staging", where, str(exc))
            return
        if not entries:
            return
        for path, entry in sorted(entries.items()):
            if entry is None:
                continue
            mode, oid = entry
            if mode == TREE_MODE:
                self.walk_tree(oid, path + "/", "the staging area")
            else:
                self.check_blob(path, oid, "the staging area")
        if not any(p.kind in ("missing-object", "corrupt-object") for p in self.problems):
            try:
                tree = self.camp.staged_tree()
            except CampError as exc:
                self.problem("bad-staging", where, str(exc))
                return
            if tree is not None:
                self._tips.append(("the staging area", tree))

    # references between manifests ----------------------------------------------------------------

    def check_references(self, where: str, tree: bytes) -> None:
        """At a tip: archives named by replicas are listed by their hosts; series members exist."""
        camp = self.camp
        hosts: dict[str, Host | None] = {}
        names: set[str] = set()
        try:
            manifests = list(camp.iter_manifests(tree, layout.DATASETS))
        except CampError:
            return  # a missing tree: already reported
        for path, oid in manifests:
            if not path.endswith("/" + layout.MANIFEST) or not isinstance(self.seen.get(oid), tuple):
                continue
            try:
                ds = Dataset.loads(camp.read_blob(oid), what=path)
            except CampError:
                continue
            names.add(ds.name)
            if not ds.live:
                continue
            for r in ds.live_replicas():
                if r.archive is None:
                    continue
                if r.host not in hosts:
                    hosts[r.host] = self._host(tree, r.host)
                host = hosts[r.host]
                listed = host is not None and any(
                    a.dir == r.dir and a.tarname == r.archive for a in host.archives
                )
                if not listed:
                    shown = r.dir + (f"/{r.archive}" if r.archive else "")
                    self.problem("bad-reference", f"{ds.name}:{r.id}",
                                 f"dataset {ds.name} ({where}): replica {r.id} is in archive "
                                 f"{r.host}:{shown}, which {layout.host_path(r.host)} does not list")
        try:
            series = list(camp.iter_manifests(tree, layout.TIMESERIES))
        except CampError:
            return
        for path, oid in series:
            try:
                ts = TimeSeries.loads(camp.read_blob(oid), what=path)
            except (CampError, KeyError, TypeError, ValueError):
                continue
            for member in ts.datasets:
                if member not in names:
                    self.problem("bad-reference", path,
                                 f"time series {ts.name} ({where}): member {member} has no dataset")

    def _host(self, tree: bytes, name: str) -> Host | None:
        entry = self.camp.lookup(tree, layout.host_path(name))
        if entry is None or not isinstance(self.seen.get(entry[1]), tuple):
            return None
        try:
            return Host.loads(self.camp.read_blob(entry[1]), what=layout.host_path(name))
        except CampError:
            return None

    # packs -------------------------------------------------------------------------------------

    def check_packs(self) -> None:
        """Every pack file with its index: its checksums verified."""
        from dulwich.pack import Pack  # only fsck reads whole packs: not loaded for camp verify

        pack_dir = os.path.join(self.camp.git_dir, "objects", "pack")
        try:
            names = sorted(os.listdir(pack_dir))
        except FileNotFoundError:
            return
        bases = {n[:-5] for n in names if n.endswith(".pack")} | {n[:-4] for n in names if n.endswith(".idx")}
        for base in sorted(bases):
            if base.startswith("tmp_"):
                continue  # an interrupted write; never used
            full = os.path.join(pack_dir, base)
            has_pack, has_idx = os.path.exists(full + ".pack"), os.path.exists(full + ".idx")
            if has_pack and not has_idx:
                continue  # a writer killed between its renames: never read, listed among the leftovers
            if not has_pack:
                self.problem("bad-pack", base, f"pack {base}: its .pack file is missing")
                continue
            self.pack_count += 1
            try:
                with Pack(full, object_format=SHA1) as pack:
                    pack.check()
            except Exception as exc:  # noqa: BLE001 - any failure to verify a pack is a finding
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.problem("bad-pack", base, f"pack {base} fails its checksum check: {reason}")


def _host_parser(data: bytes, what: str) -> object:
    return Host.loads(data, what)


def _series_parser(data: bytes, what: str) -> object:
    return TimeSeries.loads(data, what)


_PARSERS = {layout.HOSTS: _host_parser, layout.TIMESERIES: _series_parser}
