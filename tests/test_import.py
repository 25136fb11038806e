"""camp import: archives the real hpc-campaign 0.7.1 writes become one commit, losslessly.

The archives are made by running ``python -m hpc_campaign manager`` as a user would
(every item kind: BP5, HDF5, stored and unstored text, stored images and thumbnails,
a TAR archive with its index, a plain archival directory with an archived replica, an
https archive host, a time series, deletions, an encrypted session). The import is
checked against sqlite3 queries on the original, then built back with ``camp build``
and compared row by row (by names, not ids) and through ADIOS2. Versions 0.5 and 0.6 are
made by rewriting a reference archive into the old schemas that ``hpc_campaign manager
upgrade`` reads, and the reference's own upgrade is run on them as a cross-check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile

import make_data
import numpy as np
import pytest
from helpers import assert_one_line_error, require_module

require_module("hpc_campaign", "the reference tool hpc-campaign (pip install .[test])")
require_module("dateutil", "python-dateutil, which hpc-campaign needs (pip install .[test])")

from test_build import IDENTITY, adios_view, configure, store  # noqa: E402, F401

from campaignvcs import layout  # noqa: E402
from campaignvcs.aca.read import read_aca  # noqa: E402
from campaignvcs.aca.values import to_ns  # noqa: E402
from campaignvcs.model import dumps  # noqa: E402
from campaignvcs.repo import CampaignRepo  # noqa: E402

# -- running the reference ----------------------------------------------------------


def run_reference(home, cwd, *args, tool="manager", stdin=None):
    """``python -m hpc_campaign <tool> ...`` with this test's HOME (its config.yaml decides the host)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env["HOME"] = str(home)
    r = subprocess.run(
        [sys.executable, "-m", "hpc_campaign", tool, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        input=stdin,
    )
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout[-2000:] + r.stderr
    return r


def query(path, sql, params=()):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        return con.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A reference home (config: host ``laptop``) and a folder of real data to record."""
    root = tmp_path_factory.mktemp("reference")
    home, store, data = root / "home", root / "store", root / "data"
    for p in (home, store, data):
        p.mkdir()
    configure(home, store)
    make_data.make_bp5(str(data / "a.bp"), steps=4, n=12, seed=7)
    make_data.make_bp5(str(data / "b.bp"), steps=2, n=5, seed=8)
    make_data.make_hdf5(str(data / "mesh.h5"), seed=3)
    make_data.make_text(str(data / "notes.txt"), seed=9)
    make_data.make_text(str(data / "other.txt"), seed=2)
    make_data.make_png(str(data / "plot.png"), size=(200, 150), seed=10)
    make_data.make_png(str(data / "pic.png"), size=(40, 30), seed=11)
    return root, home, data


@pytest.fixture(scope="module")
def full(reference):
    """An archive with every item kind hpc-campaign knows, written by hpc-campaign itself."""
    root, home, data = reference
    aca = root / "full.aca"
    run_reference(
        home,
        data,
        aca,
        "data",
        "a.bp",
        "b.bp",
        "mesh.h5",
        "text",
        "--store",
        "notes.txt",
        "text",
        "other.txt",
        "image",
        "plot.png",
        "--thumbnail",
        "64",
        "64",
        "image",
        "pic.png",
        "--store",
    )
    with tarfile.open(root / "arch.tar", "w", format=tarfile.USTAR_FORMAT) as tf:
        for name in ("a.bp", "notes.txt", "mesh.h5"):
            tf.add(data / name, arcname=name)
    run_reference(home, root, "arch.tar", "arch.idx", tool="taridx")
    (root / "note.txt").write_bytes(b"tape notes\n\x00binary ok\n")
    run_reference(
        home,
        data,
        aca,
        "add-archival-storage",
        "fs",
        "tarhost",
        "/archive/tars",
        "arch.tar",
        root / "arch.idx",
        "--longhostname",
        "tar.example.org",
        "--note",
        root / "note.txt",
    )
    run_reference(home, data, aca, "add-archival-storage", "HPSS", "hpss", "/hpss/proj")
    run_reference(
        home,
        data,
        aca,
        "add-archival-storage",
        "https",
        "web",
        "/srv/www",
        "--longhostname",
        "www.example.org",
    )
    (hpss_dir,) = query(
        aca, "select d.rowid from directory d join host h on h.rowid = d.hostid where h.hostname = 'hpss'"
    )[0]
    (tar_mesh,) = query(
        aca,
        "select r.rowid from replica r join dataset d on d.rowid = r.datasetid "
        "where d.name = 'mesh.h5' and r.archiveid > 0",
    )[0]
    run_reference(
        home,
        data,
        aca,
        "archived-replica",
        "b.bp",
        hpss_dir,
        "time-series",
        "series",
        "a.bp",
        "b.bp",
        "delete",
        "--name",
        "other.txt",
        "delete",
        "--replica",
        tar_mesh,
    )
    return aca


@pytest.fixture(scope="module")
def keyed(reference):
    """An archive whose second session ran with ``-k KEYFILE`` (a key without password)."""
    root, home, data = reference
    key = root / "campaign.key"
    run_reference(home, root, "generate", key, tool="genkey", stdin="test key\n")
    aca = root / "keyed.aca"
    run_reference(home, data, aca, "text", "--store", "other.txt")
    run_reference(
        home,
        data,
        aca,
        "-k",
        key,
        "data",
        "a.bp",
        "mesh.h5",
        "text",
        "--store",
        "notes.txt",
        "image",
        "plot.png",
        "--thumbnail",
        "32",
        "32",
        "image",
        "pic.png",
        "--store",
    )
    return aca, key


def natural(path):
    """Everything an archive says, keyed by names instead of rowids (ids may differ, content may not)."""
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        hosts = {
            r[0]: r[1:]
            for r in q("select rowid, hostname, longhostname, modtime, default_protocol from host")
        }
        dirs = {r[0]: (hosts[r[1]][0], r[2]) for r in q("select rowid, hostid, name from directory")}
        archives = {
            r[0]: (*dirs[r[1]], r[2], r[3], r[4])
            for r in q("select rowid, dirid, tarname, system, notes from archive")
        }
        keys = {r[0]: r[1] for r in q("select rowid, keyid from key")}
        series = {r[0]: r[1] for r in q("select tsid, name from timeseries")}
        datasets = {
            r[0]: r[1:]
            for r in q("select rowid, name, uuid, modtime, deltime, fileformat, tsid, tsorder from dataset")
        }
        files = {
            r[0]: r[1:]
            for r in q(
                "select fileid, name, compression, lenorig, lencompressed, modtime, checksum, data from file"
            )
        }
        links: dict[int, list] = {}
        for rep, fid in q("select replicaid, fileid from repfiles"):
            links.setdefault(rep, []).append(files[fid])
        res = {r[0]: r[1:] for r in q("select replicaid, x, y from resolution")}
        tar: dict[int, list] = {}
        for a, rep, *rest in q(
            "select archiveid, replicaid, filename, offset, offset_data, size from archiveidx"
        ):
            tar.setdefault(rep, []).append((archives[a][:3], *rest))
        replicas = sorted(
            (
                datasets[ds][0],
                *dirs[d],
                archives[a][2] if a else None,
                name,
                mt,
                dt,
                keys.get(k, ""),
                size,
                res.get(rid),
                tuple(sorted(links.get(rid, ()))),
                tuple(sorted(tar.get(rid, ()))),
            )
            for rid, ds, h, d, a, name, mt, dt, k, size in q(
                "select rowid, datasetid, hostid, dirid, archiveid, name, modtime, deltime, keyid, size "
                "from replica"
            )
        )
        return {
            "hosts": sorted(hosts.values()),
            "archives": sorted(archives.values()),
            "keys": sorted(keys.values()),
            "datasets": sorted(
                (n, u, m, d, f, series.get(t), o) for n, u, m, d, f, t, o in datasets.values()
            ),
            "replicas": replicas,
        }
    finally:
        con.close()


def git_state(root):
    """What a refused import must leave alone: the log, HEAD and the staging area."""
    log = subprocess.run(["git", "log", "--format=%H %s"], cwd=root, capture_output=True, text=True).stdout
    return log, (root / ".git" / "camp" / "index.json").read_bytes()


def head_datasets(root):
    with CampaignRepo.open(str(root)) as repo:
        tree = repo.tree_of(repo.head())
        return (
            {d.name: d for d in repo.datasets(tree)},
            {h.name: h for h in repo.hosts(tree)},
            {s.name: s for s in repo.timeseries(tree)},
        )


# -- the import itself ---------------------------------------------------------------


def test_import_keeps_every_row_of_a_reference_archive(full, campaign, camp, tmp_path):
    before = git_state(campaign)[0]
    r = camp("--repo", campaign, "import", full)
    (n_ds,), (n_rep,) = (
        query(full, "select count(*) from dataset")[0],
        query(full, "select count(*) from replica")[0],
    )
    (n_files,) = query(full, "select count(distinct fileid) from repfiles")[0]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=campaign, capture_output=True, text=True).stdout
    assert r.output == (
        f"imported {full}: {n_ds} datasets, {n_rep} replicas, {n_files} embedded files into {head[:10]}\n"
    )
    log = git_state(campaign)[0]
    assert log.count("\n") == before.count("\n") + 1 and log.split("\n")[0].endswith(" Import full.aca")

    datasets, hosts, series = head_datasets(campaign)
    with CampaignRepo.open(str(campaign)) as repo:
        # datasets: name, uuid, kind, times, deletions
        rows = query(full, "select name, uuid, modtime, deltime, fileformat from dataset")
        assert sorted(datasets) == sorted(r[0] for r in rows)
        for name, uuid, modtime, deltime, kind in rows:
            ds = datasets[name]
            assert (ds.uuid, ds.modtime, ds.deltime, ds.kind) == (uuid, modtime, deltime, kind)
        assert datasets["other.txt"].deltime > 0 and not datasets["other.txt"].replicas[0].live

        # replicas, their files (bytes included), resolutions and TAR rows
        reps = query(
            full,
            "select r.rowid, d.name, h.hostname, dir.name, r.archiveid, a.tarname, r.name, r.modtime, "
            "r.deltime, r.keyid, r.size from replica r join dataset d on d.rowid = r.datasetid "
            "join host h on h.rowid = r.hostid join directory dir on dir.rowid = r.dirid "
            "left join archive a on a.rowid = r.archiveid",
        )
        assert sum(len(d.replicas) for d in datasets.values()) == len(reps)
        for rid, ds, host, folder, archiveid, tarname, path, mtime, deltime, _keyid, size in reps:
            archive = tarname if archiveid else None
            (rep,) = [
                x
                for x in datasets[ds].replicas
                if x.location == (host, folder, "" if archive is None else "\0" + archive, path)
            ]
            assert (rep.mtime, rep.deltime, rep.size, rep.key) == (mtime, deltime, size, "")
            want_files = query(
                full,
                "select f.name, f.compression, f.lenorig, f.lencompressed, f.modtime, "
                "f.checksum, f.data from file f join repfiles l on l.fileid = f.fileid "
                "where l.replicaid = ?",
                (rid,),
            )
            got_files = [
                (
                    f.name,
                    f.compression,
                    f.lenorig,
                    f.lencompressed,
                    f.modtime,
                    f.checksum,
                    repo.read_blob(f.blob.encode()),
                )
                for f in rep.files
            ]
            assert sorted(got_files) == sorted(want_files), (ds, path)
            res = query(full, "select x, y from resolution where replicaid = ?", (rid,))
            assert rep.resolution == (tuple(res[0]) if res else None)
            tar = query(
                full,
                "select filename, offset, offset_data, size from archiveidx where replicaid = ? "
                "order by rowid",
                (rid,),
            )
            assert [(t.filename, t.offset, t.offset_data, t.size) for t in rep.tarindex] == tar
        assert len(datasets["a.bp"].replicas[1].tarindex) == 6  # directory header + 5 files of the BP5 dir

        # hosts and archival locations
        for name, longname, modtime, protocol in query(
            full, "select hostname, longhostname, modtime, default_protocol from host"
        ):
            h = hosts[name]
            assert (h.longhostname, h.modtime, h.default_protocol) == (longname, modtime, protocol)
        assert hosts["web"].default_protocol == "https" and hosts["hpss"].longhostname is None
        for host, folder, tarname, system, notes in query(
            full,
            "select h.hostname, d.name, a.tarname, a.system, a.notes from archive a "
            "join directory d on d.rowid = a.dirid join host h on h.rowid = d.hostid",
        ):
            (a,) = [a for a in hosts[host].archives if (a.dir, a.tarname) == (folder, tarname)]
            assert a.system == system
            assert (None if a.notes is None else repo.read_blob(a.notes.encode())) == notes
        assert hosts["tarhost"].archives[0].notes is not None

        # time series in tsorder
        assert series["series"].datasets == ("a.bp", "b.bp")
        assert [
            n
            for (n,) in query(
                full, "select d.name from dataset d join timeseries t on t.tsid = d.tsid order by d.tsorder"
            )
        ] == ["a.bp", "b.bp"]

    # camp build --keep-deleted gives back the same archive, name for name and byte for byte
    out = tmp_path / "out.aca"
    camp("--repo", campaign, "build", "-o", out, "--keep-deleted")
    assert natural(out) == natural(full)
    # ... and importing that build changes nothing
    r = camp("--repo", campaign, "import", out)
    assert r.output.startswith("nothing to import from ")
    assert git_state(campaign)[0] == log


def test_encrypted_payloads_stay_byte_identical_and_keep_their_key_id(keyed, campaign, camp, tmp_path):
    aca, key = keyed
    keyid = [line.split(": ", 1)[1] for line in key.read_text().splitlines() if line.startswith("id: ")][0]
    assert query(aca, "select keyid from key") == [(keyid,)]
    r = camp("--repo", campaign, "import", "--json", aca)
    assert '"version": "0.7"' in r.output
    datasets, _hosts, _series = head_datasets(campaign)
    rows = query(
        aca,
        "select d.name, r.name, k.keyid, f.name, f.lencompressed, f.checksum, f.data from replica r "
        "join dataset d on d.rowid = r.datasetid join repfiles l on l.replicaid = r.rowid "
        "join file f on f.fileid = l.fileid left join key k on k.rowid = r.keyid",
    )
    assert len([r for r in rows if r[2]]) == 6  # metadata, profiling.json, mesh.h5, notes, thumbnail, image
    with CampaignRepo.open(str(campaign)) as repo:
        for ds, path, kid, fname, lencompressed, checksum, data in rows:
            (rep,) = [x for x in datasets[ds].replicas if x.path == path]
            (f,) = [f for f in rep.files if f.name == fname]
            assert repo.read_blob(f.blob.encode()) == data
            assert f.checksum == checksum and f.lencompressed == lencompressed
            assert rep.key == (kid or "")
            if kid:
                assert len(data) == lencompressed + 40 and rep.checksum == ""
    # the plaintext session and the keyed one: other.txt unkeyed, the rest keyed
    assert datasets["other.txt"].replicas[0].key == "" and datasets["other.txt"].replicas[0].checksum
    assert {r.key for r in datasets["a.bp"].replicas} == {keyid}
    out = tmp_path / "out.aca"
    camp("--repo", campaign, "build", "-o", out, "--keep-deleted")
    assert natural(out) == natural(aca)


def test_build_of_an_import_reads_in_adios2_like_the_original(reference, campaign, camp, clean_env, tmp_path):
    _root, _home, data = reference
    store = tmp_path / "store"
    store.mkdir()
    configure(clean_env, store)  # host laptop: the reference's replicas are local to ADIOS2
    original = tmp_path / "original.aca"
    run_reference(
        clean_env,
        data,
        original,
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
    camp("--repo", campaign, "import", original)
    ours = tmp_path / "ours.aca"
    camp("--repo", campaign, "build", "-o", ours, "--keep-deleted")
    ref_vars, ref_attrs, ref_data = adios_view(original)
    our_vars, our_attrs, our_data = adios_view(ours)
    assert sorted(our_vars) == sorted(ref_vars)
    assert {"a.bp/T", "a.bp/step", "notes.txt", "plot.png/200x150", "plot.png/64x48"} <= set(our_vars)
    assert int(our_vars["a.bp/T"]["AvailableStepsCount"]) == 4
    for name, info in ref_vars.items():
        for field in ("Type", "Shape", "AvailableStepsCount", "Min", "Max", "SingleValue"):
            assert our_vars[name].get(field) == info.get(field), (name, field)
        assert our_data[name].dtype == ref_data[name].dtype
        assert np.array_equal(our_data[name], ref_data[name]), name
    assert our_attrs == ref_attrs
    assert natural(ours) == natural(original)


# -- older versions ------------------------------------------------------------------


def downgrade(src, dst, version):
    """Rewrite a 0.7 archive into the 0.6 or 0.5 schema (what ``manager upgrade`` starts from)."""
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    with con:
        con.execute(
            "create table file_old(replicaid INT, name TEXT, compression INT, lenorig INT, "
            "lencompressed INT, modtime INT, checksum TEXT, data BLOB, PRIMARY KEY (replicaid, name))"
        )
        con.execute(
            "insert into file_old select l.replicaid, f.name, f.compression, f.lenorig, f.lencompressed, "
            "f.modtime, f.checksum, f.data from repfiles l join file f on f.fileid = l.fileid "
            "order by l.replicaid, l.fileid"
        )
        con.execute("drop table file")
        con.execute("drop table repfiles")
        con.execute("alter table file_old rename to file")
        if version == "0.5":
            con.execute("alter table host drop column default_protocol")
            con.execute(
                "create table replica_old(datasetid INT, hostid INT, dirid INT, name TEXT, modtime INT, "
                "deltime INT, keyid INT, size INT, PRIMARY KEY (datasetid, hostid, dirid, name))"
            )
            con.execute(
                "insert into replica_old select datasetid, hostid, dirid, name, modtime, deltime, keyid, "
                "size from replica order by rowid"
            )
            con.execute("drop table replica")
            con.execute("alter table replica_old rename to replica")
            con.execute("create table archive_old(dirid INT, system TEXT, notes BLOB, PRIMARY KEY (dirid))")
            con.execute("insert into archive_old select dirid, system, notes from archive order by rowid")
            con.execute("drop table archive")
            con.execute("alter table archive_old rename to archive")
            con.execute("drop table archiveidx")
        con.execute("update info set version = ?", (version,))
    con.execute("vacuum")
    con.close()
    return dst


def fresh_campaign(camp, root):
    camp("init", root, "--name", "proj/old", "--host", "laptop")
    return root


def test_versions_0_6_and_0_5_import_like_0_7(full, reference, camp, tmp_path):
    _root, home, _data = reference
    camp("init", tmp_path / "c7", "--name", "p", "--host", "laptop")
    camp("--repo", tmp_path / "c7", "import", full)
    want, want_hosts, want_series = head_datasets(tmp_path / "c7")

    # 0.6: the same model exactly, before and after the reference upgrades it to 0.7
    old6 = downgrade(full, tmp_path / "old6.aca", "0.6")
    assert read_aca(str(old6)).version == "0.6"
    camp("init", tmp_path / "c6", "--name", "p", "--host", "laptop")
    camp("--repo", tmp_path / "c6", "import", old6)
    assert head_datasets(tmp_path / "c6") == (want, want_hosts, want_series)
    run_reference(home, tmp_path, old6, "upgrade")
    assert query(old6, "select version from info") == [("0.7",)]
    assert natural(old6) == natural(full)

    # 0.5: no protocols, no TAR names or indexes; a replica in an archival directory is archived
    old5 = downgrade(full, tmp_path / "old5.aca", "0.5")
    camp("init", tmp_path / "c5", "--name", "p", "--host", "laptop")
    r = camp("--repo", tmp_path / "c5", "import", "-m", "from 0.5", old5)
    (n_ds,) = query(full, "select count(*) from dataset")[0]
    assert r.output.startswith(f"imported {old5}: {n_ds} datasets, ")
    got, got_hosts, got_series = head_datasets(tmp_path / "c5")
    assert got_series == want_series
    assert set(got) == set(want)
    for name, ds in want.items():
        expect = sorted(
            (
                (
                    r.host,
                    r.dir,
                    None if r.archive is None else "",
                    r.path,
                    r.size,
                    r.mtime,
                    r.deltime,
                    r.resolution,
                    tuple(sorted(r.files, key=lambda f: f.name)),
                )
                for r in ds.replicas
            ),
            key=repr,
        )
        have = sorted(
            (
                (
                    r.host,
                    r.dir,
                    r.archive,
                    r.path,
                    r.size,
                    r.mtime,
                    r.deltime,
                    r.resolution,
                    tuple(sorted(r.files, key=lambda f: f.name)),
                )
                for r in got[name].replicas
            ),
            key=repr,
        )
        assert have == expect, name
        assert all(not r.tarindex for r in got[name].replicas)
        assert (got[name].uuid, got[name].deltime) == (ds.uuid, ds.deltime)
    assert got_hosts["web"].default_protocol == "" and [a.tarname for a in got_hosts["tarhost"].archives] == [
        ""
    ]
    with CampaignRepo.open(str(tmp_path / "c5")) as repo:
        assert repo.read_commit(repo.head()).message == b"from 0.5\n"
    # the reference's upgrade of the same file reads the same, except that it forgets the
    # archival link of 0.5 replicas (archiveid 0), which camp keeps
    run_reference(home, tmp_path, old5, "upgrade")
    run_reference(home, tmp_path, old5, "upgrade")
    up = read_aca(str(old5))
    assert up.version == "0.7"
    for ds in up.datasets:
        assert sorted((r.host, r.dir, r.path, r.files) for r in ds.replicas) == sorted(
            (r.host, r.dir, r.path, r.files) for r in got[ds.name].replicas
        )
        assert all(r.archive is None for r in ds.replicas)


# -- merging into an existing campaign ------------------------------------------------


def test_import_merges_with_datasets_already_recorded(
    full, reference, campaign, camp, tmp_path, example_data
):
    _root, _home, data = reference
    copy = tmp_path / "elsewhere"
    shutil.copytree(data / "a.bp", copy / "a.bp")
    camp("--repo", campaign, "add", "a.bp", cwd=copy)  # another replica of the same name
    camp("--repo", campaign, "add", "notes.txt", cwd=data)  # the same location the archive has
    camp("--repo", campaign, "commit", "-m", "mine")
    before, _hosts, _series = head_datasets(campaign)
    camp("--repo", campaign, "import", full)
    after, hosts, _series = head_datasets(campaign)
    a = after["a.bp"]
    assert a.uuid == before["a.bp"].uuid  # the campaign's identity is kept
    assert {(r.dir, r.archive) for r in a.replicas} == {
        (os.path.realpath(copy), None),
        (os.path.realpath(data), None),
        ("/archive/tars", "arch.tar"),
    }
    (mine,) = [r for r in a.replicas if r.dir == os.path.realpath(copy)]
    assert mine == [r for r in before["a.bp"].replicas][0]
    (notes,) = [r for r in after["notes.txt"].replicas if r.archive is None]
    (want,) = query(
        full,
        "select r.modtime from replica r join dataset d on d.rowid = r.datasetid "
        "where d.name = 'notes.txt' and r.archiveid = 0",
    )
    assert notes.mtime == want[0] and [f.name for f in notes.files] == ["notes.txt"]  # the archive's wins
    assert (
        hosts["laptop"].longhostname
        == query(full, "select longhostname from host where hostname = 'laptop'")[0][0]
    )


def test_import_refuses_while_changes_are_staged(full, campaign, camp, example_data):
    camp("--repo", campaign, "add", "notes.txt", cwd=example_data)
    before = git_state(campaign)
    r = camp("--repo", campaign, "import", full, ok=False)
    assert_one_line_error(r, "commit or drop the staged changes first")
    assert git_state(campaign) == before


def test_import_refuses_a_dataset_of_another_kind(full, campaign, camp, tmp_path, example_data):
    camp("--repo", campaign, "add", "--name", "notes.txt", "plot.png", cwd=example_data)
    camp("--repo", campaign, "commit", "-m", "an image called notes.txt")
    before = git_state(campaign)
    r = camp("--repo", campaign, "import", full, ok=False)
    assert_one_line_error(r, "dataset notes.txt is IMAGE in the campaign but TEXT in the archive")
    assert git_state(campaign) == before


def test_float_times_and_accuracy_rows(full, campaign, camp, tmp_path):
    """What the reference never writes but its format allows: float seconds (S3 path), accuracy."""
    aca = tmp_path / "s3.aca"
    shutil.copy(full, aca)
    with sqlite3.connect(aca) as con:
        con.execute("update dataset set modtime = 1661932050.25 where name = 'a.bp'")  # float s
        con.execute("update replica set modtime = 1661932050250.5 where name = 'b.bp'")  # float ms
        (rid,) = con.execute("select rowid from replica where name = 'b.bp' and archiveid = 0").fetchone()
        con.execute("insert into accuracy values (?, 0.01, 2.0, 1)", (rid,))
    camp("--repo", campaign, "import", aca)
    datasets, _h, _s = head_datasets(campaign)
    assert datasets["a.bp"].modtime == 1_661_932_050_250_000_000
    assert {r.mtime for r in datasets["b.bp"].replicas} == {1_661_932_050_250_500_000}
    assert [r.accuracy for r in datasets["b.bp"].replicas if r.archive is None] == [(0.01, 2.0, 1)]
    assert to_ns(1.7e18) == 1_700_000_000_000_000_000 and to_ns(1.7e15) == 1_700_000_000_000_000_000
    assert to_ns(1661932050.25) == 1_661_932_050_250_000_000 and to_ns(0.0) == 0
    out = tmp_path / "out.aca"
    camp("--repo", campaign, "build", "-o", out, "--keep-deleted")
    assert query(out, "select accuracy, norm, relative from accuracy") == [(0.01, 2.0, 1)]


# -- malformed archives ---------------------------------------------------------------


def _edit(*statements):
    def apply(path):
        with sqlite3.connect(path) as con:
            for sql in statements:
                con.execute(sql)

    return apply


def _text_file(path):
    path.write_text("hello, I am not a database\n" * 10)


def _empty_sqlite(path):
    sqlite3.connect(path).close()
    with sqlite3.connect(path) as con:
        con.execute("create table t(x)")
        con.execute("drop table t")


@pytest.mark.parametrize(
    "make, needle",
    [
        pytest.param(_text_file, "not an ADIOS campaign archive (file is not a database)", id="text-file"),
        pytest.param(_empty_sqlite, "not an ADIOS campaign archive (no info table)", id="no-tables"),
        pytest.param(
            _edit("update info set version = '0.4'"), "unsupported archive version 0.4", id="version-0.4"
        ),
        pytest.param(
            _edit("update replica set name = NULL where rowid = 3"),
            "replica 3 has NULL name",
            id="null-replica-name",
        ),
        pytest.param(
            _edit("update replica set dirid = 99 where rowid = 2"),
            "replica 2 refers to missing directory 99",
            id="dangling-dirid",
        ),
        pytest.param(_edit("delete from info"), "missing info row", id="no-info-row"),
        pytest.param(_edit("drop table repfiles"), "missing table repfiles", id="missing-table"),
        pytest.param(
            _edit("update replica set datasetid = 50 where rowid = 4"),
            "replica 4 refers to missing dataset 50",
            id="dangling-dataset",
        ),
        pytest.param(
            _edit("update replica set hostid = 9 where rowid = 1"),
            "replica 1 refers to missing host 9",
            id="dangling-host",
        ),
        pytest.param(
            _edit("insert into repfiles values (1, 77)"), "refers to missing file 77", id="dangling-file"
        ),
        pytest.param(
            _edit("update directory set hostid = 8 where rowid = 2"),
            "directory 2 refers to missing host 8",
            id="dangling-dir-host",
        ),
        pytest.param(
            _edit("update archive set dirid = 40 where rowid = 1"),
            "archive 1 refers to missing directory 40",
            id="dangling-archive-dir",
        ),
        pytest.param(
            _edit("update dataset set tsid = 5 where name = 'a.bp'"),
            "refers to missing time series 5",
            id="dangling-series",
        ),
        pytest.param(
            _edit("update file set lencompressed = lencompressed + 1 where fileid = 1"),
            "holds",
            id="data-length",
        ),
        pytest.param(
            _edit("update dataset set uuid = NULL where name = 'b.bp'"),
            "(b.bp) has NULL uuid",
            id="null-uuid",
        ),
        pytest.param(
            _edit("update dataset set fileformat = 'NETCDF' where name = 'b.bp'"),
            "unknown fileformat 'NETCDF'",
            id="unknown-kind",
        ),
    ],
)
def test_malformed_archives_are_refused_with_one_line(full, campaign, camp, tmp_path, make, needle):
    bad = tmp_path / "broken.aca"
    if make in (_text_file, _empty_sqlite):
        make(bad)
    else:
        shutil.copy(full, bad)
        make(bad)
    before = git_state(campaign)
    r = camp("--repo", campaign, "import", bad, ok=False)
    assert_one_line_error(r, f"camp: error: {bad}: ", needle)
    assert git_state(campaign) == before
    assert not (campaign / ".git" / "camp" / "lock").exists()


def test_missing_archive_and_empty_message(campaign, camp, tmp_path, full):
    before = git_state(campaign)
    assert_one_line_error(
        camp("--repo", campaign, "import", tmp_path / "nope.aca", ok=False), "nope.aca: no such file"
    )
    assert_one_line_error(
        camp("--repo", campaign, "import", "-m", " ", full, ok=False), "empty commit message"
    )
    assert git_state(campaign) == before


def test_archive_path_with_uri_characters(full, campaign, camp, tmp_path):
    odd = tmp_path / "we?ird #dir%20" / "a&b?mode=rw.aca"
    odd.parent.mkdir()
    shutil.copy(full, odd)
    camp("--repo", campaign, "import", odd)
    with CampaignRepo.open(str(campaign)) as repo:
        assert repo.current(layout.timeseries_path("series")) is not None
    assert odd.read_bytes() == full.read_bytes()


# -- tables camp does not model (hpc-campaign's development version) -------------------

UPSTREAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "upstream-visualization.aca")
"""Written by hpc-campaign's development version (a copy of shared/fixtures/upstream-visualization.aca)."""
VIS_TABLES = ("visualization_sequence", "visualization_variable", "visualization_item", "scalar_field")


@pytest.fixture
def upstream(tmp_path):
    """A writable copy of the archive the development version of hpc-campaign wrote."""
    path = tmp_path / "upstream-visualization.aca"
    shutil.copy(UPSTREAM, path)
    os.chmod(path, 0o644)
    return path


def extra_rows(path, tables=VIS_TABLES):
    """Every row of the extra tables with dataset row ids and uuids replaced by dataset names.

    A uuid that is no dataset's stays as it is (and is then seen as a difference).
    """
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = dict(con.execute("select rowid, name from dataset"))
        by_uuid = {u: n for n, u in con.execute("select name, uuid from dataset")}
        out = {}
        for t in tables:
            (ddl,) = con.execute("select sql from sqlite_master where type = 'table' and name = ?",
                                 (t,)).fetchone()
            cur = con.execute(f'select * from "{t}" order by rowid')  # noqa: S608 (fixed names)
            cols = [c[0] for c in cur.description]
            rows = []
            for row in cur.fetchall():
                named = []
                for c, v in zip(cols, row):
                    if c == "datasetid":
                        named.append(("dataset", names[v]))
                    elif c.endswith("uuid") and v is not None:
                        named.append(("uuid of", by_uuid.get(v, v)))
                    else:
                        named.append(v)
                rows.append(tuple(named))
            out[t] = (ddl, rows)
        return out
    finally:
        con.close()


def dangling(path):
    """References in the visualization tables that point at nothing in the same archive."""
    bad = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
        checks = {
            "visualization_variable.datasetid": "select datasetid from visualization_variable "
            "where datasetid not in (select rowid from dataset)",
            "scalar_field.datasetid": "select datasetid from scalar_field "
            "where datasetid not in (select rowid from dataset)",
            "visualization_item.item_uuid": "select item_uuid from visualization_item "
            "where item_uuid not in (select uuid from dataset)",
            "visualization_sequence.thumbnail_itemuuid": "select thumbnail_itemuuid "
            "from visualization_sequence where thumbnail_itemuuid not in (select uuid from dataset)",
            "visualization_item.visid": "select visid from visualization_item "
            "where visid not in (select visid from visualization_sequence)",
            "visualization_variable.visid": "select visid from visualization_variable "
            "where visid not in (select visid from visualization_sequence)",
        }
        for what, sql in checks.items():
            bad += [(what, v) for (v,) in con.execute(sql)]
    return bad


def adios_child(path):
    """What ADIOS2 shows of an archive, read in a child process (a crash fails the test, not pytest)."""
    code = (
        "import adios2, json, sys\n"
        "out = {}\n"
        "with adios2.FileReader(sys.argv[1]) as f:\n"
        "    for name, info in f.available_variables().items():\n"
        "        entry = {k: info.get(k) for k in ('Type', 'Shape', 'AvailableStepsCount')}\n"
        "        if info.get('Type') in ('uint8_t', 'char'):\n"
        "            entry['data'] = f.read(name).tobytes().hex()\n"
        "        out[name] = entry\n"
        "print(json.dumps(out))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, f"ADIOS2 exit {r.returncode}: {r.stderr[-2000:]}"
    return json.loads(r.stdout)


def tree_paths(root, folder):
    with CampaignRepo.open(str(root)) as repo:
        return sorted(p for p, _oid in repo.iter_manifests(repo.tree_of(repo.head()), folder))


def test_upstream_tables_and_scalar_field_survive_import_and_build(upstream, campaign, camp, tmp_path,
                                                                     clean_env):
    r = camp("--repo", campaign, "import", upstream)
    assert ", 4 extra tables into " in r.output
    assert tree_paths(campaign, layout.EXTRAS) == sorted(layout.extras_path(t) for t in VIS_TABLES)
    datasets, _hosts, _series = head_datasets(campaign)
    sf = datasets["run.bp/sf/scalar.000000.raw"]
    assert sf.kind == "SCALAR_FIELD" and sf.uuid == "60592de0a2e43ceda7395c84027ffacd"
    assert [f.name for f in sf.replicas[0].files] == ["4x4.float32.raw"]
    assert sf.replicas[0].resolution == (4, 4)

    out = tmp_path / "out.aca"
    r = camp("--repo", campaign, "build", "-o", out)
    assert "warning" not in r.stderr
    # every camp table, the SCALAR_FIELD dataset and its embedded file included
    assert natural(out) == natural(upstream)
    # the extra tables: same statement, same rows, dataset ids remapped by name
    want, got = extra_rows(upstream), extra_rows(out)
    assert got == want
    assert want["visualization_variable"][1] == [(1, ("dataset", "run.bp"), "rho", "color-by")]
    assert want["scalar_field"][1][0][0] == ("dataset", "run.bp/sf/scalar.000000.raw")
    assert [row[3] for row in want["visualization_item"][1]] == [
        ("uuid of", "run.bp/visualizations/density/image.000000.png"),
        ("uuid of", "run.bp/visualizations/density/image.000001.png"),
    ]
    # the ids really moved (names sort differently from the upstream insertion order)
    assert query(out, "select datasetid from visualization_variable") != query(
        upstream, "select datasetid from visualization_variable")
    assert dangling(out) == []

    # hpc-campaign 0.7.1 still lists the rebuilt archive
    info = run_reference(clean_env, tmp_path, out, "info").stdout
    for name in ("run.bp", "run.bp/visualizations/density/image.000001.png", "__campaign_schema.yaml"):
        assert name in info
    assert re.search(r"60592de0a2e43ceda7395c84027ffacd\s+SCALAR_FIELD\s.*run\.bp/sf/scalar\.000000\.raw",
                     info)

    # ADIOS2 (PyPI) opens it in a child process and shows what it shows of the original
    store = tmp_path / "store"
    configure(clean_env, store)
    (clean_env / ".config" / "hpc-campaign" / "hosts.yaml").write_text(
        "myhost:\n  ssh:\n    protocol: ssh\n    authentication: publickey\n    host: 127.0.0.1\n"
        "    serverpath: /opt/adios2/bin/adios2_remote_server\n")
    ours, theirs = adios_child(out), adios_child(upstream)
    assert ours == theirs
    assert {"run.bp/rho", "run.bp/visualizations/density/image.000000.png/8x8",
            "__campaign_schema.yaml"} <= set(ours)


def test_build_twice_and_reimport_are_stable(upstream, campaign, camp, tmp_path):
    camp("--repo", campaign, "import", upstream)
    first, second = tmp_path / "first.aca", tmp_path / "second.aca"
    camp("--repo", campaign, "build", "-o", first)
    camp("--repo", campaign, "build", "-o", second, "--full")
    tables = [*VIS_TABLES, "dataset", "replica", "file", "repfiles", "resolution"]
    for t in tables:
        assert table_of(first, t) == table_of(second, t), t
    log = git_state(campaign)[0]
    # the built archive holds the extras (and camp's camp_build table): importing it changes nothing
    r = camp("--repo", campaign, "import", first)
    assert r.output.startswith("nothing to import from "), r.output
    r = camp("--repo", campaign, "import", upstream)
    assert r.output.startswith("nothing to import from "), r.output
    assert git_state(campaign)[0] == log
    assert layout.extras_path("camp_build") not in tree_paths(campaign, layout.EXTRAS)
    # ... and a fresh campaign importing the built archive builds the same tables again
    camp("init", tmp_path / "again", "--name", "proj/again", "--host", "laptop")
    camp("--repo", tmp_path / "again", "import", first)
    third = tmp_path / "third.aca"
    camp("--repo", tmp_path / "again", "build", "-o", third)
    for t in tables:
        assert table_of(third, t) == table_of(first, t), t


def table_of(path, name):
    return query(path, f'select * from "{name}" order by rowid')  # noqa: S608 (fixed names)


def test_unremappable_table_is_refused_in_one_line_unless_dropped(upstream, campaign, camp):
    with sqlite3.connect(upstream) as con:
        con.execute("create table replica_checks(replicaid INT, fileid INT, verdict TEXT)")
        con.execute("insert into replica_checks values (1, 2, 'ok'), (4, 5, 'ok')")
    before = git_state(campaign)
    r = camp("--repo", campaign, "import", upstream, ok=False)
    assert r.exit_code == 1
    assert_one_line_error(r, f"camp: error: {upstream}: table replica_checks cannot be carried",
                          "replicaid", "--drop-unknown-tables")
    assert git_state(campaign) == before
    assert not (campaign / ".git" / "camp" / "lock").exists()

    r = camp("--repo", campaign, "import", "--drop-unknown-tables", upstream)
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("camp: warning: ")
    assert "table replica_checks left out" in warnings[0]
    assert tree_paths(campaign, layout.EXTRAS) == sorted(layout.extras_path(t) for t in VIS_TABLES)


def test_views_triggers_and_links_to_refused_tables_are_refused_too(upstream, campaign, camp):
    with sqlite3.connect(upstream) as con:
        con.execute("create table groups(gid INTEGER PRIMARY KEY, replicaid INT)")
        con.execute("create table members(gid INT, label TEXT)")  # links to a table that cannot come
        con.execute("create view live as select name from dataset where deltime = 0")
    before = git_state(campaign)
    r = camp("--repo", campaign, "import", upstream, ok=False)
    assert_one_line_error(r, "table groups cannot be carried", "also table members, view live")
    assert git_state(campaign) == before
    r = camp("--repo", campaign, "import", "--drop-unknown-tables", upstream)
    assert {line.split(": ")[3].split(" left out")[0] for line in r.stderr.strip().splitlines()} == {
        "table groups", "table members", "view live"}
    assert "table members left out (column gid holds ids of table groups, which cannot be carried)" \
        in r.stderr


def test_any_other_table_is_carried_with_its_values_row_ids_and_indexes(upstream, campaign, camp, tmp_path):
    with sqlite3.connect(upstream) as con:
        con.execute("create table notes(name TEXT, payload BLOB, score REAL, n, owner_uuid TEXT)")
        con.execute("insert into notes values ('gone', NULL, 0, 0, NULL)")
        con.executemany("insert into notes values (?, ?, ?, ?, ?)", [
            ("bytes", b"\x00\xff\x10", 1.5, 3, "a867e98cd3183d94892564fb3f4dd529"),
            ("big", None, 1e300, "text in an untyped column", "not a dataset uuid"),
            ("edge", b"", -2.5, 2**63 - 1, None),
        ])
        con.execute("delete from notes where name = 'gone'")  # row ids 2..4: kept as they are
        con.execute("create index notes_by_name on notes(name)")
        con.execute("create table kv(k TEXT PRIMARY KEY, v) without rowid")
        con.executemany("insert into kv values (?, ?)", [("z", 1), ("a", 2.0)])
        con.execute("create index dataset_by_uuid on dataset(uuid)")  # on camp's table: no data, a note
    r = camp("--repo", campaign, "import", upstream)
    assert r.stderr == (f"camp: warning: {upstream}: index dataset_by_uuid on table dataset left out "
                        "(camp writes that table itself; an index holds no data)\n")
    out = tmp_path / "out.aca"
    camp("--repo", campaign, "build", "-o", out)
    for sql in ("select rowid, quote(name), quote(payload), quote(score), quote(n), owner_uuid from notes",
                "select quote(k), quote(v) from kv",
                "select type, name, tbl_name, sql from sqlite_master where tbl_name in ('notes', 'kv') "
                "order by type, name"):
        assert query(out, sql) == query(upstream, sql), sql
    assert query(out, "select rowid from notes order by rowid") == [(2,), (3,), (4,)]
    # the uuid of run.bp is a reference: it follows the dataset like the visualization tables do
    with CampaignRepo.open(str(campaign)) as repo:
        manifest = json.loads(repo.read_blob(repo.current(layout.extras_path("notes"))[1]))
    assert manifest["rows"][0][4] == {"dataset": "run.bp", "uuid": "a867e98cd3183d94892564fb3f4dd529"}
    assert manifest["rows"][1][4] == "not a dataset uuid"


def test_rm_and_mv_never_leave_a_dangling_reference(upstream, campaign, camp, store):
    camp("--repo", campaign, "import", upstream)
    archive = store / "proj" / "run_001.aca"
    camp("--repo", campaign, "build")
    img0 = "run.bp/visualizations/density/image.000000.png"

    # datasets a build leaves out by kind take their rows along, and the build says so
    no_images = store / "no-images.aca"
    r = camp("--repo", campaign, "build", "-o", no_images, "--exclude-kind", "IMAGE")
    assert "extra table visualization_item: 2 row(s) left out" in r.stderr
    assert [len(extra_rows(no_images)[t][1]) for t in VIS_TABLES] == [0, 0, 0, 1]
    assert dangling(no_images) == []

    # mv keeps the uuid: every row stays, pointing at the renamed dataset
    camp("--repo", campaign, "mv", img0, "thumb.png")
    camp("--repo", campaign, "commit", "-m", "rename")
    r = camp("--repo", campaign, "build", "--json")
    assert json.loads(r.stdout)["incremental"] is False and "warning" not in r.stderr
    rows = extra_rows(archive)
    assert rows["visualization_sequence"][1][0][3] == ("uuid of", "thumb.png")
    assert [row[3] for row in rows["visualization_item"][1]] == [
        ("uuid of", "thumb.png"), ("uuid of", "run.bp/visualizations/density/image.000001.png")]
    assert dangling(archive) == []

    # rm of the scalar field: its scalar_field row goes, with a warning naming the dataset
    camp("--repo", campaign, "rm", "run.bp/sf/scalar.000000.raw")
    camp("--repo", campaign, "commit", "-m", "drop the field")
    r = camp("--repo", campaign, "build", "--json")
    built = json.loads(r.stdout)
    assert built["incremental"] is False  # a patch would keep stale row ids
    (warned,) = [w for w in built["warnings"] if "extra table scalar_field: 1 row(s) left out" in w]
    assert "scalar.000000.raw" in warned
    assert query(archive, "select count(*) from scalar_field") == [(0,)]
    assert extra_rows(archive, ["visualization_variable"])["visualization_variable"][1] == [
        (1, ("dataset", "run.bp"), "rho", "color-by")]
    assert dangling(archive) == []

    # rm of the thumbnail image: its item, its sequence and what belongs to the sequence go
    camp("--repo", campaign, "rm", "thumb.png")
    camp("--repo", campaign, "commit", "-m", "drop the thumbnail")
    r = camp("--repo", campaign, "build")
    assert "extra table visualization_sequence: 1 row(s) left out" in r.stderr
    assert ("extra table visualization_variable: 1 row(s) left out with the visualization_sequence rows"
            in r.stderr)
    for t in VIS_TABLES:
        assert query(archive, f"select count(*) from {t}") == [(0,)], t  # noqa: S608 (fixed names)
    assert dangling(archive) == []

    # --keep-deleted keeps the deleted datasets, so every row comes back
    kept = store / "kept.aca"
    camp("--repo", campaign, "build", "-o", kept, "--keep-deleted")
    assert [len(extra_rows(kept)[t][1]) for t in VIS_TABLES] == [1, 1, 2, 1]
    assert dangling(kept) == []
    # the history keeps everything: the import's commit builds the original rows again
    first = store / "first.aca"
    camp("--repo", campaign, "build", "HEAD~3", "-o", first)
    assert extra_rows(first) == extra_rows(upstream)


def test_import_into_a_campaign_that_has_the_dataset_keeps_its_uuid_in_the_references(
        upstream, campaign, camp, tmp_path, example_data, store):
    img0 = "run.bp/visualizations/density/image.000000.png"
    camp("--repo", campaign, "add", "--name", img0, "plot.png", cwd=example_data)
    camp("--repo", campaign, "commit", "-m", "mine")
    mine = head_datasets(campaign)[0][img0].uuid
    assert mine != "e5f7204773d9327db3c5867ca0364625"
    camp("--repo", campaign, "import", upstream)
    assert head_datasets(campaign)[0][img0].uuid == mine
    out = tmp_path / "out.aca"
    camp("--repo", campaign, "build", "-o", out)
    assert query(out, "select thumbnail_itemuuid from visualization_sequence") == [(mine,)]
    assert query(out, "select item_uuid from visualization_item where item_order = 0") == [(mine,)]
    assert dangling(out) == []


def test_a_second_archive_with_other_rows_of_a_kept_table_is_refused(upstream, campaign, camp, tmp_path):
    camp("--repo", campaign, "import", upstream)
    other = tmp_path / "other.aca"
    shutil.copy(upstream, other)
    with sqlite3.connect(other) as con:
        con.execute("update visualization_sequence set vistype = 'contour'")
    before = git_state(campaign)
    r = camp("--repo", campaign, "import", other, ok=False)
    assert_one_line_error(r, "extra table visualization_sequence: the campaign keeps other rows of it")
    assert git_state(campaign) == before


def test_build_runs_only_a_create_table_statement_from_a_manifest(upstream, campaign, camp, tmp_path):
    camp("--repo", campaign, "import", upstream)
    path = layout.extras_path("scalar_field")
    with CampaignRepo.open(str(campaign)) as repo:
        d = json.loads(repo.read_blob(repo.current(path)[1]))
    out = tmp_path / "out.aca"
    for ddl in ("CREATE TRIGGER scalar_field after insert on dataset begin delete from replica; end",
                "CREATE TABLE scalar_field(datasetid INT PRIMARY KEY, metadata TEXT); DROP TABLE dataset",
                "CREATE TABLE other(datasetid INT PRIMARY KEY, metadata TEXT)"):
        with CampaignRepo.open(str(campaign)) as repo, repo.transaction() as tx:
            tx.stage_json(path, dumps({**d, "ddl": ddl}))
            tx.commit("tamper", IDENTITY)
        r = camp("--repo", campaign, "build", "-o", out, ok=False)
        assert_one_line_error(r, "extra table scalar_field")
        assert not out.exists()


def test_a_scalar_field_replica_is_checked_like_a_text_file(upstream, campaign, camp, tmp_path):
    """status and verify stat and hash its file; camp add never turns a path into a SCALAR_FIELD."""
    vis = tmp_path / "vis"
    with sqlite3.connect(upstream) as con:  # the archive's directory on this machine, host laptop
        con.execute("update host set hostname = 'laptop'")
        con.execute("update directory set name = ?", (str(vis),))
        (data,) = con.execute("select data from file where name = '4x4.float32.raw'").fetchone()
        (path, mtime) = con.execute("select name, modtime from replica where rowid = 4").fetchone()
    raw = vis / path
    raw.parent.mkdir(parents=True)
    raw.write_bytes(data)
    os.utime(raw, ns=(mtime, mtime))
    camp("--repo", campaign, "import", upstream)
    name = "run.bp/sf/scalar.000000.raw"
    assert name not in camp("--repo", campaign, "status").output
    assert name not in camp("--repo", campaign, "verify", ok=False).output  # the others are missing here
    raw.write_bytes(data[:-4] + b"\x00\x00\x00\x40")  # 1.0 -> 2.0: same size and mtime, other content
    os.utime(raw, ns=(mtime, mtime))
    r = camp("--repo", campaign, "verify", name, ok=False)
    assert f"changed: {name} " in r.output and "checksum 0984e27f5d49 recorded" in r.output
    raw.write_bytes(data + b"\x00" * 4)
    assert f"modified:       {name}" in camp("--repo", campaign, "status").output
    r = camp("--repo", campaign, "add", path, cwd=vis, ok=False)
    assert_one_line_error(r, "not a text file (it has NUL bytes)")  # binary: never taken for TEXT
    r = camp("--repo", campaign, "add", "--kind", "text", path, cwd=vis, ok=False)
    assert_one_line_error(r, f"dataset {name} is SCALAR_FIELD, this path is TEXT")
