"""Generate small, real example data: ADIOS2 BP5 datasets, HDF5 files, PNG images, text.

Used by the README quick start, the tests and the benchmarks, so every one of them reads
data written by the real libraries. Run ``python examples/make_data.py OUTDIR``.
"""

from __future__ import annotations

import os
import sys


def make_bp5(path: str, steps: int = 3, n: int = 10, engine: str = "BP5", seed: int = 0) -> str:
    """A BP dataset with a 1-D array ``T``, a scalar ``step`` and attributes, written by adios2."""
    import adios2
    import numpy as np

    ad = adios2.Adios()
    io = ad.declare_io(f"w{seed}")
    io.set_engine(engine)
    with adios2.Stream(io, path, "w") as stream:
        for i, _ in enumerate(stream.steps(steps)):
            stream.write("T", (np.arange(n, dtype=np.float64) + seed) * (i + 1), [n], [0], [n])
            stream.write("step", i)
            if i == 0:
                stream.write_attribute("unit", "K")
                stream.write_attribute("seed", seed)
    return path


def make_hdf5(path: str, seed: int = 0) -> str:
    """An HDF5 file with groups, attributes (also on the root), a small and a large dataset."""
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.attrs["title"] = "example"
        f.attrs["seed"] = seed
        g = f.create_group("fields")
        g.attrs["units"] = "m/s"
        g.create_dataset("small", data=np.arange(16, dtype=np.int32) + seed)
        g.create_dataset("big", data=np.ones((64, 64)) * seed, chunks=(16, 16), compression="gzip")
        f.create_group("empty")
    return path


def make_png(path: str, size: tuple[int, int] = (640, 480), seed: int = 0) -> str:
    """A PNG image with a gradient (deterministic for a seed)."""
    from PIL import Image

    w, h = size
    img = Image.new("RGB", size)
    img.putdata([((x * 255 // max(w - 1, 1) + seed) % 256, (y * 255 // max(h - 1, 1)) % 256, seed % 256)
                 for y in range(h) for x in range(w)])
    img.save(path)
    return path


def make_text(path: str, seed: int = 0) -> str:
    """A small text note."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"Run notes (seed {seed})\nInput deck: heat.in\nOutcome: converged after 42 steps.\n")
    return path


def make_example(outdir: str) -> list[str]:
    """The bundled example campaign's data: two BP5 runs, one HDF5 file, one image, one note."""
    os.makedirs(os.path.join(outdir, "run1"), exist_ok=True)
    made = [
        make_bp5(os.path.join(outdir, "run1", "heat.bp"), steps=3, seed=1),
        make_bp5(os.path.join(outdir, "run1", "pressure.bp"), steps=2, seed=2),
        make_hdf5(os.path.join(outdir, "run1", "mesh.h5"), seed=3),
        make_png(os.path.join(outdir, "run1", "plot.png"), seed=4),
        make_text(os.path.join(outdir, "run1", "notes.txt"), seed=5),
    ]
    return made


if __name__ == "__main__":
    for p in make_example(sys.argv[1] if len(sys.argv) > 1 else "data"):
        print(p)
