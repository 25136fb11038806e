"""add --from: record datasets that are reachable only through rclone (S3, another cluster, WebDAV).

hpc-campaign's remote mode records such datasets without metadata, and ADIOS2 then
refuses the whole archive. camp reads the metadata files through rclone instead, so the
archive carries the same embedded bytes as if the dataset had been added where it lives.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from campaignvcs import layout
from campaignvcs.errors import BadInput, UsageError
from campaignvcs.extract import HDF5_SIGNATURE, IMAGE_SUFFIXES, Extracted, ExtractedReplica, Options, extract
from campaignvcs.model import DatasetName, Host, HostName
from campaignvcs.porcelain.common import environ, open_repo, resolve_host
from campaignvcs.porcelain.reading import Source
from campaignvcs.porcelain.staging import AddResult, stage_sources
from campaignvcs.porcelain.workspace import commit_staged
from campaignvcs.transaction import Transaction

KIND_NAMES = {"adios": "ADIOS", "hdf5": "HDF5", "image": "IMAGE", "text": "TEXT"}
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


@dataclass(frozen=True)
class AddFromResult:
    """What ``camp add --from`` recorded, and what it cost to read."""

    source: str
    """The rclone path, credentials redacted."""
    host: str
    dir: str
    added: list[AddResult] = field(default_factory=list)
    bytes_read: int = 0
    """Bytes downloaded: the metadata files (and whole small files), never BP data."""
    data_bytes: int = 0
    """Total size of the recorded datasets, from the listing."""
    warnings: list[str] = field(default_factory=list)
    """A failed post-commit hook (with ``message``)."""


def add_from(
    source: str,
    names: Sequence[str],
    host: str | None = None,
    directory: str | None = None,
    when: str | None = None,
    fetch_metadata: bool = False,
    store: bool = False,
    thumbnail: tuple[int, int] | None = None,
    kind: str = "auto",
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    message: str | None = None,
) -> AddFromResult:
    """Record the datasets ``names`` (paths below the rclone path ``source``) on ``host``.

    Everything is listed and fetched before the lock is taken: an unreachable remote, a
    missing path or a folder that is not a dataset records nothing. ``when`` (a date
    and time) replaces the listing's modification times, as hpc-campaign's
    ``--s3_datetime`` does.
    """
    from campaignvcs.remote.rclone import Rclone, redact
    from campaignvcs.remote.source import find, parse_root, recorded_dir

    if message is not None and not message.strip():
        raise BadInput("empty commit message: pass -m MESSAGE")
    if not names:
        raise UsageError("nothing to add: give the dataset paths below the --from folder")
    override_ns = parse_datetime(when) if when is not None else None
    env = environ(env)
    cwd = cwd or os.getcwd()
    with open_repo(repo, cwd, env) as camp, Rclone(env) as rclone, \
            tempfile.TemporaryDirectory(prefix="camp-add-from-") as tmp:
        root = parse_root(source, rclone)
        if host is None and root.host is None and root.backend == "local":
            host = resolve_host(camp, None, env)
        host_name = HostName(host or root.host or "")
        if not host_name:
            raise BadInput(f"cannot tell the host of {redact(source)}: pass --host NAME")
        folder = directory if directory is not None else recorded_dir(root, "")
        options = Options(store=store, thumbnail=thumbnail, kind=kind)
        sources: list[Source] = []
        read = data = 0
        for i, name in enumerate(names):
            entry = find(rclone, root, name)
            extracted, got = _extract_remote(rclone, root, entry, os.path.join(tmp, str(i)), options, fetch_metadata)
            extracted = _with_listing_times(extracted, entry.size,
                                            override_ns if override_ns is not None else entry.mtime,
                                            override_ns is not None)
            read += got
            data += entry.size
            shown = f"{redact(source).rstrip('/')}/{entry.name}"
            sources.append(Source(shown, DatasetName(entry.name), folder, entry.name, extracted))

        from campaignvcs.porcelain.hooks import post_hook, pre_add_hook, pre_commit_hook

        committed = None
        with camp.transaction() as tx:
            pre_add_hook(camp, env, [s.shown for s in sources], host_name)
            protocol = "s3" if root.backend == "s3" else ""
            _stage_new_host(tx, Host(host_name, root.host or host_name, protocol, time.time_ns()))
            results = stage_sources(tx, sources, host_name, None, "")
            if message is not None and camp.staged_changes():
                committed = commit_staged(tx, message, env, before=lambda: pre_commit_hook(camp, env, message))
        warnings = post_hook(camp, "post-commit", env, commit=committed.id) if committed is not None else []
    return AddFromResult(redact(source), host_name, folder, results, read, data, warnings=warnings)


def _extract_remote(rclone, root, entry, local: str, options: Options,  # noqa: ANN001
                    fetch_metadata: bool) -> tuple[Extracted, int]:
    """Fetch what the extractor needs into ``local`` and run it; (extracted, bytes read)."""
    from campaignvcs.extract import bp5
    from campaignvcs.remote.rclone import redact
    from campaignvcs.remote.source import WHOLE_FILE_LIMIT, fetch_bp_metadata, fetch_file, file_head

    where = f"{redact(root.url).rstrip('/')}/{entry.name}"
    if entry.is_dir:
        if options.kind not in ("auto", "adios"):
            raise BadInput(f"{where}: a folder can only be an ADIOS2 BP dataset, not {options.kind}")
        read = fetch_bp_metadata(rclone, root, entry, local)
        with _named_remotely(local, where):
            return bp5.extract(local), read
    if options.kind == "adios":
        raise BadInput(f"{where}: not an ADIOS2 BP dataset (not a folder)")
    head = file_head(rclone, root, entry)
    kind = KIND_NAMES.get(options.kind) or (
        "HDF5" if head == HDF5_SIGNATURE else
        "IMAGE" if os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES else "TEXT")
    read = len(head)
    if kind == "HDF5" and not fetch_metadata:
        raise BadInput(f"{where}: HDF5 metadata is spread through the file; pass --fetch-metadata to download it "
                       f"whole ({entry.size} bytes) and keep only the metadata")
    if kind != "HDF5" and entry.size > WHOLE_FILE_LIMIT:
        raise BadInput(f"{where}: {entry.size} bytes is too big to fetch as a {kind.lower()} file")
    path = fetch_file(rclone, root, entry, local)
    try:
        with _named_remotely(path, where):
            return extract(path, kind, options), read + entry.size
    finally:
        os.unlink(path)  # an HDF5 file may be large: keep only what was extracted


@contextlib.contextmanager
def _named_remotely(local: str, where: str) -> Iterator[None]:
    """Extractor errors name the temporary copy; say the remote path instead."""
    try:
        yield
    except BadInput as exc:
        text = str(exc)
        if not text.startswith(local):
            raise
        raise type(exc)(where + text[len(local):]) from None


def _stage_new_host(tx: Transaction, host: Host) -> None:
    """Stage the remote host's file (its long name and protocol are not this machine's)."""
    path = layout.host_path(host.name)
    if tx.repo.current(path) is None:
        tx.stage_json(path, host.dumps())


def _with_listing_times(extracted: Extracted, size: int, mtime: int, override: bool) -> Extracted:
    """The main replica's size and time from the remote listing (the local copy is partial).

    With ``--datetime`` (``override``) the embedded files carry that time too, as a local
    add gives them the dataset's own time.
    """
    def main(r: ExtractedReplica) -> ExtractedReplica:
        payloads = tuple(dataclasses.replace(p, modtime=mtime) for p in r.payloads) if override else r.payloads
        return dataclasses.replace(r, size=size, mtime=mtime, payloads=payloads)

    replicas = tuple(main(r) if r.role == "main" else r for r in extracted.replicas)
    return dataclasses.replace(extracted, modtime=mtime, replicas=replicas)


def parse_datetime(value: str) -> int:
    """``2024-10-22 10:20:15 -0400`` (or ISO 8601; no zone = local time) → ns since the epoch."""
    text = value.strip()
    parsed = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in DATETIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise UsageError(f"invalid --datetime {value!r}: use e.g. '2024-10-22 10:20:15 -0400'")
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000
