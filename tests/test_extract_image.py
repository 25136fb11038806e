"""Thumbnails and stored images of every Pillow mode a scientist's PNG/TIFF/JPEG may have."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from campaignvcs.extract import image


def make(mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray((np.arange(64 * 48, dtype=np.uint16) * 20).reshape(48, 64))
    if mode == "I":
        return Image.fromarray((np.arange(64 * 48, dtype=np.int32) * 1000).reshape(48, 64))
    if mode == "F":
        return Image.fromarray(np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64))
    if mode == "P":
        img = Image.new("P", (64, 48))
        img.putpalette([i % 256 for i in range(768)])
        img.putdata([i % 7 for i in range(64 * 48)])
        return img
    colour = {"LA": (100, 128), "CMYK": (10, 20, 30, 40), "1": 1, "RGBA": (1, 2, 3, 4), "L": 9}[mode]
    return Image.new(mode, (64, 48), colour)


CASES = [
    ("I;16", ".png"),
    ("I;16", ".tif"),
    ("I", ".tif"),
    ("F", ".tif"),
    ("P", ".png"),
    ("P", ".gif"),
    ("LA", ".png"),
    ("CMYK", ".jpg"),
    ("CMYK", ".tif"),
    ("1", ".png"),
    ("1", ".bmp"),
    ("RGBA", ".png"),
    ("L", ".jpg"),
]


@pytest.mark.parametrize("mode, suffix", CASES)
def test_every_mode_gets_a_thumbnail_and_can_be_stored(tmp_path, mode, suffix):
    path = tmp_path / f"img{suffix}"
    extra = {"transparency": 0} if mode == "P" else {}
    make(mode).save(path, **extra)
    extracted = image.extract(str(path), store=True, thumbnail=(16, 16))
    main, thumb = extracted.replicas
    assert main.resolution == (64, 48) and main.payloads[0].data == path.read_bytes()
    assert thumb.role == "thumbnail" and thumb.resolution == (16, 12)
    with Image.open(io.BytesIO(thumb.payloads[0].data)) as small:
        small.load()
        assert small.size == (16, 12)
        assert small.format == Image.open(path).format  # the format of the file's suffix


def test_sixteen_bit_grey_png_thumbnail_keeps_the_picture(tmp_path, campaign, camp):
    """The 16-bit grey PNG of issue 13 item 9: camp add --thumbnail works and the gradient survives."""
    make("I;16").save(tmp_path / "depth.png")
    r = camp("--repo", campaign, "add", "--thumbnail", "16", "16", "depth.png", cwd=tmp_path)
    assert r.exit_code == 0
    status = json.loads(camp("--repo", campaign, "status", "--json").output)
    assert "depth.png" in json.dumps(status)
    thumb = image.extract(str(tmp_path / "depth.png"), store=False, thumbnail=(16, 16)).replicas[1]
    with Image.open(io.BytesIO(thumb.payloads[0].data)) as small:
        low, high = small.convert("L").getextrema()
    assert high - low > 100  # a gradient, not a black or white square


def test_ordinary_rgb_thumbnails_are_unchanged(tmp_path):
    """Modes Pillow handles keep the bytes hpc-campaign makes (Image.thumbnail, then save)."""
    path = tmp_path / "rgb.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(path)
    thumb = image.extract(str(path), store=False, thumbnail=(16, 16)).replicas[1].payloads[0].data
    with Image.open(path) as img:
        img.thumbnail((16, 16))
        out = io.BytesIO()
        img.save(out, format="PNG")
    assert thumb == out.getvalue()
