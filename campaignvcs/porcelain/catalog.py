"""The data behind ``camp web``'s pages, from the porcelain: one commit of one campaign.

A :class:`Catalog` holds the repository open and pinned to one commit, reads every
manifest once into compact list rows (:class:`campaignvcs.web.listing.Row`) and answers
each page with a template name and its context: the campaign summary, the list, a
dataset (replicas, embedded images and text, variables and attributes from
``camp info``), its location history (``whereis --history``), the log and diffs
(``camp diff``). Encrypted replicas show only their public record unless the key file
given with ``keyfile`` opens them.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from campaignvcs import history_model as hm
from campaignvcs import layout
from campaignvcs.errors import CampError
from campaignvcs.gitobjects import TREE_MODE
from campaignvcs.inspect.describe import describe_all
from campaignvcs.model import Dataset, Replica, loads
from campaignvcs.porcelain import history as hist
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.histories import all_histories
from campaignvcs.porcelain.info import info_of, keys_at_hand, recorded
from campaignvcs.porcelain.keys import cat, key_info
from campaignvcs.repo import CampaignRepo
from campaignvcs.web.listing import PAGE_SIZE, SORT_KEYS, Listing, Query, Row, ident
from campaignvcs.web.render import IMAGE_TYPES

LOG_LIMIT = 500
"""Commits on the log page."""
DIFF_LIMIT = 500
"""Changed datasets listed on a diff page."""
TEXT_LIMIT = 64 * 1024
"""Bytes of an embedded text shown on its dataset page."""
INFO_CACHE = 20_000
"""``camp info`` results kept in memory (the variable filter asks for up to 5,000 at a time)."""

Page = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Picture:
    """An embedded image of a dataset: ``img/<ident>-<number>.<ext>``."""

    url: str
    name: str
    where: str
    replica: str
    filename: str


class Catalog:
    """One commit of a campaign, as pages. ``static`` renders for the exported site (no server)."""

    def __init__(self, camp: CampaignRepo, commit: bytes, env: Mapping[str, str], keyfile: str | None = None,
                 cwd: str | None = None, static: bool = False, store_root: str | None = None) -> None:
        self.camp = camp
        self.repo_arg: Any = camp
        """The open repository for porcelain calls (history's and cat's ``repo`` annotations say str)."""
        self.commit = commit
        self.commit_id = commit.decode()
        self.tree = camp.tree_of(commit)
        self.env = env
        self.cwd = cwd
        self.keyfile = keyfile
        self.static = static
        self.store_root = store_root
        self.name = camp.campaign(commit).name
        self._listing: Listing | None = None
        self._folders: dict[str, str] = {}
        self._by_ident: dict[str, Row] | None = None
        self._summary: dict[str, Any] = {}
        self._info_cache: dict[str, dict[str, Any] | None] = {}
        self._histories: dict[str, list[hist.HistoryEvent]] | None = None
        self.key_id = key_info(keyfile, cwd, env).id if keyfile else None

    # -- the rows -------------------------------------------------------------------------

    @property
    def listing(self) -> Listing:
        """Every dataset as a list row (read once, on first use)."""
        if self._listing is None:
            rows = []
            kinds: dict[str, list[int]] = {}
            hosts: dict[str, list[int]] = {}
            deleted = 0
            for d in self._manifests():
                live = [r for r in d.get("replicas", ()) if not r.get("deltime")] if not d.get("deltime") else []
                names = sorted({r["host"] for r in live})
                size = max((r["size"] for r in live), default=0)
                kind, name = d["kind"], d["name"]
                rows.append(Row(name, kind, ", ".join(names), size, d.get("modtime", 0), len(live), ident(name),
                                "deleted" if d.get("deltime") else "live",
                                any(r.get("key") for r in d.get("replicas", ()))))
                if d.get("deltime"):
                    deleted += 1
                    continue
                k = kinds.setdefault(kind, [0, 0])
                k[0] += 1
                k[1] += size
                for host in names:
                    hosts.setdefault(host, [0, 0, 0, 0])[0] += 1
                for r in live:
                    h = hosts[r["host"]]
                    h[1] += 1
                    h[2] += r.get("archive") is not None
                    h[3] += r["size"]
            self._listing = Listing(rows)
            self._summary = {
                "kinds": [(k, v[0], v[1]) for k, v in sorted(kinds.items())],
                "by_host": [{"host": h, "datasets": v[0], "replicas": v[1], "archived": v[2], "size": v[3]}
                            for h, v in sorted(hosts.items())],
                "live": len(rows) - deleted, "deleted": deleted,
            }
        return self._listing

    def _manifests(self) -> Iterator[dict[str, Any]]:
        """Every dataset manifest of the commit as a plain dict, reading only the manifests.

        The dataset folders' tree ids are kept for :meth:`page_keys`. Plain dicts, not
        :class:`~campaignvcs.model.Dataset`: building 100,000 of those would double the
        time to the first page.
        """
        folders: dict[str, str] = {}
        self._folders = folders
        top = self.camp.lookup(self.tree, layout.DATASETS)
        if top is None or top[0] != TREE_MODE:
            return
        manifest = layout.MANIFEST.encode()
        for aa, (_m1, aa_id) in sorted(self.camp.tree_entries(top[1]).items()):
            for bb, (_m2, bb_id) in sorted(self.camp.tree_entries(aa_id).items()):
                prefix = f"{layout.DATASETS}/{aa.decode()}/{bb.decode()}/"
                for name, (_m3, folder) in sorted(self.camp.tree_entries(bb_id).items()):
                    path = prefix + name.decode("utf-8", "surrogateescape")
                    folders[path] = folder.decode()
                    entry = self.camp.tree_entries(folder).get(manifest)
                    if entry is not None:
                        yield loads(self.camp.read_blob(entry[1]), what=f"manifest of {path}")

    def row(self, dataset_ident: str) -> Row | None:
        """The row of a dataset id."""
        if self._by_ident is None:
            self._by_ident = self.listing.by_ident()
        return self._by_ident.get(dataset_ident)

    def base(self, root: str, title: str, pinned: bool = True) -> dict[str, Any]:
        """What every page's frame needs; ``pinned``: the frame names the catalog's commit.

        Dataset and history pages do not, so a commit rewrites only the exported pages
        of the datasets it changed.
        """
        return {"root": root, "title": title, "campaign_name": self.name,
                "commit_id": self.commit_id if pinned else "",
                "static": self.static, "store_root": (root + self.store_root) if self.store_root else None}

    # -- pages ----------------------------------------------------------------------------

    def campaign_page(self) -> Page:
        """Name, commit, counts and sizes by kind and host, hosts and their archival storage."""
        self.listing  # noqa: B018 - fills the summary
        head = self._log_entry(self.commit)
        context = self.base("", "Campaign")
        context.update(self._summary, campaign=self.camp.campaign(self.commit), head=head,
                       hosts=sorted(self.camp.hosts(self.tree), key=lambda h: h.name))
        return "campaign.html", context

    def list_page(self, query: Query) -> Page:
        """One page of the filtered, sorted list."""
        listing = self.listing
        page = listing.page(query, self._with_var)
        context = self.base("../", "Datasets")
        context.update(page=page, query=query, total_all=len(listing.rows), page_size=PAGE_SIZE,
                       kinds=[k for k, _n, _s in self._summary["kinds"]],
                       hosts=[h["host"] for h in self._summary["by_host"]], sort_keys=SORT_KEYS,
                       have_vars=not self.static, chunks=0)
        return "list.html", context

    def dataset_page(self, dataset_ident: str) -> Page | None:
        """Kind, replicas, embedded images and text, variables and attributes."""
        row = self.row(dataset_ident)
        if row is None:
            return None
        ds = self.camp.dataset(row.name, self.commit)
        if ds is None:
            return None
        texts = []
        locked = sorted({r.key for r in ds.replicas if r.key and not self._key_opens(r)})
        for r in ds.live_replicas() if ds.kind == "TEXT" else ():
            for f in r.files:
                data = self._content(ds, r, f.name)
                if data is not None:
                    texts.append({"name": f.name, "content": data[:TEXT_LIMIT].decode("utf-8", "replace"),
                                  "truncated": len(data) > TEXT_LIMIT, "shown": TEXT_LIMIT, "size": len(data)})
        context = self.base("../", ds.name, pinned=False)
        context.update(ds=ds, ident=dataset_ident, replicas=ds.replicas, texts=texts, locked=locked,
                       images=self.pictures(ds), info=self.info(ds.name),
                       files=[(r.id, f) for r in ds.replicas for f in r.files])
        return "dataset.html", context

    def history_page(self, dataset_ident: str) -> Page | None:
        """``camp whereis --history`` as a timeline, grouped by commit."""
        row = self.row(dataset_ident)
        if row is None:
            return None
        if self._histories is not None:
            events = self._histories.get(layout.dataset_dir(row.name), [])
            ds = self.camp.dataset(row.name, self.commit)
            kind, state = (ds.kind, "live" if ds.live else "deleted") if ds else ("", "absent")
            live = [hm.ReplicaRef.of(r) for r in ds.live_replicas()] if ds and ds.live else []
        else:
            w = hist.whereis(row.name, history=True, rev=self.commit_id, repo=self.repo_arg, env=self.env)
            events, kind, state, live = w.history or [], w.kind, w.state, w.replicas
        steps: list[dict[str, Any]] = []
        for e in events:
            if not steps or (steps[-1]["commit"], steps[-1]["message"]) != (e.commit, e.message):
                steps.append({"commit": e.commit, "time": e.time, "timezone": e.timezone, "author": e.author,
                              "message": e.message, "events": []})
            steps[-1]["events"].append(e)
        context = self.base("../", f"History of {row.name}", pinned=False)
        context.update(name=row.name, ident=dataset_ident, kind=kind, state=state, live=live,
                       steps=list(reversed(steps)))
        return "history.html", context

    def log_page(self) -> Page:
        """The newest commits, each linking to its diff."""
        entries = hist.log(rev=self.commit_id, max_count=LOG_LIMIT + 1, repo=self.repo_arg, env=self.env)
        context = self.base("", "Log")
        context.update(entries=entries[:LOG_LIMIT], truncated=len(entries) > LOG_LIMIT)
        return "log.html", context

    def commit_page(self, commit: str) -> Page | None:
        """A commit against its first parent (the first commit: how many datasets it recorded)."""
        try:
            entry = self._log_entry(commit.encode())
        except (CampError, KeyError, ValueError):
            return None
        context = self.base("../", f"Commit {commit[:10]}")
        context.update(single=entry, a="", b="", error=None, d=None, shown=[], more=0, initial=None)
        if entry.parents:
            self._fill_diff(context, entry.parents[0], commit)
        else:
            tree = self.camp.tree_of(commit.encode())
            context["initial"] = sum(1 for path, _oid in self.camp.iter_manifests(tree, layout.DATASETS)
                                     if path.endswith("/" + layout.MANIFEST))
        return "diff.html", context

    def diff_page(self, a: str, b: str) -> Page:
        """Two revisions compared (default: the catalog's commit against its parent)."""
        context = self.base("", "Diff")
        context.update(single=None, a=a, b=b, error=None, d=None, shown=[], more=0, initial=None)
        if a or b:
            try:
                self._fill_diff(context, a or self.commit_id, b or self.commit_id)
            except CampError as exc:
                context.update(error=str(exc), status=400)
        return "diff.html", context

    def image(self, dataset_ident: str, number: int) -> bytes | None:
        """The bytes of embedded image ``number`` of a dataset (None if absent or locked)."""
        row = self.row(dataset_ident)
        ds = self.camp.dataset(row.name, self.commit) if row is not None else None
        if ds is None:
            return None
        pictures = self.pictures(ds)
        if not 0 <= number < len(pictures):
            return None
        pic = pictures[number]
        replica = next(r for r in ds.replicas if r.id == pic.replica)
        return self._content(ds, replica, pic.filename)

    # -- helpers --------------------------------------------------------------------------

    def pictures(self, ds: Dataset) -> list[Picture]:
        """Embedded images of live replicas that can be shown (their key at hand if encrypted)."""
        out: list[Picture] = []
        if ds.kind != "IMAGE":
            return out
        for r in ds.live_replicas():
            if r.key and not self._key_opens(r):
                continue
            for f in r.files:
                ext = f.name.rsplit(".", 1)[-1].lower() if "." in f.name else ""
                if ext in IMAGE_TYPES:
                    where = f"{r.host}:{r.dir}/{r.path}"
                    out.append(Picture(f"img/{ident(ds.name)}-{len(out)}.{ext}", f.name, where, r.id, f.name))
        return out

    def info(self, name: str) -> dict[str, Any] | None:
        """``camp info --json`` of a dataset at this commit, or None if there is no such dataset."""
        if name not in self._info_cache:
            self.prefetch_info([name])
        return self._info_cache.get(name)

    def prefetch_info(self, names: list[str]) -> None:
        """``camp info`` of many datasets at once: one ADIOS2 child reads all their BP metadata.

        What ``dataset_info`` does for one dataset (the same ``recorded``, ``keys_at_hand``,
        ``describe_all`` and ``info_of``), for a page of the export or the candidates of
        the variable filter: one child process per dataset would cost 100,000 starts.
        """
        todo = [n for n in dict.fromkeys(names) if n not in self._info_cache]
        if not todo:
            return
        if len(self._info_cache) + len(todo) > INFO_CACHE:
            self._info_cache.clear()
        records = []
        for name in todo:
            ds = self.camp.dataset(name, self.commit)
            if ds is not None:
                records.append(recorded(ds, self.camp.read_blob))
        needed = {r.key for rec in records for r in rec.replicas if r.key}
        keys = keys_at_hand(needed, self.keyfile, self.cwd, self.env) if needed else {}
        for rec, contents in zip(records, describe_all(records, keys, self.env)):
            self._info_cache[rec.name] = info_of(rec, contents).to_json()

    def _with_var(self, names: list[str], var: str) -> set[str]:
        self.prefetch_info(names)
        return {n for n in names if any(v.get("name") == var
                                        for v in (self._info_cache.get(n) or {}).get("variables") or ())}

    def _key_opens(self, replica: Replica) -> bool:
        return self.key_id is not None and replica.key == self.key_id

    def _content(self, ds: Dataset, replica: Replica, filename: str) -> bytes | None:
        """An embedded file's original bytes, or None when encrypted without the key (or unreadable)."""
        if replica.key and not self._key_opens(replica):
            return None
        try:
            return cat(ds.name, filename, rev=self.commit_id, replica=replica.id, keyfile=self.keyfile,
                       repo=self.repo_arg, cwd=self.cwd, env=self.env).data
        except (CampError, zlib.error):
            return None

    def _log_entry(self, oid: bytes) -> hist.LogEntry:
        entries = hist.log(rev=oid.decode(), max_count=1, repo=self.repo_arg, env=self.env)
        return entries[0]

    def _fill_diff(self, context: dict[str, Any], a: str, b: str) -> None:
        d = hist.diff(a, b, repo=self.repo_arg, env=self.env)
        shown = [_Change(c, ident(c.name)) for c in d.datasets[:DIFF_LIMIT]]
        context.update(d=d, shown=shown, more=max(0, len(d.datasets) - DIFF_LIMIT))

    def compute_histories(self) -> None:
        """Every dataset's location history in one pass over the commits (for the export)."""
        self._histories = all_histories(self.camp, self.commit)

    def page_keys(self) -> dict[str, str]:
        """Dataset id → what its dataset and history pages are made of (for the export to skip unchanged ones).

        The dataset folder's tree id (manifest and embedded objects) and the commits of
        its history; :meth:`compute_histories` first. What applies to every page (key at
        hand, ``camp info`` installed) is :meth:`context_key`.
        """
        self.listing  # noqa: B018 - reads the folders' ids too
        folders = self._folders
        histories = self._histories or {}
        keys = {}
        for row in self.listing.rows:
            path = layout.dataset_dir(row.name)
            commits = ",".join(e.commit or "" for e in histories.get(path, ()))
            keys[row.ident] = folders.get(path, "") + ":" + hashlib.sha1(commits.encode()).hexdigest()
        return keys

    def context_key(self) -> str:
        """What every page depends on beyond its dataset: the key at hand."""
        return f"key={self.key_id or ''}"

    def commits(self) -> list[str]:
        """Every commit reachable from the catalog's commit."""
        return [c.id.decode() for c in self.camp.walk(self.commit)]


class _Change:
    """A dataset change with the id of its page."""

    def __init__(self, change: hm.DatasetChange, dataset_ident: str) -> None:
        self._change = change
        self.ident = dataset_ident

    def __getattr__(self, name: str) -> Any:
        return getattr(self._change, name)


def open_catalog(rev: str | None = None, keyfile: str | None = None, static: bool = False,
                 repo: str | CampaignRepo | None = None, cwd: str | None = None,
                 env: Mapping[str, str] | None = None) -> Catalog:
    """The catalog of a campaign at ``rev`` (default HEAD); close it with ``catalog.camp.close()``."""
    env = environ(env)
    camp = open_repo(repo, cwd, env).__enter__()
    try:
        commit = camp.resolve(rev)
        return Catalog(camp, commit, env, keyfile=keyfile, cwd=cwd, static=static)
    except BaseException:
        if not isinstance(repo, CampaignRepo):
            camp.close()
        raise
