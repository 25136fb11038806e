"""``camp web --export DIR``: the catalog as a static site (plain files that work from ``file://``).

The site has the served catalog's pages at the same relative URLs: ``index.html``,
``list/N.html`` (the name-sorted list, :data:`~campaignvcs.web.listing.PAGE_SIZE` rows
a page), ``d/<id>.html`` and ``h/<id>.html`` per dataset, ``img/<id>-<n>.<ext>``,
``log.html`` and ``c/<commit>.html``. Filtering and sorting another way runs in the
browser (``static/list.js``) over ``idx/N.js``, the rows in chunks of
:data:`CHUNK_ROWS`, loaded with ``<script>`` (``fetch`` is refused on ``file://``).

Exporting again rewrites only what changed: every file is compared with what is there
before it is written. Pages that cannot have changed are not even rendered again: commit
pages (immutable), and the pages of a dataset whose folder (manifest and embedded objects)
and history commits are those of the last export.
``.camp-web.json`` lists what the export wrote, so files of datasets that are gone are
removed — and nothing else in the folder is ever touched.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from campaignvcs.errors import CampError
from campaignvcs.web.listing import Query
from campaignvcs.web.render import STATIC_FILES, render, static_file

CHUNK_ROWS = 10_000
"""Rows per ``idx/N.js`` chunk (about 1 MB)."""
INFO_BATCH = 2_000
"""Datasets whose ``camp info`` is read at once (one ADIOS2 child per batch)."""
STATE = ".camp-web.json"
"""What the last export wrote (relative paths) and the layout version it wrote them with."""
VERSION = 1
"""Bumped when pages change shape: immutable pages are then rendered again."""
STATIC_CSP = ("default-src 'none'; img-src 'self' file:; style-src 'self' file:; script-src 'self' file:; "
              "base-uri 'none'")
"""The exported pages' policy: as served, plus ``file:`` so a copy opened from disk works."""


@dataclass(frozen=True)
class ExportResult:
    """What an export did: files written (new or changed), left as they were, and removed."""

    folder: str
    datasets: int
    written: int
    unchanged: int
    removed: int


class _Writer:
    def __init__(self, folder: str, previous: set[str]) -> None:
        self.folder = folder
        self.previous = previous
        self.files: set[str] = set()
        self.written = 0
        self.unchanged = 0
        self._dirs: set[str] = set()

    def exists(self, rel: str) -> bool:
        return rel in self.previous and os.path.isfile(os.path.join(self.folder, rel))

    def keep(self, rel: str) -> None:
        self.files.add(rel)
        self.unchanged += 1

    def put(self, rel: str, data: bytes) -> None:
        self.files.add(rel)
        path = os.path.join(self.folder, rel)
        try:
            if os.path.getsize(path) == len(data):
                with open(path, "rb") as f:
                    if f.read() == data:
                        self.unchanged += 1
                        return
        except OSError:
            pass
        parent = os.path.dirname(path)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        self.written += 1


def _page(page: tuple[str, dict[str, Any]], **changes: Any) -> bytes:
    template, context = page
    context.update(changes)
    return render(template, {**context, "csp": STATIC_CSP})


def _dataset_files(source: Any, dataset_ident: str, out: _Writer) -> list[str]:
    """Write a dataset's page, its images and its history page; returns their paths."""
    files: list[str] = []
    found = source.dataset_page(dataset_ident)
    if found is None:
        return files
    for number, picture in enumerate(found[1]["images"]):
        data = source.image(dataset_ident, number)
        if data is not None:
            out.put(picture.url, data)
            files.append(picture.url)
    out.put(f"d/{dataset_ident}.html", _page(found))
    files.append(f"d/{dataset_ident}.html")
    history = source.history_page(dataset_ident)
    if history is not None:
        out.put(f"h/{dataset_ident}.html", _page(history))
        files.append(f"h/{dataset_ident}.html")
    return files


def export_site(source: Any, folder: str) -> ExportResult:
    """Write the catalog ``source`` (a ``campaignvcs.porcelain.catalog.Catalog`` made with ``static=True``)."""
    folder = os.path.abspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CampError(f"cannot export into {folder}: not a folder")
    os.makedirs(folder, exist_ok=True)
    previous: set[str] = set()
    same_version = False
    old_pages: dict[str, list[Any]] = {}
    try:
        with open(os.path.join(folder, STATE), encoding="utf-8") as f:
            state = json.load(f)
        previous = set(state.get("files", ()))
        same_version = state.get("version") == VERSION
        if same_version and state.get("context") == source.context_key():
            old_pages = state.get("pages", {})
    except (OSError, ValueError):
        if os.listdir(folder):
            raise CampError(f"cannot export into {folder}: it holds other files (choose an empty folder)") from None
    out = _Writer(folder, previous)
    for name in STATIC_FILES:
        out.put(f"static/{name}", static_file(name))
    rows = source.listing.rows
    chunks = max(1, -(-len(rows) // CHUNK_ROWS))
    for n in range(chunks):
        part = [[r.name, r.kind, r.hosts, r.size, r.mtime, r.ident, r.state, r.replicas]
                for r in rows[n * CHUNK_ROWS:(n + 1) * CHUNK_ROWS]]
        out.put(f"idx/{n}.js", f"campIndex({n}, {json.dumps(part, separators=(',', ':'))});\n".encode())
    out.put("index.html", _page(source.campaign_page()))
    first = source.list_page(Query())
    list_pages = first[1]["page"].pages
    out.put("list/1.html", _page(first, chunks=chunks))
    for n in range(2, list_pages + 1):
        out.put(f"list/{n}.html", _page(source.list_page(Query(page=n)), chunks=chunks))
    source.compute_histories()
    keys = source.page_keys()
    pages: dict[str, list[Any]] = {}
    todo = []
    for row in rows:
        key = keys.get(row.ident, "")
        old = old_pages.get(row.ident)
        if old is not None and old[0] == key and all(out.exists(rel) for rel in old[1]):
            for rel in old[1]:
                out.keep(rel)  # made of the same objects and commits as last time
            pages[row.ident] = old
        else:
            todo.append((row, key))
    for start in range(0, len(todo), INFO_BATCH):
        batch = todo[start:start + INFO_BATCH]
        source.prefetch_info([row.name for row, _key in batch])
        for row, key in batch:
            pages[row.ident] = [key, _dataset_files(source, row.ident, out)]
    out.put("log.html", _page(source.log_page()))
    for commit in source.commits():
        rel = f"c/{commit}.html"
        if same_version and out.exists(rel):
            out.keep(rel)
            continue
        found = source.commit_page(commit)
        if found is not None:
            out.put(rel, _page(found))
    removed = 0
    for rel in sorted(previous - out.files):
        path = os.path.join(folder, rel)
        if ".." in rel.split("/") or os.path.isabs(rel):
            continue  # only what an export of ours could have written
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
    state_bytes = json.dumps({"version": VERSION, "context": source.context_key(), "files": sorted(out.files),
                              "pages": pages}, separators=(",", ":")).encode() + b"\n"
    out.put(STATE, state_bytes)
    return ExportResult(folder, len(rows), out.written, out.unchanged, removed)
