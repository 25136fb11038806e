"""The ``camp web`` WSGI application: a fixed set of read-only routes over a catalog.

A *source* (``campaignvcs.porcelain.catalog.Catalog``, passed in: this module never reads
a repository itself) answers each page with a template name and its context, or None
for "no such thing". The application adds what makes it safe to serve on a shared
machine:

* only ``GET`` and ``HEAD`` (anything else: 405), so no request changes anything;
* the ``Host`` header must be ``127.0.0.1:PORT`` or ``localhost:PORT`` (a page of another
  site that rebinds its DNS name to 127.0.0.1 gets 421, and reads nothing);
* routes are a whitelist matched by werkzeug's router: ids are hex, static files are two
  names, embedded images are served from memory by id; nothing maps a URL to a file
  path, so ``/../``, ``%2e%2e`` and ``%2f`` reach nothing;
* every response carries a Content-Security-Policy without inline scripts, ``nosniff``
  and ``no-referrer``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import BaseConverter, Map, Rule, Submount
from werkzeug.wrappers import Request, Response

from campaignvcs.web.listing import Query
from campaignvcs.web.render import CSP, IMAGE_TYPES, STATIC_FILES, render, static_file

Page = tuple[str, dict[str, Any]]


class Source(Protocol):
    """What the application asks of a catalog (``campaignvcs.porcelain.catalog.Catalog``)."""

    def campaign_page(self) -> Page:
        """The campaign summary."""

    def list_page(self, query: Query) -> Page:
        """One page of the dataset list."""

    def dataset_page(self, ident: str) -> Page | None:
        """A dataset, by id."""

    def history_page(self, ident: str) -> Page | None:
        """A dataset's location history."""

    def log_page(self) -> Page:
        """The commits."""

    def commit_page(self, commit: str) -> Page | None:
        """One commit against its first parent."""

    def diff_page(self, a: str, b: str) -> Page:
        """Two revisions compared (an error on the page for a bad revision)."""

    def image(self, ident: str, number: int) -> bytes | None:
        """Embedded image ``number`` of a dataset."""


class StoreSource(Protocol):
    """What the application asks of a campaign store (``campaignvcs.porcelain.catalog.StoreCatalog``)."""

    def store_page(self, q: str | None) -> Page:
        """The store's archives, and the datasets matching ``q`` in every campaign."""

    def campaign(self, number: int) -> Source | None:
        """The catalog of campaign ``number`` of the store page."""


HEX = "[0-9a-f]"


def _campaign_rules() -> list[Rule]:
    images = ",".join(f'"{ext}"' for ext in IMAGE_TYPES)
    statics = ",".join(f'"{name}"' for name in STATIC_FILES)
    return [
        Rule("/", endpoint="campaign"),
        Rule("/index.html", endpoint="campaign"),
        Rule("/list/<int:page>.html", endpoint="list"),
        Rule("/d/<regex('" + HEX + "{20}'):ident>.html", endpoint="dataset"),
        Rule("/h/<regex('" + HEX + "{20}'):ident>.html", endpoint="history"),
        Rule("/c/<regex('" + HEX + "{40}'):commit>.html", endpoint="commit"),
        Rule("/img/<regex('" + HEX + "{20}'):ident>-<int:number>.<any(" + images + "):ext>", endpoint="image"),
        Rule("/static/<any(" + statics + "):name>", endpoint="static"),
        Rule("/log.html", endpoint="log"),
        Rule("/diff.html", endpoint="diff"),
    ]


class RegexConverter(BaseConverter):
    """werkzeug converter: ``<regex('...'):name>`` matches exactly that expression (ids, commits)."""

    def __init__(self, url_map: Map, expression: str) -> None:
        super().__init__(url_map)
        self.regex = expression


def _url_map(store: bool) -> Map:
    rules: list[Any] = _campaign_rules() if not store else [
        Rule("/", endpoint="store"),
        Rule("/index.html", endpoint="store"),
        Rule("/search.html", endpoint="store"),
        Rule("/static/<any(" + ",".join(f'"{n}"' for n in STATIC_FILES) + "):name>", endpoint="static"),
        Submount("/campaigns/<int:campaign>", _campaign_rules()),
    ]
    return Map(rules, converters={"regex": RegexConverter}, strict_slashes=False, merge_slashes=False)


class CatalogApp:
    """The WSGI application; ``allowed_hosts`` is set once the server knows its port."""

    def __init__(self, source: Source | None = None, store: StoreSource | None = None) -> None:
        if (source is None) == (store is None):
            raise ValueError("give a campaign source or a store")
        self.source = source
        self.store = store
        self.url_map = _url_map(store is not None)
        self.allowed_hosts: set[str] = set()
        self._lock = threading.Lock()  # one repository, read by one request at a time

    def allow_port(self, port: int) -> None:
        """Accept requests for ``127.0.0.1:port`` and ``localhost:port`` only."""
        self.allowed_hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI entry point: every response hardened, every HTTP error a small escaped page."""
        request = Request(environ)
        try:
            response = self.respond(request)
        except HTTPException as exc:
            response = _error(exc.code or 500, exc.description or exc.name)
            if isinstance(exc, MethodNotAllowed):
                response.headers["Allow"] = "GET, HEAD"
        _harden(response)
        return response(environ, start_response)

    def respond(self, request: Request) -> Response:
        """The response to one request (raises werkzeug's HTTP exceptions)."""
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(valid_methods=["GET", "HEAD"], description="camp web is read-only")
        if request.host not in self.allowed_hosts:
            return _error(421, "this server answers only for 127.0.0.1 and localhost")
        adapter = self.url_map.bind_to_environ(request.environ)
        endpoint, matched = adapter.match(method="GET")
        args = dict(matched)
        if endpoint == "static":
            return Response(static_file(args["name"]), content_type=STATIC_FILES[args["name"]])
        with self._lock:
            if endpoint == "store":
                assert self.store is not None
                q = request.args.get("q") if request.path.endswith("search.html") else None
                return _page(self.store.store_page(q))
            source = self.source
            if "campaign" in args and self.store is not None:
                source = self.store.campaign(args.pop("campaign"))
            if source is None:
                raise NotFound()
            return _campaign_response(source, endpoint, args, request)


def _campaign_response(source: Source, endpoint: str, args: dict[str, Any], request: Request) -> Response:
    found: Page | None
    if endpoint == "campaign":
        found = source.campaign_page()
    elif endpoint == "list":
        found = source.list_page(Query.parse(dict(request.args.items()), args["page"]))
    elif endpoint == "dataset":
        found = source.dataset_page(args["ident"])
    elif endpoint == "history":
        found = source.history_page(args["ident"])
    elif endpoint == "commit":
        found = source.commit_page(args["commit"])
    elif endpoint == "log":
        found = source.log_page()
    elif endpoint == "diff":
        found = source.diff_page(request.args.get("a", "")[:200], request.args.get("b", "")[:200])
    else:  # image
        data = source.image(args["ident"], args["number"])
        if data is None:
            raise NotFound()
        return Response(data, content_type=IMAGE_TYPES[args["ext"]])
    if found is None:
        raise NotFound()
    return _page(found)


def _page(page: Page) -> Response:
    template, context = page
    status = context.pop("status", 200)
    return Response(render(template, context), status=status, content_type="text/html; charset=utf-8")


def _error(status: int, message: str) -> Response:
    return Response(render("error.html", {"status": status, "message": message}), status=status,
                    content_type="text/html; charset=utf-8")


def _harden(response: Response) -> None:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
