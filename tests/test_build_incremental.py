"""Incremental camp build: patching the previous archive gives what a full build gives."""

from __future__ import annotations

import json
import shutil
import sqlite3

import make_data
import pytest
from test_build import adios_view, store  # noqa: F401  (fixture)


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    (folder / "other").mkdir(parents=True)
    make_data.make_bp5(str(folder / "heat.bp"), steps=3, n=10, seed=1)
    make_data.make_bp5(str(folder / "pressure.bp"), steps=2, n=10, seed=2)
    make_data.make_text(str(folder / "notes.txt"), seed=3)
    shutil.copy(folder / "notes.txt", folder / "same-notes.txt")  # identical file rows, shared
    make_data.make_png(str(folder / "plot.png"), size=(200, 150), seed=4)
    make_data.make_hdf5(str(folder / "mesh.h5"), seed=5)
    make_data.make_bp5(str(folder / "other" / "lonely.bp"), steps=2, n=5, seed=6)
    return folder


def logical(aca):
    """An archive's content with every row id replaced by what it points at."""
    with sqlite3.connect(aca) as con:
        q = con.execute
        out = {
            "info": q("select id, name, version, modtime from info").fetchall(),
            "hosts": sorted(q("select hostname, longhostname, modtime, deltime, default_protocol from host")),
            "dirs": sorted(q("select h.hostname, d.name, d.modtime, d.deltime from directory d "
                             "join host h on h.rowid = d.hostid")),
            "keys": sorted(q("select keyid from key")),
            "datasets": sorted(q("select name, uuid, modtime, deltime, fileformat, tsid, tsorder from dataset")),
            "replicas": sorted(q(
                "select d.name, h.hostname, dr.name, coalesce(a.tarname, '-'), r.name, r.modtime, r.deltime, "
                "coalesce(k.keyid, ''), r.size from replica r join dataset d on d.rowid = r.datasetid "
                "join host h on h.rowid = r.hostid join directory dr on dr.rowid = r.dirid "
                "left join archive a on a.rowid = r.archiveid left join key k on k.rowid = r.keyid")),
            "files": sorted(q(
                "select d.name, h.hostname, r.name, f.name, f.compression, f.lenorig, f.lencompressed, f.modtime, "
                "f.checksum, f.data from repfiles rf join replica r on r.rowid = rf.replicaid "
                "join dataset d on d.rowid = r.datasetid join host h on h.rowid = r.hostid "
                "join file f on f.fileid = rf.fileid")),
            "resolution": sorted(q("select d.name, r.name, x, y from resolution s join replica r on r.rowid = "
                                   "s.replicaid join dataset d on d.rowid = r.datasetid")),
            "archives": sorted(q("select dr.name, a.tarname, a.system from archive a "
                                 "join directory dr on dr.rowid = a.dirid")),
            "series": sorted(q("select tsid, name from timeseries")),
        }
        # ADIOS2 needs dense ids; nothing may be left unreferenced
        for table in ("host", "directory", "key"):
            ids = [r[0] for r in q(f"select rowid from {table} order by rowid")]  # noqa: S608
            assert ids == list(range(1, len(ids) + 1)), table
        assert q("select count(*) from file where fileid not in (select fileid from repfiles)").fetchone()[0] == 0
        assert q("select count(*) from replica where datasetid not in (select rowid from dataset)").fetchone()[0] == 0
        assert q("select count(*) from repfiles where replicaid not in (select rowid from replica)").fetchone()[0] == 0
    return out


def build(camp, repo, *args):
    return json.loads(camp("--repo", repo, "build", "--json", *args).output)


def same_as_full(camp, repo, tmp_path, built, *options):
    """The patched archive equals a full build of the same commit with the same options."""
    full = tmp_path / "full.aca"
    assert not build(camp, repo, "-o", full, "--full", *options)["incremental"]
    assert logical(built) == logical(full)


def test_each_kind_of_change_patches_to_what_a_full_build_writes(camp, campaign, store, data, tmp_path):
    aca = store / "proj" / "run_001.aca"
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", "mesh.h5", cwd=data)
    camp("--repo", campaign, "add", "lonely.bp", cwd=data / "other")  # the only dataset in its directory
    camp("--repo", campaign, "add", "--store", "notes.txt", "same-notes.txt", cwd=data)
    camp("--repo", campaign, "add", "--thumbnail", "64", "64", "plot.png", cwd=data)
    camp("--repo", campaign, "commit", "-m", "first")
    first = build(camp, campaign)
    assert not first["incremental"]
    before = aca.read_bytes()

    steps = [
        # (what, commands, datasets rewritten)
        ("a new dataset", [("add", "-m", "new", "--store", "extra.txt")], 1),
        ("replicas in a new directory", [
            ("replica", "add", "heat.bp", "--host", "laptop", "--dir", "/archive/run1", "--no-check"),
            ("replica", "add", "pressure.bp", "--host", "laptop", "--dir", "/archive/run1", "--no-check"),
            ("commit", "-m", "copies")], 2),
        ("changed embedded metadata (steps appended)", [("add", "-m", "steps", "heat.bp")], 1),
        ("one of two identical files changed", [("add", "-m", "notes", "--store", "notes.txt")], 1),
        ("a tombstoned replica", [("rm", "heat.bp", "--replica", "laptop:/archive/run1"),
                                  ("commit", "-m", "rm copy")], 1),
        ("a removed dataset in a shared directory", [("rm", "same-notes.txt"), ("commit", "-m", "rm")], 1),
    ]
    (data / "extra.txt").write_text("extra\n")
    for what, commands, rewritten in steps:
        if what.startswith("changed embedded"):
            shutil.rmtree(data / "heat.bp")
            make_data.make_bp5(str(data / "heat.bp"), steps=5, n=10, seed=1)
        if what.startswith("one of two"):
            (data / "notes.txt").write_text("new notes\n")
        for c in commands:
            camp("--repo", campaign, *c, cwd=data)
        result = build(camp, campaign)
        assert (result["incremental"], result["rewritten"]) == (True, rewritten), what
        same_as_full(camp, campaign, tmp_path, aca)
    assert aca.read_bytes() != before

    # a change a patch cannot express keeps the archive right by building in full
    camp("--repo", campaign, "rm", "lonely.bp", cwd=data)  # its directory is left unused
    camp("--repo", campaign, "commit", "-m", "rm lonely")
    assert not build(camp, campaign)["incremental"]
    same_as_full(camp, campaign, tmp_path, aca)
    camp("--repo", campaign, "archive", "add", "HPSS", "tape", "/archive")  # a host manifest changes
    camp("--repo", campaign, "commit", "-m", "tape")
    assert not build(camp, campaign)["incremental"]
    same_as_full(camp, campaign, tmp_path, aca)
    camp("--repo", campaign, "timeseries", "series", "heat.bp")
    camp("--repo", campaign, "commit", "-m", "series")
    assert not build(camp, campaign)["incremental"]
    shutil.rmtree(data / "heat.bp")  # a series member changes: its order in the series is rebuilt in full
    make_data.make_bp5(str(data / "heat.bp"), steps=2, n=10, seed=1)
    camp("--repo", campaign, "add", "-m", "member", "heat.bp", cwd=data)
    assert not build(camp, campaign)["incremental"]
    same_as_full(camp, campaign, tmp_path, aca)
    with sqlite3.connect(aca) as con:
        assert con.execute("select tsid, tsorder from dataset where name = 'heat.bp'").fetchone() == (1, 0)
    # --full, and other options, never patch
    camp("--repo", campaign, "add", "-m", "x", "--store", "same-notes.txt", cwd=data)
    (data / "same-notes.txt").write_text("changed too\n")
    camp("--repo", campaign, "add", "-m", "y", "--store", "same-notes.txt", cwd=data)
    assert not build(camp, campaign, "--full")["incremental"]
    assert not build(camp, campaign, "--keep-deleted")["incremental"]  # the archive was built with omit
    assert build(camp, campaign, "--keep-deleted")["incremental"]       # ... now it was built with keep
    same_as_full(camp, campaign, tmp_path, aca, "--keep-deleted")


def test_adios2_reads_the_changed_dataset_after_a_patch(camp, campaign, data, tmp_path, store):
    readable = tmp_path / "readable.aca"
    camp("--repo", campaign, "add", "-m", "first", "heat.bp", "pressure.bp", "mesh.h5", cwd=data)
    build(camp, campaign, "-o", readable, "--exclude-kind", "HDF5")
    shutil.rmtree(data / "heat.bp")
    make_data.make_bp5(str(data / "heat.bp"), steps=5, n=10, seed=1)
    camp("--repo", campaign, "add", "-m", "more steps", "heat.bp", cwd=data)
    result = build(camp, campaign, "-o", readable, "--exclude-kind", "HDF5")
    assert result["incremental"] and result["rewritten"] == 1 and result["datasets"] == 2
    variables, _attributes, values = adios_view(readable)
    assert variables["heat.bp/T"]["AvailableStepsCount"] == "5"
    assert values["heat.bp/T"].shape == (50,)
    assert "mesh.h5" not in str(sorted(variables))


def test_an_archive_from_elsewhere_is_never_patched(camp, campaign, data, tmp_path, store):
    other = tmp_path / "other"
    camp("init", other, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", other, "add", "-m", "theirs", "pressure.bp", cwd=data)
    build(camp, other)  # the same store path, built by another repository
    camp("--repo", campaign, "add", "-m", "ours", "heat.bp", cwd=data)
    assert not build(camp, campaign)["incremental"]
    with sqlite3.connect(store / "proj" / "run_001.aca") as con:
        assert [r[0] for r in con.execute("select name from dataset")] == ["heat.bp"]
