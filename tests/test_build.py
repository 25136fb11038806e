"""camp build: the archive a commit compiles to, checked with sqlite3 and opened with ADIOS2.

Features that have no command yet (tombstones, archival locations, TAR indexes, time
series, accuracy) are recorded through the real repository API, then built with the CLI.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sqlite3
import zlib

import numpy as np
import pytest
from helpers import manifest

from campaignvcs import layout, porcelain
from campaignvcs.model import Archive, BlobId, Dataset, EmbeddedFile, Host, Replica, TarMember, TimeSeries
from campaignvcs.repo import CampaignRepo

TABLES = (
    "info",
    "key",
    "host",
    "directory",
    "timeseries",
    "dataset",
    "replica",
    "file",
    "repfiles",
    "accuracy",
    "resolution",
    "archive",
    "archiveidx",
)

NOT_NULL = {
    "info": ("id", "name", "version", "modtime"),
    "key": ("keyid",),
    "host": ("hostname", "modtime", "deltime", "default_protocol"),
    "directory": ("hostid", "name", "modtime", "deltime"),
    "timeseries": ("tsid", "name"),
    "dataset": ("name", "uuid", "modtime", "deltime", "fileformat", "tsid", "tsorder"),
    "replica": ("datasetid", "hostid", "dirid", "archiveid", "name", "modtime", "deltime", "keyid", "size"),
    "file": ("fileid", "name", "compression", "lenorig", "lencompressed", "modtime", "checksum", "data"),
    "repfiles": ("replicaid", "fileid"),
    "resolution": ("replicaid", "x", "y"),
    "archive": ("dirid", "tarname", "system"),
    "archiveidx": ("archiveid", "replicaid", "filename", "offset", "offset_data", "size"),
}
"""Columns ADIOS2 selects that must never be NULL (longhostname and archive notes may be)."""

IDENTITY = b"Test Scientist <scientist@example.org>"


# -- helpers ------------------------------------------------------------------------


def configure(home, store, hostname="laptop"):
    """config.yaml as hpc-campaign and ADIOS2 read it: replicas on ``hostname`` are local."""
    cfg = home / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.yaml").write_text(
        f"Campaign:\n  hostname: {hostname}\n  campaignstorepath: {store}\n  cachepath: {home / 'cache'}\n"
    )


@pytest.fixture
def store(clean_env, tmp_path):
    path = tmp_path / "store"
    configure(clean_env, path)
    return path


def record(camp, campaign, data, hdf5=False):
    """Add two BP5 runs, a stored note, an image with a thumbnail (and the HDF5 file), then commit."""
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", cwd=data)
    camp("--repo", campaign, "add", "--store", "notes.txt")
    camp("--repo", campaign, "add", "--thumbnail", "64", "64", "plot.png")
    if hdf5:
        camp("--repo", campaign, "add", "mesh.h5")
    camp("--repo", campaign, "commit", "-m", "run1")


def connect(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def table(path, name):
    with connect(path) as con:
        return con.execute(f"select * from {name} order by rowid").fetchall()  # noqa: S608 (fixed names)


def commit_manifests(root, datasets=(), hosts=(), series=(), blobs=(), message="edit"):
    """Commit manifests written with the repository API (for features without a command yet)."""
    with CampaignRepo.open(str(root)) as repo, repo.transaction() as tx:
        for data in blobs:
            repo.add_blob(data)
        for ds in datasets:
            tx.stage_dataset(ds)
        for host in hosts:
            tx.stage_json(layout.host_path(host.name), host.dumps())
        for s in series:
            tx.stage_json(layout.timeseries_path(s.name), s.dumps())
        return tx.commit(message, IDENTITY)


def commit_time_ns(root, rev="HEAD"):
    with CampaignRepo.open(str(root)) as repo:
        return repo.read_commit(repo.resolve(rev)).commit_time * 1_000_000_000


def adios_view(path):
    """What ADIOS2 shows of an archive: variables, attributes and all data of every variable."""
    import adios2

    with adios2.FileReader(str(path)) as f:
        variables = f.available_variables()
        attributes = f.available_attributes()
        data = {}
        for name, info in variables.items():
            steps = int(info["AvailableStepsCount"])
            data[name] = (
                f.read(name, step_selection=[0, steps]) if info["Shape"] or steps > 1 else f.read(name)
            )
    return variables, attributes, data


# -- the tables ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "hdf5", [pytest.param(True, id="with-hdf5"), pytest.param(False, id="adios2-readable")]
)
def test_build_writes_every_table_by_the_rules(campaign, camp, example_data, store, hdf5):
    record(camp, campaign, example_data, hdf5=hdf5)
    r = camp("--repo", campaign, "build")
    path = store / "proj" / "run_001.aca"
    n = 5 if hdf5 else 4
    counts = rf"\({n} datasets, {n + 1} replicas, {n + 2} embedded files, [\d.]+ KiB\)"
    assert re.fullmatch(rf"built {re.escape(str(path))} {counts}\n", r.stdout), r.stdout
    assert sorted(os.listdir(path.parent)) == ["run_001.aca"]
    # An HDF5 dataset: said once, even without --check, with the way to an archive the PyPI wheel opens.
    if hdf5:
        assert r.stderr == (
            "camp: warning: this archive lists 1 HDF5 dataset (mesh.h5): ADIOS2 builds without HDF5, like "
            "the PyPI adios2 wheel, cannot open it at all; camp build --exclude-kind HDF5 writes one they can "
            "open\n"
        )
    else:
        assert r.stderr == ""

    with connect(path) as con:
        names = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
        assert names == set(TABLES) | {"camp_build"}
        built = dict(con.execute("select key, value from camp_build"))
        with CampaignRepo.open(str(campaign)) as repo:
            assert built["commit"] == repo.head().decode() and built["repository"] == str(campaign)
        assert built["archive_name"] == "proj/run_001" and built["omit_deleted"] == "1"
        assert con.execute("pragma page_size").fetchone()[0] == 4096
        assert con.execute("pragma journal_mode").fetchone()[0] == "delete"
        for t, cols in NOT_NULL.items():
            for c in cols:
                assert con.execute(f"select count(*) from {t} where {c} is null").fetchone()[0] == 0, (t, c)
        for t in ("host", "directory", "dataset", "replica"):
            assert con.execute(f"select distinct typeof(deltime), deltime from {t}").fetchall() == [
                ("integer", 0)
            ]
    assert table(path, "info") == [("ACA", "ADIOS Campaign Archive", "0.7", commit_time_ns(campaign))]
    # Hosts and directories are loaded by position: dense rowids 1..n.
    with connect(path) as con:
        hosts = con.execute("select rowid, hostname, longhostname, default_protocol from host").fetchall()
        dirs = con.execute("select rowid, hostid, name from directory").fetchall()
    assert [h[:2] for h in hosts] == [(1, "laptop")] and hosts[0][3] == ""
    assert dirs == [(1, 1, os.path.realpath(example_data))]

    datasets = table(path, "dataset")
    expected = {"heat.bp": "ADIOS", "notes.txt": "TEXT", "plot.png": "IMAGE", "pressure.bp": "ADIOS"}
    if hdf5:
        expected["mesh.h5"] = "HDF5"
    assert [d[0] for d in datasets] == sorted(expected)
    for name, uuid, modtime, _deltime, fileformat, tsid, tsorder in datasets:
        m = manifest(campaign, name, "HEAD")
        assert (uuid, modtime, fileformat, tsid, tsorder) == (m.uuid, m.modtime, expected[name], 0, 0)
        assert re.fullmatch(r"[0-9a-f]{32}", uuid)

    with connect(path) as con:
        reps = con.execute(
            "select r.rowid, d.name, r.name, r.size, r.keyid, r.archiveid, r.hostid, r.dirid from replica r "
            "join dataset d on d.rowid = r.datasetid order by r.rowid"
        ).fetchall()
        linked = con.execute(
            "select r.name, f.name, f.compression, f.lenorig, f.lencompressed, f.modtime, f.checksum, f.data "
            "from repfiles l join replica r on r.rowid = l.replicaid join file f on f.fileid = l.fileid"
        ).fetchall()
        resolutions = con.execute(
            "select r.name, x, y from resolution s join replica r on r.rowid = s.replicaid order by r.name"
        ).fetchall()
    assert [r[1:3] for r in reps] == sorted(
        [(d, d) for d in expected] + [("plot.png", "thumbnails/plot.png")]
    )
    sizes = {r[2]: r[3] for r in reps}
    assert sizes["plot.png"] == os.path.getsize(example_data / "plot.png")
    assert sizes["notes.txt"] == os.path.getsize(example_data / "notes.txt")
    assert all(r[4:] == (0, 0, 1, 1) for r in reps)
    assert resolutions == [("plot.png", 640, 480), ("thumbnails/plot.png", 64, 48)]

    by_replica: dict[str, list[str]] = {}
    for rep, fname, compression, lenorig, lencompressed, modtime, checksum, data in linked:
        by_replica.setdefault(rep, []).append(fname)
        original = zlib.decompress(data) if compression == 1 else data
        assert compression in (0, 1)
        assert lenorig == len(original) and lencompressed == len(data)
        assert checksum == hashlib.sha1(original).hexdigest()
        # data is the blob the manifest names, byte for byte
        ds = "plot.png" if rep.startswith("thumbnails/") else rep
        (f,) = [
            f for r in manifest(campaign, ds, "HEAD").replicas if r.path == rep
            for f in r.files if f.name == fname
        ]
        with CampaignRepo.open(str(campaign)) as repo:
            assert data == repo.read_blob(f.blob.encode())
        assert modtime == f.modtime
    assert {k: sorted(v) for k, v in by_replica.items()} == {
        "heat.bp": ["metadata", "profiling.json"],
        "pressure.bp": ["metadata", "profiling.json"],
        "notes.txt": ["notes.txt"],
        "thumbnails/plot.png": ["64x48.png"],
        **({"mesh.h5": ["mesh.h5"]} if hdf5 else {}),
    }
    text = [row for row in linked if row[0] == "notes.txt"][0]
    assert zlib.decompress(text[7]) == (example_data / "notes.txt").read_bytes()
    for t in ("key", "timeseries", "archive", "archiveidx", "accuracy"):
        assert table(path, t) == []


def test_identical_file_rows_are_shared_and_directories_dense(campaign, camp, example_data, tmp_path, store):
    copy = tmp_path / "copy"
    shutil.copytree(example_data / "heat.bp", copy / "heat.bp")  # copytree keeps the mtimes
    camp("--repo", campaign, "add", "heat.bp", cwd=example_data)
    camp("--repo", campaign, "add", "heat.bp", cwd=copy)
    camp("--repo", campaign, "commit", "-m", "two replicas")
    first, second = manifest(campaign, "heat.bp", "HEAD").replicas
    assert first.files == second.files  # the precondition: identical metadata rows
    out = tmp_path / "out.aca"
    camp("--repo", campaign, "build", "-o", out)
    assert len(table(out, "file")) == 2
    assert sorted(table(out, "repfiles")) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    dirs = table(out, "directory")
    assert [d[1] for d in dirs] == sorted([os.path.realpath(example_data), os.path.realpath(copy)])
    with connect(out) as con:
        assert [r[0] for r in con.execute("select rowid from directory")] == [1, 2]
        reps = con.execute(
            "select r.dirid, d.name, r.name from replica r join directory d on d.rowid = r.dirid "
            "order by r.rowid"
        ).fetchall()
    assert sorted(r[1] for r in reps) == [d[1] for d in dirs]
    assert {r[2] for r in reps} == {"heat.bp"}


def test_building_the_same_commit_twice_gives_identical_tables(campaign, camp, example_data, tmp_path, store):
    record(camp, campaign, example_data, hdf5=True)
    camp("--repo", campaign, "build", "-o", tmp_path / "a.aca")
    camp("--repo", campaign, "build", "-o", tmp_path / "b.aca")
    for t in TABLES:
        assert table(tmp_path / "a.aca", t) == table(tmp_path / "b.aca", t), t


def test_empty_campaign_builds_an_archive_with_all_tables(campaign, camp, tmp_path, store):
    camp("--repo", campaign, "build", "-o", tmp_path / "empty.aca")
    assert len(table(tmp_path / "empty.aca", "info")) == 1
    for t in TABLES[1:]:
        assert table(tmp_path / "empty.aca", t) == []


def test_json_output_describes_the_archive(campaign, camp, example_data, tmp_path, store):
    record(camp, campaign, example_data)
    r = camp("--repo", campaign, "build", "--json")
    result = json.loads(r.output)
    path = store / "proj" / "run_001.aca"
    with CampaignRepo.open(str(campaign)) as repo:
        head = repo.head().decode()
    assert result == {
        "path": str(path),
        "commit": head,
        "datasets": 4,
        "replicas": 5,
        "files": 6,
        "size_bytes": path.stat().st_size,
        "incremental": False,
        "rewritten": 0,
        "warnings": [],
        "left_out": [],
        "instead_of": None,
        "check": None,
    }


# -- revisions, deletions, failures -------------------------------------------------


def test_building_an_older_commit_gives_that_commits_datasets(campaign, camp, example_data, tmp_path, store):
    camp("--repo", campaign, "add", "heat.bp", cwd=example_data)
    camp("--repo", campaign, "commit", "-m", "heat")
    camp("--repo", campaign, "add", "pressure.bp")
    camp("--repo", campaign, "commit", "-m", "pressure")
    camp("--repo", campaign, "build", "HEAD~1", "-o", tmp_path / "old.aca")
    camp("--repo", campaign, "build", "-o", tmp_path / "new.aca")
    assert [d[0] for d in table(tmp_path / "old.aca", "dataset")] == ["heat.bp"]
    assert [d[0] for d in table(tmp_path / "new.aca", "dataset")] == ["heat.bp", "pressure.bp"]
    assert table(tmp_path / "old.aca", "info")[0][3] == commit_time_ns(campaign, "HEAD~1")


def test_deleted_datasets_and_replicas_are_omitted_or_kept(campaign, camp, example_data, tmp_path, store):
    record(camp, campaign, example_data)
    gone = 1_700_000_000_123_456_789
    pressure = manifest(campaign, "pressure.bp", "HEAD")
    plot = manifest(campaign, "plot.png", "HEAD")
    thumb = [r for r in plot.replicas if r.path.startswith("thumbnails/")][0]
    commit_manifests(
        campaign,
        datasets=[
            dataclasses.replace(pressure, deltime=gone),
            dataclasses.replace(
                plot,
                replicas=tuple(
                    dataclasses.replace(r, deltime=gone) if r is thumb else r for r in plot.replicas
                ),
            ),
        ],
        message="delete pressure and the thumbnail",
    )

    omitted = tmp_path / "omitted.aca"
    r = camp("--repo", campaign, "build", "-o", omitted)
    assert "(3 datasets, 3 replicas, 3 embedded files," in r.output
    assert [d[0] for d in table(omitted, "dataset")] == ["heat.bp", "notes.txt", "plot.png"]
    assert [rep[4] for rep in table(omitted, "replica")] == ["heat.bp", "notes.txt", "plot.png"]
    assert [f[1] for f in table(omitted, "file")] == ["metadata", "profiling.json", "notes.txt"]
    assert [res[1:] for res in table(omitted, "resolution")] == [(640, 480)]
    variables, _attrs, _data = adios_view(omitted)
    assert sorted(variables) == ["heat.bp/T", "heat.bp/step", "notes.txt", "plot.png/640x480"]

    # --keep-deleted keeps the tombstones ADIOS2 honours (the thumbnail's); those of ADIOS datasets
    # and replicas stay out all the same: ADIOS2 2.12.1 ignores their deletion time.
    heat = manifest(campaign, "heat.bp", "HEAD")
    old_copy = dataclasses.replace(heat.replicas[0], dir="/scratch/old", deltime=gone)
    commit_manifests(campaign, datasets=[dataclasses.replace(heat, replicas=(*heat.replicas, old_copy))],
                     message="a deleted copy of heat")
    kept = tmp_path / "kept.aca"
    r = camp("--repo", campaign, "build", "--keep-deleted", "-o", kept)
    assert r.stderr == (
        "camp: warning: --keep-deleted: the deleted rows of 2 ADIOS datasets (heat.bp, pressure.bp) are left "
        "out all the same: ADIOS2 2.12.1 ignores the deletion time of ADIOS rows and would read them as live "
        "data\n"
    )
    with connect(kept) as con:
        ds = dict(con.execute("select name, deltime from dataset"))
        reps = sorted(con.execute("select name, deltime from replica"))
    assert ds == {"heat.bp": 0, "notes.txt": 0, "plot.png": 0}
    assert reps == [("heat.bp", 0), ("notes.txt", 0), ("plot.png", 0), ("thumbnails/plot.png", gone)]
    assert sorted(adios_view(kept)[0]) == sorted(variables)  # ADIOS2 hides the thumbnail's tombstone itself


def test_failed_build_leaves_the_previous_archive_untouched(campaign, camp, example_data, store):
    record(camp, campaign, example_data)
    camp("--repo", campaign, "build")
    path = store / "proj" / "run_001.aca"
    before = path.read_bytes()
    # A manifest (sorted after the good ones, so the build fails midway) naming a missing blob.
    missing = BlobId("0" * 40)
    broken = Dataset(
        "zz/broken.bp",
        "f" * 32,
        "ADIOS",
        1,
        replicas=(
            Replica(
                "laptop",
                str(example_data),
                "broken.bp",
                10,
                1,
                files=(EmbeddedFile("metadata", missing, 1, 10, 10, 1, "0" * 40),),
            ),
        ),
    )
    commit_manifests(campaign, datasets=[broken], message="broken")
    r = camp("--repo", campaign, "build", ok=False)
    assert r.exit_code != 0
    assert r.stderr == f"camp: error: object {missing} is missing from the repository\n"
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["run_001.aca"]


def test_missing_campaign_store_is_one_clear_line(campaign, camp, example_data):
    record(camp, campaign, example_data)
    r = camp("--repo", campaign, "build", ok=False)
    assert r.exit_code != 0
    assert r.stderr == (
        "camp: error: no campaign store: set Campaign.campaignstorepath in "
        "~/.config/hpc-campaign/config.yaml or pass -o PATH\n"
    )
    assert r.stdout == ""


def test_output_must_be_an_aca_file(campaign, camp, tmp_path, store):
    for bad in ("out.sqlite", "out", ".aca"):
        r = camp("--repo", campaign, "build", "-o", tmp_path / bad, ok=False)
        assert r.exit_code != 0 and r.stderr.startswith("camp: error: ") and ".aca" in r.stderr
        assert len(r.stderr.splitlines()) == 1
        assert not (tmp_path / bad).exists()
    (tmp_path / "dir.aca").mkdir()
    r = camp("--repo", campaign, "build", "-o", tmp_path / "dir.aca", ok=False)
    assert r.exit_code != 0 and "is a directory" in r.stderr
    assert list((tmp_path / "dir.aca").iterdir()) == []


def test_unknown_revision(campaign, camp, store):
    r = camp("--repo", campaign, "build", "nosuchrev", ok=False)
    assert r.exit_code != 0 and r.stderr == "camp: error: unknown revision: nosuchrev\n"
    assert not store.exists()


def test_replica_in_an_unlisted_archive_is_refused(campaign, camp, example_data, tmp_path, store):
    record(camp, campaign, example_data)
    heat = manifest(campaign, "heat.bp", "HEAD")
    local = heat.replicas[0]
    tape = dataclasses.replace(local, host="hpss", dir="/arch/proj", archive="run1.tar")
    commit_manifests(campaign, datasets=[heat.with_replica(tape)])
    r = camp("--repo", campaign, "build", "-o", tmp_path / "x.aca", ok=False)
    assert r.exit_code != 0
    assert r.stderr == (
        "camp: error: dataset heat.bp: replica heat.bp is in archive /arch/proj/run1.tar on host "
        "hpss, which that host's manifest does not list\n"
    )
    assert not (tmp_path / "x.aca").exists()


# -- archives, TAR indexes, keys, accuracy, time series -----------------------------


def test_archives_tar_index_keys_accuracy_and_time_series(
    campaign, camp, example_data, tmp_path, store, clean_env
):
    from nacl.secret import SecretBox

    record(camp, campaign, example_data)
    key = bytes(range(32))
    key_id = "8b4d" * 8

    def encrypt(payload):
        return SecretBox(key).encrypt(payload.data), payload.checksum

    porcelain.add(
        ["notes.txt"],
        repo=str(campaign),
        name="secret/notes.txt",
        store=True,
        cwd=str(example_data),
        env=dict(os.environ),
        encrypt=encrypt,
        key_id=key_id,
    )
    notes = b"tapes 17-19, ask the archive desk"
    heat = manifest(campaign, "heat.bp", "HEAD")
    (local,) = heat.replicas
    tar = (
        TarMember("", 0, 512, 0),
        TarMember("md.idx", 2560, 3072, 228),
        TarMember("data.0", 3584, 4096, 8272),
    )
    tape = dataclasses.replace(
        local, host="hpss", dir="/arch/proj", archive="run1.tar", tarindex=tar, accuracy=(0.01, 2.0, 1)
    )
    whole = dataclasses.replace(local, host="hpss", dir="/arch/proj", archive="", path="copies/heat.bp")
    hpss = Host(
        "hpss",
        "hpss.example.org",
        "",
        1_600_000_000_000_000_000,
        archives=(
            Archive(
                "/arch/proj",
                "run1.tar",
                "fs",
                BlobId(hashlib.sha1(b"blob %d\0" % len(notes) + notes).hexdigest()),
            ),
            Archive("/arch/proj", "", "HPSS"),
            Archive("/arch/empty", "", "Kronos"),
        ),
    )
    series = TimeSeries("heatseries", ("heat.bp", "notes.txt", "pressure.bp", "missing.bp"))
    commit_manifests(
        campaign,
        datasets=[heat.with_replica(tape).with_replica(whole)],
        hosts=[hpss],
        series=[series],
        blobs=[notes],
        message="archive and series",
    )

    out = tmp_path / "all.aca"
    camp("--repo", campaign, "build", "-o", out)
    assert table(out, "host")[0] == ("hpss", "hpss.example.org", 1_600_000_000_000_000_000, 0, "")
    assert [h[0] for h in table(out, "host")] == ["hpss", "laptop"]
    dirs = table(out, "directory")
    assert [d[:2] for d in dirs] == [
        (1, "/arch/empty"),
        (1, "/arch/proj"),
        (2, os.path.realpath(example_data)),
    ]
    assert table(out, "archive") == [
        (1, "", "Kronos", None),
        (2, "", "HPSS", None),
        (2, "run1.tar", "fs", notes),
    ]
    with connect(out) as con:
        archived = con.execute(
            "select r.rowid, r.name, r.hostid, r.dirid, r.archiveid from replica r join dataset d "
            "on d.rowid = r.datasetid where d.name = 'heat.bp' order by r.rowid"
        ).fetchall()
        files = dict(con.execute("select replicaid, group_concat(fileid) from repfiles group by replicaid"))
        secret = con.execute(
            "select r.keyid, f.lencompressed, length(f.data), f.checksum from replica r "
            "join dataset d on d.rowid = r.datasetid join repfiles l on l.replicaid = r.rowid "
            "join file f on f.fileid = l.fileid where d.name = 'secret/notes.txt'"
        ).fetchone()
        series_rows = con.execute("select name, tsid, tsorder from dataset order by name").fetchall()
    # Replicas in manifest order: the archived ones (host hpss) sort before the local one.
    assert [a[1:] for a in archived] == [
        ("copies/heat.bp", 1, 2, 2),
        ("heat.bp", 1, 2, 3),
        ("heat.bp", 2, 3, 0),
    ]
    whole_id, tar_id, local_id = (a[0] for a in archived)
    assert files[whole_id] == files[tar_id] == files[local_id]  # archived replicas share the file rows
    assert table(out, "archiveidx") == [(3, tar_id, t.filename, t.offset, t.offset_data, t.size) for t in tar]
    assert table(out, "accuracy") == [(tar_id, 0.01, 2.0, 1)]
    assert table(out, "key") == [(key_id,)]
    keyid, lencompressed, stored, checksum = secret
    assert keyid == 1 and stored == lencompressed + 40
    assert checksum == hashlib.sha1((example_data / "notes.txt").read_bytes()).hexdigest()
    assert table(out, "timeseries") == [(1, "heatseries")]
    assert ("heat.bp", 1, 0) in series_rows and ("pressure.bp", 1, 1) in series_rows
    assert ("notes.txt", 0, 0) in series_rows  # text never joins a series

    # ADIOS2 reads the series as one dataset of 3 + 2 steps (local replicas need no key).
    variables, _attrs, data = adios_view(out)
    assert variables["heatseries/T"]["AvailableStepsCount"] == "5"
    assert "heat.bp/T" not in variables and "pressure.bp/T" not in variables
    expected = [(np.arange(10) + 1) * (i + 1) for i in range(3)] + [
        (np.arange(10) + 2) * (i + 1) for i in range(2)
    ]
    assert np.array_equal(data["heatseries/T"], np.concatenate(expected))


# -- the decisive test: ADIOS2 opens what camp builds -------------------------------


def test_adios2_opens_the_archive_and_reads_the_data(campaign, camp, example_data, store):
    import adios2

    record(camp, campaign, example_data)
    camp("--repo", campaign, "build")
    path = store / "proj" / "run_001.aca"
    variables, attributes, data = adios_view(path)
    assert sorted(variables) == [
        "heat.bp/T",
        "heat.bp/step",
        "notes.txt",
        "plot.png/640x480",
        "plot.png/64x48",
        "pressure.bp/T",
        "pressure.bp/step",
    ]
    # BP5 variables as the dataset itself shows them
    for ds in ("heat.bp", "pressure.bp"):
        with adios2.FileReader(str(example_data / ds)) as f:
            own = f.available_variables()
            for var in own:
                assert variables[f"{ds}/{var}"]["Shape"] == own[var]["Shape"]
                assert variables[f"{ds}/{var}"]["AvailableStepsCount"] == own[var]["AvailableStepsCount"]
                assert variables[f"{ds}/{var}"]["Type"] == own[var]["Type"]
    assert variables["heat.bp/T"]["AvailableStepsCount"] == "3" and variables["heat.bp/T"]["Shape"] == "10"
    assert variables["pressure.bp/T"]["AvailableStepsCount"] == "2"
    heat = data["heat.bp/T"].reshape(3, 10)
    for i in range(3):
        assert np.array_equal(heat[i], (np.arange(10, dtype=np.float64) + 1) * (i + 1))
    assert list(data["heat.bp/step"]) == [0, 1, 2]
    assert attributes["heat.bp/unit"]["Value"] == '"K"'
    # the stored text as a char variable
    note = (example_data / "notes.txt").read_bytes()
    assert variables["notes.txt"]["Type"] == "char" and variables["notes.txt"]["Shape"] == str(len(note))
    assert data["notes.txt"].tobytes() == note
    assert attributes["notes.txt/__dataset_type__"]["Value"] == '"text"'
    # the image and its thumbnail, <name>/<x>x<y>
    png = (example_data / "plot.png").read_bytes()
    assert variables["plot.png/640x480"]["Shape"] == str(len(png))
    assert data["plot.png/640x480"].tobytes() == png
    with CampaignRepo.open(str(campaign)) as repo:
        thumb = [r for r in repo.dataset("plot.png").replicas if r.path == "thumbnails/plot.png"][0]
        thumb_bytes = repo.read_blob(thumb.files[0].blob.encode())
    assert data["plot.png/64x48"].tobytes() == thumb_bytes
    assert attributes["plot.png/64x48/__dataset_type__"]["Value"] == '"image"'


# -- names of any shape keep their order --------------------------------------------


def test_dataset_rows_follow_the_names_whatever_they_are(tmp_path_factory, store):
    """Rows are sorted by name (as SQLite's ORDER BY name sorts them) for names of any shape."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    name = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=12
    )

    @settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sets(name, min_size=1, max_size=8))
    def check(names):
        root = tmp_path_factory.mktemp("names") / "c"
        porcelain.init(str(root), "names", host="laptop", env=dict(os.environ))
        datasets = [
            Dataset(
                n,
                hashlib.md5(n.encode()).hexdigest(),
                "TEXT",
                1,
                replicas=(Replica("laptop", "/data", "f.txt", 3, 1),),
            )
            for n in names
        ]
        commit_manifests(root, datasets=datasets)
        out = root.parent / "n.aca"
        result = porcelain.build(repo=str(root), output=str(out), env=dict(os.environ))
        assert result.datasets == len(names)
        with connect(out) as con:
            rows = con.execute("select rowid, name from dataset order by rowid").fetchall()
            by_sql = [r[0] for r in con.execute("select name from dataset order by name")]
        assert [r[0] for r in rows] == list(range(1, len(names) + 1))
        assert [r[1] for r in rows] == sorted(names) == by_sql

    check()


def test_exclude_kind_leaves_hdf5_out_so_pypi_adios2_can_open_it(tmp_path, camp, campaign, example_data):
    import adios2

    home = os.environ["HOME"]
    cfg = os.path.join(home, ".config", "hpc-campaign")
    os.makedirs(cfg, exist_ok=True)
    with open(os.path.join(cfg, "config.yaml"), "w") as f:
        f.write(f"Campaign:\n  hostname: laptop\n  cachepath: {tmp_path / 'cache'}\n")
    camp("--repo", campaign, "add", "-m", "both", "heat.bp", "mesh.h5", cwd=example_data)
    out = tmp_path / "nohdf5.aca"
    camp("--repo", campaign, "build", "-o", out, "--exclude-kind", "HDF5")
    with sqlite3.connect(out) as con:
        assert [r[0] for r in con.execute("select fileformat from dataset")] == ["ADIOS"]
    with adios2.FileReader(str(out)) as fr:
        assert "heat.bp/T" in fr.available_variables()


# -- the campaign store: never another repository's archive ----------------------------


def test_an_archive_another_repository_built_is_not_overwritten(campaign, camp, example_data, store, tmp_path):
    record(camp, campaign, example_data)
    camp("--repo", campaign, "build")
    path = store / "proj" / "run_001.aca"
    ours = path.read_bytes()
    other = tmp_path / "other"  # a second clone, or a campaign that happens to have the same archive name
    camp("init", other, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", other, "add", "-m", "theirs", "heat.bp", cwd=example_data)
    r = camp("--repo", other, "build", ok=False)
    assert r.exit_code == 1 and r.stdout == ""
    assert r.stderr == (
        f"camp: error: {path} was built by another repository ({campaign}): not overwritten; "
        "pass --force to replace it, or -o PATH.aca to build elsewhere\n"
    )
    assert path.read_bytes() == ours and sorted(os.listdir(path.parent)) == ["run_001.aca"]
    # -o builds elsewhere; --force takes the store's name over
    camp("--repo", other, "build", "-o", tmp_path / "theirs.aca")
    camp("--repo", other, "build", "--force")
    with connect(path) as con:
        assert dict(con.execute("select key, value from camp_build"))["repository"] == str(other)
    r = camp("--repo", campaign, "build", ok=False)
    assert f"was built by another repository ({other})" in r.stderr
    # an archive camp did not build (hpc-campaign's: no camp_build table) is not overwritten either
    with sqlite3.connect(path) as con:
        con.execute("drop table camp_build")
    before = path.read_bytes()
    r = camp("--repo", campaign, "build", ok=False)
    assert r.stderr == (
        f"camp: error: {path} was built by another tool (it has no camp_build table): not overwritten; "
        "pass --force to replace it, or -o PATH.aca to build elsewhere\n"
    )
    assert path.read_bytes() == before
    camp("--repo", campaign, "build", "--force")
    with connect(path) as con:
        assert dict(con.execute("select key, value from camp_build"))["repository"] == str(campaign)


def test_a_second_clone_builds_beside_the_first_clones_archive(campaign, camp, example_data, store, tmp_path):
    record(camp, campaign, example_data)
    remote = tmp_path / "remote"
    camp("--repo", campaign, "remote", "add", "origin", remote)
    camp("--repo", campaign, "push", "--no-build")
    first = json.loads(camp("clone", remote, tmp_path / "c1", "--json").output)
    path = store / "proj" / "run_001.aca"
    assert first["archive"] == str(path) and first["warnings"] == []
    before = path.read_bytes()
    r = camp("clone", remote, tmp_path / "c2")
    second = store / "proj" / "run_001-2.aca"
    assert f"archive: {second}\n" in r.stdout
    assert r.stderr == (
        f"camp: warning: {path} was built by another repository, so this clone's archive is {second} "
        f"(camp build and camp pull keep it up to date)\n"
    )
    assert path.read_bytes() == before
    with connect(second) as con:
        assert dict(con.execute("select key, value from camp_build"))["repository"] == str(tmp_path / "c2")
    # camp build and camp pull in the second clone keep to its own archive
    assert camp("--repo", tmp_path / "c2", "build", "--full").stdout.startswith(f"built {second} ")
    extra = tmp_path / "extra.txt"
    extra.write_text("one more\n")
    camp("--repo", campaign, "add", "-m", "more", "extra.txt", cwd=tmp_path)
    camp("--repo", campaign, "push", "--no-build")
    pulled = json.loads(camp("--repo", tmp_path / "c2", "pull", "--json").stdout)
    assert pulled["archive"] == str(second) and pulled["warnings"] == []
    with connect(second) as con:
        assert "extra.txt" in {n for (n,) in con.execute("select name from dataset")}
    assert path.read_bytes() == before


# -- killed builds -------------------------------------------------------------------------


def run_camp(*args, **env):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "campaignvcs", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_a_killed_build_leaves_no_archive_and_the_next_build_sweeps_its_temporary(
        campaign, camp, example_data, store, tmp_path):
    import signal
    import time

    from campaignvcs.tempfiles import writer_tag

    record(camp, campaign, example_data)
    folder = store / "proj"
    proc = run_camp("--repo", campaign, "build", CAMP_FAULT="build-before-rename")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (left,) = os.listdir(folder)  # the complete archive under its temporary name, and nothing else
    assert left.startswith(".run_001.aca.") and left.endswith(".tmp") and not left.endswith(".aca")
    full_size = (folder / left).stat().st_size
    # other temporaries: a live writer's (this test's process), fresh and old ones from another host
    # (whose writers cannot be checked from here), and another archive's
    live = folder / f".run_001.aca.{writer_tag()}~0badcafe.tmp"
    fresh = folder / ".run_001.aca.other-node~4242~99~00c0ffee.tmp"
    old = folder / ".run_001.aca.other-node~4243~99~0defaced.tmp"
    neighbour = folder / ".run_002.aca.other-node~4244~99~0ddba11.tmp"
    for f in (live, fresh, old, neighbour):
        f.write_bytes(b"x")
    hours_ago = time.time() - 7200
    os.utime(old, (hours_ago, hours_ago))
    os.utime(neighbour, (hours_ago, hours_ago))
    camp("--repo", campaign, "build")
    assert sorted(os.listdir(folder)) == sorted(["run_001.aca", live.name, fresh.name, neighbour.name])
    assert (folder / "run_001.aca").stat().st_size == full_size
    # a killed incremental build leaves the previous archive as it was
    before = (folder / "run_001.aca").read_bytes()
    camp("--repo", campaign, "add", "-m", "more", "--store", "notes.txt", "--name", "notes-2.txt",
         cwd=example_data)
    proc = run_camp("--repo", campaign, "build", CAMP_FAULT="build-before-rename")
    assert proc.returncode == -signal.SIGKILL
    assert (folder / "run_001.aca").read_bytes() == before
    assert len([n for n in os.listdir(folder) if n.startswith(".run_001.aca.")]) == 3
    result = json.loads(camp("--repo", campaign, "build", "--json").output)
    assert result["incremental"] and result["datasets"] == 5
    assert sorted(os.listdir(folder)) == sorted(["run_001.aca", live.name, fresh.name, neighbour.name])
