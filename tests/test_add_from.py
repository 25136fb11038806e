"""camp add --from: datasets behind rclone serve s3 / sftp recorded from their metadata files alone."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import make_data
import pytest
from conftest_remote import free_port, make_remote, rclone_servers  # noqa: F401  (fixture)
from test_build import store  # noqa: F401  (fixture)

from campaignvcs.repo import CampaignRepo


def embedded(aca, dataset):
    """name → (compression, lenorig, checksum, data) of a dataset's embedded files in an archive."""
    with sqlite3.connect(aca) as con:
        rows = con.execute(
            "select f.name, f.compression, f.lenorig, f.checksum, f.data from dataset d "
            "join replica r on r.datasetid = d.rowid join repfiles rf on rf.replicaid = r.rowid "
            "join file f on f.fileid = rf.fileid where d.name = ?", (dataset,)).fetchall()
    return {r[0]: r[1:] for r in rows}


def host_row(aca, host):
    with sqlite3.connect(aca) as con:
        return con.execute("select hostname, longhostname, default_protocol from host where hostname = ?",
                           (host,)).fetchone()


def adios_variables(aca):
    """What ADIOS2 lists, in a fresh process (ADIOS2 reads hosts.yaml once per process)."""
    code = ("import adios2, json, sys\n"
            "with adios2.FileReader(sys.argv[1]) as f: print(json.dumps(f.available_variables()))")
    out = subprocess.run([sys.executable, "-c", code, str(aca)], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def staged(root):
    return (root / ".git" / "camp" / "index.json").read_bytes() if (root / ".git" / "camp" / "index.json").exists() \
        else b""


@pytest.mark.parametrize("kind", ["s3", "sftp"])
def test_remote_bp5_is_recorded_from_its_metadata_with_the_bytes_a_local_add_embeds(
        kind, camp, campaign, store, tmp_path, rclone_servers, monkeypatch, clean_env):  # noqa: F811
    remote = make_remote(kind, rclone_servers, tmp_path)
    for key, value in remote.env.items():
        monkeypatch.setenv(key, value)
    runs = remote.backing / "runs"
    runs.mkdir(parents=True)
    make_data.make_bp5(str(runs / "heat.bp"), steps=4, n=100_000, seed=5)  # 3.2 MB of data
    make_data.make_text(str(runs / "notes.txt"), seed=6)
    host = "teststore" if kind == "s3" else "cluster2"  # s3: the rclone remote's name by default
    args = ["--host", "cluster2"] if kind == "sftp" else []
    r = camp("--repo", campaign, "add", "--from", f"{remote.url}/runs", *args, "heat.bp", "notes.txt",
             "-m", "remote run", "--json")
    result = json.loads(r.output)
    data_size = sum(f.stat().st_size for f in (runs / "heat.bp").iterdir()) + (runs / "notes.txt").stat().st_size
    assert result["host"] == host and result["data_bytes"] == data_size
    assert [(a["name"], a["kind"], a["action"]) for a in result["added"]] == [
        ("heat.bp", "ADIOS", "added"), ("notes.txt", "TEXT", "added")]
    assert 0 < result["bytes_read"] < data_size / 100  # metadata only, never data.0
    secret = remote.url.split("pass=", 1)[1].split(":", 1)[0] if kind == "sftp" else "camptestsecretkey"
    assert secret not in r.output  # credentials never shown (sftp: pass=***)

    with CampaignRepo.open(str(campaign)) as repo:
        rep = repo.dataset("heat.bp", repo.head()).replicas[0]
    size = sum(f.stat().st_size for f in (runs / "heat.bp").iterdir())
    assert (rep.host, rep.path, rep.size) == (host, "heat.bp", size)
    assert rep.dir == ("/bucket/" + remote.url.split("bucket/", 1)[1] + "/runs" if kind == "s3" else
                       remote.url.rsplit(":", 1)[1] + "/runs")

    # the same dataset added where it lives: the same embedded metadata bytes
    local = tmp_path / "local"
    camp("init", local, "--name", "proj/local", "--host", "laptop")
    camp("--repo", local, "add", "-m", "local", "heat.bp", "notes.txt", cwd=runs)
    ours, theirs = tmp_path / "remote.aca", tmp_path / "local.aca"
    camp("--repo", campaign, "build", "-o", ours)
    camp("--repo", local, "build", "-o", theirs)
    assert embedded(ours, "heat.bp").keys() == {"metadata", "profiling.json"}
    assert embedded(ours, "heat.bp") == embedded(theirs, "heat.bp")  # bytes, lengths, checksums
    assert host_row(ours, host)[2] == ("s3" if kind == "s3" else "")

    if kind == "sftp":  # another cluster: readers list it in hosts.yaml (ssh), like any remote host
        (clean_env / ".config" / "hpc-campaign" / "hosts.yaml").write_text(
            "cluster2:\n  ssh:\n    protocol: ssh\n    authentication: publickey\n    host: 127.0.0.1\n"
            "    serverpath: /opt/adios2/bin/adios2_remote_server\n")
    ours_vars, theirs_vars = adios_variables(ours), adios_variables(theirs)
    assert ours_vars.keys() == theirs_vars.keys() and "heat.bp/T" in ours_vars
    assert ours_vars["heat.bp/T"]["Shape"] == theirs_vars["heat.bp/T"]["Shape"] == "100000"


def test_bad_remote_input_is_one_line_and_records_nothing(camp, campaign, tmp_path, rclone_servers):  # noqa: F811
    folder = tmp_path / "share"
    (folder / "plain").mkdir(parents=True)
    (folder / "plain" / "readme.txt").write_text("not a dataset\n")
    make_data.make_hdf5(str(folder / "mesh.h5"), seed=1)
    make_data.make_bp5(str(folder / "heat.bp"), steps=2, n=10, seed=2)
    shutil.copytree(folder / "heat.bp", folder / "broken.bp")
    (folder / "broken.bp" / "mmd.0").unlink()
    before = staged(campaign)
    add = ("--repo", campaign, "add", "--host", "cluster2", "--from")
    cases = [
        ((*add, folder, "heat.bp", "missing.bp"), f"camp: error: {folder}/missing.bp: no such file or folder\n"),
        ((*add, folder, "heat.bp", "broken.bp"),
         f"camp: error: {folder}/broken.bp: not a readable ADIOS2 dataset (BP5 without mmd.0)\n"),
        ((*add, folder, "plain"),
         f"camp: error: {folder}/plain: folder is not an ADIOS2 BP dataset (needs md.idx and data.0)\n"),
        ((*add, folder, "mesh.h5"),
         f"camp: error: {folder}/mesh.h5: HDF5 metadata is spread through the file; pass --fetch-metadata to "
         f"download it whole ({(folder / 'mesh.h5').stat().st_size} bytes) and keep only the metadata\n"),
        ((*add, folder, "--datetime", "yesterday", "heat.bp"),
         "camp: error: invalid --datetime 'yesterday': use e.g. '2024-10-22 10:20:15 -0400' (see 'camp add --help')\n"),
        ((*add, folder, "../etc"),
         "camp: error: invalid dataset path '../etc': give a path relative to the --from folder\n"),
        ((*add, "nosuchremote:bucket", "heat.bp"),
         "camp: error: no rclone remote named 'nosuchremote' (rclone config, or RCLONE_CONFIG, defines them)\n"),
        (("--repo", campaign, "add", "--dir", "/x", "heat.bp"),
         "camp: error: --dir, --datetime and --fetch-metadata go with --from RCLONE_PATH (see 'camp add --help')\n"),
    ]
    for args, message in cases:
        r = camp(*args, ok=False, cwd=tmp_path)
        assert (r.exit_code, r.stderr) == (2 if "--help')" in message else 1, message), args  # 2: usage errors
    port = free_port()  # nothing listens there
    r = camp(*add, f":sftp,host=127.0.0.1,port={port},user=camp,pass=c2VjcmV0:data", "heat.bp", ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("camp: error: cannot list :sftp,host=127.0.0.1,")
    assert "pass=***" in r.stderr and "c2VjcmV0" not in r.stderr and len(r.stderr.splitlines()) == 1
    assert staged(campaign) == before
    with CampaignRepo.open(str(campaign)) as repo:
        assert repo.dataset("heat.bp") is None


def test_datetime_overrides_the_listing_and_hdf5_comes_whole_only_when_asked(camp, campaign, tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    make_data.make_hdf5(str(folder / "mesh.h5"), seed=1)
    shutil.copytree(tmp_path / "share", tmp_path / "here")
    r = camp("--repo", campaign, "add", "--from", folder, "--host", "cluster2", "--dir", "/gpfs/proj/run1",
             "--datetime", "2024-10-22 10:20:15 -0400", "--fetch-metadata", "mesh.h5", "--json")
    result = json.loads(r.output)
    assert result["dir"] == "/gpfs/proj/run1" and result["bytes_read"] >= (folder / "mesh.h5").stat().st_size
    with CampaignRepo.open(str(campaign)) as repo:
        ds = repo.dataset("mesh.h5")
    rep = ds.replicas[0]
    assert (rep.host, rep.dir, rep.mtime) == ("cluster2", "/gpfs/proj/run1", 1729606815 * 10**9)
    assert [f.modtime for f in rep.files] == [1729606815 * 10**9]  # the embedded copy carries that time too
    assert ds.modtime == 1729606815 * 10**9
    camp("--repo", campaign, "add", "--host", "laptop", "mesh.h5", cwd=tmp_path / "here")
    with CampaignRepo.open(str(campaign)) as repo:
        local, remote = sorted(repo.dataset("mesh.h5").replicas, key=lambda r: r.host != "laptop")
    assert [f.blob for f in local.files] == [f.blob for f in remote.files]  # the same metadata-only copy
