"""Datasets that live behind an rclone path: list them and fetch just their metadata files.

``camp add --from`` records a BP5 dataset in an S3 bucket or on another cluster without
copying its data: the listing gives sizes and times, and only the files ADIOS2 embeds
(``md.0``, ``mmd.0``, ``md.idx``, ``profiling.json``) are downloaded into a local folder
that the ordinary extractors then read. Small files (text, images) come whole; an HDF5
file comes whole only when asked (its metadata is spread through the file).
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime

from campaignvcs.errors import BadInput
from campaignvcs.remote.layout import is_local, join, redact
from campaignvcs.remote.rclone import Rclone

BP_METADATA = ("md.0", "mmd.0", "md.idx", "profiling.json")
"""What ADIOS2 embeds of a BP dataset (md.0/md.idx also for BP4); data.* never travels."""
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
WHOLE_FILE_LIMIT = 64 * 1024 * 1024
"""Text and images are fetched whole; beyond this size camp refuses rather than download data."""
SMALL_FILE = 1024 * 1024
"""Files up to this size travel over rclone's kept-open connection; larger ones get their own transfer."""
_CONNECTION = re.compile(r"^:(?P<type>[A-Za-z0-9]+)(?P<opts>(?:,(?:[^:'\"]|'[^']*'|\"[^\"]*\")*)?):(?P<path>.*)$", re.S)
_CONFIGURED = re.compile(r"^(?P<name>[A-Za-z0-9_.][A-Za-z0-9_. -]*):(?P<path>.*)$", re.S)
_HOST_OPT = re.compile(r"(?:^|,)host=(?P<q>['\"]?)(?P<host>[^,'\":]+)(?P=q)")


@dataclass(frozen=True)
class SourceRoot:
    """An rclone path split into what camp records: the backend type, a host guess and the folder."""

    url: str
    backend: str
    """rclone backend type: ``s3``, ``sftp``, ``webdav``, ``local``, ..."""
    host: str | None
    """The host name to record when ``--host`` is not given (None: ask for it)."""
    path: str
    """The folder part of the URL (recorded as the replica's directory by default)."""


@dataclass(frozen=True)
class RemoteEntry:
    """A dataset found below a source root: a BP folder or a single file."""

    name: str
    is_dir: bool
    size: int
    mtime: int
    """ns, from the listing (BP: md.idx's, as camp records for a local BP dataset)."""
    files: tuple[str, ...]
    """For a folder: the names of the files directly in it."""


def parse_root(url: str, rclone: Rclone) -> SourceRoot:
    """Split an rclone path; configured remotes are looked up for their backend type."""
    if not url or "\0" in url or "\n" in url:
        raise BadInput(f"invalid rclone path: {url!r}")
    if url.startswith("-"):
        raise BadInput(f"invalid rclone path: {url!r} (it would be read as an rclone option)")
    if is_local(url):
        return SourceRoot(url, "local", None, os.path.abspath(url))
    m = _CONNECTION.match(url)
    if m:
        host = _HOST_OPT.search(m.group("opts"))
        return SourceRoot(url, m.group("type"), host.group("host") if host else None, m.group("path"))
    m = _CONFIGURED.match(url)
    if not m:
        raise BadInput(f"invalid rclone path: {redact(url)}")
    name = m.group("name")
    backend = rclone.remote_types().get(name)
    if backend is None:
        raise BadInput(f"no rclone remote named {name!r} (rclone config, or RCLONE_CONFIG, defines them)")
    return SourceRoot(url, backend, name, m.group("path"))


def recorded_dir(root: SourceRoot, name: str) -> str:
    """The directory to record for dataset ``name``: the root's folder (object stores: ``/bucket/...``)."""
    folder = root.path
    if root.backend == "s3" and not folder.startswith("/"):
        folder = "/" + folder
    return folder.rstrip("/") or "/"


def find(rclone: Rclone, root: SourceRoot, name: str) -> RemoteEntry:
    """What ``name`` is below the root: a folder (its files) or a file; one-line error if neither."""
    if not name or "\0" in name or name.startswith("/") or ".." in name.split("/"):
        raise BadInput(f"invalid dataset path {name!r}: give a path relative to the --from folder")
    name = name.strip("/")
    found = rclone.stat(root.url, name)
    if found is None:
        raise BadInput(f"{join(redact(root.url), name)}: no such file or folder")
    if not found.get("IsDir"):
        return RemoteEntry(name, False, _int(found.get("Size")), _ns(found.get("ModTime")), ())
    listing = rclone.lsjson(root.url, name)
    files = {str(e.get("Name")): e for e in listing}
    size = sum(_int(e.get("Size")) for e in listing)
    idx = files.get("md.idx")
    mtime = _ns(idx.get("ModTime")) if idx else max((_ns(e.get("ModTime")) for e in listing), default=0)
    return RemoteEntry(name, True, size, mtime, tuple(sorted(files)))


def fetch_bp_metadata(rclone: Rclone, root: SourceRoot, entry: RemoteEntry, local: str) -> int:
    """Download a BP folder's metadata files into ``local``; returns the bytes read."""
    if "md.idx" not in entry.files or not any(f.startswith("data.") for f in entry.files):
        raise BadInput(f"{join(redact(root.url), entry.name)}: folder is not an ADIOS2 BP dataset "
                       "(needs md.idx and data.0)")
    wanted = [f for f in BP_METADATA if f in entry.files]
    os.makedirs(local, exist_ok=True)
    rclone.fetch_small(join(root.url, entry.name), wanted, local)
    return sum(os.path.getsize(os.path.join(local, f)) for f in wanted)


def file_head(rclone: Rclone, root: SourceRoot, entry: RemoteEntry, count: int = 8) -> bytes:
    """The first bytes of a remote file (to tell HDF5 from text)."""
    return rclone.read_head(root.url, entry.name, count)


def fetch_file(rclone: Rclone, root: SourceRoot, entry: RemoteEntry, local_dir: str) -> str:
    """Download one whole file into ``local_dir``; returns the local path."""
    parent, base = posixpath.split(entry.name)
    os.makedirs(local_dir, exist_ok=True)
    if entry.size <= SMALL_FILE:
        rclone.fetch_small(join(root.url, parent), [base], local_dir)
    else:
        rclone.download(join(root.url, parent), [base], local_dir, entry.size)
    return os.path.join(local_dir, base)


_RFC3339 = re.compile(r"^(?P<base>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d\d:\d\d)$")


def _ns(value: object) -> int:
    """rclone's RFC 3339 ModTime (nanosecond precision where the backend has it) → ns; 0 if absent."""
    m = _RFC3339.match(str(value or ""))
    if not m:
        return 0
    tz = "+00:00" if m.group("tz") == "Z" else m.group("tz")
    seconds = int(datetime.fromisoformat(m.group("base") + tz).timestamp())
    frac = (m.group("frac") or "0")[:9].ljust(9, "0")
    return seconds * 1_000_000_000 + int(frac)


def _int(value: object) -> int:
    """A size from rclone's listing (a JSON number; missing or null counts as 0)."""
    return int(value) if isinstance(value, int | float | str) and value != "" else 0
