"""Text (and any other plain) files: a reference, or the compressed content with ``--store``."""

from __future__ import annotations

import hashlib
import os

from campaignvcs.errors import UnreadableDataset
from campaignvcs.extract.base import Extracted, ExtractedReplica, Payload, compressed_payload, probe_of, read_file

CHUNK = 1 << 20


def extract(path: str, store: bool) -> Extracted:
    """Describe a text file; ``store`` embeds it (zlib) as hpc-campaign's ``text --store`` does."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnreadableDataset(f"{path}: cannot read ({exc.strerror})") from None
    payloads: tuple[Payload, ...] = ()
    if store:
        content = read_file(path)
        payload = compressed_payload(os.path.basename(path), content, st.st_mtime_ns)
        payloads = (payload,)
        checksum = payload.checksum
    else:
        checksum = file_sha1(path)
    replica = ExtractedReplica(size=st.st_size, mtime=st.st_mtime_ns, checksum=checksum, payloads=payloads,
                               probe=(probe_of(st),))
    return Extracted(kind="TEXT", modtime=st.st_mtime_ns, replicas=(replica,))


def file_sha1(path: str) -> str:
    """SHA-1 of a file, read in chunks so large files do not fill memory."""
    digest = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise UnreadableDataset(f"{path}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()
