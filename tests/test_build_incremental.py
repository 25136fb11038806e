"""Incremental camp build: patching the previous archive gives what a full build gives."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3

import make_data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_build import adios_view, commit_manifests, configure, manifest
from test_replicas import make_tar

OPTIONS = ("--omit-deleted", "--keep-deleted")


@pytest.fixture
def store(clean_env, tmp_path):
    """The campaign store of config.yaml, where camp build writes by default."""
    path = tmp_path / "store"
    configure(clean_env, path)
    return path


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    (folder / "other").mkdir(parents=True)
    make_data.make_bp5(str(folder / "heat.bp"), steps=3, n=10, seed=1)
    make_data.make_bp5(str(folder / "pressure.bp"), steps=2, n=10, seed=2)
    make_data.make_text(str(folder / "notes.txt"), seed=3)
    shutil.copy(folder / "notes.txt", folder / "same-notes.txt")
    make_data.make_png(str(folder / "plot.png"), size=(200, 150), seed=4)
    make_data.make_hdf5(str(folder / "mesh.h5"), seed=5)
    make_data.make_bp5(str(folder / "other" / "lonely.bp"), steps=2, n=5, seed=6)
    return folder


def logical(aca):
    """An archive's content with every row id replaced by what it points at.

    Host rows keep their order: ADIOS2 prefers unlisted hosts by rowid. The file table is
    compared as a multiset of rows, so a patch must share identical rows as a full build does.
    """
    with sqlite3.connect(aca) as con:
        q = con.execute
        replica = ("join replica r on r.rowid = x.replicaid join dataset d on d.rowid = r.datasetid "
                   "join host h on h.rowid = r.hostid join directory dr on dr.rowid = r.dirid")
        out = {
            "info": q("select id, name, version, modtime from info").fetchall(),
            "hosts": q("select rowid, hostname, longhostname, modtime, deltime, default_protocol from host "
                       "order by rowid").fetchall(),
            "dirs": sorted(q("select h.hostname, d.name, d.modtime, d.deltime from directory d "
                             "join host h on h.rowid = d.hostid")),
            "keys": sorted(q("select keyid from key")),
            "datasets": sorted(q("select name, uuid, modtime, deltime, fileformat, tsid, tsorder "
                                 "from dataset")),
            "replicas": sorted(q(
                "select d.name, h.hostname, dr.name, coalesce(a.tarname, '-'), r.name, r.modtime, r.deltime, "
                "coalesce(k.keyid, ''), r.size from replica r join dataset d on d.rowid = r.datasetid "
                "join host h on h.rowid = r.hostid join directory dr on dr.rowid = r.dirid "
                "left join archive a on a.rowid = r.archiveid left join key k on k.rowid = r.keyid")),
            "repfiles": sorted(q(
                "select d.name, h.hostname, dr.name, r.name, f.name, f.compression, f.lenorig, "
                "f.lencompressed, f.modtime, f.checksum, f.data "
                f"from repfiles x {replica} join file f on f.fileid = x.fileid")),
            "file rows": sorted(q("select name, compression, lenorig, lencompressed, modtime, checksum, data "
                                  "from file")),
            "resolution": sorted(q(f"select d.name, h.hostname, dr.name, r.name, x, y "
                                   f"from resolution x {replica}")),
            "accuracy": sorted(q(f"select d.name, h.hostname, dr.name, r.name, accuracy, norm, relative "
                                 f"from accuracy x {replica}")),
            "tar index": sorted(q(
                "select d.name, h.hostname, dr.name, r.name, a.tarname, x.filename, x.offset, "
                f"x.offset_data, x.size from archiveidx x {replica} "
                "join archive a on a.rowid = x.archiveid")),
            "archives": sorted(q("select h.hostname, dr.name, a.tarname, a.system, a.notes from archive a "
                                 "join directory dr on dr.rowid = a.dirid "
                                 "join host h on h.rowid = dr.hostid")),
            "series": sorted(q("select tsid, name from timeseries")),
            "provenance": {k: v for k, v in q("select key, value from camp_build") if k != "commit"},
        }
        # ADIOS2 needs dense ids; nothing may be left unreferenced
        for table in ("host", "directory", "key"):
            ids = [r[0] for r in q(f"select rowid from {table} order by rowid")]  # noqa: S608
            assert ids == list(range(1, len(ids) + 1)), table
        for orphans in ("select count(*) from file where fileid not in (select fileid from repfiles)",
                        "select count(*) from replica where datasetid not in (select rowid from dataset)",
                        "select count(*) from repfiles where replicaid not in (select rowid from replica)",
                        "select count(*) from archiveidx where replicaid not in (select rowid from replica)",
                        "select count(*) from resolution where replicaid not in (select rowid from replica)"):
            assert q(orphans).fetchone()[0] == 0, orphans
        assert q("pragma integrity_check").fetchone()[0] == "ok"
        assert q("pragma journal_mode").fetchone()[0] == "delete"
    return out


def build(camp, repo, *args):
    return json.loads(camp("--repo", repo, "build", "--json", *args).output)


def same_as_full(camp, repo, tmp_path, built, result, *options):
    """The patched archive equals a full build of the same commit with the same options."""
    full = tmp_path / "full.aca"
    expected = build(camp, repo, "-o", full, "--full", *options)
    assert not expected["incremental"]
    assert logical(built) == logical(full)
    counts = ("commit", "datasets", "replicas", "files", "warnings", "left_out")
    assert {k: result[k] for k in counts} == {k: expected[k] for k in counts}


@pytest.mark.parametrize("option", OPTIONS)
def test_each_kind_of_change_patches_to_what_a_full_build_writes(
        camp, campaign, store, data, tmp_path, option):
    aca = store / "proj" / "run_001.aca"
    keep = option == "--keep-deleted"
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", "mesh.h5", cwd=data)
    camp("--repo", campaign, "add", "lonely.bp", cwd=data / "other")  # the only dataset in its directory
    camp("--repo", campaign, "add", "--store", "notes.txt", "same-notes.txt", cwd=data)
    camp("--repo", campaign, "add", "--thumbnail", "64", "64", "plot.png", cwd=data)
    camp("--repo", campaign, "archive", "add", "HPSS", "tape", "/tape")
    camp("--repo", campaign, "archive", "add", "https", "web", "/web", "--long-host-name", "www.example.org")
    camp("--repo", campaign, "commit", "-m", "first")
    first = build(camp, campaign, option)
    assert not first["incremental"]
    before = aca.read_bytes()
    key = tmp_path / "heat.key"
    camp("key", "generate", key)

    def twin():
        shutil.copytree(data / "pressure.bp", data / "twin.bp")  # same bytes and times: the same file rows

    def more_steps():
        shutil.rmtree(data / "heat.bp")
        make_data.make_bp5(str(data / "heat.bp"), steps=5, n=10, seed=1)

    def new_pressure():
        shutil.rmtree(data / "pressure.bp")
        make_data.make_bp5(str(data / "pressure.bp"), steps=4, n=10, seed=9)

    steps = [
        # (what, prepare, commands, datasets rewritten)
        ("a new dataset", lambda: (data / "extra.txt").write_text("extra\n"),
         [("add", "-m", "new", "--store", "extra.txt")], 1),
        ("an identical copy of a dataset", twin, [("add", "-m", "twin", "twin.bp")], 1),
        ("replicas in a new directory (one of them with shared file rows)", None, [
            ("replica", "add", "heat.bp", "--host", "laptop", "--dir", "/archive/run1", "--no-check"),
            ("replica", "add", "pressure.bp", "--host", "laptop", "--dir", "/archive/run1", "--no-check"),
            ("commit", "-m", "copies")], 2),
        ("changed embedded metadata (steps appended)", more_steps, [("add", "-m", "steps", "heat.bp")], 1),
        ("a dataset whose file rows its twin shares changes", new_pressure,
         [("add", "-m", "pressure", "pressure.bp")], 1),
        ("one of two identical texts changes", lambda: (data / "notes.txt").write_text("new notes\n"),
         [("add", "-m", "notes", "--store", "notes.txt")], 1),
        ("an image with another thumbnail", None,
         [("add", "-m", "thumb", "--thumbnail", "32", "32", "plot.png")], 1),
        ("an encrypted dataset (a new key row)", None,
         [("add", "-m", "secret", "-k", key, "--store", "extra.txt")], 1),
        ("a tombstoned replica", None, [("rm", "heat.bp", "--replica", "laptop:/archive/run1"),
                                        ("commit", "-m", "rm copy")], 1),
        ("a removed dataset in a shared directory", None,
         [("rm", "same-notes.txt"), ("commit", "-m", "rm")], 1),
        # what ADIOS2 needs (aca/rules.py): the same rows and the same warnings as a full build
        ("a dataset moved to tape (left out: ADIOS2 cannot read it)", None,
         [("archive", "replica", "twin.bp", "tape:/tape", "--move"), ("commit", "-m", "to tape")], 1),
        ("a copy on the web (its metadata split into md.* files)", None,
         [("archive", "replica", "heat.bp", "web:/web"), ("commit", "-m", "published")], 1),
        ("an unrelated change keeps the warnings of the others", lambda: (data / "extra2.txt").write_text("x\n"),
         [("add", "-m", "extra", "--store", "extra2.txt")], 1),
    ]
    files = first["files"]
    for what, prepare, commands, rewritten in steps:
        if prepare:
            prepare()
        for c in commands:
            camp("--repo", campaign, *c, cwd=data)
        result = build(camp, campaign, option)
        assert (result["incremental"], result["rewritten"]) == (True, rewritten), what
        if "tape" in what or "unrelated" in what:
            assert result["left_out"] == ["twin.bp"], what
        same_as_full(camp, campaign, tmp_path, aca, result, option)
        if what.startswith("an identical copy"):
            assert result["files"] == files, "the copy shares the original's file rows"
        files = result["files"]
    assert aca.read_bytes() != before

    # the last user of a directory or key goes: a full build drops the row (ids stay dense), unless kept
    # (--keep-deleted keeps a text's tombstone, never an ADIOS dataset's: ADIOS2 would read it as live)
    camp("--repo", campaign, "rm", "lonely.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "rm lonely")
    assert build(camp, campaign, option)["incremental"] is False
    same_as_full(camp, campaign, tmp_path, aca, build(camp, campaign, option), option)
    camp("--repo", campaign, "rm", "extra.txt", cwd=data)
    camp("--repo", campaign, "commit", "-m", "rm secret")
    assert build(camp, campaign, option)["incremental"] == keep
    same_as_full(camp, campaign, tmp_path, aca, build(camp, campaign, option), option)
    # host manifests and time series renumber rows across the archive: full builds
    camp("--repo", campaign, "archive", "add", "HPSS", "tape", "/archive")
    camp("--repo", campaign, "commit", "-m", "tape")
    assert not build(camp, campaign, option)["incremental"]
    camp("--repo", campaign, "timeseries", "series", "heat.bp")
    camp("--repo", campaign, "commit", "-m", "series")
    assert not build(camp, campaign, option)["incremental"]
    shutil.rmtree(data / "heat.bp")  # a series member changes: its order in the series is rebuilt in full
    make_data.make_bp5(str(data / "heat.bp"), steps=2, n=10, seed=1)
    camp("--repo", campaign, "add", "-m", "member", "heat.bp", cwd=data)
    result = build(camp, campaign, option)
    assert not result["incremental"]
    same_as_full(camp, campaign, tmp_path, aca, result, option)
    with sqlite3.connect(aca) as con:
        assert con.execute("select tsid, tsorder from dataset where name = 'heat.bp'").fetchone() == (1, 0)
    # --full, and other options, never patch
    (data / "same-notes.txt").write_text("changed too\n")
    camp("--repo", campaign, "add", "-m", "y", "--store", "same-notes.txt", cwd=data)
    assert not build(camp, campaign, option, "--full")["incremental"]
    other = OPTIONS[keep is False]
    assert not build(camp, campaign, other)["incremental"]  # the archive was built with the other option
    assert build(camp, campaign, other)["rewritten"] == 0   # ... now it was built with this one
    assert not build(camp, campaign, option, "--exclude-kind", "HDF5")["incremental"]


def test_archived_replicas_keep_their_tar_index_through_a_patch(camp, campaign, data, tmp_path, store):
    aca = tmp_path / "tape.aca"
    camp("--repo", campaign, "add", "-m", "run1", "heat.bp", "--store", "notes.txt", cwd=data)
    make_tar(data, tmp_path, ["heat.bp", "notes.txt"])
    camp("--repo", campaign, "archive", "add", "fs", "tape", "/arch", "run1.tar", "run1.tar.idx",
         cwd=tmp_path)
    camp("--repo", campaign, "commit", "-m", "tape")
    build(camp, campaign, "-o", aca)
    with sqlite3.connect(aca) as con:
        assert con.execute("select count(*) from archiveidx").fetchone()[0] > 2
    shutil.rmtree(data / "heat.bp")
    make_data.make_bp5(str(data / "heat.bp"), steps=4, n=10, seed=1)
    camp("--repo", campaign, "add", "-m", "more steps", "heat.bp", cwd=data)
    result = build(camp, campaign, "-o", aca)
    assert (result["incremental"], result["rewritten"]) == (True, 1)
    same_as_full(camp, campaign, tmp_path, aca, result)
    assert [r for r in logical(aca)["tar index"] if r[0] == "heat.bp"]


def test_a_new_host_patches_only_where_a_full_build_would_number_it(camp, campaign, data, tmp_path, store):
    aca = tmp_path / "hosts.aca"
    camp("--repo", campaign, "add", "-m", "run1", "heat.bp", "--store", "notes.txt", cwd=data)
    build(camp, campaign, "-o", aca)
    notes = manifest(campaign, "notes.txt")
    # a host without a manifest, sorting after / before "laptop"
    for host, patched in (("zeta", True), ("alpha", False)):
        elsewhere = dataclasses.replace(notes.replicas[0], host=host, dir="/copies")
        notes = dataclasses.replace(notes, replicas=(*notes.replicas, elsewhere))
        commit_manifests(campaign, [notes], message=f"copy on {host}")
        result = build(camp, campaign, "-o", aca)
        assert result["incremental"] is patched, host
        same_as_full(camp, campaign, tmp_path, aca, result)
    assert [h[1] for h in logical(aca)["hosts"]] == ["alpha", "laptop", "zeta"]


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
    assert "pressure.bp/T" in variables
    assert "mesh.h5" not in str(sorted(variables))


def test_a_failed_patch_leaves_the_previous_archive_untouched(camp, campaign, data, tmp_path, store):
    aca = tmp_path / "out" / "a.aca"
    camp("--repo", campaign, "add", "-m", "first", "heat.bp", "--store", "notes.txt", cwd=data)
    build(camp, campaign, "-o", aca)
    before = aca.read_bytes()
    notes = manifest(campaign, "notes.txt")
    unlisted = dataclasses.replace(notes.replicas[0], archive="nope.tar")
    broken = dataclasses.replace(notes, replicas=(unlisted,))
    commit_manifests(campaign, [broken], message="a replica in an archive nobody listed")
    r = camp("--repo", campaign, "build", "-o", aca, ok=False)
    assert r.exit_code != 0
    assert r.stderr.startswith("camp: error: dataset notes.txt: replica notes.txt is in archive") and \
        r.stderr.count("\n") == 1
    assert aca.read_bytes() == before
    assert os.listdir(aca.parent) == ["a.aca"]  # no temporary file left beside it


@pytest.mark.parametrize("stranger", ["garbage", "no provenance", "unknown tree", "another repository"])
def test_an_archive_camp_cannot_trace_here_is_rebuilt_in_full(
        camp, campaign, data, tmp_path, store, stranger):
    aca = store / "proj" / "run_001.aca"
    camp("--repo", campaign, "add", "-m", "ours", "heat.bp", cwd=data)
    if stranger == "garbage":
        aca.parent.mkdir(parents=True)
        aca.write_text("not an archive\n")
    elif stranger == "another repository":
        other = tmp_path / "other"
        camp("init", other, "--name", "proj/run_001", "--host", "laptop")
        camp("--repo", other, "add", "-m", "theirs", "pressure.bp", cwd=data)
        build(camp, other)  # the same store path, built by another repository
    else:
        build(camp, campaign)
        with sqlite3.connect(aca) as con:
            if stranger == "no provenance":  # e.g. hpc-campaign's own archive
                con.execute("drop table camp_build")
            else:
                con.execute("update camp_build set value = ? where key = 'tree'", ("0" * 40,))
    camp("--repo", campaign, "add", "-m", "more", "pressure.bp", cwd=data)
    if stranger in ("garbage", "no provenance", "another repository"):  # not this repository's: kept
        before = aca.read_bytes()
        r = camp("--repo", campaign, "build", ok=False)
        assert r.exit_code == 1 and aca.read_bytes() == before
        assert r.stderr.count("\n") == 1 and "--force" in r.stderr
    result = build(camp, campaign, "--force")
    assert not result["incremental"]
    same_as_full(camp, campaign, tmp_path, aca, result)


NAMES = ("a.txt", "b.txt", "c.txt")
OPS = st.lists(
    st.tuples(st.sampled_from(["add", "copy", "rm", "rm copy"]), st.sampled_from(NAMES),
              st.integers(0, 2)),
    min_size=1, max_size=6,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS, option=st.sampled_from(OPTIONS))
def test_any_sequence_of_changes_patches_to_a_full_build(camp, tmp_path_factory, ops, option):
    """Adds, copies and removals in any order: after each commit the patch equals a full build."""
    top = tmp_path_factory.mktemp("seq")
    repo, folder, aca = top / "repo", top / "data", top / "a.aca"
    folder.mkdir()
    camp("init", repo, "--name", "p/seq", "--host", "laptop")
    for name in NAMES:
        (folder / name).write_text(f"{name} 0\n")
    camp("--repo", repo, "add", "-m", "start", "--store", "a.txt", cwd=folder)
    build(camp, repo, "-o", aca, option)
    live: set[str] = {"a.txt"}
    copies: set[str] = set()
    for op, name, version in ops:
        if op == "add":
            (folder / name).write_text(f"{name} {version}\n" if version else "same for all\n")
            camp("--repo", repo, "add", "-m", op, "--store", name, cwd=folder)
            live.add(name)
        elif name not in live:
            continue
        elif op == "copy" and name not in copies:
            camp("--repo", repo, "replica", "add", name, "--host", "laptop", "--dir", "/copy", "--no-check")
            camp("--repo", repo, "commit", "-m", op)
            copies.add(name)
        elif op == "rm copy" and name in copies:
            camp("--repo", repo, "rm", name, "--replica", "laptop:/copy")
            camp("--repo", repo, "commit", "-m", op)
            copies.discard(name)
        elif op == "rm":
            camp("--repo", repo, "rm", name, cwd=folder)
            camp("--repo", repo, "commit", "-m", op)
            live.discard(name)
            copies.discard(name)
        else:
            continue
        result = build(camp, repo, "-o", aca, option)
        same_as_full(camp, repo, top, aca, result, option)
