"""Incremental rebuild: patch an archive built from an earlier commit instead of writing it anew.

A full build of 100,000 datasets reads every manifest (seconds); after a one-dataset
commit only that dataset's rows differ. :func:`update_aca` copies the existing archive
beside it, deletes the rows of the changed datasets, inserts their new rows with the same
row-making code as a full build (:class:`campaignvcs.aca.writer.RowWriter`), and renames the
copy into place. The result has the same content as a full build — the same host rows in
the same order (ADIOS2 prefers unlisted hosts by rowid), the same directories and keys,
identical ``file`` rows shared as a full build shares them; only dataset, replica,
directory, key and file ids (and so row order) may differ, which ADIOS2 reads through
maps. Host, directory and key ids must stay dense 1..n: new ones are appended, and when
a change would leave one unused (a full build drops it) or a new host sorts before an
existing one, the update gives up and the caller builds in full.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping

from campaignvcs.aca.build import write_atomically
from campaignvcs.aca.rules import HDF5_KEY, NOTES_KEY, load_hdf5, load_notes
from campaignvcs.aca.writer import STAGING, Counts, RowWriter, file_key, host_columns, write_provenance
from campaignvcs.model import Dataset, EmbeddedFile, Host


def update_aca(
    path: str,
    changed_names: Iterable[str],
    datasets: Iterable[Dataset],
    hosts: Mapping[str, Host],
    read_blob: Callable[[str], bytes],
    now: int,
    omit_deleted: bool,
    provenance: Mapping[str, str],
    fault: str | None = None,
) -> Counts | None:
    """Replace the rows of ``changed_names`` in the archive at ``path`` by those of ``datasets``.

    ``datasets`` are the new versions of (some of) the changed datasets — the others were
    removed or are excluded; ``hosts`` are the host manifests, which must equal those the
    archive was built from. Returns None, leaving the file untouched, when only a full
    build gives the right tables. The datasets go through the same ADIOS2 rules as in a
    full build; the notes of the unchanged ones are carried over from the archive, so the
    warnings are those of a full build too. ``fault``: see :func:`write_atomically`.
    """
    names = sorted(set(changed_names))

    def fill(con: sqlite3.Connection) -> Counts | None:
        return _Patcher(con, now, omit_deleted, read_blob).patch(names, datasets, hosts, provenance)

    return write_atomically(path, fill, start_from=path, fault=fault)


class _Patcher(RowWriter):
    """A :class:`~campaignvcs.aca.writer.RowWriter` whose provisional ids are the archive's own ids."""

    def patch(self, names: list[str], datasets: Iterable[Dataset], hosts: Mapping[str, Host],
              provenance: Mapping[str, str]) -> Counts | None:
        con = self.con
        con.execute("pragma journal_mode=off")
        con.execute("pragma synchronous=off")
        con.execute("begin")
        for ddl in STAGING:
            con.execute(ddl)
        self._load_ids()
        built = dict(con.execute("select key, value from camp_build"))
        notes = load_notes(built.get(NOTES_KEY))
        for name in names:
            notes.pop(name, None)
        self.use_hosts(hosts, notes)
        # The HDF5 count of the archive stands unless an HDF5 dataset changes (counting scans the table).
        hdf5_changed = any(con.execute("select 1 from dataset where name = ? and fileformat = 'HDF5'",
                                       (name,)).fetchone() for name in names)
        before = (len(self.hosts), len(self.dirs), len(self.keys))
        old_hosts = list(self.hosts)
        touched = self._delete(names)
        datasets = list(self.prepare(datasets))
        if not hdf5_changed and not any(ds.kind == "HDF5" for ds in datasets):
            self.hdf5 = load_hdf5(built.get(HDF5_KEY))
        self._share_existing_files(datasets)
        self.add_datasets(datasets, prepared=True)
        new_hosts = list(self.hosts)[len(old_hosts):]
        if old_hosts and new_hosts and min(new_hosts) < max(old_hosts):
            con.execute("rollback")  # a full build numbers hosts by name
            return None
        self._append_lookup_rows(before, hosts)
        self.copy_staged(self.hosts, self.dirs, self.keys, self.archives)  # provisional ids are final here
        if not self._still_dense(touched, hosts):
            con.execute("rollback")
            return None
        # What a full build from this commit writes as "now".
        con.execute("update directory set modtime = ?", (self.now,))
        con.executemany(
            "update host set longhostname = ?, modtime = ?, default_protocol = ? where hostname = ?",
            ((*host_columns(hosts.get(name), self.now), name) for name in self.hosts),
        )
        con.execute("update info set modtime = ?", (self.now,))
        write_provenance(con, self.with_notes(provenance))
        con.execute("commit")
        con.execute("pragma journal_mode=delete")
        return self.counts(*(con.execute(sql).fetchone()[0] for sql in (
            "select count(*) from dataset", "select count(*) from replica", "select count(*) from file")))

    def _load_ids(self) -> None:
        """Provisional ids := the archive's ids, so staged rows map to themselves."""
        con = self.con
        self.hosts = {name: i for i, name in con.execute("select rowid, hostname from host order by rowid")}
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
            replicas = con.execute(
                "select rowid, hostid, dirid, keyid, archiveid from replica where datasetid = ?", (row[0],)
            ).fetchall()
            for rep, host, folder, key, archive in replicas:
                hosts.add(host)
                dirs.add(folder)
                if key:
                    keys.add(key)
                used = con.execute("select fileid from repfiles where replicaid = ?", (rep,))
                files.update(f for (f,) in used)
                for sql in ("delete from repfiles where replicaid = ?", "delete from resolution where replicaid = ?",
                            "delete from accuracy where replicaid = ?"):
                    con.execute(sql, (rep,))
                if archive:  # archiveidx is keyed by (archiveid, replicaid, ...)
                    con.execute("delete from archiveidx where archiveid = ? and replicaid = ?",
                                (archive, rep))
            con.execute("delete from replica where datasetid = ?", (row[0],))
            con.execute("delete from dataset where rowid = ?", (row[0],))
        if files:  # file rows are shared by content: drop those nothing uses now (one pass over repfiles)
            con.execute("create temp table gone(fileid INTEGER PRIMARY KEY)")
            con.executemany("insert into temp.gone values (?)", ((f,) for f in files))
            con.execute("delete from temp.gone where fileid in (select fileid from repfiles)")
            con.execute("delete from file where fileid in (select fileid from temp.gone)")
            con.execute("drop table temp.gone")
        return hosts, dirs, keys

    def _share_existing_files(self, datasets: list[Dataset]) -> None:
        """Let the new rows reuse identical ``file`` rows the archive keeps, as a full build shares them."""
        con = self.con
        wanted: dict[bytes, EmbeddedFile] = {
            file_key(f): f for ds in datasets for r in ds.replicas for f in r.files
        }
        if not wanted:
            return
        con.execute("create temp table want(checksum TEXT)")
        con.executemany("insert into temp.want values (?)", {(f.checksum,) for f in wanted.values()})
        by_meta: dict[tuple, list[int]] = {}
        for fileid, *meta in con.execute(  # the payload column is read only for candidates
                "select fileid, name, compression, lenorig, lencompressed, modtime, checksum from file "
                "where checksum in (select checksum from temp.want)").fetchall():
            by_meta.setdefault(tuple(meta), []).append(fileid)
        con.execute("drop table temp.want")
        for key, f in wanted.items():
            meta = (f.name, f.compression, f.lenorig, f.lencompressed, f.modtime, f.checksum)
            payload = None
            for fileid in sorted(by_meta.get(meta, ())):
                payload = self.read_blob(f.blob) if payload is None else payload
                if con.execute("select data from file where fileid = ?", (fileid,)).fetchone()[0] == payload:
                    self.files[key] = fileid
                    break

    def _append_lookup_rows(self, before: tuple[int, int, int], hosts: Mapping[str, Host]) -> None:
        """Hosts, directories and keys the new rows introduced, appended after the existing (dense) ids."""
        n_hosts, n_dirs, n_keys = before
        con = self.con
        con.executemany(
            "insert into host(rowid, hostname, longhostname, modtime, deltime, default_protocol) "
            "values (?, ?, ?, ?, 0, ?)",
            ((i, name, *host_columns(hosts.get(name), self.now))
             for name, i in self.hosts.items() if i > n_hosts),
        )
        con.executemany(
            "insert into directory(rowid, hostid, name, modtime, deltime) values (?, ?, ?, ?, 0)",
            ((i, self.hosts[h], d, self.now) for (h, d), i in self.dirs.items() if i > n_dirs),
        )
        con.executemany("insert into key(rowid, keyid) values (?, ?)",
                        ((i, k) for k, i in self.keys.items() if i > n_keys))

    def _still_dense(self, touched: tuple[set[int], set[int], set[int]], hosts: Mapping[str, Host]) -> bool:
        """False when a host, directory or key the deleted rows used is now unused (a full build drops it).

        Each probe stops at the first row that still uses the id: quick while it is used.
        """
        host_ids, dir_ids, key_ids = touched
        names = {i: n for n, i in self.hosts.items()}
        probes = [("select 1 from replica where hostid = ? limit 1", h)
                  for h in host_ids if names.get(h) not in hosts]  # a host with a manifest always stays
        probes += [("select 1 from replica where keyid = ? limit 1", k) for k in key_ids]
        probes += [("select 1 from replica where dirid = ? union all select 1 from archive where dirid = ? "
                    "limit 1", d) for d in dir_ids]
        return all(self.con.execute(sql, (i,) * sql.count("?")).fetchone() for sql, i in probes)
