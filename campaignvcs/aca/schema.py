"""ACA format 0.7: the one place the table definitions live (and which tables older versions have).

The DDL mirrors what hpc-campaign 0.7.1 creates (ADIOS2 2.12 reads it; column order
matters to nobody but is kept identical). Tables use SQLite's implicit rowid for most
cross-references, so ``host``, ``directory`` and ``key`` rows must be dense 1..n.
"""

from __future__ import annotations

ACA_VERSION = "0.7"
INFO_ID = "ACA"
INFO_NAME = "ADIOS Campaign Archive"

TABLES: dict[str, str] = {
    "info": "create table info(id TEXT, name TEXT, version TEXT, modtime INT)",
    "key": "create table key(keyid TEXT PRIMARY KEY)",
    "host": "create table host(hostname TEXT PRIMARY KEY, longhostname TEXT, modtime INT, deltime INT, "
    "default_protocol TEXT)",
    "directory": "create table directory(hostid INT, name TEXT, modtime INT, deltime INT, PRIMARY KEY (hostid, name))",
    "timeseries": "create table timeseries(tsid INTEGER PRIMARY KEY, name TEXT UNIQUE)",
    "dataset": "create table dataset(name TEXT, uuid TEXT, modtime INT, deltime INT, fileformat TEXT, tsid INT, "
    "tsorder INT, PRIMARY KEY (name))",
    "replica": "create table replica(datasetid INT, hostid INT, dirid INT, archiveid INT, name TEXT, modtime INT, "
    "deltime INT, keyid INT, size INT, PRIMARY KEY (datasetid, hostid, dirid, archiveid, name))",
    "file": "create table file(fileid INTEGER PRIMARY KEY, name TEXT, compression INT, lenorig INT, "
    "lencompressed INT, modtime INT, checksum TEXT, data BLOB)",
    "repfiles": "create table repfiles(replicaid INT, fileid INT, PRIMARY KEY (replicaid, fileid))",
    "accuracy": "create table accuracy(replicaid INT, accuracy REAL, norm REAL, relative INT, PRIMARY KEY (replicaid))",
    "resolution": "create table resolution(replicaid INT, x INT, y INT, PRIMARY KEY (replicaid))",
    "archive": "create table archive(dirid INT, tarname TEXT, system TEXT, notes BLOB, PRIMARY KEY (dirid, tarname))",
    "archiveidx": "create table archiveidx(archiveid INT, replicaid INT, filename TEXT, offset INT, offset_data INT, "
    "size INT, PRIMARY KEY (archiveid, replicaid, filename))",
}
"""Table name → DDL, in creation order (all 13 are required by ADIOS2)."""

SUPPORTED_VERSIONS = ("0.5", "0.6", "0.7")
"""Archive versions hpc-campaign has written since datasets, replicas and archives exist (all importable)."""

ADDED_IN = {"archiveidx": "0.6", "repfiles": "0.7"}
"""Tables older archives lack, by the version that added them; 0.5 has all the others."""


def tables_of(version: str) -> tuple[str, ...]:
    """The tables an archive of ``version`` has (those its ``create`` made), in creation order."""
    rank = SUPPORTED_VERSIONS.index(version)
    return tuple(t for t in TABLES if SUPPORTED_VERSIONS.index(ADDED_IN.get(t, "0.5")) <= rank)

PROVENANCE_TABLE = "camp_build"
PROVENANCE_DDL_IF_MISSING = "create table if not exists camp_build(key TEXT PRIMARY KEY, value TEXT)"
"""camp's own table: which repository, commit and options built the archive.

ADIOS2 and hpc-campaign query their tables by name and never list the schema, so an
extra table is invisible to them (tested); ``camp store ls`` and incremental rebuilds
read it. Keys: ``commit``, ``tree``, ``repository``, ``archive_name``, ``omit_deleted``,
``exclude_kinds``, ``camp_version``.
"""

ARCHIVE_SYSTEMS = ("Kronos", "HPSS", "fs", "https", "S3")
"""Archival storage systems as hpc-campaign spells them (``archive.system``)."""

PROTOCOL_SYSTEMS = ("https", "http", "ftp", "s3")
"""Systems whose lower-case name becomes the host's ``default_protocol``."""

SERIES_KINDS = ("ADIOS", "HDF5")
"""Dataset kinds ADIOS2 can join into one time series (it cannot join text or images)."""
