"""Tables of an archive that camp does not model ("extras"): kept by import, written back by build.

hpc-campaign's development version adds tables to the ACA (``visualization_sequence``,
``visualization_variable``, ``visualization_item``, ``scalar_field``), and later versions
may add more. ``camp import`` keeps every such table as ``extras/<table>.json``
(:class:`campaignvcs.model.ExtraTable`) and ``camp build`` writes it back with the same
rows, so nothing an archive holds is dropped unless the user asks for it.

What a row says about other rows is read from the column names, as the ACA names them:

* ``datasetid`` holds a dataset's row id: kept as a reference to the dataset (name and
  uuid) and written back as that dataset's row id in the new archive;
* a column whose name ends in ``uuid`` holds a dataset uuid wherever the value is the uuid
  of exactly one dataset of the archive: kept as a reference too, written back as the uuid
  the dataset has in the campaign;
* the table's INTEGER PRIMARY KEY (``visualization_sequence.visid``) is its own id, and an
  integer column named like the INTEGER PRIMARY KEY of another kept table holds that id
  (``visualization_item.visid``); camp never renumbers extra tables, so both stay as they are;
* any other integer column whose name ends in ``id`` may hold the row id of a table camp
  renumbers (replica, file, host, directory, archive, key, time series). Such a table cannot
  be carried through safely: the import is refused unless the caller drops it.

Views, triggers and virtual tables are refused the same way (they act on tables camp
writes itself); indexes on extra tables are kept, indexes on camp's own tables are left
out with a note (they hold no data). A build resolves every reference in the archive it
writes; a row that refers to a dataset the archive does not hold (deleted, excluded, or
gone from the campaign) is left out with a warning, and so are the rows that refer to a
left-out row by its id, so a built archive never holds a dangling reference.

SQL: values are always bound as parameters, but identifiers cannot be. The statements that
name an extra table or column take the name from the archive's own schema (import) or a
manifest (build) and always double-quote it (:func:`_quote`); a manifest's ``CREATE``
statement is executed only if it is one ``CREATE TABLE``/``CREATE INDEX`` statement and
is checked, after it ran, to have created exactly the object it names.
"""

from __future__ import annotations

import base64
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from campaignvcs import layout
from campaignvcs.aca.schema import PROVENANCE_TABLE, TABLES
from campaignvcs.errors import BadInput, CampError
from campaignvcs.model import REF_BASE64, REF_DATASET, ExtraTable, dataset_ref, is_dataset_ref

if TYPE_CHECKING:
    from campaignvcs.repo import CampaignRepo

DROP_OPTION = "--drop-unknown-tables"
"""The ``camp import`` flag that leaves out what cannot be carried (named in the refusal)."""

CAMP_TABLES = frozenset(TABLES) | {PROVENANCE_TABLE}
"""Tables camp writes itself (every ACA version's tables are among the 0.7 ones)."""

_RENUMBERED = "camp renumbers replicas, files, hosts, directories, archives, keys and time series"
_VIRTUAL = re.compile(r"\s*CREATE\s+VIRTUAL\s+TABLE\s", re.IGNORECASE)
_CREATE_TABLE = re.compile(r"\s*CREATE\s+TABLE\s", re.IGNORECASE)
_CREATE_INDEX = re.compile(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\s", re.IGNORECASE)
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
_ROWID_ALIASES = ("rowid", "oid", "_rowid_")


class UncarriableTable(BadInput):
    """An archive holds a table (or view, trigger) whose rows camp cannot write back correctly."""


def is_extra(table: str) -> bool:
    """True for a table of an archive that camp does not write itself (nor SQLite's own)."""
    return table.lower() not in CAMP_TABLES and not table.lower().startswith("sqlite_")  # names ignore case


# -- import -----------------------------------------------------------------------------


@dataclass
class _Shape:
    """What the schema says about one extra table."""

    name: str
    ddl: str
    columns: list[tuple[str, str]]
    """(name, declared type) of every stored column (generated columns are left to SQLite)."""
    id_column: str | None
    rowid: str | None
    """How to select the implicit row id (None: WITHOUT ROWID, or every alias is a column)."""
    indexes: tuple[str, ...]
    problem: str = ""


@dataclass(frozen=True)
class _Roles:
    dataset_columns: tuple[str, ...] = ()
    uuid_columns: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReadExtras:
    """The extra tables of an archive, and one line for each thing left out (for warnings)."""

    tables: tuple[ExtraTable, ...] = ()
    left_out: tuple[str, ...] = ()


def read_extras(
    con: sqlite3.Connection, datasets: Mapping[int, tuple[str, str]], drop_unknown: bool, shown: str
) -> ReadExtras:
    """Every extra table of the archive open on ``con``, its dataset references resolved.

    ``datasets`` maps each dataset row id to its (name, uuid). Anything that cannot be
    carried raises :class:`UncarriableTable` naming it and the flag, unless
    ``drop_unknown``: then it is left out and named in ``left_out``.
    """
    objects = con.execute("select type, name, tbl_name, sql from sqlite_master order by rowid").fetchall()
    problems: dict[str, str] = {}
    notes: list[str] = []
    candidates = [(name, sql or "") for kind, name, _t, sql in objects if kind == "table" and is_extra(name)]
    virtual = [name for name, sql in candidates if _VIRTUAL.match(sql)]
    for name in virtual:
        problems[f"table {name}"] = "a virtual table, which needs its SQLite module"
    shadows = {name for name, _sql in candidates for v in virtual if name.startswith(v + "_")}
    for name in sorted(shadows):
        problems[f"table {name}"] = "part of a virtual table"
    for kind, name, table, sql in objects:
        if kind == "view":
            problems[f"view {name}"] = "a view computed from tables camp rewrites"
        elif kind == "trigger":
            problems[f"trigger {name}"] = f"a trigger on table {table}"
        elif kind == "index" and sql is not None and not is_extra(table):
            notes.append(f"{shown}: index {name} on table {table} left out (camp writes that table itself; "
                         "an index holds no data)")
    shapes = {
        name: _shape(con, name, sql, objects, datasets)
        for name, sql in candidates
        if name not in virtual and name not in shadows
    }
    roles = _settle(shapes, problems)
    ordered = sorted(problems.items(), key=lambda p: (not p[0].startswith("table "), p[0]))
    if ordered and not drop_unknown:
        (label, reason), others = ordered[0], [lab for lab, _r in ordered[1:]]
        more = f" (also {', '.join(others[:3])}{' and more' if len(others) > 3 else ''})" if others else ""
        raise UncarriableTable(
            f"{shown}: {label} cannot be carried through camp builds ({reason}){more}; "
            f"pass {DROP_OPTION} to import without it"
        )
    left_out = [f"{shown}: {label} left out ({reason})" for label, reason in ordered]
    by_uuid: dict[str, list[str]] = {}
    for name, uuid in datasets.values():
        by_uuid.setdefault(uuid, []).append(name)
    tables = tuple(
        _read_table(con, shapes[name], roles[name], datasets, by_uuid) for name in sorted(roles)
    )
    return ReadExtras(tables, tuple(left_out + notes))


def _shape(
    con: sqlite3.Connection,
    name: str,
    ddl: str,
    objects: list[tuple[Any, ...]],
    datasets: Mapping[int, tuple[str, str]],
) -> _Shape:
    info = con.execute(
        "select name, type, pk, hidden from pragma_table_xinfo(?) order by cid", (name,)
    ).fetchall()
    columns = [(str(c), str(t or "")) for c, t, _pk, hidden in info if hidden not in (2, 3)]
    every = {str(c).lower() for c, *_rest in info}
    keys = [(str(c), str(t or "")) for c, t, pk, _h in info if pk]
    without_rowid = bool(_WITHOUT_ROWID.search(ddl[ddl.rfind(")"):]))
    rowid_alias_key = len(keys) == 1 and keys[0][1].upper() == "INTEGER" and not without_rowid
    id_column = keys[0][0] if rowid_alias_key else None
    rowid = None if without_rowid else next((a for a in _ROWID_ALIASES if a not in every), None)
    indexes = tuple(sorted(str(sql) for kind, _n, table, sql in objects
                           if kind == "index" and table == name and sql is not None))
    shape = _Shape(name, ddl, columns, id_column, rowid, indexes)
    for column, _type in columns:
        if column.lower() == "datasetid":
            for (value,) in con.execute(_distinct_sql(name, column)):
                if value is not None and value != 0 and not (isinstance(value, int) and value in datasets):
                    shape.problem = f"its {column} {value!r} is not a dataset of the archive"
                    break
    return shape


def _settle(shapes: dict[str, _Shape], problems: dict[str, str]) -> dict[str, _Roles]:
    """Roles of the columns of every table that can be kept; the others go into ``problems``.

    A table that links to a table that cannot be kept cannot be kept either: repeat
    until nothing changes.
    """
    def keys_of(names: Iterable[str]) -> dict[str, list[str]]:
        ids: dict[str, list[str]] = {}
        for name in sorted(names):
            if shapes[name].id_column is not None:
                ids.setdefault(str(shapes[name].id_column).lower(), []).append(name)
        return ids

    every = keys_of(shapes)
    kept = set(shapes)
    while True:
        ids = keys_of(kept)
        roles: dict[str, _Roles] = {}
        for name in sorted(kept):
            found, reason = _roles(shapes[name], ids, every)
            if found is None:
                problems[f"table {name}"] = reason
            else:
                roles[name] = found
        if set(roles) == kept:
            return roles
        kept = set(roles)


def _roles(
    shape: _Shape, ids: Mapping[str, list[str]], every: Mapping[str, list[str]]
) -> tuple[_Roles | None, str]:
    """What each column of a table holds, or (None, why the table cannot be carried).

    ``ids`` maps a key column name to the kept tables it is the INTEGER PRIMARY KEY of,
    ``every`` to all extra tables (kept or not).
    """
    datasets: list[str] = []
    uuids: list[str] = []
    links: list[tuple[str, str]] = []
    for column, declared in shape.columns:
        low = column.lower()
        if low == "datasetid":
            datasets.append(column)
        elif low.endswith("uuid"):
            uuids.append(column)
        elif low.endswith("id") and _affinity(declared) not in ("TEXT", "REAL") and column != shape.id_column:
            targets = [t for t in ids.get(low, ()) if t != shape.name]
            if len(targets) != 1:
                if targets:
                    return None, f"column {column} may hold the id of {' or '.join(targets)}"
                gone = [t for t in every.get(low, ()) if t != shape.name]
                if gone:
                    return None, f"column {column} holds ids of table {gone[0]}, which cannot be carried"
                return None, f"column {column} may hold row ids camp cannot map: {_RENUMBERED}"
            links.append((column, targets[0]))
    if shape.problem:
        return None, shape.problem
    return _Roles(tuple(datasets), tuple(uuids), tuple(sorted(links))), ""


def _affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (its documented rules, in order)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def _read_table(
    con: sqlite3.Connection,
    shape: _Shape,
    roles: _Roles,
    datasets: Mapping[int, tuple[str, str]],
    by_uuid: Mapping[str, list[str]],
) -> ExtraTable:
    names = [c for c, _t in shape.columns]
    dataset_at = {i for i, c in enumerate(names) if c in roles.dataset_columns}
    uuid_at = {i for i, c in enumerate(names) if c in roles.uuid_columns}
    rows: list[tuple[Any, ...]] = []
    rowids: list[int] = []
    for rowid, *values in con.execute(_select_sql(shape.name, names, shape.rowid)):
        cells: list[Any] = []
        for i, value in enumerate(values):
            if i in dataset_at and isinstance(value, int) and value in datasets:
                cells.append(dataset_ref(*datasets[value]))
            elif i in uuid_at and isinstance(value, str) and len(by_uuid.get(value, ())) == 1:
                cells.append(dataset_ref(by_uuid[value][0], value))
            else:
                cells.append(_cell(value))
        rows.append(tuple(cells))
        if shape.rowid is not None:
            rowids.append(int(rowid))
    dense = rowids == list(range(1, len(rowids) + 1))
    return ExtraTable(
        name=shape.name,
        ddl=shape.ddl,
        columns=tuple(names),
        rows=tuple(rows),
        dataset_columns=roles.dataset_columns,
        uuid_columns=roles.uuid_columns,
        id_column=shape.id_column,
        links=roles.links,
        indexes=shape.indexes,
        rowids=None if dense or shape.rowid is None else tuple(rowids),
    )


def _cell(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {REF_BASE64: base64.b64encode(bytes(value)).decode("ascii")}
    return value


# -- build ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extras:
    """The extra tables a build writes back, and where it says which rows it had to leave out."""

    tables: tuple[ExtraTable, ...]
    warn: Callable[[str], None] | None = None


def extras_for_build(
    camp: CampaignRepo, tree: bytes, warn: Callable[[str], None] | None = None
) -> Extras | None:
    """The extra tables of a commit's tree (None when it has none: the usual case costs one lookup)."""
    tables = []
    for path, oid in camp.iter_manifests(tree, layout.EXTRAS):
        table = ExtraTable.loads(camp.read_blob(oid), what=path)
        if layout.extras_table_of(path) != table.name:
            raise CampError(
                f"{path}: holds table {table.name!r}, which belongs in {layout.extras_path(table.name)}"
            )
        tables.append(table)
    return Extras(tuple(tables), warn) if tables else None


def write_extras(con: sqlite3.Connection, extras: Extras) -> None:
    """Create and fill the extra tables inside the build's transaction, after every dataset row.

    References are resolved against the ``dataset`` table just written: the dataset of the
    reference's name if it still has the reference's uuid, else the one dataset with that
    uuid (``camp mv`` keeps uuids). Rows that cannot be resolved, and rows that link to a
    left-out row, are left out and named in one warning per table.
    """
    by_name: dict[str, tuple[int, str]] = {}
    by_uuid: dict[str, list[tuple[int, str]]] = {}
    for rowid, name, uuid in con.execute("select rowid, name, uuid from dataset"):
        by_name[name] = (rowid, uuid)
        by_uuid.setdefault(uuid, []).append((rowid, uuid))

    def resolve(ref: Mapping[str, str]) -> tuple[int, str] | None:
        found = by_name.get(ref[REF_DATASET])
        if found is not None and found[1] == ref["uuid"]:
            return found
        same = by_uuid.get(ref["uuid"], [])
        return same[0] if len(same) == 1 else None

    tables = {t.name: t for t in extras.tables}
    kept: dict[str, list[tuple[int | None, list[Any]]]] = {}
    missing: dict[str, list[str]] = {}
    for t in extras.tables:
        kept[t.name], missing[t.name] = _resolved_rows(t, resolve)
    linked = _cascade(tables, kept)
    for name in sorted(tables):
        _create(con, tables[name], kept[name])
    if extras.warn is not None:
        for name in sorted(tables):
            for message in _left_out_messages(name, missing[name], linked.get(name, {})):
                extras.warn(message)


def _resolved_rows(
    table: ExtraTable, resolve: Callable[[Mapping[str, str]], tuple[int, str] | None]
) -> tuple[list[tuple[int | None, list[Any]]], list[str]]:
    """(row id, values to insert) of the rows whose references resolve; names of the datasets that did not."""
    dataset_at = {i for i, c in enumerate(table.columns) if c in table.dataset_columns}
    rows: list[tuple[int | None, list[Any]]] = []
    missing: list[str] = []
    for number, row in enumerate(table.rows):
        values: list[Any] = []
        gone = ""
        for i, cell in enumerate(row):
            if is_dataset_ref(cell):
                found = resolve(cell)
                if found is None:
                    gone = gone or cell[REF_DATASET]
                    continue
                values.append(found[0] if i in dataset_at else found[1])
            elif isinstance(cell, dict):
                values.append(base64.b64decode(cell[REF_BASE64]))
            else:
                values.append(cell)
        if gone:
            missing.append(gone)
        else:
            rows.append((None if table.rowids is None else table.rowids[number], values))
    return rows, missing


def _cascade(
    tables: Mapping[str, ExtraTable], kept: dict[str, list[tuple[int | None, list[Any]]]]
) -> dict[str, dict[str, int]]:
    """Leave out rows whose link points at a left-out row (or a table no longer kept), until none is left.

    Returns, per table, how many rows each target table's left-out rows took with them.
    """
    taken: dict[str, dict[str, int]] = {}
    targets = {target for t in tables.values() for _column, target in t.links if target in tables}
    column_of = {name: tables[name].columns.index(str(tables[name].id_column))
                 for name in targets if tables[name].id_column is not None}
    originally = {name: {row[at] for row in tables[name].rows if not isinstance(row[at], dict)}
                  for name, at in column_of.items()}
    while True:
        present = {name: {values[at] for _rowid, values in kept[name]} for name, at in column_of.items()}
        changed = False
        for name, t in tables.items():
            for column, target in t.links:
                at = t.columns.index(column)
                before = len(kept[name])
                # A value the source archive already had dangling stays as it was; only ids
                # of rows this build left out (or of a table no longer in the campaign) go.
                gone = None
                if target in tables:
                    gone = originally.get(target, set()) - present.get(target, set())
                kept[name] = [
                    (rowid, values) for rowid, values in kept[name]
                    if values[at] is None or values[at] == 0 or (gone is not None and values[at] not in gone)
                ]
                if len(kept[name]) != before:
                    counts = taken.setdefault(name, {})
                    counts[target] = counts.get(target, 0) + before - len(kept[name])
                    changed = True
        if not changed:
            return taken


def _left_out_messages(name: str, missing: list[str], linked: Mapping[str, int]) -> Iterable[str]:
    if missing:
        shown = sorted(set(missing))
        listed = ", ".join(shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")
        yield (f"extra table {name}: {len(missing)} row(s) left out, they refer to datasets this archive "
               f"does not hold: {listed}")
    for target, count in sorted(linked.items()):
        yield f"extra table {name}: {count} row(s) left out with the {target} rows they belong to"


def _create(con: sqlite3.Connection, table: ExtraTable, rows: list[tuple[int | None, list[Any]]]) -> None:
    """Create one extra table from its statement, check what it made, fill it, add its indexes."""
    what = f"extra table {table.name}"
    if not _CREATE_TABLE.match(table.ddl) or not is_extra(table.name):
        raise CampError(f"{what}: its statement is not a CREATE TABLE camp may run")
    if con.execute("select 1 from sqlite_master where lower(name) = lower(?)", (table.name,)).fetchone():
        raise CampError(f"{what}: the archive already has a table of that name")
    _run(con, table.ddl, what)
    made = con.execute(
        "select sql from sqlite_master where type = 'table' and name = ?", (table.name,)
    ).fetchone()
    if made is None or made[0] != table.ddl:
        raise CampError(f"{what}: its CREATE TABLE statement does not create table {table.name}")
    every = {str(c).lower() for (c,) in con.execute("select name from pragma_table_xinfo(?)", (table.name,))}
    alias = next((a for a in _ROWID_ALIASES if a not in every), None) if table.rowids is not None else None
    if table.rowids is not None and alias is None:
        raise CampError(f"{what}: has row ids but no way to set them")
    names = list(table.columns)
    if alias is not None:
        con.executemany(
            _insert_sql(table.name, [alias, *names]), ([rowid, *values] for rowid, values in rows)
        )
    else:
        con.executemany(_insert_sql(table.name, names), (values for _rowid, values in rows))
    for statement in table.indexes:
        if not _CREATE_INDEX.match(statement):
            raise CampError(f"{what}: {statement[:40]!r} is not a CREATE INDEX statement")
        _run(con, statement, what)
        made = con.execute("select tbl_name from sqlite_master where type = 'index' and sql = ?",
                           (statement,)).fetchone()
        if made is None or made[0] != table.name:
            raise CampError(f"{what}: an index statement does not make an index on it")


def _run(con: sqlite3.Connection, statement: str, what: str) -> None:
    try:
        con.execute(statement)
    except sqlite3.Error as exc:
        raise CampError(f"{what}: cannot create it ({exc})") from None


# -- identifiers --------------------------------------------------------------------------


def _quote(identifier: str) -> str:
    """An SQL identifier, double-quoted (the only way a name enters a statement here)."""
    if "\0" in identifier:
        raise CampError(f"invalid table or column name {identifier!r}")
    return '"' + identifier.replace('"', '""') + '"'


def _distinct_sql(table: str, column: str) -> str:
    return "select distinct " + _quote(column) + " from " + _quote(table)


def _select_sql(table: str, columns: list[str], rowid: str | None) -> str:
    first = _quote(rowid) if rowid is not None else "null"
    order = " order by " + _quote(rowid) if rowid is not None else ""
    return "select " + ", ".join([first, *map(_quote, columns)]) + " from " + _quote(table) + order


def _insert_sql(table: str, columns: list[str]) -> str:
    marks = ", ".join("?" * len(columns))
    names = ", ".join(map(_quote, columns))
    return "insert into " + _quote(table) + " (" + names + ") values (" + marks + ")"
