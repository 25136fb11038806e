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

import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile

import make_data
import numpy as np
import pytest

pytest.importorskip(
    "hpc_campaign", reason="the reference tool hpc-campaign is not installed (pip install .[test])"
)
pytest.importorskip("dateutil", reason="hpc-campaign needs python-dateutil")

from test_build import adios_view, configure  # noqa: E402

from campaignvcs import layout, porcelain  # noqa: E402
from campaignvcs.aca.read import read_aca, to_ns  # noqa: E402
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
    if not hasattr(porcelain, "build"):
        pytest.skip("camp build (porcelain.build) is not available yet")
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


def assert_one_line_error(result, *needles):
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("camp: error: "), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.output


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
            _edit("update dataset set fileformat = 'SCALAR_FIELD' where name = 'b.bp'"),
            "unknown fileformat",
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
