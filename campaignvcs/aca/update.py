"""Incremental rebuild: patch an archive built from an earlier commit instead of writing it anew.

A full build of 100,000 datasets reads every manifest (seconds); after a one-dataset
commit only that dataset's rows differ. :func:`update_aca` copies the existing archive
beside it, deletes the rows of the changed datasets, inserts their new rows with the same
row-making code as a full build (:class:`campaignvcs.aca.build._Writer`), and renames the
copy into place. The result has the same content as a full build; only row ids (and
therefore row order) may differ, which ADIOS2 does not depend on — except that host,
directory and key ids must stay dense 1..n: new ones are appended, and when a change
would leave one unused (a full build would drop it), the update gives up and the caller
builds in full.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping

from campaignvcs.aca.build import (
    _STAGING,
    Counts,
    _host_columns,
    _Writer,
    write_atomically,
    write_provenance,
)
from campaignvcs.model import Dataset, Host


def update_aca(
    path: str,
    changed_names: Iterable[str],
    datasets: Iterable[Dataset],
    hosts: Mapping[str, Host],
    read_blob: Callable[[str], bytes],
    now: int,
    omit_deleted: bool,
    provenance: Mapping[str, str],
) -> Counts | None:
    """Replace the rows of ``changed_names`` in the archive at ``path`` by those of ``datasets``.

    ``datasets`` are the new versions of (some of) the changed datasets — the others were
    removed or are excluded; ``hosts`` are the host manifests, which must equal those the
    archive was built from. Returns None, leaving the file untouched, when only a full
    build gives the right tables.
    """
    names = sorted(set(changed_names))

    def fill(con: sqlite3.Connection) -> Counts | None:
        return _Patcher(con, now, omit_deleted, read_blob).patch(names, datasets, hosts, provenance)

    return write_atomically(path, fill, start_from=path)


class _Patcher(_Writer):
    """A :class:`_Writer` whose provisional ids are the archive's own ids."""

    def patch(self, names: list[str], datasets: Iterable[Dataset], hosts: Mapping[str, Host],
              provenance: Mapping[str, str]) -> Counts | None:
        con = self.con
        con.execute("pragma journal_mode=off")
        con.execute("pragma synchronous=off")
        con.execute("begin")
        for ddl in _STAGING:
            con.execute(ddl)
        self._load_ids()
        before = (len(self.hosts), len(self.dirs), len(self.keys))
        touched = self._delete(names)
        self._datasets(datasets)
        self._append_lookup_rows(before, hosts)
        self._copy_staged(self.hosts, self.dirs, self.keys, self.archives)  # provisional ids are final here
        if not self._still_dense(touched, hosts):
            con.execute("rollback")
            return None
        # What a full build from this commit writes as "now".
        con.execute("update directory set modtime = ?", (self.now,))
        con.executemany(
            "update host set longhostname = ?, modtime = ?, default_protocol = ? where hostname = ?",
            ((*_host_columns(hosts.get(name), self.now), name) for name in self.hosts),
        )
        con.execute("update info set modtime = ?", (self.now,))
        write_provenance(con, provenance)
        con.execute("commit")
        con.execute("pragma journal_mode=delete")
        return Counts(*(con.execute(sql).fetchone()[0] for sql in (
            "select count(*) from dataset", "select count(*) from replica", "select count(*) from file")))

    def _load_ids(self) -> None:
        """Provisional ids := the archive's ids, so staged rows map to themselves."""
        con = self.con
        self.hosts = {name: i for i, name in con.execute("select rowid, hostname from host")}
        self.dirs = {(h, d): i for i, h, d in con.execute(
            "select d.rowid, h.hostname, d.name from directory d join host h on h.rowid = d.hostid")}
        self.keys = {k: i for i, k in con.execute("select rowid, keyid from key")}
        self.archives = {(h, d, t): i for i, h, d, t in con.execute(
            "select a.rowid, h.hostname, d.name, a.tarname from archive a "
            "join directory d on d.rowid = a.dirid join host h on h.rowid = d.hostid")}
        self.n_datasets = con.execute("select coalesce(max(rowid), 0) from dataset").fetchone()[0]
        self.n_replicas = con.execute("select coalesce(max(rowid), 0) from replica").fetchone()[0]
        self.file_base = con.execute("select coalesce(max(fileid), 0) from file").fetchone()[0]

    def _delete(self, names: list[str]) -> tuple[set[int], set[int], set[int]]:
        """Delete every row of the named datasets; (host ids, dir ids, key ids) their replicas used."""
        con = self.con
        hosts: set[int] = set()
        dirs: set[int] = set()
        keys: set[int] = set()
        files: set[int] = set()
        for name in names:
            row = con.execute("select rowid from dataset where name = ?", (name,)).fetchone()
            if row is None:
                continue
            for rep, host, folder, key in con.execute(
                    "select rowid, hostid, dirid, keyid from replica where datasetid = ?", (row[0],)).fetchall():
                hosts.add(host)
                dirs.add(folder)
                if key:
                    keys.add(key)
                files.update(f for (f,) in con.execute("select fileid from repfiles where replicaid = ?", (rep,)))
                for sql in ("delete from repfiles where replicaid = ?", "delete from resolution where replicaid = ?",
                            "delete from accuracy where replicaid = ?", "delete from archiveidx where replicaid = ?"):
                    con.execute(sql, (rep,))
            con.execute("delete from replica where datasetid = ?", (row[0],))
            con.execute("delete from dataset where rowid = ?", (row[0],))
        for fileid in files:  # file rows are shared by content: drop only those nothing uses now
            if con.execute("select 1 from repfiles where fileid = ? limit 1", (fileid,)).fetchone() is None:
                con.execute("delete from file where fileid = ?", (fileid,))
        return hosts, dirs, keys

    def _append_lookup_rows(self, before: tuple[int, int, int], hosts: Mapping[str, Host]) -> None:
        """Hosts, directories and keys the new rows introduced, appended after the existing (dense) ids."""
        n_hosts, n_dirs, n_keys = before
        con = self.con
        con.executemany(
            "insert into host(rowid, hostname, longhostname, modtime, deltime, default_protocol) "
            "values (?, ?, ?, ?, 0, ?)",
            ((i, name, *_host_columns(hosts.get(name), self.now)) for name, i in self.hosts.items() if i > n_hosts),
        )
        con.executemany(
            "insert into directory(rowid, hostid, name, modtime, deltime) values (?, ?, ?, ?, 0)",
            ((i, self.hosts[h], d, self.now) for (h, d), i in self.dirs.items() if i > n_dirs),
        )
        con.executemany("insert into key(rowid, keyid) values (?, ?)",
                        ((i, k) for k, i in self.keys.items() if i > n_keys))

    def _still_dense(self, touched: tuple[set[int], set[int], set[int]], hosts: Mapping[str, Host]) -> bool:
        """False when a host, directory or key the deleted rows used is now unused (a full build drops it)."""
        con = self.con
        host_ids, dir_ids, key_ids = touched
        names = {i: n for n, i in self.hosts.items()}
        for h in host_ids:
            if names.get(h) not in hosts and _unused(con, "select 1 from replica where hostid = ? limit 1", h):
                return False
        for d in dir_ids:
            if _unused(con, "select 1 from replica where dirid = ? limit 1", d) and \
                    _unused(con, "select 1 from archive where dirid = ? limit 1", d):
                return False
        return not any(_unused(con, "select 1 from replica where keyid = ? limit 1", k) for k in key_ids)


def _unused(con: sqlite3.Connection, sql: str, rowid: int) -> bool:
    return con.execute(sql, (rowid,)).fetchone() is None
