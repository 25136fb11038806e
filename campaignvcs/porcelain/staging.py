"""camp add's second half: staging what was read (:mod:`campaignvcs.porcelain.reading`).

Under the repository lock, each source is named and applied to its dataset: a new
dataset, a replica added or updated, or nothing. Sources are taken a batch at a time as
the readers deliver them, and each batch's dataset trees are queued at once, so staging
the first datasets overlaps reading the last.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import islice

from campaignvcs import layout
from campaignvcs.errors import BadInput
from campaignvcs.extract import Payload, compressed_payload
from campaignvcs.model import BlobId, Dataset, DatasetName, EmbeddedFile, Host, HostName, Replica
from campaignvcs.porcelain.common import long_host_name
from campaignvcs.porcelain.reading import Source, location_of
from campaignvcs.statcache import signature_of
from campaignvcs.transaction import Transaction

STAGE_BATCH = 32
"""Sources staged per stat-cache lookup ("which datasets already record these files?")."""


@dataclass(frozen=True)
class AddResult:
    """What ``camp add`` did with one path: ``added``, ``updated``, ``replica added`` or ``unchanged``."""

    name: str
    kind: str
    action: str
    path: str
    host: str


def stage_sources(
    tx: Transaction,
    sources: Iterable[Source],
    host: HostName,
    encrypt: Callable[[Payload], tuple[bytes, str]] | None,
    key_id: str,
    read_at: int | None = None,
    root: str | None = None,
) -> list[AddResult]:
    """Stage what was read; ``read_at`` (ns): when reading began, for sources read from this disk.

    Those replicas' signatures go into the stat cache with their content digest, so
    ``camp status`` can tell a later change from what was read (see statcache).
    ``root``: the campaign folder (real path); a source without a name is named by its
    path from there when it is below it (whatever folder camp add ran in, like git's
    paths), else by its path as given. ``sources`` may still be reading: each batch is
    staged (its dataset trees queued) as it arrives. An error from it or from staging
    leaves the transaction to discard everything, so a bad path still records nothing.
    """
    camp, cache = tx.repo, tx.cache
    staged = _Staged(tx, host, encrypt, key_id)
    results: list[AddResult] = []
    it = iter(sources)
    while batch := [_named(src, root) for src in islice(it, STAGE_BATCH)]:
        recorded = cache.datasets_at(host, {src.where() for src in batch if not src.named})
        for src in batch:
            results.append(staged.take(_recorded_as(recorded.get(src.where(), []), src)))
        staged.queue_trees({r.name for r in results[-len(batch):]})
    changed = staged.changed()
    for ds in changed:
        tx.stage_dataset(ds, staged.tree_of(ds))
    if changed and camp.current(layout.host_path(host)) is None:
        tx.stage_json(layout.host_path(host), Host(host, long_host_name(), "", time.time_ns()).dumps())
    if changed:
        cache.update(changed, fresh=staged.fresh if read_at is not None else None, stamp=read_at or 0)
    return results


class _Staged:
    """The datasets one ``camp add`` changes, as its sources come in."""

    def __init__(self, tx: Transaction, host: HostName, encrypt: Callable[[Payload], tuple[bytes, str]] | None,
                 key_id: str) -> None:
        self.repo, self.host, self.encrypt, self.key_id = tx.repo, host, encrypt, key_id
        self.pending: dict[str, Dataset] = {}
        self.originals: dict[str, Dataset | None] = {}
        self.fresh: dict[tuple[str, str], tuple[str, int | None]] = {}
        """(host, file) → (content digest, stat signature) of what was read from this disk."""
        self.trees: dict[str, tuple[Dataset, bytes]] = {}
        """Dataset trees queued while later sources were still being read."""

    def take(self, src: Source) -> AddResult:
        """Apply one source to its dataset (as staged so far); what ``camp add`` says of it."""
        camp, host, encrypt = self.repo, self.host, self.encrypt
        if src.name not in self.pending:
            self.originals[src.name] = camp.dataset(src.name)
        before = self.pending.get(src.name) or self.originals[src.name]
        if before is not None and before.live and before.kind != src.extracted.kind:
            raise BadInput(f"{src.shown}: dataset {src.name} is {before.kind}, this path is {src.extracted.kind}")
        if before is None or not before.live:
            dataset = Dataset(
                name=DatasetName(src.name),
                uuid=before.uuid if before is not None else uuid.uuid4().hex,
                kind=src.extracted.kind,
                modtime=src.extracted.modtime,
                replicas=before.replicas if before else (),
            )
            action = "added"
        else:
            dataset = before
            action = "updated"
        had_replica = {r.location for r in dataset.replicas if r.live}
        location = src.where()
        directory, path = _same_file_as(dataset, host, src.directory, src.path, location)
        for extracted in src.extracted.replicas:
            rel = path if extracted.role == "main" else "thumbnails/" + path
            files = []
            for p in extracted.payloads:
                if encrypt and not p.compression:
                    # ADIOS2 copies an uncompressed keyed object at its sealed length: compress it.
                    p = compressed_payload(p.name, p.data, p.modtime)
                data, checksum = encrypt(p) if encrypt else (p.data, p.checksum)
                blob = camp.add_blob(data, dense=bool(encrypt) or p.compression != 0)
                files.append(
                    EmbeddedFile(p.name, BlobId(blob.decode()), p.compression, p.lenorig, p.lencompressed, p.modtime,
                                 checksum)
                )
            replica = Replica(
                host=host,
                dir=directory,
                path=rel,
                size=extracted.size,
                mtime=extracted.mtime,
                checksum="" if encrypt else extracted.checksum,  # a plaintext SHA-1 reveals equal data
                key=self.key_id,
                resolution=extracted.resolution,
                files=tuple(files),
            )
            if action == "updated" and replica.location not in had_replica and extracted.role == "main":
                action = "replica added"
            if extracted.role == "main":
                # The same file as src (_same_file_as keeps a recorded spelling only of it).
                self.fresh[(host, location)] = (extracted.checksum, signature_of(extracted.probe))
            dataset = dataset.with_replica(replica)
        if self.pending.get(src.name, before) == dataset:
            action = "unchanged"
        self.pending[src.name] = dataset
        return AddResult(src.name, dataset.kind, action, src.shown, host)

    def queue_trees(self, names: set[str]) -> None:
        """Queue the trees of these datasets now, while workers read the next sources.

        A dataset named again by a later source gets a new tree; the one queued here is
        then an unreferenced object in the pack (git tolerates those; it is rare).
        """
        for name in names:
            dataset = self.pending[name]
            if dataset != self.originals[name]:
                self.trees[name] = (dataset, self.repo.dataset_tree(dataset))

    def changed(self) -> list[Dataset]:
        """Every dataset that differs from what was staged before, in the order first seen."""
        return [ds for name, ds in self.pending.items() if ds != self.originals[name]]

    def tree_of(self, dataset: Dataset) -> bytes | None:
        """The tree queued for exactly this dataset, if any."""
        queued = self.trees.get(dataset.name)
        return queued[1] if queued is not None and queued[0] is dataset else None


def _same_file_as(dataset: Dataset, host: str, directory: str, path: str, target: str) -> tuple[str, str]:
    """(dir, path) of the dataset's live replica that is this very file on ``host``, else as given.

    ``x.bp`` added from ``run`` and ``run/x.bp`` added from its parent are one replica: the
    one recorded first keeps its spelling, so a re-add updates it instead of adding a copy.
    ``target``: :func:`location_of` (directory, path).
    """
    for r in dataset.replicas:
        if (r.live and r.host == host and r.archive is None and not r.path.startswith("thumbnails/")
                and location_of(r.dir, r.path) == target):
            return r.dir, r.path
    return directory, path


def _named(src: Source, root: str | None) -> Source:
    """``src`` with its dataset name: the one given, else its path below ``root``, else as given."""
    name = src.name
    if not src.named and not name:
        name = os.path.normpath(src.shown)
        if root is not None:
            # Both absolute and normalised: "below root" is a prefix test (relpath costs ~10 µs).
            where, prefix = src.where(), root.rstrip("/") + "/"
            if where.startswith(prefix) and len(where) > len(prefix):
                name = where[len(prefix):]
    if not name or "\0" in name:
        raise BadInput(f"invalid dataset name: {name!r}")
    return src if name == src.name else replace(src, name=name)


def _recorded_as(found: list[str], src: Source) -> Source:
    """``src`` under the name of the dataset that already records this file (``found``: those that do).

    One file is one dataset: adding ``run/x.bp`` after ``x.bp`` from inside ``run`` updates
    the dataset recorded first. With ``--name`` the given name stands; a file recorded
    by several datasets (each named with ``--name``) needs ``--name`` to say which.
    """
    if src.named or not found or src.name in found:
        return src
    if len(found) > 1:
        raise BadInput(f"{src.shown} is recorded by datasets {', '.join(sorted(found))}: "
                       "give --name NAME to say which one to update")
    return replace(src, name=found[0])
