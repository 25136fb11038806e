"""camp verify and camp fsck on real repositories with real data, corrupted on purpose."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess

import make_data
import pytest

from campaignvcs import layout
from campaignvcs.gitobjects import BLOB_MODE
from campaignvcs.model import Archive, BlobId, Host, TimeSeries
from campaignvcs.repo import CampaignRepo

IDENTITY = b"Test Scientist <scientist@example.org>"


@pytest.fixture
def recorded(campaign, camp, data):
    """BP5, HDF5, image (stored) and text (stored) datasets, committed."""
    camp("--repo", campaign, "add", "heat.bp", "mesh.h5", "notes.txt", cwd=data)
    camp("--repo", campaign, "add", "--store", "plot.png", cwd=data)
    camp("--repo", campaign, "commit", "-m", "data")
    return data


def verify_json(camp, campaign, *args, ok=True):
    r = camp("--repo", campaign, "verify", "--json", *args, ok=None)
    assert r.exit_code == (0 if ok else 1), r.stderr
    return {c["dataset"]: c for c in json.loads(r.output)["replicas"]}, json.loads(r.output)


def edit(root, fn, message="edit on purpose"):
    """Change manifests through the repository API and commit (as a buggy tool might)."""
    with CampaignRepo.open(str(root)) as repo:
        with repo.transaction() as tx:
            fn(tx)
            tx.commit(message, IDENTITY)


# -- verify ----------------------------------------------------------------------------------------


def test_verify_all_replicas_match_right_after_add(campaign, camp, recorded):
    r = camp("--repo", campaign, "verify")
    assert r.output == "verified 4 replicas on laptop: all match\n"
    checks, report = verify_json(camp, campaign)
    assert report["ok"] is True and report["checked"] == 4 and report["host"] == "laptop"
    assert {c["state"] for c in checks.values()} == {"ok"}
    assert checks["heat.bp"]["path"] == os.path.join(os.path.realpath(recorded), "heat.bp")


def test_verify_names_rewritten_touched_and_deleted_replicas(campaign, camp, recorded):
    shutil.rmtree(recorded / "heat.bp")
    make_data.make_bp5(str(recorded / "heat.bp"), steps=4, seed=7)  # same name, other content
    os.unlink(recorded / "notes.txt")
    st = os.stat(recorded / "mesh.h5")
    os.utime(recorded / "mesh.h5", ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    r = camp("--repo", campaign, "verify", ok=False)
    assert r.exit_code == 1 and r.stderr == ""
    lines = r.output.splitlines()
    assert lines[-1] == "verified 4 replicas on laptop: 3 do not match"
    changed = next(line for line in lines if line.startswith("changed: heat.bp ["))
    assert "checksum" in changed and "size" in changed
    assert any(line.startswith("missing: notes.txt [") for line in lines)
    mesh = next(line for line in lines if line.startswith("changed: mesh.h5 ["))
    assert "mtime" in mesh and "checksum" not in mesh and "size" not in mesh
    checks, report = verify_json(camp, campaign, ok=False)
    assert checks["plot.png"]["state"] == "ok" and report["matched"] == 1
    assert checks["notes.txt"]["state"] == "missing"
    # Only the named datasets: plot.png alone matches.
    assert camp("--repo", campaign, "verify", "plot.png").output.startswith("verified 1 replicas on laptop: all")


def test_a_dataset_readers_cannot_open_any_more_is_unreadable(campaign, camp, recorded):
    (recorded / "heat.bp" / "md.idx").write_bytes(b"garbage")
    checks, _ = verify_json(camp, campaign, "heat.bp", ok=False)
    assert checks["heat.bp"]["state"] == "unreadable"
    assert "no BP index header" in checks["heat.bp"]["problems"][0]


def test_replicas_on_other_hosts_or_absent_folders_are_not_checked(campaign, camp, recorded, tmp_path):
    other = tmp_path / "scratch"
    other.mkdir()
    shutil.copytree(recorded / "heat.bp", other / "heat.bp")
    camp("--repo", campaign, "add", "--host", "cluster", "heat.bp", cwd=other)
    gone = tmp_path / "gone"
    gone.mkdir()
    make_data.make_text(str(gone / "old.txt"))
    camp("--repo", campaign, "add", "old.txt", cwd=gone)
    os.chdir(tmp_path)
    shutil.rmtree(gone)
    r = camp("--repo", campaign, "verify")
    assert r.output == "verified 4 replicas on laptop: all match, 2 not checked (other hosts, archives)\n"
    _, report = verify_json(camp, campaign)
    skipped = {(c["dataset"], c["host"]): c["reason"] for c in report["replicas"] if c["state"] == "not checked"}
    assert skipped == {("heat.bp", "cluster"): "on host cluster",
                       ("old.txt", "laptop"): f"directory {os.path.realpath(gone)} is not present on this machine"}
    # --host checks the other host's replicas when their folders are here.
    _, report = verify_json(camp, campaign, "--host", "cluster")
    assert report["checked"] == 1
    assert [c["state"] for c in report["replicas"] if c["host"] == "cluster"] == ["ok"]
    shutil.rmtree(other / "heat.bp")
    _, report = verify_json(camp, campaign, "--host", "cluster", ok=False)
    assert [c["state"] for c in report["replicas"] if c["host"] == "cluster"] == ["missing"]


def test_archived_replicas_are_not_checked(campaign, camp, recorded):
    def archive(tx):
        repo = tx.repo
        ds = repo.dataset("notes.txt")
        live = ds.replicas[0]
        tx.stage_dataset(ds.with_replica(dataclasses.replace(live, dir="/tape", archive="run.tar")))
        tx.stage_json(layout.host_path("laptop"),
                      Host("laptop", archives=(Archive("/tape", "run.tar", "HPSS"),)).dumps())

    edit(campaign, archive)
    _, report = verify_json(camp, campaign, "notes.txt")
    states = sorted((c["state"], c["reason"], c["path"]) for c in report["replicas"])
    assert states == [("not checked", "inside an archive", "/tape/run.tar:notes.txt"),
                      ("ok", "", os.path.join(os.path.realpath(recorded), "notes.txt"))]


def test_verify_against_an_older_commit_and_bad_input(campaign, camp, recorded, tmp_path):
    shutil.rmtree(recorded / "heat.bp")
    make_data.make_bp5(str(recorded / "heat.bp"), steps=2, seed=3)
    camp("--repo", campaign, "add", "heat.bp", cwd=recorded)
    assert camp("--repo", campaign, "verify").exit_code == 0  # the staged state matches the disk
    r = camp("--repo", campaign, "verify", "--rev", "HEAD", "heat.bp", ok=False)
    assert r.exit_code == 1 and r.output.startswith("changed: heat.bp")
    r = camp("--repo", campaign, "verify", "nope.bp", ok=False)
    assert r.exit_code == 1 and r.stderr == "camp: error: unknown dataset: nope.bp\n"
    bare = tmp_path / "nohost"
    camp("init", bare, "--name", "other")
    r = camp("--repo", bare, "verify", ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("camp: error: no host to verify: pass --host")


# -- fsck ------------------------------------------------------------------------------------------


def fsck(camp, campaign, ok=False):
    r = camp("--repo", campaign, "fsck", ok=ok)
    j = camp("--repo", campaign, "fsck", "--json", ok=ok)
    assert r.exit_code == j.exit_code == (0 if ok else 1), r.stderr
    return r.output, json.loads(j.output)


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def test_fsck_of_a_healthy_repository_with_history(campaign, camp, recorded, data):
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)  # staged, not committed
    out, report = fsck(camp, campaign, ok=True)
    assert out.endswith(": no problems\n")
    assert report["ok"] and report["problems"] == [] and report["commits"] == 2 and report["refs"] == 1
    assert report["manifests"] >= 7  # campaign, host, 4 datasets + the staged one
    assert git(campaign, "fsck", "--strict").returncode == 0


def test_fsck_names_a_damaged_staging_area(campaign, camp, recorded, data):
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    index = campaign / ".git" / "camp" / "index.json"
    index.write_text("{ half written")
    out, report = fsck(camp, campaign)
    assert [(p["kind"], p["what"]) for p in report["problems"]] == [("bad-staging", str(index))]
    assert "staging area" in out and "is corrupt" in out


def test_fsck_finds_a_loose_object_with_flipped_bytes(campaign, camp, recorded):
    with CampaignRepo.open(str(campaign)) as repo:
        entry = repo.lookup(repo.tree_of(repo.head()), layout.dataset_dir("heat.bp") + "/" + layout.MANIFEST)
    oid = entry[1].decode()
    path = campaign / ".git" / "objects" / oid[:2] / oid[2:]
    raw = bytearray(path.read_bytes())
    for i in (len(raw) // 2, len(raw) // 2 + 1, len(raw) - 3):
        raw[i] ^= 0xFF
    os.chmod(path, 0o644)
    path.write_bytes(bytes(raw))
    out, report = fsck(camp, campaign)
    assert [p["kind"] for p in report["problems"]] == ["corrupt-object"]
    assert report["problems"][0]["what"] == oid
    assert f"corrupt-object: object {oid} " in out
    assert layout.dataset_dir("heat.bp") in out
    assert out.splitlines()[-1].endswith(": 1 problem")
    r = camp("--repo", campaign, "verify", ok=False)  # verify cannot read the manifest: one clear line
    assert r.exit_code == 1 and r.stderr.startswith("camp: error: cannot read the campaign's manifests (")
    assert r.stderr.endswith("run 'camp fsck'\n")


def test_fsck_finds_a_manifest_naming_a_missing_blob_and_wrong_lengths(campaign, camp, recorded):
    missing = "1234567890abcdef1234567890abcdef12345678"

    def break_it(tx):
        repo = tx.repo
        heat = repo.dataset("heat.bp")
        rep = heat.replicas[0]
        files = [dataclasses.replace(f, blob=BlobId(missing)) if f.name == "metadata" else f for f in rep.files]
        tx.stage_dataset(dataclasses.replace(heat, replicas=(dataclasses.replace(rep, files=tuple(files)),)))
        notes = repo.dataset("notes.txt")
        rep = notes.replicas[0]
        files = [dataclasses.replace(f, lencompressed=f.lencompressed + 1) for f in rep.files]
        tx.stage_dataset(dataclasses.replace(notes, replicas=(dataclasses.replace(rep, files=tuple(files)),)))

    camp("--repo", campaign, "add", "--store", "notes.txt", cwd=recorded)
    camp("--repo", campaign, "commit", "-m", "store notes")
    edit(campaign, break_it)
    out, report = fsck(camp, campaign)
    kinds = sorted((p["kind"], p["what"]) for p in report["problems"])
    assert ("missing-object", missing) in kinds
    assert any(k == "bad-reference" for k, _ in kinds)
    assert f"object {missing} is missing ({layout.dataset_dir('heat.bp')}/metadata" in out
    assert "dataset notes.txt (commit " in out and "the manifest says" in out


def test_fsck_finds_folder_entries_the_manifest_does_not_name(campaign, camp, recorded):
    def extra(tx):
        stray = tx.repo.add_blob(b"not referenced by the manifest\n")
        tx.stage(layout.dataset_dir("mesh.h5") + "/stray.bin", (BLOB_MODE, stray))

    edit(campaign, extra)
    out, report = fsck(camp, campaign)
    assert [p["kind"] for p in report["problems"]] == ["bad-reference"]
    assert "dataset mesh.h5 (commit " in out and "stray.bin is in its folder but not in its manifest" in out


def test_fsck_finds_malformed_manifests_unlisted_archives_and_missing_series_members(campaign, camp, recorded):
    def break_it(tx):
        tx.stage_json(layout.host_path("broken"), b"{ this is not json\n")
        ds = tx.repo.dataset("notes.txt")
        tape = dataclasses.replace(ds.replicas[0], dir="/tape", archive="run.tar")
        tx.stage_dataset(ds.with_replica(tape))
        tx.stage_json(layout.timeseries_path("heat"), TimeSeries("heat", ("heat.bp", "gone.bp")).dumps())

    edit(campaign, break_it)
    out, report = fsck(camp, campaign)
    kinds = sorted(p["kind"] for p in report["problems"])
    assert kinds == ["bad-manifest", "bad-reference", "bad-reference"]
    assert "bad-manifest: hosts/broken.json in commit " in out
    assert "which hosts/laptop.json does not list" in out and "in archive laptop:/tape/run.tar" in out
    assert "time series heat (refs/heads/main): member gone.bp has no dataset" in out


def test_fsck_finds_deleted_packs(campaign, camp, recorded):
    assert git(campaign, "repack", "-a", "-d", "-q").returncode == 0
    pack_dir = campaign / ".git" / "objects" / "pack"
    (pack,) = [p for p in os.listdir(pack_dir) if p.endswith(".pack")]
    assert fsck(camp, campaign, ok=True)[1]["packs"] == 1
    os.unlink(pack_dir / pack)
    out, report = fsck(camp, campaign)
    kinds = {p["kind"] for p in report["problems"]}
    assert kinds == {"bad-pack", "missing-object", "bad-ref"}
    assert f"bad-pack: pack {pack[:-5]}: its .pack file is missing" in out
    assert "bad-ref: refs/heads/main points to " in out
    # With the index gone too, what is missing is still named.
    os.unlink(pack_dir / (pack[:-5] + ".idx"))
    out, report = fsck(camp, campaign)
    assert {p["kind"] for p in report["problems"]} == {"missing-object", "bad-ref"}
    head = git(campaign, "rev-parse", "HEAD").stdout.strip()
    assert f"object {head} is missing (commit of refs/heads/main)" in out
