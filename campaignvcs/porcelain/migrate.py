"""import: turn an archive written by hpc-campaign (0.5–0.7) into one commit of a campaign.

The archive is read and checked completely before the repository lock is taken, and the
import is committed under that lock without ever writing the staging area on its own:
either the commit lands, or the repository (HEAD, staging area) is exactly as before.

Tables camp does not model are kept as ``extras/<table>.json`` (see
:mod:`campaignvcs.aca.extras`) and written back by every build; a table camp cannot carry
refuses the import unless ``drop_unknown_tables``, which leaves it out and says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from campaignvcs import layout
from campaignvcs.aca.read import ArchiveContents, read_aca
from campaignvcs.errors import BadInput, CampError
from campaignvcs.model import Archive, Dataset, ExtraTable, Host, TimeSeries, dataset_ref, is_dataset_ref
from campaignvcs.porcelain.common import environ, identity, open_repo
from campaignvcs.repo import CampaignRepo
from campaignvcs.transaction import Transaction


@dataclass(frozen=True)
class ImportResult:
    """What ``camp import`` recorded: the new commit (None if nothing was new) and what the archive held."""

    archive: str
    commit: str | None
    version: str
    datasets: int
    replicas: int
    files: int
    hosts: int
    timeseries: int
    extras: int = 0
    """Tables camp does not model, kept in ``extras/`` and written back by ``camp build``."""
    left_out: tuple[str, ...] = ()
    """One line per thing left out: tables, views, triggers (``drop_unknown_tables``), camp-table indexes."""


def import_aca(
    path: str,
    message: str | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    drop_unknown_tables: bool = False,
) -> ImportResult:
    """Record everything an ACA file describes as one commit (message ``-m`` or ``Import <name>``).

    Datasets that already exist are merged: the union of replicas by location, the
    imported replica winning at the same location; the campaign keeps its uuid, kind and
    modification time for them, and a dataset stays live if either side has it live.
    Host manifests merge their archival locations (imported values win where the archive
    sets them); time series get the imported members appended in order. Refused while
    the staging area has changes, so the commit holds the import and nothing else.
    Tables camp does not model are kept (``extras/``); one it cannot carry through a
    build refuses the import unless ``drop_unknown_tables``. An extra table the campaign
    already keeps must hold the same rows, a subset or a superset of the archive's.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    if message is not None and not message.strip():
        raise BadInput("empty commit message: pass -m MESSAGE")
    if not path:
        raise BadInput("no archive given: camp import ARCHIVE.aca")
    with open_repo(repo, cwd, env) as camp:
        _refuse_staged(camp)
        contents = read_aca(
            os.path.join(cwd, os.path.expanduser(path)), shown=path, drop_unknown=drop_unknown_tables
        )
        text = message if message is not None else f"Import {os.path.basename(path.rstrip('/'))}"
        with camp.transaction() as tx:
            _refuse_staged(camp)
            commit = _import_in(tx, contents, text, env)
        return ImportResult(
            archive=path,
            commit=commit,
            version=contents.version,
            datasets=len(contents.datasets),
            replicas=contents.replicas,
            files=contents.files,
            hosts=len(contents.hosts),
            timeseries=len(contents.timeseries),
            extras=len(contents.extras),
            left_out=contents.left_out,
        )


def _refuse_staged(camp: CampaignRepo) -> None:
    if camp.staged_changes():
        raise CampError("the staging area has changes: commit or drop the staged changes first")


def _import_in(tx: Transaction, contents: ArchiveContents, message: str, env: Mapping[str, str]) -> str | None:
    """Stage the archive's objects and commit them (the stat cache is only updated, not rebuilt)."""
    camp = tx.repo
    changed = _stage(tx, contents)
    if not camp.staged_changes():
        tx.clear()
        return None
    tx.cache.update(changed)
    return tx.commit(message, identity(camp, env)).decode()


def _stage(tx: Transaction, contents: ArchiveContents) -> list[Dataset]:
    """Stage every payload and manifest; returns the datasets that changed."""
    camp = tx.repo
    extras = _merged_extras(camp, contents)  # first: a refusal must come before any work
    for bid, data in contents.blobs.items():
        if camp.add_blob(data).decode() != bid:
            raise RuntimeError(f"blob id mismatch for {bid}")
    changed: list[Dataset] = []
    for ds in contents.datasets:
        existing = camp.dataset(ds.name)
        merged = ds if existing is None else merge_dataset(existing, ds)
        if merged != existing:
            tx.stage_dataset(merged)
            changed.append(merged)
    for host in contents.hosts:
        existing_host = camp.host(host.name)
        merged_host = host if existing_host is None else merge_host(existing_host, host)
        if merged_host != existing_host:
            tx.stage_json(layout.host_path(host.name), merged_host.dumps())
    for series in contents.timeseries:
        path = layout.timeseries_path(series.name)
        entry = camp.current(path)
        existing_series = None if entry is None else TimeSeries.loads(camp.read_blob(entry[1]), what=path)
        merged_series = series if existing_series is None else merge_timeseries(existing_series, series)
        if merged_series != existing_series:
            tx.stage_json(path, merged_series.dumps())
    for table in extras:
        tx.stage_json(layout.extras_path(table.name), table.dumps())
    return changed


def _merged_extras(camp: CampaignRepo, contents: ArchiveContents) -> list[ExtraTable]:
    """The extra-table manifests the import changes, with references to the campaign's uuids.

    A dataset the campaign already has keeps its uuid, so a reference to it (made with the
    archive's uuid) takes the campaign's.
    """
    uuids: dict[str, str] = {}

    def campaign_uuid(name: str) -> str:
        """The uuid the campaign keeps for ``name`` ("" when the import brings the dataset)."""
        if name not in uuids:
            existing = camp.dataset(name)
            uuids[name] = existing.uuid if existing is not None else ""
        return uuids[name]

    out = []
    for table in contents.extras:
        table = with_campaign_uuids(table, campaign_uuid)
        path = layout.extras_path(table.name)
        entry = camp.current(path)
        existing = None if entry is None else ExtraTable.loads(camp.read_blob(entry[1]), what=path)
        merged = table if existing is None else merge_extra(existing, table)
        if merged != existing:
            out.append(merged)
    return out


def with_campaign_uuids(table: ExtraTable, uuid_of: Callable[[str], str]) -> ExtraTable:
    """``table`` with every dataset reference carrying the uuid ``uuid_of`` gives its name (if any)."""
    rows = tuple(
        tuple(dataset_ref(c["dataset"], uuid_of(c["dataset"]) or c["uuid"]) if is_dataset_ref(c) else c
              for c in row)
        for row in table.rows
    )
    return dataclasses.replace(table, rows=rows)


def merge_extra(existing: ExtraTable, imported: ExtraTable) -> ExtraTable:
    """One extra table from the campaign's and the archive's: the one whose rows include the other's.

    camp does not merge rows of tables it does not understand (their own ids, such as
    ``visid``, would collide): different definitions, or rows neither side fully holds,
    are refused with BadInput naming the table.
    """
    if not existing.same_definition(imported):
        raise BadInput(
            f"extra table {imported.name}: the campaign keeps it with another definition (from an earlier "
            "import); camp does not merge tables it does not model"
        )
    have, new = _row_keys(existing), _row_keys(imported)
    if new <= have:
        return existing
    if have <= new:
        return imported
    raise BadInput(
        f"extra table {imported.name}: the campaign keeps other rows of it (from an earlier import) than "
        "this archive; camp does not merge tables it does not model"
    )


def _row_keys(table: ExtraTable) -> set[str]:
    return {json.dumps(row, sort_keys=True) for row in table.rows}


def merge_dataset(existing: Dataset, imported: Dataset) -> Dataset:
    """``existing`` with the imported replicas added (imported wins at the same location).

    Raises BadInput when the two disagree on the kind: one name, two different things.
    """
    if existing.kind != imported.kind:
        raise BadInput(
            f"dataset {existing.name} is {existing.kind} in the campaign but {imported.kind} in the archive"
        )
    merged = existing
    for replica in imported.replicas:
        merged = merged.with_replica(replica)
    if existing.live or imported.live:
        deltime = 0
    else:
        deltime = max(existing.deltime, imported.deltime)
    return dataclasses.replace(merged, deltime=deltime)


def merge_host(existing: Host, imported: Host) -> Host:
    """One host manifest: archival locations united (imported wins per directory and TAR name)."""
    archives: dict[tuple[str, str], Archive] = {(a.dir, a.tarname): a for a in existing.archives}
    for a in imported.archives:
        archives[(a.dir, a.tarname)] = a
    return Host(
        name=existing.name,
        longhostname=imported.longhostname if imported.longhostname is not None else existing.longhostname,
        default_protocol=imported.default_protocol or existing.default_protocol,
        modtime=existing.modtime or imported.modtime,
        archives=tuple(sorted(archives.values(), key=lambda a: (a.dir, a.tarname))),
    )


def merge_timeseries(existing: TimeSeries, imported: TimeSeries) -> TimeSeries:
    """The existing series followed by the imported members it does not have yet, in order."""
    have = set(existing.datasets)
    extra = tuple(n for n in imported.datasets if n not in have)
    return TimeSeries(existing.name, existing.datasets + extra)
