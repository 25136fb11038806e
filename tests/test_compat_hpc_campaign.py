"""camp build against the reference: hpc_campaign 0.7.1 and camp describe the same files alike.

Both tools record the same BP5 runs, stored note and image with thumbnail from the same
folder under the same host name; ADIOS2 must show the same variables, attributes and
data in both archives, and the reference's own ``info`` must read ours.
"""

from __future__ import annotations

import os
import subprocess
import sys

import make_data
import numpy as np
import pytest
from helpers import require_module

require_module("hpc_campaign", "the reference tool hpc-campaign (pip install .[test])")
require_module("dateutil", "python-dateutil, which hpc-campaign needs (pip install .[test])")

from test_build import adios_view, configure, table  # noqa: E402


def reference(home, cwd, *args):
    """Run ``python -m hpc_campaign manager ...`` as a user would, with this test's HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "hpc_campaign", "manager", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def both(tmp_path, clean_env, camp):
    """The same folder of data recorded by the reference and by camp: (reference .aca, our .aca, data)."""
    data = tmp_path / "data"
    data.mkdir()
    make_data.make_bp5(str(data / "a.bp"), steps=4, n=12, seed=7)
    make_data.make_bp5(str(data / "b.bp"), steps=2, n=5, seed=8)
    make_data.make_text(str(data / "notes.txt"), seed=9)
    make_data.make_png(str(data / "plot.png"), size=(200, 150), seed=10)
    store = tmp_path / "store"
    store.mkdir()  # the reference refuses a missing store
    configure(clean_env, store)

    ref = tmp_path / "ref.aca"
    r = reference(
        clean_env,
        data,
        ref,
        "data",
        "a.bp",
        "b.bp",
        "text",
        "--store",
        "notes.txt",
        "image",
        "plot.png",
        "--thumbnail",
        "64",
        "64",
    )
    assert r.returncode == 0 and ref.is_file(), r.stdout + r.stderr

    campaign = tmp_path / "campaign"
    camp("init", campaign, "--name", "compat", "--host", "laptop")
    camp("--repo", campaign, "add", "a.bp", "b.bp", cwd=data)
    camp("--repo", campaign, "add", "--store", "notes.txt")
    camp("--repo", campaign, "add", "--thumbnail", "64", "64", "plot.png")
    camp("--repo", campaign, "commit", "-m", "compat")
    ours = tmp_path / "ours.aca"
    camp("--repo", campaign, "build", "-o", ours)
    return ref, ours, data


def test_adios2_shows_the_same_variables_attributes_and_data(both):
    ref, ours, _data = both
    ref_vars, ref_attrs, ref_data = adios_view(ref)
    our_vars, our_attrs, our_data = adios_view(ours)
    assert sorted(our_vars) == sorted(ref_vars)
    assert sorted(our_vars) == [
        "a.bp/T",
        "a.bp/step",
        "b.bp/T",
        "b.bp/step",
        "notes.txt",
        "plot.png/200x150",
        "plot.png/64x48",
    ]
    for name, info in ref_vars.items():
        for field in ("Type", "Shape", "AvailableStepsCount", "Min", "Max", "SingleValue"):
            assert our_vars[name].get(field) == info.get(field), (name, field)
        assert our_data[name].dtype == ref_data[name].dtype
        assert np.array_equal(our_data[name], ref_data[name]), name
    assert our_attrs == ref_attrs


def test_archives_agree_row_by_row_where_the_format_fixes_the_value(both):
    """Names, kinds, sizes, times and embedded bytes match; only ids, uuids and 'now' may differ."""
    ref, ours, data = both
    for t in ("host", "directory"):
        assert [row[:2] for row in table(ours, t)] == [row[:2] for row in table(ref, t)], t
    # A BP dataset's time: camp takes md.idx's (rewritten at every appended step), the reference
    # the folder's (set when the last file was created). The writer makes both within one clock
    # tick of the file system, which is sometimes the next tick: equal to within 0.1 s.
    tick = 100_000_000

    def near(ours_rows, ref_rows):
        assert [(r[0], r[2]) for r in ours_rows] == [(r[0], r[2]) for r in ref_rows]
        for a, b in zip(ours_rows, ref_rows):
            if a[2] == "ADIOS" or a[0].endswith(".bp"):
                assert abs(a[1] - b[1]) < tick, (a, b)
            else:
                assert a[1] == b[1], (a, b)

    near([(d[0], d[2], d[4]) for d in table(ours, "dataset")],
         sorted((d[0], d[2], d[4]) for d in table(ref, "dataset")))

    def replicas(path):
        # (dataset, replica, size, modtime); the reference stamps a thumbnail with the time it ran
        rows = [
            (
                table(path, "dataset")[r[0] - 1][0],
                r[4],
                r[8],
                None if r[4].startswith("thumbnails/") else r[5],
            )
            for r in table(path, "replica")
        ]
        return sorted(rows)

    ours_reps, ref_reps = replicas(ours), replicas(ref)
    assert [r[:3] for r in ours_reps] == [r[:3] for r in ref_reps]
    for a, b in zip(ours_reps, ref_reps):
        assert (abs(a[3] - b[3]) < tick) if a[1].endswith(".bp") else a[3] == b[3], (a, b)

    def files(path):
        return sorted((f[1], f[2], f[3], f[4], f[6], f[7]) for f in table(path, "file"))

    assert files(ours) == files(ref)
    assert sorted(r[1:] for r in table(ours, "resolution")) == sorted(r[1:] for r in table(ref, "resolution"))


def test_reference_info_reads_our_archive(both, clean_env):
    _ref, ours, data = both
    r = reference(clean_env, data, ours, "info", "-r", "-f")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ADIOS Campaign Archive, version 0.7" in r.stdout
    for name in ("a.bp", "b.bp", "notes.txt", "plot.png", "thumbnails/plot.png", "metadata", "64x48.png"):
        assert name in r.stdout, name
    assert "Traceback" not in r.stderr
