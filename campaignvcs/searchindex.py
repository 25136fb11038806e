"""The search index: derived SQLite data behind ``camp search``, in hpc-campaign's ``.acx`` layout.

The tables ``info``, ``variabletypes``, ``datasettypes``, ``archives`` and ``datasets`` are
those ``hpc_campaign index`` creates, so ``hpc_campaign index <name> ls`` and ``dump`` read
this file too; ``variables`` and ``attributes`` are views with hpc-campaign's columns.
Underneath, what a dataset holds is stored once per distinct content
(``camp_contents``, ``camp_variables``, ``camp_attributes``), keyed by the checksums of the
metadata objects it was read from: content addressing means it never changes, so it is
read once, however many datasets, archives and commits share it. A dataset row points at
its content; ``camp_sources`` records what each archive row was indexed from (an ``.aca``
file's size, time and inode, a repository's tree) so only changed sources are read again.

Everything here is derived: a missing, damaged or older index is rebuilt from the
archives and the repository. The file is created under a temporary name and renamed, and
changed in SQLite transactions.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from campaignvcs import tempfiles
from campaignvcs.inspect.bp import Attribute, Variable

VERSION = 1
"""camp's layout inside the file; another version is rebuilt."""
ACX_VERSION = "0.7"
VARIABLE_TYPES = ("unknown", "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t",
                  "uint64_t", "float", "double", "long_double", "float_complex", "double_complex", "string",
                  "char", "struct")
"""hpc-campaign's ``variabletypes`` (type id = position)."""
DATASET_TYPES = ("Unknown", "ADIOS", "HDF5", "IMAGE", "TEXT")
"""hpc-campaign's ``datasettypes`` (type id = position)."""

_SCHEMA = (
    "create table info(id TEXT, name TEXT, version TEXT, modtime INT)",
    "create table variabletypes (typeid INT, name TEXT, PRIMARY KEY (typeid))",
    "create table datasettypes (typeid INT, name TEXT, PRIMARY KEY (typeid))",
    "create table archives (archiveid INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, date_indexed INT)",
    "create table datasets (datasetid INTEGER PRIMARY KEY, archiveid INTEGER NOT NULL, dsid INT NOT NULL, "
    "name TEXT, type INT, contentid INT, hosts TEXT, UNIQUE (archiveid, dsid))",
    "create index datasets_content on datasets(contentid)",
    "create table camp_index (version INT, created INT)",
    "create table camp_sources (archiveid INTEGER PRIMARY KEY, kind TEXT, path TEXT, label TEXT, signature TEXT)",
    "create table camp_contents (contentid INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT, "
    "state TEXT, keyid TEXT, note TEXT)",
    "create table camp_variables (contentid INT, name TEXT, type TEXT, shape TEXT, ndim INT, steps INT, "
    "min TEXT, max TEXT, minnum REAL, maxnum REAL, single INT, value TEXT)",
    "create index camp_variables_content on camp_variables(contentid)",
    "create index camp_variables_name on camp_variables(name)",
    "create table camp_attributes (contentid INT, name TEXT, type TEXT, value TEXT, valtext TEXT, valnum REAL)",
    "create index camp_attributes_content on camp_attributes(contentid)",
    "create view variables as select d.archiveid as archiveid, d.datasetid as datasetid, v.name as name, "
    "coalesce(t.typeid, 0) as type, v.steps as steps, v.min as min, v.max as max, v.ndim as ndim, "
    "v.shape as shape, v.value as value from datasets d join camp_variables v on v.contentid = d.contentid "
    "left join variabletypes t on t.name = replace(v.type, ' ', '_')",
    "create view attributes as select d.archiveid as archiveid, d.datasetid as datasetid, a.name as name, "
    "coalesce(t.typeid, 0) as type, a.value as value from datasets d join camp_attributes a "
    "on a.contentid = d.contentid left join variabletypes t on t.name = replace(a.type, ' ', '_')",
)


class IndexDamaged(Exception):
    """The index file is not one this camp can use (damaged, another version): rebuild it."""


@dataclass(frozen=True)
class Source:
    """What one ``archives`` row was indexed from."""

    archiveid: int
    name: str
    kind: str
    """``store`` (an .aca in the campaign store) or ``repository``."""
    path: str
    label: str
    signature: str


@dataclass(frozen=True)
class Row:
    """One dataset of a source: its id there, name, kind, content key and replica hosts."""

    dsid: int
    name: str
    kind: str
    content: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Described:
    """What to store for one content key."""

    key: str
    kind: str
    state: str
    """``ok``, ``sealed`` (encrypted, not read) or ``error``."""
    keyid: str = ""
    note: str = ""
    variables: Sequence[Variable] = ()
    attributes: Sequence[Attribute] = ()


@dataclass(frozen=True)
class Query:
    """Filters of ``camp search``; None means any."""

    pattern: str | None = None
    var: str | None = None
    attr: str | None = None
    attr_value: str | None = None
    low: float | None = None
    high: float | None = None
    kind: str | None = None
    host: str | None = None

    @property
    def per_variable(self) -> bool:
        """One hit per matching variable (else one per dataset)."""
        return self.var is not None or self.low is not None or self.high is not None


@dataclass
class Found:
    """A matching dataset and its matching variables (``camp search`` turns it into hits)."""

    source: str
    label: str
    path: str
    dsid: int
    dataset: str
    kind: str
    hosts: list[str]
    state: str
    keyid: str
    variables: list[dict[str, Any]] = field(default_factory=list)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _load(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class SearchIndex:
    """An open index file; :meth:`open` creates or rebuilds it as needed."""

    def __init__(self, path: str, con: sqlite3.Connection) -> None:
        self.path = path
        self.con = con

    @classmethod
    def open(cls, path: str) -> tuple[SearchIndex, str]:
        """(the index at ``path``, '' or why it was rebuilt); created when missing."""
        reason = ""
        if os.path.exists(path):
            try:
                con = sqlite3.connect(path, timeout=30)
                try:
                    row = con.execute("select version from camp_index").fetchone()
                    con.execute("select count(*) from archives").fetchone()
                except sqlite3.Error:
                    con.close()
                    raise
                if row is None or row[0] != VERSION:
                    con.close()
                    raise IndexDamaged("it was written by another version")
                return cls(path, con), ""
            except sqlite3.Error as exc:
                reason = f"it was damaged ({exc})"
            except IndexDamaged as exc:
                reason = str(exc)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        cls.create(path)
        return cls(path, sqlite3.connect(path, timeout=30)), reason

    @staticmethod
    def create(path: str) -> None:
        """A new, empty index at ``path`` (written under a temporary name, then renamed)."""
        folder = os.path.dirname(path) or "."
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfiles.make_temp(folder, "." + os.path.basename(path), ".tmp")
        os.close(fd)
        try:
            con = sqlite3.connect(tmp)
            try:
                for statement in _SCHEMA:
                    con.execute(statement)
                con.execute("insert into info values (?, ?, ?, ?)",
                            ("ACX", "ADIOS Campaign Index", ACX_VERSION, time.time_ns()))
                con.executemany("insert into variabletypes values (?, ?)", list(enumerate(VARIABLE_TYPES)))
                con.executemany("insert into datasettypes values (?, ?)", list(enumerate(DATASET_TYPES)))
                con.execute("insert into camp_index values (?, ?)", (VERSION, time.time_ns()))
                con.commit()
            finally:
                con.close()
            os.replace(tmp, path)
        finally:
            tempfiles.remove_quietly(tmp)

    def close(self) -> None:
        """Close the file."""
        self.con.close()

    def sources(self) -> dict[str, Source]:
        """Every indexed source by archive name."""
        rows = self.con.execute(
            "select a.archiveid, a.name, s.kind, s.path, s.label, s.signature from archives a "
            "join camp_sources s on s.archiveid = a.archiveid"
        )
        return {r[1]: Source(*r) for r in rows}

    def known(self, keys: Iterable[str]) -> set[str]:
        """The content keys of ``keys`` already in the index."""
        wanted = list(set(keys))
        rows = self.con.execute("select key from camp_contents where key in (select value from json_each(?))",
                                (json.dumps(wanted),))
        return {r[0] for r in rows}

    def add_contents(self, items: Iterable[Described]) -> None:
        """Store what each content holds (one transaction)."""
        with self.con:
            for d in items:
                cur = self.con.execute(
                    "insert into camp_contents (key, kind, state, keyid, note) values (?, ?, ?, ?, ?) "
                    "on conflict (key) do nothing returning contentid", (d.key, d.kind, d.state, d.keyid, d.note))
                row = cur.fetchone()
                if row is None:
                    continue
                cid = row[0]
                self.con.executemany(
                    "insert into camp_variables values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(cid, v.name, v.type, "" if v.shape is None else ", ".join(map(str, v.shape)),
                      0 if v.shape is None else len(v.shape), v.steps,
                      None if v.min is None else _text(v.min), None if v.max is None else _text(v.max),
                      _number(v.min), _number(v.max), int(v.single_value), json.dumps(v.value))
                     for v in d.variables])
                self.con.executemany(
                    "insert into camp_attributes values (?, ?, ?, ?, ?, ?)",
                    [(cid, a.name, a.type, json.dumps(a.value), _text(a.value), _number(a.value))
                     for a in d.attributes])

    def set_source(self, name: str, kind: str, path: str, label: str, signature: str, rows: Iterable[Row]) -> int:
        """Make archive ``name`` hold exactly ``rows``; only changed dataset rows are written. Returns how many."""
        with self.con:
            cur = self.con.execute(
                "insert into archives (name, date_indexed) values (?, ?) on conflict (name) do update "
                "set date_indexed = excluded.date_indexed returning archiveid", (name, time.time_ns()))
            aid = cur.fetchone()[0]
            self.con.execute("insert or replace into camp_sources values (?, ?, ?, ?, ?)",
                             (aid, kind, path, label, signature))
            ids = dict(self.con.execute("select key, contentid from camp_contents"))
            old = {r[0]: tuple(r[1:]) for r in self.con.execute(
                "select dsid, name, type, contentid, hosts from datasets where archiveid = ?", (aid,))}
            new = {}
            for r in rows:
                kind_id = DATASET_TYPES.index(r.kind) if r.kind in DATASET_TYPES else 0
                new[r.dsid] = (r.name, kind_id, ids.get(r.content), ",".join(r.hosts))
            gone = [(aid, dsid) for dsid in old if dsid not in new]
            changed = [(aid, dsid, *v) for dsid, v in new.items() if old.get(dsid) != v]
            self.con.executemany("delete from datasets where archiveid = ? and dsid = ?", gone)
            self.con.executemany(
                "insert into datasets (archiveid, dsid, name, type, contentid, hosts) values (?, ?, ?, ?, ?, ?) "
                "on conflict (archiveid, dsid) do update set name = excluded.name, type = excluded.type, "
                "contentid = excluded.contentid, hosts = excluded.hosts", changed)
        return len(gone) + len(changed)

    def rows(self, name: str) -> list[Row]:
        """The dataset rows of archive ``name`` as :meth:`set_source` took them."""
        rows = self.con.execute(
            "select d.dsid, d.name, d.type, c.key, d.hosts from datasets d join archives a "
            "on a.archiveid = d.archiveid left join camp_contents c on c.contentid = d.contentid "
            "where a.name = ?", (name,))
        return [Row(dsid, dname, DATASET_TYPES[t or 0], key or "", tuple(h.split(",")) if h else ())
                for dsid, dname, t, key, h in rows]

    def drop_source(self, name: str) -> None:
        """Forget archive ``name`` and its datasets."""
        with self.con:
            row = self.con.execute("select archiveid from archives where name = ?", (name,)).fetchone()
            if row is None:
                return
            self.con.execute("delete from datasets where archiveid = ?", row)
            self.con.execute("delete from camp_sources where archiveid = ?", row)
            self.con.execute("delete from archives where archiveid = ?", row)

    def counts(self) -> tuple[int, int]:
        """(datasets, distinct contents) in the index."""
        d = self.con.execute("select count(*) from datasets").fetchone()[0]
        c = self.con.execute("select count(*) from camp_contents").fetchone()[0]
        return d, c

    def search(self, q: Query, repository: str | None = None, limit: int | None = None) -> list[Found]:
        """The datasets matching ``q``, with their matching variables when ``q.per_variable``.

        With ``limit``, the scan stops once more than ``limit`` hits (a dataset, or one of its
        matching variables) are found: the answer, not the search, is what costs at 100,000
        datasets, so a caller that shows the first ``limit`` asks for ``limit + 1`` at most.

        Archives in the store, and of the repositories indexed only the one at ``repository``.

        Contents are filtered first (few rows: one per distinct metadata object), then the
        datasets holding them. Sealed contents (encrypted, not read) match on the dataset
        filters alone; the caller decides what to do with them (``state == 'sealed'``).
        """
        kind_id = DATASET_TYPES.index(q.kind) if q.kind in DATASET_TYPES else (None if q.kind is None else -1)
        value_num = None
        if q.attr_value is not None:
            with contextlib.suppress(ValueError):
                value_num = float(q.attr_value)
        var_rows: dict[int, list[dict[str, Any]]] = {}
        if q.per_variable:
            for row in self.con.execute(
                "select contentid, name, type, shape, steps, min, max, single, value from camp_variables "
                "where (?1 is null or name glob ?1) and (?2 is null or maxnum >= ?2) and (?3 is null or minnum <= ?3) "
                "and (?2 is null and ?3 is null or (minnum is not null and maxnum is not null)) "
                "order by contentid, name",
                (q.var, q.low, q.high),
            ):
                var_rows.setdefault(row[0], []).append({
                    "variable": row[1], "type": row[2],
                    "shape": None if not row[3] else [int(n) for n in row[3].split(",")], "steps": row[4],
                    "min": _load(row[5]), "max": _load(row[6]), "single_value": bool(row[7]),
                })
        attr_ok: set[int] | None = None
        if q.attr is not None:
            attr_ok = {r[0] for r in self.con.execute(
                "select distinct contentid from camp_attributes where name glob ?1 and "
                "(?2 is null or valtext = ?2 or (?3 is not null and valnum = ?3))",
                (q.attr, q.attr_value, value_num))}
        sealed = {r[0]: r[1] for r in self.con.execute(
            "select contentid, keyid from camp_contents where state = 'sealed'")}
        wanted: set[int] | None = None
        if q.per_variable:
            wanted = set(var_rows)
        if attr_ok is not None:
            wanted = attr_ok if wanted is None else wanted & attr_ok
        if wanted is not None:
            wanted |= set(sealed)
        states = dict(self.con.execute("select contentid, state from camp_contents"))
        kinds = {i: k for i, k in enumerate(DATASET_TYPES)}
        no_vars: list[dict[str, Any]] = []
        found: list[Found] = []
        hits = 0
        for _archive, kind, path, label, dsid, dname, dtype, cid, hosts in self.con.execute(
            "select a.name, s.kind, s.path, s.label, d.dsid, d.name, d.type, d.contentid, d.hosts "
            "from datasets d join archives a on a.archiveid = d.archiveid "
            "join camp_sources s on s.archiveid = d.archiveid "
            "where (?1 is null or d.name glob ?1) and (?2 is null or d.type = ?2) "
            "and (?3 is null or instr(',' || d.hosts || ',', ',' || ?3 || ',') > 0) "
            "and (?4 is null or d.contentid in (select value from json_each(?4))) "
            "and (s.kind = 'store' or (s.kind = 'repository' and s.path = ?5)) "
            "order by s.kind = 'store', a.name, d.name",
            (q.pattern, kind_id, q.host, None if wanted is None else json.dumps(sorted(wanted)), repository),
        ):
            found.append(Found(kind, label, path, dsid, dname, kinds.get(dtype, "Unknown"),
                               hosts.split(",") if hosts else [], states.get(cid, "missing"),
                               sealed.get(cid, ""), var_rows.get(cid, no_vars)))
            if limit is not None:
                hits += max(1, len(found[-1].variables)) if q.per_variable else 1
                if hits > limit:
                    break
        return found
