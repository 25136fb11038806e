"""Images (Pillow): resolution, the image itself with ``--store``, a thumbnail with ``--thumbnail``.

Thumbnails are made as hpc-campaign makes them (``Image.thumbnail`` then save in the
format of the file's suffix), so ADIOS2 shows the same ``<name>/<x>x<y>`` bytes; they
are made in memory, never in a temporary file.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import TYPE_CHECKING, cast

from campaignvcs.errors import UnreadableDataset
from campaignvcs.extract.base import Extracted, ExtractedReplica, probe_of, raw_payload, read_file

if TYPE_CHECKING:
    from PIL import Image


def _thumbnail(img: Image.Image, box: tuple[int, int], fmt: str) -> tuple[tuple[int, int], bytes]:
    """(size, bytes) of the thumbnail of ``img`` in ``fmt``.

    Pillow's own resize and save, as hpc-campaign does, for every mode they take. Pillow
    cannot resample 16-bit grey ("I;16", "I;16B": "image has wrong mode"), so those are
    resized as 32-bit grey ("I"); a mode the format cannot store (e.g. 32-bit grey as
    JPEG, CMYK as PNG, grey+alpha as JPEG) is saved in the nearest 8-bit one it can hold,
    deeper grey scaled from its own range.
    """
    small = img.copy()
    try:
        small.thumbnail(box)
    except ValueError:
        small = img.convert("I") if img.mode.startswith("I;16") else _eight_bit(img)
        small.thumbnail(box)
    out = io.BytesIO()
    try:
        small.save(out, format=fmt)
    except (OSError, ValueError, KeyError):
        out = io.BytesIO()
        _eight_bit(small).save(out, format=fmt)
    return small.size, out.getvalue()


def _eight_bit(img: Image.Image) -> Image.Image:
    """``img`` in L, LA, RGB or RGBA; 16/32-bit and float grey scaled from their min..max to 0..255."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        deep = img.convert("F")
        low, high = cast("tuple[float, float]", deep.getextrema())  # one band: (min, max)
        scale = 255.0 / (high - low) if high > low else 0.0
        return deep.point(lambda v: (v - low) * scale).convert("L")
    alpha = "A" in img.getbands() or "transparency" in img.info
    grey = img.mode in ("1", "L", "LA", "La")
    return img.convert(("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB"))


def extract(path: str, store: bool, thumbnail: tuple[int, int] | None) -> Extracted:
    """Describe an image; the thumbnail is a second replica named ``thumbnails/<path>``."""
    from PIL import Image, UnidentifiedImageError

    try:
        st = os.stat(path)  # before reading: a write after it shows in the signature (see statcache)
    except OSError as exc:
        raise UnreadableDataset(f"{path}: cannot read ({exc.strerror})") from None
    content = read_file(path)
    suffix = os.path.splitext(path)[1]
    try:
        with Image.open(io.BytesIO(content)) as img:
            img.load()
            width, height = img.size
            thumb = None
            if thumbnail is not None:
                fmt = Image.registered_extensions().get(suffix.lower(), img.format or "PNG")
                thumb = _thumbnail(img, thumbnail, fmt)
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
            probe=(probe_of(st),),
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
