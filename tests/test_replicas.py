"""rm, mv, replica add, archive add/replica/list, timeseries on real data, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import make_data
import pytest
from helpers import assert_one_line_error as one_line_error
from helpers import manifest, require_module

from campaignvcs import tarindex
from campaignvcs.repo import CampaignRepo


@pytest.fixture
def recorded(campaign, camp, data):
    """heat.bp, pressure.bp, mesh.h5, notes.txt and plot.png (with thumbnail) on laptop, committed."""
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", "mesh.h5", "notes.txt", cwd=data)
    camp("--repo", campaign, "add", "--thumbnail", "32", "32", "plot.png", cwd=data)
    camp("--repo", campaign, "commit", "-m", "run1")
    return data


def host_manifest(root, name):
    with CampaignRepo.open(str(root)) as repo:
        return repo.host(name)


def state(root):
    """What a failed command must leave alone: HEAD, the staging area, the stat cache token."""
    head = (root / ".git" / "refs" / "heads" / "main").read_text()
    index = (root / ".git" / "camp" / "index.json").read_bytes()
    return head, index


def status(camp, root):
    return json.loads(camp("--repo", root, "status", "--json").output)


def whereis(camp, root, name, *args):
    return json.loads(camp("--repo", root, "whereis", name, "--json", *args).output)


# -- rm -------------------------------------------------------------------------------


def test_rm_tombstones_dataset_and_replicas_and_add_revives(campaign, camp, recorded, tmp_path):
    before = manifest(campaign, "heat.bp")
    out = camp("--repo", campaign, "rm", "heat.bp").output
    assert out == "deleted: heat.bp\n"
    ds = manifest(campaign, "heat.bp")
    assert ds.deltime > 0 and all(r.deltime == ds.deltime for r in ds.replicas)
    assert ds.uuid == before.uuid and [r.files for r in ds.replicas] == [r.files for r in before.replicas]
    # Staged like git rm; nothing on disk is touched; status and whereis say so.
    assert {"change": "deleted", "name": "heat.bp", "path": ""} in status(camp, campaign)["staged"]
    assert (recorded / "heat.bp" / "md.idx").is_file()
    w = whereis(camp, campaign, "heat.bp")
    assert w["state"] == "deleted" and w["replicas"] == [] and w["deltime"] == ds.deltime
    camp("--repo", campaign, "commit", "-m", "drop heat")
    # The built archive leaves the deleted dataset out; the history keeps it.
    camp("--repo", campaign, "build", "-o", tmp_path / "a.aca", "--exclude-kind", "HDF5")
    with sqlite3.connect(tmp_path / "a.aca") as con:
        assert "heat.bp" not in [r[0] for r in con.execute("select name from dataset")]
    # --keep-deleted compiles tombstones into dataset.deltime and replica.deltime, but not an ADIOS
    # dataset's: ADIOS2 2.12.1 ignores their deletion time and would read them (docs/build.md).
    r = camp("--repo", campaign, "build", "-o", tmp_path / "k.aca", "--keep-deleted", "--exclude-kind", "HDF5")
    assert "--keep-deleted: the deleted rows of 1 ADIOS dataset (heat.bp) are left out" in r.stderr
    with sqlite3.connect(tmp_path / "k.aca") as con:
        rows = con.execute(
            "select d.deltime, r.deltime from dataset d join replica r on r.datasetid = d.rowid "
            "where d.name = 'heat.bp'"
        ).fetchall()
        assert rows == []
    assert manifest(campaign, "heat.bp", "HEAD~1").live
    # Removing it again is an error; camp add brings it back with its uuid, replica live again.
    one_line_error(camp("--repo", campaign, "rm", "heat.bp", ok=False), "'heat.bp' is already deleted")
    camp("--repo", campaign, "add", "heat.bp", cwd=recorded)
    back = manifest(campaign, "heat.bp")
    assert back.live and back.uuid == before.uuid and [r.live for r in back.replicas] == [True]


def test_rm_unknown_or_injection_removes_nothing(campaign, camp, recorded):
    before = state(campaign)
    r = camp("--repo", campaign, "rm", 'nothing" OR "1"="1', ok=False)
    assert one_line_error(r) == """camp: error: no dataset named 'nothing" OR "1"="1'"""
    # One unknown name among known ones: nothing is removed at all.
    one_line_error(camp("--repo", campaign, "rm", "heat.bp", "missing.bp", ok=False), "'missing.bp'")
    assert state(campaign) == before
    assert all(manifest(campaign, n).live for n in ("heat.bp", "pressure.bp", "mesh.h5", "notes.txt"))
    one_line_error(camp("--repo", campaign, "rm", ok=False), "nothing to remove")
    one_line_error(
        camp("--repo", campaign, "rm", "--replica", "deadbeef", ok=False), "no live replica 'deadbeef'"
    )
    one_line_error(camp("--repo", campaign, "rm", "--replica", 'x" OR 1=1', ok=False), "no live replica")
    assert state(campaign) == before


def test_rm_replica_by_id_and_location_last_one_deletes_dataset(campaign, camp, recorded):
    d = os.path.realpath(recorded)
    camp("--repo", campaign, "add", "--host", "cluster", "heat.bp", cwd=recorded)
    ids = {r["host"]: r["id"] for r in whereis(camp, campaign, "heat.bp")["replicas"]}
    assert set(ids) == {"laptop", "cluster"} and all(len(i) == 8 for i in ids.values())
    out = camp("--repo", campaign, "rm", "--replica", ids["cluster"]).output
    assert out == f"removed replica {ids['cluster']} of heat.bp: cluster:{d}/heat.bp\n"
    ds = manifest(campaign, "heat.bp")
    assert ds.live and [r.host for r in ds.live_replicas()] == ["laptop"]
    # HOST:DIR matches every replica in that folder: ambiguous, nothing changes.
    before = state(campaign)
    msg = one_line_error(camp("--repo", campaign, "rm", "--replica", f"laptop:{d}", ok=False), "ambiguous")
    assert ids["laptop"] in msg and "heat.bp" in msg and "pressure.bp" in msg
    assert state(campaign) == before
    # HOST:DIR:PATH names one; it was the last live replica, so the dataset goes too.
    out = camp("--repo", campaign, "rm", "--replica", f"laptop:{d}:heat.bp").output
    assert out.splitlines() == [
        f"removed replica {ids['laptop']} of heat.bp: laptop:{d}/heat.bp",
        "deleted: heat.bp (no live replica left)",
    ]
    ds = manifest(campaign, "heat.bp")
    assert not ds.live and not ds.live_replicas() and len(ds.replicas) == 2
    # With a NAME, only that dataset is searched.
    one_line_error(
        camp("--repo", campaign, "rm", "pressure.bp", "--replica", ids["laptop"], ok=False),
        f"no live replica '{ids['laptop']}' in 'pressure.bp'",
    )


def test_names_with_quotes_work_everywhere(campaign, camp, recorded):
    for name in ('weird"name', "it's.json"):
        camp("--repo", campaign, "add", "--name", name, "notes.txt", cwd=recorded)
    camp("--repo", campaign, "commit", "-m", "odd names")
    assert whereis(camp, campaign, 'weird"name')["kind"] == "TEXT"
    camp("--repo", campaign, "mv", 'weird"name', 'still "weird"')
    camp("--repo", campaign, "rm", "it's.json")
    diff = json.loads(camp("--repo", campaign, "diff", "--json").output)
    assert {(c["name"], c["change"], c["old_name"]) for c in diff["datasets"]} == {
        ('still "weird"', "renamed", 'weird"name'),
        ("it's.json", "deleted", None),
    }
    camp("--repo", campaign, "commit", "-m", "renamed")
    assert manifest(campaign, 'weird"name') is None and manifest(campaign, 'still "weird"').live
    assert not manifest(campaign, "it's.json").live


# -- mv -------------------------------------------------------------------------------


def test_mv_keeps_uuid_and_replicas_and_series_follow(campaign, camp, recorded):
    before = manifest(campaign, "heat.bp")
    camp("--repo", campaign, "timeseries", "runs", "heat.bp", "pressure.bp")
    out = camp("--repo", campaign, "mv", "heat.bp", "run1/heat.bp").output
    assert out == "renamed: heat.bp -> run1/heat.bp\n  time series runs now lists run1/heat.bp\n"
    after = manifest(campaign, "run1/heat.bp")
    assert manifest(campaign, "heat.bp") is None
    assert (after.uuid, after.replicas, after.kind) == (before.uuid, before.replicas, before.kind)
    with CampaignRepo.open(str(campaign)) as repo:
        (series,) = list(repo.timeseries(repo.staged_tree()))
    assert series.datasets == ("run1/heat.bp", "pressure.bp")
    # status still checks the renamed replica on disk (the stat cache followed the rename).
    shutil.rmtree(recorded / "heat.bp")
    assert {
        "change": "missing",
        "name": "run1/heat.bp",
        "path": os.path.join(os.path.realpath(recorded), "heat.bp"),
    } in status(camp, campaign)["unstaged"]
    before_state = state(campaign)
    one_line_error(
        camp("--repo", campaign, "mv", "run1/heat.bp", "pressure.bp", ok=False),
        "'pressure.bp' already exists",
    )
    one_line_error(camp("--repo", campaign, "mv", "nope", "x", ok=False), "no dataset named 'nope'")
    one_line_error(camp("--repo", campaign, "mv", "pressure.bp", "", ok=False), "invalid dataset name")
    assert state(campaign) == before_state


# -- replica add ------------------------------------------------------------------------


def test_replica_add_copies_the_record_and_checks_a_reachable_copy(campaign, camp, recorded, tmp_path):
    src = manifest(campaign, "heat.bp").replicas[0]
    # A copy on a machine we cannot see: recorded as told.
    out = camp(
        "--repo", campaign, "replica", "add", "heat.bp", "--host", "frontier", "--dir", "/lustre/p"
    ).output
    new = next(r for r in manifest(campaign, "heat.bp").replicas if r.host == "frontier")
    assert out == f"added replica {new.id} of heat.bp: frontier:/lustre/p/heat.bp\n"
    assert (new.size, new.checksum, new.files, new.mtime, new.archive) == (
        src.size,
        src.checksum,
        src.files,
        src.mtime,
        None,
    )
    assert host_manifest(campaign, "frontier").longhostname is None
    # A reachable copy must have the recorded size (BP: all files in the folder).
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(recorded / "heat.bp", copy / "heat.bp")
    shutil.copy(recorded / "plot.png", copy / "plot.png")
    camp("--repo", campaign, "replica", "add", "heat.bp", "--host", "laptop", "--dir", copy, "--from", src.id)
    (copy / "heat.bp" / "data.0").write_bytes(b"truncated")
    (copy / "extra").mkdir()
    before = state(campaign)
    r = camp(
        "--repo",
        campaign,
        "replica",
        "add",
        "pressure.bp",
        "--host",
        "laptop",
        "--dir",
        copy,
        "--path",
        "heat.bp",
        ok=False,
    )
    one_line_error(r, f"{copy}/heat.bp has ", "dataset 'pressure.bp' was recorded with", "--no-check")
    r = camp(
        "--repo",
        campaign,
        "replica",
        "add",
        "mesh.h5",
        "--host",
        "laptop",
        "--dir",
        copy,
        "--path",
        "extra",
        ok=False,
    )
    one_line_error(r, "is a directory, dataset 'mesh.h5' is HDF5")
    # Several live replicas now: the source must be named.
    r = camp("--repo", campaign, "replica", "add", "heat.bp", "--host", "x", "--dir", "/d", ok=False)
    msg = one_line_error(r, "has 3 live replicas; choose one with --from ID")
    assert src.id in msg and new.id in msg
    again = camp(
        "--repo",
        campaign,
        "replica",
        "add",
        "heat.bp",
        "--host",
        "frontier",
        "--dir",
        "/lustre/p",
        "--from",
        src.id,
    ).output
    assert again == f"unchanged: heat.bp already has replica {new.id} at frontier:/lustre/p/heat.bp\n"
    one_line_error(
        camp("--repo", campaign, "replica", "add", "nope", "--host", "x", "--dir", "/d", ok=False),
        "no dataset named 'nope'",
    )
    one_line_error(
        camp(
            "--repo",
            campaign,
            "replica",
            "add",
            "heat.bp",
            "--host",
            "x",
            "--dir",
            "/d",
            "--path",
            "/abs",
            ok=False,
        ),
        "invalid replica path",
    )
    assert state(campaign) == before
    # --no-check records a copy the user vouches for; the thumbnail never counts as a source.
    camp(
        "--repo",
        campaign,
        "replica",
        "add",
        "pressure.bp",
        "--host",
        "laptop",
        "--dir",
        copy,
        "--path",
        "heat.bp",
        "--no-check",
    )
    out = camp("--repo", campaign, "replica", "add", "plot.png", "--host", "laptop", "--dir", copy).output
    png = next(r for r in manifest(campaign, "plot.png").replicas if r.dir == str(copy))
    assert png.resolution == (640, 480) and out.startswith(f"added replica {png.id} of plot.png")


# -- archives -------------------------------------------------------------------------


def make_tar(data, tmp_path, names, index=True):
    """A TAR of ``names`` made in the data folder (like a tape job would), and its index."""
    tar = tmp_path / "run1.tar"
    subprocess.run(["tar", "--format=gnu", "-cf", str(tar), *names], cwd=data, check=True)
    if index:
        tarindex_path = tmp_path / "run1.tar.idx"
        tarindex_path.write_bytes(tarindex.encode(tarindex.scan(str(tar))))
    return tar


def test_archive_add_with_tar_index_creates_archived_replicas(campaign, camp, recorded, tmp_path):
    make_tar(recorded, tmp_path, ["heat.bp", "notes.txt", "mesh.h5", "plot.png"])
    (tmp_path / "note.md").write_text("Tape 42, ask the archive team.\n")
    out = camp(
        "--repo",
        campaign,
        "archive",
        "add",
        "HPSS",
        "tape",
        "/arch/proj",
        "run1.tar",
        "run1.tar.idx",
        "--long-host-name",
        "hpss.example.org",
        "--note",
        "note.md",
        cwd=tmp_path,
    ).output
    lines = out.splitlines()
    assert lines[0] == "archive added: tape:/arch/proj [run1.tar] (HPSS)"
    assert [ln.split(" -> ")[0] for ln in lines[1:5]] == [
        "archived: heat.bp",
        "archived: mesh.h5",
        "archived: notes.txt",
        "archived: plot.png",
    ]
    host = host_manifest(campaign, "tape")
    assert (host.longhostname, host.default_protocol) == ("hpss.example.org", "")
    (arch,) = host.archives
    assert (arch.dir, arch.tarname, arch.system) == ("/arch/proj", "run1.tar", "HPSS")
    with CampaignRepo.open(str(campaign)) as repo:
        assert repo.read_blob(arch.notes.encode()) == b"Tape 42, ask the archive team.\n"
    entries = {e.name: e for e in tarindex.scan(str(tmp_path / "run1.tar"))}
    heat = manifest(campaign, "heat.bp")
    src = next(r for r in heat.replicas if r.archive is None)
    tar_rep = next(r for r in heat.replicas if r.archive == "run1.tar")
    assert (tar_rep.host, tar_rep.dir, tar_rep.path, tar_rep.size, tar_rep.files, tar_rep.live) == (
        "tape",
        "/arch/proj",
        "heat.bp",
        src.size,
        src.files,
        True,
    )
    rows = {t.filename: t for t in tar_rep.tarindex}
    assert rows[""] == type(rows[""])("", entries["heat.bp"].offset, entries["heat.bp"].offset_data, 0)
    assert set(rows) == {""} | set(os.listdir(recorded / "heat.bp"))
    for name in os.listdir(recorded / "heat.bp"):
        e = entries[f"heat.bp/{name}"]
        assert (rows[name].offset, rows[name].offset_data, rows[name].size) == (
            e.offset,
            e.offset_data,
            e.size,
        )
    mesh = next(r for r in manifest(campaign, "mesh.h5").replicas if r.archive)
    e = entries["mesh.h5"]
    assert [(t.filename, t.offset, t.offset_data, t.size) for t in mesh.tarindex] == [
        ("", e.offset, e.offset_data, e.size)
    ]
    png = next(r for r in manifest(campaign, "plot.png").replicas if r.archive)
    assert png.resolution == (640, 480) and png.path == "plot.png"  # not the virtual thumbnail replica
    # Running it again changes nothing.
    camp("--repo", campaign, "commit", "-m", "to tape")
    again = camp(
        "--repo",
        campaign,
        "archive",
        "add",
        "HPSS",
        "tape",
        "/arch/proj",
        "run1.tar",
        "run1.tar.idx",
        cwd=tmp_path,
    ).output
    assert again.startswith("archive unchanged: tape:/arch/proj [run1.tar] (HPSS)")
    assert status(camp, campaign)["staged"] == []
    # camp build compiles it into archive / archiveidx / replica.archiveid.
    camp("--repo", campaign, "build", "-o", tmp_path / "t.aca", "--exclude-kind", "HDF5")
    with sqlite3.connect(tmp_path / "t.aca") as con:
        (archive_row,) = con.execute("select rowid, tarname, system, notes from archive").fetchall()
        assert archive_row[1:] == ("run1.tar", "HPSS", b"Tape 42, ask the archive team.\n")
        got = con.execute(
            "select x.filename, x.offset, x.offset_data, x.size from archiveidx x join replica r on "
            "r.rowid = x.replicaid join dataset d on d.rowid = r.datasetid where d.name = 'heat.bp' "
            "and r.archiveid = ? order by x.filename",
            (archive_row[0],),
        ).fetchall()
        assert got == sorted((t.filename, t.offset, t.offset_data, t.size) for t in tar_rep.tarindex)
        (host_row,) = con.execute("select longhostname, default_protocol from host where hostname='tape'")
        assert host_row == ("hpss.example.org", "")


def test_archive_add_matches_only_the_datasets_own_paths(campaign, camp, recorded, tmp_path):
    """A TAR member is matched against each dataset's own replica paths and sizes, not the first name hit."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("a different, longer note in another folder\n" * 3)
    # Added first, so a first-replica-named-notes.txt lookup (the reference's) would find it.
    camp("--repo", campaign, "add", "--name", "aaa-notes", "notes.txt", cwd=other)
    make_tar(recorded, tmp_path, ["./notes.txt"])  # stored as ./notes.txt: same path
    out = camp(
        "--repo",
        campaign,
        "archive",
        "add",
        "HPSS",
        "tape",
        "/arch",
        "run1.tar",
        "run1.tar.idx",
        cwd=tmp_path,
    ).output.splitlines()
    notes = manifest(campaign, "notes.txt")
    archived = next(r for r in notes.replicas if r.archive == "run1.tar")
    assert (
        out[1] == f"archived: notes.txt -> replica {archived.id} tape:/arch[run1.tar]/notes.txt (1 TAR rows)"
    )
    assert out[2].startswith("skipped: TAR member notes.txt (dataset aaa-notes) has 74 bytes in the TAR")
    assert [r.archive for r in manifest(campaign, "aaa-notes").replicas] == [None]


def test_archive_add_skips_wrong_sizes_and_asks_when_paths_are_shared(campaign, camp, recorded, tmp_path):
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(recorded / "notes.txt", twin / "notes.txt")  # same path, same size: a real tie
    camp("--repo", campaign, "add", "--name", "twin-notes", "notes.txt", cwd=twin)
    make_data.make_bp5(str(recorded / "pressure.bp"), steps=4, seed=2)  # changed since recorded
    make_tar(recorded, tmp_path, ["notes.txt", "pressure.bp", "heat.bp"])
    before = state(campaign)
    r = camp(
        "--repo",
        campaign,
        "archive",
        "add",
        "HPSS",
        "tape",
        "/arch",
        "run1.tar",
        "run1.tar.idx",
        cwd=tmp_path,
        ok=False,
    )
    one_line_error(
        r, "TAR member 'notes.txt' matches replicas of 2 datasets (notes.txt, twin-notes)", "--source-dir"
    )
    assert state(campaign) == before
    out = camp(
        "--repo",
        campaign,
        "archive",
        "add",
        "HPSS",
        "tape",
        "/arch",
        "run1.tar",
        "run1.tar.idx",
        "--source-dir",
        os.path.realpath(recorded),
        cwd=tmp_path,
    ).output.splitlines()
    assert out[1].startswith("archived: heat.bp -> ") and out[2].startswith("archived: notes.txt -> ")
    assert out[3].startswith("skipped: TAR member pressure.bp (dataset pressure.bp) holds ")
    assert "the replica was recorded with" in out[3]
    assert not any(r.archive for r in manifest(campaign, "twin-notes").replicas)
    assert not any(r.archive for r in manifest(campaign, "pressure.bp").replicas)


def test_archive_add_reads_the_reference_index_and_agrees_with_the_reference(
    campaign, camp, recorded, tmp_path, clean_env
):
    """hpc-campaign's own taridx output drives camp; both tools record the same archiveidx rows."""
    require_module("hpc_campaign", "the reference tool hpc-campaign (pip install .[test])")
    require_module("dateutil", "python-dateutil, which hpc-campaign needs (pip install .[test])")
    make_tar(recorded, tmp_path, ["heat.bp", "notes.txt"], index=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    run = [sys.executable, "-m", "hpc_campaign"]
    subprocess.run(
        [*run, "taridx", "run1.tar", "ref.idx"], cwd=tmp_path, env=env, check=True, capture_output=True
    )
    camp("--repo", campaign, "archive", "add", "fs", "tape", "/arch", "run1.tar", "ref.idx", cwd=tmp_path)
    camp("--repo", campaign, "commit", "-m", "tape")
    camp("--repo", campaign, "build", "-o", tmp_path / "ours.aca", "--exclude-kind", "HDF5")
    ref = tmp_path / "ref.aca"
    for args in (["data", "heat.bp"], ["text", "notes.txt"]):
        r = subprocess.run(
            [*run, "manager", "-n", "laptop", str(ref), *args],
            cwd=recorded,
            env=env,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [*run, "manager", str(ref), "add-archival-storage", "fs", "tape", "/arch", "run1.tar", "ref.idx"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    query = (
        "select d.name, x.filename, x.offset, x.offset_data, x.size from archiveidx x join replica r on "
        "r.rowid = x.replicaid join dataset d on d.rowid = r.datasetid order by 1, 2"
    )
    with sqlite3.connect(ref) as a, sqlite3.connect(tmp_path / "ours.aca") as b:
        theirs, ours = a.execute(query).fetchall(), b.execute(query).fetchall()
        assert theirs and ours == theirs
        replica_q = (
            "select d.name, r.name, r.size, a.tarname, a.system from replica r join dataset d on "
            "d.rowid = r.datasetid join archive a on a.rowid = r.archiveid order by 1"
        )
        assert b.execute(replica_q).fetchall() == a.execute(replica_q).fetchall()


def test_archive_add_bad_input_changes_nothing(campaign, camp, recorded, tmp_path):
    make_tar(recorded, tmp_path, ["notes.txt"])
    (tmp_path / "bad.idx").write_text('0,0,512,74,"notes.txt"\n0,zero,1,2,"x"\n')
    before = state(campaign)
    cases = [
        (["hpss", "tape", "/a"], "unknown archival system 'hpss' (one of Kronos, HPSS, fs, https, S3)"),
        (["HPSS", "bad/host", "/a"], "invalid host name"),
        (["HPSS", "tape", "/a", "run1.tar", "bad.idx"], "bad.idx line 2: malformed TAR index line"),
        (["HPSS", "tape", "/a", "run1.tar", "missing.idx"], "missing.idx: cannot read TAR index"),
        (["HPSS", "tape", "/a", "/abs.tar"], "invalid TAR file name"),
        (["HPSS", "tape", "/a", "--note", "missing.md"], "missing.md: cannot read note"),
    ]
    for args, needle in cases:
        one_line_error(camp("--repo", campaign, "archive", "add", *args, cwd=tmp_path, ok=False), needle)
    assert state(campaign) == before
    camp("--repo", campaign, "archive", "add", "HPSS", "tape", "/a")
    r = camp("--repo", campaign, "archive", "add", "fs", "tape", "/a", ok=False)
    one_line_error(r, "archive tape:/a is already registered with system HPSS")


def test_archive_replica_move_and_list(campaign, camp, recorded, tmp_path):
    camp("--repo", campaign, "archive", "add", "S3", "s3store", "bucket/proj")
    camp("--repo", campaign, "archive", "add", "Kronos", "tape", "/k", "year1.tar")
    assert host_manifest(campaign, "s3store").default_protocol == "s3"
    listed = json.loads(camp("--repo", campaign, "archive", "list", "--json").output)
    assert [(a["host"], a["dir"], a["tarname"], a["system"]) for a in listed] == [
        ("s3store", "bucket/proj", "", "S3"),
        ("tape", "/k", "year1.tar", "Kronos"),
    ]
    assert camp("--repo", campaign, "archive", "list").output == (
        "S3     s3store:bucket/proj\nKronos tape:/k [year1.tar]\n"
    )
    src = manifest(campaign, "heat.bp").replicas[0]
    out = camp("--repo", campaign, "archive", "replica", "heat.bp", "s3store:bucket/proj").output
    s3 = next(r for r in manifest(campaign, "heat.bp").replicas if r.host == "s3store")
    assert out == f"archived replica {s3.id} of heat.bp: s3store:bucket/proj[archive]/heat.bp\n"
    assert (s3.archive, s3.files, s3.size, src.live) == ("", src.files, src.size, True)
    # --move: the data left its old place for the tape.
    out = camp(
        "--repo",
        campaign,
        "archive",
        "replica",
        "pressure.bp",
        "tape:/k:year1.tar",
        "--path",
        "run1/pressure.bp",
        "--move",
    ).output.splitlines()
    ds = manifest(campaign, "pressure.bp")
    tape = next(r for r in ds.replicas if r.host == "tape")
    old = next(r for r in ds.replicas if r.host == "laptop")
    assert (tape.archive, tape.path, tape.live, old.live, ds.live) == (
        "year1.tar",
        "run1/pressure.bp",
        True,
        False,
        True,
    )
    assert out == [
        f"archived replica {tape.id} of pressure.bp: tape:/k[year1.tar]/run1/pressure.bp",
        f"removed replica {old.id} of pressure.bp: laptop:{old.dir}/pressure.bp",
    ]
    camp("--repo", campaign, "commit", "-m", "archived")
    r = camp("--repo", campaign, "build", "-o", tmp_path / "m.aca", "--keep-deleted", "--exclude-kind", "HDF5")
    assert "camp: warning: pressure.bp left out of the archive" in r.stderr
    assert "tape:/k[year1.tar]/run1/pressure.bp (Kronos archive, which ADIOS2 never reads)" in r.stderr
    with sqlite3.connect(tmp_path / "m.aca") as con:
        rows = con.execute(
            "select h.hostname, r.name, r.deltime > 0, a.tarname, a.system, h.default_protocol "
            "from replica r join dataset d on d.rowid = r.datasetid join host h on h.rowid = r.hostid "
            "left join archive a on "
            "a.rowid = r.archiveid where d.name = 'pressure.bp' order by 1"
        ).fetchall()
    # Only on Kronos now, which ADIOS2 never reads (and the scratch tombstone it would read as live):
    # left out of the archive, with a warning (docs/build.md).
    assert rows == []
    before = state(campaign)
    one_line_error(
        camp("--repo", campaign, "archive", "replica", "heat.bp", "tape:/nowhere", ok=False),
        "no archive 'tape:/nowhere' in the campaign; add it with camp archive add",
    )
    one_line_error(
        camp("--repo", campaign, "archive", "replica", "heat.bp", "tape:/k", ok=False), "no archive 'tape:/k'"
    )
    one_line_error(
        camp("--repo", campaign, "archive", "replica", "heat.bp", "nohost", ok=False),
        "invalid archive 'nohost'",
    )
    one_line_error(
        camp("--repo", campaign, "archive", "replica", "nope", "tape:/k:year1.tar", ok=False),
        "no dataset named 'nope'",
    )
    assert state(campaign) == before


# -- time series ----------------------------------------------------------------------


def test_timeseries_append_move_replace_remove_and_refusals(campaign, camp, recorded):
    out = camp("--repo", campaign, "timeseries", "a", "heat.bp").output
    assert out == "time series a: heat.bp\n"
    assert (
        camp("--repo", campaign, "timeseries", "a", "pressure.bp").output
        == "time series a: heat.bp, pressure.bp\n"
    )
    out = camp("--repo", campaign, "timeseries", "b", "pressure.bp").output
    assert out == "moved pressure.bp out of time series a\ntime series b: pressure.bp\n"
    out = camp("--repo", campaign, "timeseries", "b", "heat.bp", "--replace").output
    assert (
        out
        == "moved heat.bp out of time series a\nremoved time series a (no datasets left)\n"
        "time series b: heat.bp\n"
    )
    before = state(campaign)
    one_line_error(
        camp("--repo", campaign, "timeseries", "b", "notes.txt", ok=False),
        "dataset 'notes.txt' is TEXT: a time series holds ADIOS or HDF5 datasets",
    )
    one_line_error(camp("--repo", campaign, "timeseries", "b", "plot.png", ok=False), "is IMAGE")
    one_line_error(
        camp("--repo", campaign, "timeseries", "b", "pressure.bp", 'no"such', ok=False),
        """no dataset named 'no"such'""",
    )
    one_line_error(
        camp("--repo", campaign, "timeseries", "b", "mesh.h5", ok=False), "would mix ADIOS and HDF5"
    )
    one_line_error(
        camp("--repo", campaign, "timeseries", "zzz", "--remove", ok=False), "no time series named 'zzz'"
    )
    one_line_error(camp("--repo", campaign, "timeseries", "b", "heat.bp", "heat.bp", ok=False), "given twice")
    assert state(campaign) == before
    assert camp("--repo", campaign, "timeseries", "b", "--remove").output == (
        "removed time series b (its datasets stay)\n"
    )
    with CampaignRepo.open(str(campaign)) as repo:
        assert list(repo.timeseries(repo.staged_tree())) == []
    assert manifest(campaign, "heat.bp").live


def test_timeseries_builds_into_an_archive_adios2_reads_in_order(campaign, camp, tmp_path, clean_env):
    import adios2
    import numpy as np

    cfg = clean_env / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text(
        f"Campaign:\n  hostname: laptop\n  campaignstorepath: {tmp_path / 'store'}\n"
        f"  cachepath: {tmp_path / 'cache'}\n"
    )
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(3):
        make_data.make_bp5(str(runs / f"step{i}.bp"), steps=1, seed=i)
    camp("--repo", campaign, "add", "step0.bp", "step1.bp", "step2.bp", cwd=runs)
    # Out of name order on purpose: the series order is what the user gave.
    camp("--repo", campaign, "timeseries", "temp", "step2.bp", "step0.bp")
    camp("--repo", campaign, "timeseries", "temp", "step1.bp")
    camp("--repo", campaign, "commit", "-m", "series")
    out = tmp_path / "series.aca"
    camp("--repo", campaign, "build", "-o", out)
    with sqlite3.connect(out) as con:
        rows = con.execute(
            "select d.name, t.name, d.tsorder from dataset d join timeseries t on "
            "t.tsid = d.tsid order by d.tsorder"
        ).fetchall()
    assert rows == [("step2.bp", "temp", 0), ("step0.bp", "temp", 1), ("step1.bp", "temp", 2)]
    with adios2.FileReader(str(out)) as f:
        variables = f.available_variables()
        assert int(variables["temp/T"]["AvailableStepsCount"]) == 3
        got = f.read("temp/T", step_selection=[0, 3])
    expected = np.concatenate([np.arange(10, dtype=np.float64) + s for s in (2, 0, 1)])
    assert np.array_equal(np.asarray(got).reshape(-1), expected)
