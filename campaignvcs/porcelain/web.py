"""camp web: serve a campaign's catalog on 127.0.0.1, or export it as a static site.

The pages' data come from :mod:`campaignvcs.porcelain.catalog`; the HTTP side (routes,
Host check, read-only methods, templates) from :mod:`campaignvcs.web`. ``serve`` runs
until interrupted (Ctrl-C raises ``KeyboardInterrupt`` out of it); it never prints: the
caller gets the URL through ``ready``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from campaignvcs.errors import UsageError
from campaignvcs.porcelain.catalog import Catalog, open_catalog
from campaignvcs.porcelain.common import environ
from campaignvcs.porcelain.store import StoreEntry, store_ls
from campaignvcs.repo import CampaignRepo
from campaignvcs.web.app import CatalogApp
from campaignvcs.web.export import ExportResult, export_site
from campaignvcs.web.server import bind, serve_until_interrupted, url_of

SEARCH_LIMIT = 500
"""Datasets listed by a search across the store."""


class StoreCatalog:
    """Every campaign of the campaign store whose repository is still here, opened on first visit."""

    def __init__(self, keyfile: str | None, env: Mapping[str, str]) -> None:
        listing = store_ls(env=env)
        self.store = listing.store
        self.entries: list[StoreEntry] = listing.entries
        self.keyfile = keyfile
        self.env = env
        self._open: dict[int, Catalog] = {}

    def campaign(self, number: int) -> Catalog | None:
        """The catalog of entry ``number`` (at its repository's HEAD), or None."""
        if number in self._open:
            return self._open[number]
        if not 0 <= number < len(self.entries) or not self.entries[number].repository_exists:
            return None
        entry = self.entries[number]
        camp = CampaignRepo.open(entry.repository or "")
        catalog = Catalog(camp, camp.resolve(None), self.env, keyfile=self.keyfile, store_root="../../")
        self._open[number] = catalog
        return catalog

    def store_page(self, q: str | None) -> tuple[str, dict[str, Any]]:
        """The archives, and the datasets whose name holds ``q`` in every campaign."""
        results = None
        more = False
        if q is not None:
            needle = q.strip().lower()[:200]
            results = []
            for number, entry in enumerate(self.entries):
                catalog = self.campaign(number)
                if catalog is None:
                    continue
                for row in catalog.listing.rows:
                    if needle in row.name.lower():
                        results.append((number, entry.name, row))
                        if len(results) >= SEARCH_LIMIT:
                            more = True
                            break
                if more:
                    break
        return "store.html", {"store": self.store, "entries": list(enumerate(self.entries)), "q": q or "",
                              "results": results, "more": more}

    def close(self) -> None:
        """Close every opened repository."""
        for catalog in self._open.values():
            catalog.camp.close()


def web_serve(port: int = 8000, rev: str | None = None, store: bool = False, keyfile: str | None = None,
          repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve the catalog (or, with ``store``, the whole campaign store) on 127.0.0.1 until interrupted."""
    env = environ(env)
    if not 0 <= port <= 65535:
        raise UsageError(f"invalid port {port}")
    if store and rev is not None:
        raise UsageError("--rev names a commit of one campaign: it does not go with --store")
    opened: Any = StoreCatalog(keyfile, env) if store else open_catalog(rev, keyfile, repo=repo, cwd=cwd, env=env)
    try:
        app = CatalogApp(store=opened) if store else CatalogApp(source=opened)
        server = bind(app, port)
        if ready is not None:
            ready(url_of(server))
        serve_until_interrupted(server)
    finally:
        if store:
            opened.close()
        else:
            opened.camp.close()


def web_export(folder: str, rev: str | None = None, keyfile: str | None = None, repo: str | None = None,
           cwd: str | None = None, env: Mapping[str, str] | None = None) -> ExportResult:
    """Write the catalog of ``rev`` (default HEAD) as a static site into ``folder``."""
    env = environ(env)
    if not folder:
        raise UsageError("name the folder to export into")
    catalog = open_catalog(rev, keyfile, static=True, repo=repo, cwd=cwd, env=env)
    try:
        return export_site(catalog, os.path.join(cwd or os.getcwd(), os.path.expanduser(folder)))
    finally:
        catalog.camp.close()
