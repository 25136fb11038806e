"""camp search: find datasets by name, variable, attribute, value range, kind and host.

Searches every archive in the campaign store (camp's and hpc-campaign's) and, run inside
a campaign repository, that repository's HEAD. Behind it is the search index
(:mod:`campaignvcs.searchindex`, ``<store>/.camp/search.acx``): before each search the
archives whose file changed and the repository's changed datasets are indexed; only
metadata objects never seen before are read (by ADIOS2 for BP, h5py for HDF5). ``camp
build`` into the store updates it for the archive it wrote (:func:`index_built_archive`).

Encrypted metadata is never written to the index: such datasets are indexed by name,
and a search opens them in memory when the key is at hand.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from campaignvcs import layout
from campaignvcs.config import load_user_config
from campaignvcs.errors import BadInput, CampError, NotACampaign, UsageError
from campaignvcs.history_model import changed_paths, folder_dataset
from campaignvcs.inspect.archive import ArchiveError, ArchiveReader
from campaignvcs.inspect.describe import Contents, Recorded, content_key, describe_all
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.info import keys_at_hand, recorded
from campaignvcs.repo import CampaignRepo
from campaignvcs.searchindex import Described, Found, Query, Row, SearchIndex

INDEX_NAME = os.path.join(".camp", "search.acx")
"""The index, relative to the campaign store (``hpc_campaign index .camp/search ls`` reads it)."""
KINDS = ("ADIOS", "HDF5", "IMAGE", "TEXT")
REPOSITORY = "repository:"


@dataclass(frozen=True)
class Hit:
    """One search result: a dataset, and the matching variable when the search named variables or a range."""

    archive: str
    source: str
    """``store`` (an archive in the campaign store) or ``repository`` (the current repository's HEAD)."""
    dataset: str
    kind: str
    variable: str | None
    type: str | None
    shape: list[int] | None
    steps: int | None
    min: Any
    max: Any
    hosts: list[str]
    encrypted: bool = False
    """Metadata encrypted and no key at hand: matched by name, host and kind only."""


@dataclass(frozen=True)
class SearchResult:
    """The hits, the index searched and what updating it said."""

    hits: list[Hit]
    index: str
    datasets: int
    """Datasets in the index."""
    warnings: list[str] = field(default_factory=list)
    more: bool = False
    """True when ``limit`` cut the hits short."""


@dataclass(frozen=True)
class IndexUpdate:
    """What one update of the index did."""

    index: str
    sources: int
    changed_datasets: int
    new_contents: int
    warnings: list[str] = field(default_factory=list)


def _index_path(store: str | None, camp: CampaignRepo | None) -> str:
    if store:
        return os.path.join(store, INDEX_NAME)
    if camp is not None:
        return os.path.join(camp.root, ".git", "camp", "search.acx")
    raise CampError("nothing to search: no campaign store (Campaign.campaignstorepath in "
                    "~/.config/hpc-campaign/config.yaml) and not inside a campaign repository")


def _store(env: Mapping[str, str]) -> str | None:
    store = load_user_config(env).campaign_store
    return os.path.abspath(store) if store else None


def _archives(store: str) -> dict[str, str]:
    """Archive name → path of every ``.aca`` below the store (hidden folders skipped)."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.endswith(".aca") and not f.startswith("."):
                path = os.path.join(folder, f)
                out[os.path.relpath(path, store)[:-4].replace(os.sep, "/")] = path
    return out


def _signature(path: str) -> str:
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _dsid(name: str) -> int:
    """A repository dataset's stable row id in the index (60 bits of SHA-1 of its name)."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:15], 16)


def _hosts(rec: Recorded) -> tuple[str, ...]:
    return tuple(sorted({r.host for r in (rec.live_replicas or rec.replicas)}))


def _describe_new(index: SearchIndex, records: list[tuple[str, Recorded]], env: Mapping[str, str]) -> int:
    """Read the contents of ``records`` (content key, dataset) the index lacks; how many were new."""
    known = index.known(k for k, _ in records)
    todo: dict[str, Recorded] = {}
    for key, rec in records:
        if key not in known and key not in todo:
            todo[key] = rec
    if not todo:
        return 0
    keys = list(todo)
    described = describe_all([todo[k] for k in keys], {}, env)
    index.add_contents(_stored(k, todo[k], c) for k, c in zip(keys, described, strict=True))
    return len(keys)


def _stored(key: str, rec: Recorded, c: Contents) -> Described:
    state = "sealed" if c.encrypted and not c.decrypted else "error" if c.note and not c.variables else "ok"
    return Described(key, rec.kind, state, c.key_id, c.note, c.variables, c.attributes)


def _index_archive(index: SearchIndex, name: str, path: str, env: Mapping[str, str],
                   sig: str | None = None) -> tuple[int, int, str]:
    """(changed rows, new contents, warning) after (re)indexing the archive at ``path``."""
    sig = sig or _signature(path)
    try:
        with ArchiveReader(path, shown=name) as reader:
            datasets = reader.datasets()
            keyed = [(content_key(rec, {}), rec) for _, rec in datasets]
            new = _describe_new(index, keyed, env)
    except ArchiveError as exc:
        index.set_source(name, "damaged", path, str(exc), sig, ())
        return 0, 0, f"skipped damaged archive {exc}"
    rows = [Row(dsid, rec.name, rec.kind, key, _hosts(rec)) for (dsid, rec), (key, _) in zip(datasets, keyed,
                                                                                            strict=True)]
    return index.set_source(name, "store", path, name, sig, rows), new, ""


def _index_repository(index: SearchIndex, camp: CampaignRepo, env: Mapping[str, str]) -> tuple[int, int]:
    """Index the repository's HEAD, reading only datasets changed since the tree indexed last."""
    head = camp.head()
    tree = camp.tree_of(head) if head is not None else None
    name = REPOSITORY + camp.root
    sig = "" if tree is None else tree.decode()
    before = index.sources().get(name)
    if before is not None and before.signature == sig:
        return 0, 0
    label = camp.campaign(head).name if head is not None else os.path.basename(camp.root)
    old_tree = before.signature.encode() if before is not None and before.signature else None
    current: dict[int, Row] = {}
    if old_tree is not None:
        try:
            camp.tree_entries(old_tree)
            current = {r.dsid: r for r in index.rows(name)}
        except (CampError, KeyError, ValueError):
            old_tree = None
    records: list[tuple[str, Recorded]] = []
    if old_tree is None:
        current = {}
        datasets: Iterable[Any] = camp.datasets(tree) if tree is not None else ()
        for ds in datasets:
            if ds.live:
                rec = recorded(ds, camp.read_blob)
                records.append((content_key(rec, {}), rec))
    else:
        for where, _old, new in changed_paths(camp, old_tree, tree, layout.DATASETS):
            ds = folder_dataset(camp, new, where)
            gone = folder_dataset(camp, _old, where)
            if gone is not None:
                current.pop(_dsid(gone.name), None)
            if ds is not None and ds.live:
                rec = recorded(ds, camp.read_blob)
                records.append((content_key(rec, {}), rec))
    new_contents = _describe_new(index, records, env)
    for key, rec in records:
        current[_dsid(rec.name)] = Row(_dsid(rec.name), rec.name, rec.kind, key, _hosts(rec))
    return index.set_source(name, "repository", camp.root, label, sig, current.values()), new_contents


def _update(index: SearchIndex, store: str | None, camp: CampaignRepo | None, env: Mapping[str, str]
            ) -> tuple[int, int, list[str]]:
    warnings: list[str] = []
    changed = new = 0
    sources = index.sources()
    archives = _archives(store) if store and os.path.isdir(store) else {}
    for name, path in sorted(archives.items()):
        try:
            sig = _signature(path)
        except OSError:
            continue
        before = sources.get(name)
        if before is not None and before.signature == sig:
            if before.kind == "damaged":
                warnings.append(f"skipped damaged archive {before.label}")
            continue
        c, n, warning = _index_archive(index, name, path, env, sig)
        changed, new = changed + c, new + n
        if warning:
            warnings.append(warning)
    for name, src in sources.items():
        if src.kind in ("store", "damaged") and name not in archives:
            index.drop_source(name)
    if camp is not None:
        c, n = _index_repository(index, camp, env)
        changed, new = changed + c, new + n
    return changed, new, warnings


class _Session:
    """The store, the repository (if any) and the open index, rebuilt once if found damaged."""

    def __init__(self, repo: Any, cwd: str | None, env: Mapping[str, str]) -> None:
        self.env = env
        self.store = _store(env)
        self.repo_cm: Any = None
        self.camp: CampaignRepo | None = None
        try:
            self.repo_cm = open_repo(repo, cwd, env)
            self.camp = self.repo_cm.__enter__()
        except NotACampaign:
            if repo is not None:
                raise
        self.path = _index_path(self.store, self.camp)

    def close(self) -> None:
        if self.repo_cm is not None:
            self.repo_cm.__exit__(None, None, None)

    def run(self, work: Any) -> Any:
        """``work(index, warnings)`` on the updated index; a damaged index is rebuilt and the work redone."""
        damaged = ""
        for attempt in range(2):
            try:
                index, reason = SearchIndex.open(self.path)
            except (OSError, sqlite3.Error) as exc:
                raise CampError(f"cannot open the search index {self.path}: {exc}") from None
            reason = damaged or reason
            warnings = [f"search index {self.path} rebuilt: {reason}"] if reason else []
            try:
                changed, new, more = _update(index, self.store, self.camp, self.env)
                return work(index, warnings + more, changed, new)
            except sqlite3.DatabaseError as exc:
                if attempt:
                    raise CampError(f"search index {self.path}: {exc}") from None
                damaged = f"it was damaged ({exc})"
                index.close()
                os.unlink(self.path)
            finally:
                index.close()
        raise AssertionError("unreachable")


def search_index_update(repo: Any = None, cwd: str | None = None, env: Mapping[str, str] | None = None
                        ) -> IndexUpdate:
    """Bring the search index up to date with the store's archives and the current repository."""
    session = _Session(repo, cwd, environ(env))
    try:
        return session.run(lambda index, warnings, changed, new: IndexUpdate(
            session.path, len(index.sources()), changed, new, warnings))
    finally:
        session.close()


def parse_range(text: str) -> tuple[float | None, float | None]:
    """``LO:HI`` (either side may be empty) as numbers."""
    if ":" not in text:
        raise UsageError(f"--range takes LO:HI (either side may be empty), not {text!r}")
    lo, hi = text.split(":", 1)
    try:
        low = float(lo) if lo.strip() else None
        high = float(hi) if hi.strip() else None
    except ValueError:
        raise UsageError(f"--range takes numbers: {text!r}") from None
    if low is not None and high is not None and low > high:
        raise UsageError(f"--range {text}: LO is greater than HI")
    return low, high


def search(
    pattern: str | None = None,
    var: str | None = None,
    attr: str | None = None,
    value_range: str | None = None,
    kind: str | None = None,
    host: str | None = None,
    repo: Any = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    keyfile: str | None = None,
    limit: int | None = None,
) -> SearchResult:
    """Datasets (and with ``var`` or ``value_range``, their variables) matching every filter given.

    ``limit`` keeps the first hits (in the order shown) and says whether there were more;
    the scan stops there, so a broad query over 100,000 datasets answers as quickly as a narrow one.

    ``pattern`` and ``var`` are globs on dataset and variable names; ``attr`` is
    ``NAME`` or ``NAME=VALUE`` (NAME a glob; VALUE compared as text, or as a number);
    ``value_range`` ``LO:HI`` keeps variables whose [min, max] overlaps it.
    """
    env = environ(env)
    low, high = parse_range(value_range) if value_range is not None else (None, None)
    if kind is not None and kind.upper() not in KINDS:
        raise BadInput(f"unknown dataset kind: {kind} (one of {', '.join(KINDS)})")
    name, _, value = (attr or "").partition("=")
    q = Query(pattern=pattern, var=var, attr=name if attr is not None else None,
              attr_value=value if attr is not None and "=" in attr else None,
              low=low, high=high, kind=kind.upper() if kind else None, host=host)
    session = _Session(repo, cwd, env)
    try:
        def work(index: SearchIndex, warnings: list[str], _changed: int, _new: int) -> SearchResult:
            found = index.search(q, session.camp.root if session.camp is not None else None, limit)
            hits = _hits(found, q, session, keyfile, cwd, warnings)
            more = limit is not None and len(hits) > limit
            return SearchResult(hits[:limit] if more else hits, session.path, index.counts()[0], warnings, more)

        return session.run(work)
    finally:
        session.close()


def _hits(found: list[Found], q: Query, session: _Session, keyfile: str | None, cwd: str | None,
          warnings: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    sealed = [f for f in found if f.state == "sealed"]
    opened: dict[int, Contents] = {}
    if sealed:
        keys = keys_at_hand({f.keyid for f in sealed}, keyfile, cwd, session.env)
        readable = [f for f in sealed if f.keyid in keys]
        if readable:
            recs = [_load(f, session) for f in readable]
            for f, c in zip(readable, describe_all(recs, keys, session.env), strict=True):
                opened[id(f)] = c
        missing = sorted({f.keyid for f in sealed if f.keyid not in keys})
        if missing:
            n = sum(1 for f in sealed if f.keyid not in keys)
            warnings.append(f"{n} dataset(s) with encrypted metadata matched by name only "
                            f"(key {', '.join(missing)} not at hand: camp search -k KEYFILE)")
    per_variable = q.per_variable
    for f in found:
        if f.state == "sealed":
            base: dict[str, Any] = {"archive": f.label, "source": f.source, "dataset": f.dataset, "kind": f.kind,
                                    "hosts": f.hosts}
            got = opened.get(id(f))
            if got is None:
                hits.append(Hit(**base, variable=None, type=None, shape=None, steps=None, min=None, max=None,
                                encrypted=True))
                continue
            variables = _match(got, q)
            if variables is None:
                continue
            hits.extend(Hit(**base, **v) for v in variables)
            continue
        if not per_variable:
            hits.append(Hit(f.label, f.source, f.dataset, f.kind, None, None, None, None, None, None, f.hosts))
            continue
        for v in f.variables:
            hits.append(Hit(f.label, f.source, f.dataset, f.kind, v["variable"], v["type"], v["shape"], v["steps"],
                            v["min"], v["max"], f.hosts))
    return hits


def _match(c: Contents, q: Query) -> list[dict[str, Any]] | None:
    """The hits' variable fields of decrypted contents ``c`` under ``q`` (None: the dataset does not match)."""
    if q.attr is not None:
        ok = False
        for a in c.attributes:
            if fnmatch.fnmatchcase(a.name, q.attr):
                text = a.value if isinstance(a.value, str) else str(a.value)
                if q.attr_value is None or text == q.attr_value or _same_number(a.value, q.attr_value):
                    ok = True
        if not ok:
            return None
    if not q.per_variable:
        return [{"variable": None, "type": None, "shape": None, "steps": None, "min": None, "max": None}]
    out = []
    for v in c.variables:
        if q.var is not None and not fnmatch.fnmatchcase(v.name, q.var):
            continue
        if q.low is not None or q.high is not None:
            if not isinstance(v.min, (int, float)) or not isinstance(v.max, (int, float)):
                continue
            if (q.low is not None and v.max < q.low) or (q.high is not None and v.min > q.high):
                continue
        out.append({"variable": v.name, "type": v.type, "shape": v.shape, "steps": v.steps,
                    "min": v.min, "max": v.max})
    return out or None


def _same_number(value: Any, text: str) -> bool:
    try:
        return isinstance(value, (int, float)) and float(text) == float(value)
    except ValueError:
        return False


def _load(f: Found, session: _Session) -> Recorded:
    """The recorded dataset behind a hit, read again from its archive or repository."""
    if f.source == "repository":
        if session.camp is None or session.camp.root != f.path:
            with CampaignRepo.open(f.path) as other:
                ds = other.dataset(f.dataset)
                if ds is None:
                    raise CampError(f"dataset {f.dataset} is no longer in {f.path}")
                return _frozen(recorded(ds, other.read_blob))
        ds = session.camp.dataset(f.dataset)
        if ds is None:
            raise CampError(f"dataset {f.dataset} is no longer in {f.path}")
        return recorded(ds, session.camp.read_blob)
    with ArchiveReader(f.path) as reader:
        found = reader.datasets(only=f.dsid)
        if not found:
            raise CampError(f"dataset {f.dataset} is no longer in {f.path}")
        return _frozen(found[0][1])


def _frozen(rec: Recorded) -> Recorded:
    """``rec`` with its files' bytes read now (its archive or repository is closed after)."""
    from dataclasses import replace

    from campaignvcs.inspect.describe import StoredFile

    def held(f: StoredFile) -> StoredFile:
        data = f.read()
        return replace(f, read=lambda: data)

    return replace(rec, replicas=tuple(replace(r, files=tuple(held(f) for f in r.files)) for r in rec.replicas))


def index_built_archive(path: str, env: Mapping[str, str]) -> list[str]:
    """After ``camp build`` wrote ``path`` into the store: update its rows, if there is an index. Warnings only.

    Only dataset rows that changed are rewritten, and only metadata objects the index has
    not seen are read; a build never fails because of the index.
    """
    index_path = ""
    try:
        store = _store(env)
        if not store:
            return []
        index_path = os.path.join(store, INDEX_NAME)
        rel = os.path.relpath(os.path.abspath(path), store)
        if not os.path.exists(index_path) or rel.startswith("..") or not rel.endswith(".aca"):
            return []
        index, _ = SearchIndex.open(index_path)
        try:
            _c, _n, warning = _index_archive(index, rel[:-4].replace(os.sep, "/"), path, env)
        finally:
            index.close()
    except (OSError, sqlite3.Error, CampError) as exc:
        return [f"search index {index_path or 'of the campaign store'} not updated: {exc}"]
    return [warning] if warning else []
