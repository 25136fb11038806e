"""The dataset list of ``camp web``: one compact row per dataset, filtered, sorted and paged.

Rows are plain tuples (a 100,000-dataset campaign is 100,000 small tuples in memory);
the server filters and pages them, so a browser never receives more than one page
(:data:`PAGE_SIZE` rows). The static export writes the same rows as script chunks for
``static/list.js`` (see :mod:`campaignvcs.web.export`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

PAGE_SIZE = 100
"""Rows per list page."""

VAR_SCAN_LIMIT = 5_000
"""The variable filter reads each candidate's metadata (``camp info``): at most this many candidates."""

SORT_KEYS = ("name", "kind", "hosts", "size", "mtime")
"""Columns the list sorts by."""


class Row(NamedTuple):
    """One dataset in the list."""

    name: str
    kind: str
    hosts: str
    """Hosts of its live replicas, sorted, joined by ``", "``."""
    size: int
    """Size of its largest live replica (the replicas are copies of one dataset)."""
    mtime: int
    replicas: int
    """Number of live replicas."""
    ident: str
    """:func:`ident` of the name: the dataset's page is ``d/<ident>.html``."""
    state: str
    """``live`` or ``deleted``."""
    encrypted: bool


def ident(name: str) -> str:
    """The file-name-safe id of a dataset name (20 hex digits of its SHA-1), the same in every catalog."""
    return hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:20]


@dataclass(frozen=True)
class Query:
    """What the list shows: filters, sort column and direction, and the page (from 1)."""

    q: str = ""
    """Substring of the name, case-insensitive."""
    kind: str = ""
    host: str = ""
    var: str = ""
    """Name of a variable the dataset holds (``camp info``)."""
    sort: str = "name"
    order: str = "asc"
    page: int = 1

    @classmethod
    def parse(cls, args: dict[str, str], page: int = 1) -> Query:
        """A query from request arguments; unknown sort keys and orders fall back to the defaults."""
        sort = args.get("sort", "name")
        order = args.get("order", "asc")
        return cls(q=args.get("q", "").strip()[:200], kind=args.get("kind", "").strip()[:40],
                   host=args.get("host", "").strip()[:200], var=args.get("var", "").strip()[:200],
                   sort=sort if sort in SORT_KEYS else "name", order=order if order in ("asc", "desc") else "asc",
                   page=max(1, page))

    def params(self, **changes: object) -> dict[str, str]:
        """The query's non-default arguments (for links), with ``changes`` applied."""
        values = {"q": self.q, "kind": self.kind, "host": self.host, "var": self.var, "sort": self.sort,
                  "order": self.order}
        values.update({k: str(v) for k, v in changes.items()})
        defaults = {"sort": "name", "order": "asc"}
        return {k: v for k, v in values.items() if v and defaults.get(k) != v}


@dataclass(frozen=True)
class Page:
    """One page of the filtered, sorted list."""

    rows: list[Row]
    total: int
    """Rows matching the filters."""
    page: int
    pages: int
    note: str = ""
    """Why the page is empty although datasets may match (a variable filter over too many candidates)."""


class Listing:
    """Every row of a catalog, with the sort orders computed once and kept."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = sorted(rows, key=lambda r: r.name)
        self._lower = [r.name.lower() for r in self.rows]
        self._orders: dict[str, list[int]] = {"name": list(range(len(self.rows)))}

    def order(self, key: str) -> list[int]:
        """Row positions sorted by ``key`` (then by name), computed on first use."""
        found = self._orders.get(key)
        if found is None:
            field = SORT_KEYS.index(key)  # the first five Row fields, in this order
            rows = self.rows
            found = self._orders[key] = sorted(range(len(rows)), key=lambda i: rows[i][field])
        return found

    def page(self, query: Query, with_var: Callable[[list[str], str], set[str]] | None = None) -> Page:
        """The rows of ``query``'s page; ``with_var(names, var)`` answers the variable filter (those that hold it)."""
        needle = query.q.lower()
        kind = query.kind.upper()
        host = query.host
        rows, lower = self.rows, self._lower

        def keep(i: int) -> bool:
            r = rows[i]
            if needle and needle not in lower[i]:
                return False
            if kind and r.kind != kind:
                return False
            if host and host not in r.hosts.split(", "):
                return False
            return True

        order = self.order(query.sort)
        if query.order == "desc":
            order = order[::-1]
        if needle or kind or host:
            order = [i for i in order if keep(i)]
        note = ""
        if query.var:
            if with_var is None:
                order, note = [], "this list cannot filter by variable"
            elif len(order) > VAR_SCAN_LIMIT:
                order = []
                note = f"narrow the list to at most {VAR_SCAN_LIMIT} datasets (name, kind, host) to filter by variable"
            else:
                holding = with_var([rows[i].name for i in order], query.var)
                order = [i for i in order if rows[i].name in holding]
        total = len(order)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(query.page, pages)
        start = (page - 1) * PAGE_SIZE
        return Page([rows[i] for i in order[start:start + PAGE_SIZE]], total, page, pages, note)

    def by_ident(self) -> dict[str, Row]:
        """Row by :func:`ident`."""
        return {r.ident: r for r in self.rows}
