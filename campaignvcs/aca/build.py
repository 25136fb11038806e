"""Compile a campaign (model objects) into an ACA 0.7 file that ADIOS2 2.12 opens.

A build writes one new SQLite file beside the target and renames it over the target once
it is complete and synced, so a reader sees the old archive or the new one, never half of
one, and a failed or killed build leaves the old one as it was. The rows come from
:class:`campaignvcs.aca.writer.RowWriter` (what is written and in which order is described
there); :mod:`campaignvcs.aca.update` patches a copy of an archive through the same
:func:`write_atomically`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Mapping

from campaignvcs.aca.extras import Extras
from campaignvcs.aca.writer import Counts, RowWriter
from campaignvcs.faults import fault as fault_point
from campaignvcs.model import Dataset, Host, TimeSeries
from campaignvcs.tempfiles import make_temp, remove_quietly, sweep

__all__ = ["TEMP_SUFFIX", "Counts", "temp_prefix", "write_aca", "write_atomically"]


def write_aca(
    path: str,
    datasets: Iterable[Dataset],
    hosts: Iterable[Host],
    timeseries: Iterable[TimeSeries],
    read_blob: Callable[[str], bytes],
    now: int,
    omit_deleted: bool = True,
    provenance: Mapping[str, str] | None = None,
    extras: Extras | None = None,
    fault: str | None = None,
) -> Counts:
    """Write an ACA file at ``path`` atomically; a failure leaves any previous file untouched.

    ``datasets`` should be sorted by name (their rowids follow the iteration order);
    ``read_blob`` returns the bytes of a blob id (embedded payloads, archive notes); ``now``
    (ns) stands for every "current time" so the same input gives the same tables.
    ``provenance`` goes into camp's own ``camp_build`` table (see aca/schema.py); ``extras``
    are the tables an import kept that camp does not model (see aca/extras.py). Datasets
    go in as ADIOS2 2.12.1 can open them (aca/rules.py); ``Counts.warnings`` says what that
    changed. ``fault`` names a crash-test point (see :func:`write_atomically`).
    """
    def fill(con: sqlite3.Connection) -> Counts:
        writer = RowWriter(con, now, omit_deleted, read_blob)
        return writer.write(datasets, hosts, timeseries, provenance, extras)

    counts = write_atomically(path, fill, fault=fault)
    assert counts is not None
    return counts


TEMP_SUFFIX = ".tmp"
"""Temporary archives end here, never in ``.aca``: no reader takes a leftover for an archive."""


def temp_prefix(path: str) -> str:
    """The start of every temporary name of the archive ``path`` (hidden: ``.NAME.aca.``)."""
    return "." + os.path.basename(path) + "."


def write_atomically(path: str, fill: Callable[[sqlite3.Connection], Counts | None],
                     start_from: str | None = None, fault: str | None = None) -> Counts | None:
    """Fill a new SQLite file (a copy of ``start_from``, or empty) beside ``path``, then rename it over it.

    ``fill`` returning None abandons the file and leaves ``path`` as it was; so does any error.
    The temporary is ``.NAME.aca.<host>~<pid>~<start>~<random>.tmp`` (see campaignvcs/tempfiles.py):
    first, the leftovers of this archive's killed builds — writer gone from this host, or
    older than an hour when written elsewhere — are removed; a live writer's never are.
    With ``fault`` ``"build-before-rename"`` the process kills itself once the temporary
    is complete, just before the rename (crash tests).
    """
    folder = os.path.dirname(os.path.abspath(path))
    prefix = temp_prefix(path)
    sweep(folder, [prefix], TEMP_SUFFIX)
    fd, tmp = make_temp(folder, prefix, TEMP_SUFFIX)
    os.close(fd)
    try:
        if start_from is not None:
            shutil.copyfile(start_from, tmp)
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            counts = fill(con)
        finally:
            con.close()
        if counts is None:
            os.unlink(tmp)
            return None
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        fault_point(fault, "build-before-rename")
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    return counts


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
