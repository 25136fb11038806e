"""Images (Pillow): resolution, the image itself with ``--store``, a thumbnail with ``--thumbnail``.

Thumbnails are made as hpc-campaign makes them (``Image.thumbnail`` then save in the
format of the file's suffix), so ADIOS2 shows the same ``<name>/<x>x<y>`` bytes; they
are made in memory, never in a temporary file.
"""

from __future__ import annotations

import hashlib
import io
import os

from campaignvcs.errors import UnreadableDataset
from campaignvcs.extract import Extracted, ExtractedReplica, raw_payload, read_file


def extract(path: str, store: bool, thumbnail: tuple[int, int] | None) -> Extracted:
    """Describe an image; the thumbnail is a second replica named ``thumbnails/<path>``."""
    from PIL import Image, UnidentifiedImageError

    content = read_file(path)
    st = os.stat(path)
    suffix = os.path.splitext(path)[1]
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.load()
            width, height = img.size
            thumb = None
            if thumbnail is not None:
                small = img.copy()
                small.thumbnail(thumbnail)
                out = io.BytesIO()
                fmt = Image.registered_extensions().get(suffix.lower(), img.format or "PNG")
                small.save(out, format=fmt)
                thumb = (small.size, out.getvalue())
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UnreadableDataset(f"{path}: not a readable image ({reason})") from None
    payloads = (raw_payload(f"{width}x{height}{suffix}", content, st.st_mtime_ns),) if store else ()
    replicas = [
        ExtractedReplica(
            size=st.st_size,
            mtime=st.st_mtime_ns,
            checksum=hashlib.sha1(content).hexdigest(),
            payloads=payloads,
            resolution=(width, height),
        )
    ]
    if thumb is not None:
        (tw, th), data = thumb
        # The thumbnail's time is the image's, so re-adding an unchanged image changes nothing.
        payload = raw_payload(f"{tw}x{th}{suffix}", data, st.st_mtime_ns)
        replicas.append(
            ExtractedReplica(
                size=len(data),
                mtime=st.st_mtime_ns,
                checksum=payload.checksum,
                payloads=(payload,),
                resolution=(tw, th),
                role="thumbnail",
            )
        )
    return Extracted(kind="IMAGE", modtime=st.st_mtime_ns, replicas=tuple(replicas))
