"""The benchmark corpus and harness keep working: both run here at a tiny size.

The corpus must be reproducible (same seed → same bytes and modification times) and
nested like real runs; the harness must measure every row with real camp processes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys

import pytest
from helpers import requires

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
sys.path.insert(0, BENCH)

import corpus  # noqa: E402


def bench(script, *args, timeout):
    """``benchmarks/<script>.py ARGS`` in a child Python: its completed process (text output)."""
    return subprocess.run([sys.executable, os.path.join(BENCH, f"{script}.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, check=False)


def snapshot(folder):
    """Relative path → (sha1 of the bytes, mtime_ns) for every file and folder below ``folder``."""
    seen = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.stat(path)
            digest = ""
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    digest = hashlib.sha1(f.read()).hexdigest()
            seen[os.path.relpath(path, folder)] = (digest, st.st_mtime_ns)
    return seen


def test_same_seed_gives_the_same_files_and_times(tmp_path):
    a = corpus.make_corpus(str(tmp_path / "a"), 45, seed=7)
    b = corpus.make_corpus(str(tmp_path / "b"), 45, seed=7)
    assert snapshot(a.campaign) == snapshot(b.campaign)
    assert a.entries == b.entries
    c = corpus.make_corpus(str(tmp_path / "c"), 45, seed=8)
    assert snapshot(c.campaign) != snapshot(a.campaign)


def test_corpus_is_nested_like_real_runs_with_every_kind(tmp_path):
    made = corpus.make_corpus(str(tmp_path / "out"), 40, seed=0)
    assert len(made.entries) == 40
    paths = [e.path for e in made.entries]
    assert paths[:2] == ["run_0001/notes.txt", "run_0001/step_00010/fields.bp"]
    assert "run_0001/step_00100/checkpoint.h5" in paths
    assert "run_0001/step_00100/slice.png" in paths
    assert {e.kind for e in made.entries} == set(corpus.KINDS)
    bp = os.path.join(made.campaign, "run_0001", "step_00010", "fields.bp")
    assert {"md.idx", "md.0", "mmd.0", "data.0"} <= set(os.listdir(bp))
    with open(os.path.join(made.campaign, "run_0001", "step_00100", "slice.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(made.campaign, "run_0001", "step_00100", "checkpoint.h5"), "rb") as f:
        assert f.read(8) == b"\x89HDF\r\n\x1a\n"
    # a smaller corpus is the start of a larger one with the same seed
    assert corpus.plan(25, 0) == made.entries[:25]


def test_copies_are_hard_links_to_prototypes(tmp_path, monkeypatch):
    monkeypatch.setitem(corpus.PROTOTYPES, "bp5", 2)
    monkeypatch.setattr(corpus, "LINKS_PER_COPY", 3)
    made = corpus.make_corpus(str(tmp_path / "out"), 30, seed=1)
    bps = made.of_kind("bp5")
    assert len(bps) > 10 and {e.proto for e in bps} == {0, 1}
    inodes = {os.stat(os.path.join(made.campaign, e.path, "md.idx")).st_ino for e in bps}
    # 2 prototypes, each copied afresh every 3 links
    assert 2 < len(inodes) <= len(bps) // 3 + 2


def test_distinct_corpus_writes_every_dataset_and_is_reproducible(tmp_path, monkeypatch):
    monkeypatch.setitem(corpus.PROTOTYPES, "bp5", 2)  # past the prototypes, datasets must still differ
    a = corpus.make_corpus(str(tmp_path / "a"), 30, seed=3, distinct=True)
    b = corpus.make_corpus(str(tmp_path / "b"), 30, seed=3, distinct=True)
    assert a.distinct and snapshot(a.campaign) == snapshot(b.campaign)
    # the same paths as the hard-linked corpus of the seed; every dataset its own number
    assert [e.path for e in a.entries] == [e.path for e in corpus.plan(30, 3)]
    bps = a.of_kind("bp5")
    assert [e.proto for e in bps] == list(range(len(bps)))
    md = {e.path: os.stat(os.path.join(a.campaign, e.path, "md.0")) for e in bps}
    assert len({st.st_ino for st in md.values()}) == len(bps) and {st.st_nlink for st in md.values()} == {1}
    digests = set()
    for e in bps:
        with open(os.path.join(a.campaign, e.path, "md.0"), "rb") as f:
            digests.add(hashlib.sha1(f.read()).hexdigest())
    assert len(digests) == len(bps)  # the embedded metadata differs
    # the first N of a larger corpus are the corpus of N, and a smaller one is extended in place
    small = corpus.make_corpus(str(tmp_path / "c"), 12, seed=3, distinct=True)
    assert small.entries == a.entries[:12]
    grown = corpus.make_corpus(str(tmp_path / "c"), 30, seed=3, distinct=True)
    assert grown.entries == a.entries and snapshot(grown.campaign) == snapshot(a.campaign)
    # a distinct corpus is not taken for a hard-linked one
    with pytest.raises(SystemExit):
        corpus.make_corpus(str(tmp_path / "c"), 30, seed=3)


def test_corpus_command(tmp_path):
    out = tmp_path / "out"
    r = bench("corpus", out, "--datasets", "12", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"12 datasets in {out / 'campaign'}: ")
    assert (out / "corpus.json").is_file()
    r = bench("corpus", tmp_path / "d", "--datasets", "12", "--distinct", timeout=60)
    assert r.returncode == 0, r.stderr
    assert corpus.load_corpus(str(tmp_path / "d")).distinct


def test_harness_runs_every_row_at_a_tiny_size(tmp_path):
    r = bench("run", "--sizes", "12,20", "--repeat", "1", "--add-count", "5", "--hdf5-count", "2",
              "--image-count", "2", "--workdir", tmp_path / "work", "--distinct", timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    table = r.stdout
    for label in (
        "start-up: --help",
        "start-up: status of 10 datasets",
        "add 5 BP5 in one call",
        "HDF5 per file",
        "HDF5, one file in one call",
        "HDF5 extraction alone",
        "2 images with 64x64 thumbnails",
        "ADIOS2 open",
        "add; commit one dataset at 12",
        "add -m one dataset at 20",
        "status at 20",
        "build at 20",
        "archive size at 12 (distinct data)",
        "archive size at 20 (distinct data)",
        "rebuild after one change at 20",
        "push of a one-dataset change at 20",
    ):
        line = next((ln for ln in table.splitlines() if ln.startswith(f"| {label}")), None)
        assert line is not None, f"no row {label!r} in\n{table}"
        camp_cell = line.split("|")[2].strip()
        assert camp_cell.endswith((" s", "B")) or camp_cell.startswith("n/a (no camp"), line
    assert "filling the campaigns to 20 datasets" in r.stderr
    assert "distinct corpus" in r.stderr and "(distinct)" in table


@requires(importlib.util.find_spec("hpc_campaign") is not None, "hpc-campaign (pip install .[test])")
def test_camp_and_reference_runs_alternate(tmp_path):
    trace = tmp_path / "trace.tsv"
    r = bench("run", "--only", "startup", "--repeat", "4", "--workdir", tmp_path / "work", "--trace", trace,
              timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = [line.split("\t") for line in trace.read_text().splitlines()]
    for row in ("start-up: --help", "start-up: status"):
        order = [tool for key, tool, _ in runs if key == row]
        assert order == ["camp", "ref", "ref", "camp", "camp", "ref", "ref", "camp"], (row, order)


def test_unknown_measurement_is_refused(tmp_path):
    r = bench("run", "--only", "startup,nonsense", "--workdir", tmp_path, timeout=60)
    assert r.returncode != 0
    assert "unknown measurement(s) nonsense" in r.stderr


@pytest.mark.parametrize("only", ["startup"])
def test_only_runs_the_chosen_rows(tmp_path, only):
    r = bench("run", "--only", only, "--repeat", "1", "--workdir", tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| measurement")]
    assert [ln.split("|")[1].strip() for ln in rows] == [
        "start-up: --help",
        "start-up: status of 10 datasets (ref: info)",
    ]
