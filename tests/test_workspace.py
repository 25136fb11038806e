"""init / add / status / commit / log / show on real data, through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib

import make_data
from helpers import manifest

from campaignvcs.repo import CampaignRepo


def blob(root, oid):
    with CampaignRepo.open(str(root)) as repo:
        return repo.read_blob(oid.encode())


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def test_init_makes_a_git_repository_stock_git_reads(campaign, camp):
    assert (campaign / ".git" / "camp" / "campaign").is_file()
    log = git(campaign, "log", "--oneline")
    assert log.returncode == 0 and "Initialise campaign proj/run_001" in log.stdout
    assert git(campaign, "fsck", "--strict").returncode == 0
    # Nothing is checked out over the scientist's folder.
    assert sorted(os.listdir(campaign)) == [".git"]


def test_init_refuses_existing_repository_and_bad_names(tmp_path, campaign, camp):
    r = camp("init", campaign, "--name", "x", ok=False)
    assert r.exit_code != 0 and r.stderr.startswith("camp: error: ") and "already a campaign" in r.stderr
    for bad in ("/abs", "a/../b", "x.aca", ""):
        r = camp("init", tmp_path / "other", "--name", bad, ok=False)
        assert r.exit_code != 0 and "invalid archive name" in r.stderr
    assert not (tmp_path / "other" / ".git").exists()


def test_add_bp5_embeds_exactly_what_adios2_get_metadata_returns(campaign, camp, data):
    import adios2

    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    ds = manifest(campaign, "heat.bp")
    assert ds.kind == "ADIOS" and len(ds.uuid) == 32
    (rep,) = ds.replicas
    assert rep.host == "laptop" and rep.dir == os.path.realpath(data) and rep.path == "heat.bp"
    assert rep.size == sum(os.path.getsize(os.path.join(data, "heat.bp", f)) for f in os.listdir(data / "heat.bp"))
    files = {f.name: f for f in rep.files}
    assert set(files) == {"metadata", "profiling.json"}
    with adios2.FileReader(str(data / "heat.bp")) as fr:
        expected = fr.get_metadata()
    stored = blob(campaign, files["metadata"].blob)
    assert files["metadata"].compression == 1 and stored[:2] == b"\x78\x9c"
    assert zlib.decompress(stored) == expected
    assert files["metadata"].lenorig == len(expected) and files["metadata"].lencompressed == len(stored)


def test_add_bp4_matches_adios2_too(campaign, camp, tmp_path):
    import adios2

    make_data.make_bp5(str(tmp_path / "old.bp"), steps=2, engine="BP4")
    camp("--repo", campaign, "add", "old.bp", cwd=tmp_path)
    (rep,) = manifest(campaign, "old.bp").replicas
    meta = next(f for f in rep.files if f.name == "metadata")
    with adios2.FileReader(str(tmp_path / "old.bp")) as fr:
        assert zlib.decompress(blob(campaign, meta.blob)) == fr.get_metadata()


def test_add_text_and_image_options(campaign, camp, data):
    camp("--repo", campaign, "add", "--store", "notes.txt", cwd=data)
    camp("--repo", campaign, "add", "--thumbnail", "64", "64", "plot.png", cwd=data)
    text = manifest(campaign, "notes.txt")
    (rep,) = text.replicas
    (f,) = rep.files
    assert text.kind == "TEXT" and f.name == "notes.txt" and f.compression == 1
    assert zlib.decompress(blob(campaign, f.blob)) == (data / "notes.txt").read_bytes()
    img = manifest(campaign, "plot.png")
    main, thumb = sorted(img.replicas, key=lambda r: r.path)
    assert img.kind == "IMAGE" and main.resolution == (640, 480) and main.files == ()
    assert thumb.path == "thumbnails/plot.png" and thumb.resolution == (64, 48)
    assert thumb.files[0].name == "64x48.png" and thumb.size == thumb.files[0].lenorig


def test_add_image_store_embeds_the_file(campaign, camp, data):
    camp("--repo", campaign, "add", "--store", "plot.png", cwd=data)
    (rep,) = manifest(campaign, "plot.png").replicas
    (f,) = rep.files
    assert f.name == "640x480.png" and f.compression == 0
    assert blob(campaign, f.blob) == (data / "plot.png").read_bytes()


def test_add_text_without_store_records_a_reference_only(campaign, camp, data):
    camp("--repo", campaign, "add", "notes.txt", cwd=data)
    (rep,) = manifest(campaign, "notes.txt").replicas
    assert rep.files == () and rep.size == (data / "notes.txt").stat().st_size


def test_add_hdf5_records_a_metadata_copy(campaign, camp, data):
    camp("--repo", campaign, "add", "mesh.h5", cwd=data)
    ds = manifest(campaign, "mesh.h5")
    (rep,) = ds.replicas
    assert ds.kind == "HDF5" and [f.name for f in rep.files] == ["mesh.h5"]
    assert rep.size == (data / "mesh.h5").stat().st_size


def test_add_absolute_path_records_real_folder_and_base_name(campaign, camp, data, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    camp("--repo", campaign, "add", str(data / "heat.bp"), cwd=elsewhere)
    ds = manifest(campaign, os.path.normpath(str(data / "heat.bp")))
    (rep,) = ds.replicas
    # ADIOS2 reads dir + "/" + path: that must be the real dataset.
    assert os.path.join(rep.dir, rep.path) == os.path.realpath(data / "heat.bp")


def test_paths_are_relative_to_current_directory_and_names_normalised(campaign, camp, data):
    camp("--repo", campaign, "add", "./heat.bp/", cwd=data)
    assert manifest(campaign, "heat.bp") is not None
    sub = data / "sub"
    sub.mkdir()
    camp("--repo", campaign, "add", "../notes.txt", cwd=sub)
    (rep,) = manifest(campaign, "../notes.txt").replicas
    assert rep.dir == os.path.realpath(sub) and os.path.isfile(os.path.join(rep.dir, rep.path))


def test_uuids_are_unique_across_names_and_hosts(campaign, camp, data):
    camp("--repo", campaign, "add", "plot.png", cwd=data)
    camp("--repo", campaign, "add", "--name", "thumbs/plot", "plot.png", cwd=data)
    camp("--repo", campaign, "add", "--name", "stored/plot", "--host", "other", "plot.png", cwd=data)
    uuids = {manifest(campaign, n).uuid for n in ("plot.png", "thumbs/plot", "stored/plot")}
    assert len(uuids) == 3


def test_readd_unchanged_changes_nothing_and_changed_updates(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "one")
    head = git(campaign, "rev-parse", "HEAD").stdout
    r = camp("--repo", campaign, "add", "heat.bp", cwd=data)
    assert "unchanged: heat.bp" in r.output
    r = camp("--repo", campaign, "commit", "-m", "nothing", ok=False)
    assert r.exit_code != 0 and "nothing to commit" in r.stderr
    assert git(campaign, "rev-parse", "HEAD").stdout == head
    # Rewrite the dataset with more steps: the manifest and metadata object change.
    before = manifest(campaign, "heat.bp")
    shutil.rmtree(data / "heat.bp")
    make_data.make_bp5(str(data / "heat.bp"), steps=5, seed=1)
    r = camp("--repo", campaign, "add", "heat.bp", cwd=data)
    assert "updated: heat.bp" in r.output
    after = manifest(campaign, "heat.bp")
    assert after.uuid == before.uuid and after.replicas[0].files != before.replicas[0].files


def test_same_dataset_from_another_host_adds_a_replica(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    r = camp("--repo", campaign, "add", "--host", "frontier", "heat.bp", cwd=data)
    assert "replica added: heat.bp" in r.output
    ds = manifest(campaign, "heat.bp")
    assert sorted(r.host for r in ds.replicas) == ["frontier", "laptop"]
    # Identical metadata is stored once: both replicas point at the same blob.
    assert len({f.blob for r in ds.replicas for f in r.files if f.name == "metadata"}) == 1


def test_identical_metadata_is_stored_once_across_datasets(campaign, camp, data):
    shutil.copytree(data / "heat.bp", data / "copy.bp")
    camp("--repo", campaign, "add", "heat.bp", "copy.bp", cwd=data)
    a, b = manifest(campaign, "heat.bp"), manifest(campaign, "copy.bp")
    assert {f.blob for f in a.replicas[0].files} == {f.blob for f in b.replicas[0].files}


def test_status_commit_log_show(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", cwd=data)
    st = json.loads(camp("--repo", campaign, "status", "--json").output)
    assert [(c["change"], c["name"]) for c in st["staged"] if not c["change"].endswith("host")] == [
        ("new", "heat.bp"), ("new", "pressure.bp")]
    r = camp("--repo", campaign, "commit", "-m", "two runs")
    assert "(2 datasets changed)" in r.output
    st = json.loads(camp("--repo", campaign, "status", "--json").output)
    assert st["staged"] == [] and st["unstaged"] == []
    assert "nothing to commit" in camp("--repo", campaign, "status").output
    log = json.loads(camp("--repo", campaign, "log", "--json").output)
    assert [e["message"].strip() for e in log] == ["two runs", "Initialise campaign proj/run_001"]
    assert log[0]["author"] == "Test Scientist <scientist@example.org>"
    assert "commit " + log[0]["id"] in camp("--repo", campaign, "log").output
    shown = json.loads(camp("--repo", campaign, "show", "--json").output)
    assert [d["name"] for d in shown["datasets"]] == ["heat.bp", "pressure.bp"]
    assert shown["datasets"][0]["replicas"][0]["host"] == "laptop"
    text = camp("--repo", campaign, "show", "HEAD~1").output
    assert "0 datasets" in text
    # Stock git sees the same history.
    assert "two runs" in git(campaign, "log", "--oneline").stdout
    assert git(campaign, "fsck", "--strict").returncode == 0


def test_log_of_one_dataset(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "heat")
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "pressure")
    log = json.loads(camp("--repo", campaign, "log", "--json", "heat.bp").output)
    assert [e["message"].strip() for e in log] == ["heat"]
    r = camp("--repo", campaign, "log", "nothing.bp", ok=False)
    assert r.exit_code != 0 and "no dataset named 'nothing.bp'" in r.stderr


def test_status_shows_data_changed_or_missing_on_disk(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", "notes.txt", "pressure.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "three")
    (data / "notes.txt").write_text("changed notes, longer than before\n")
    shutil.rmtree(data / "pressure.bp")
    st = json.loads(camp("--repo", campaign, "status", "--json").output)
    assert sorted((c["change"], c["name"]) for c in st["unstaged"]) == [
        ("missing", "pressure.bp"), ("modified", "notes.txt")]
    # Appending steps to a BP5 dataset rewrites md.idx, which status notices.
    shutil.rmtree(data / "heat.bp")
    make_data.make_bp5(str(data / "heat.bp"), steps=4, seed=1)
    st = json.loads(camp("--repo", campaign, "status", "--json").output)
    assert ("modified", "heat.bp") in [(c["change"], c["name"]) for c in st["unstaged"]]


def test_repository_selection_env_and_parents(tmp_path, camp, campaign, data, monkeypatch):
    inner = campaign / "deep" / "er"
    inner.mkdir(parents=True)
    r = camp("status", cwd=inner)
    assert "On campaign proj/run_001" in r.output
    monkeypatch.setenv("CAMP_REPO", str(campaign))
    camp("add", "heat.bp", cwd=data)
    assert manifest(campaign, "heat.bp") is not None


def test_host_falls_back_to_config_yaml_then_errors(tmp_path, camp, clean_env, data):
    root = tmp_path / "nohost"
    camp("init", root, "--name", "p/q")
    r = camp("--repo", root, "add", "heat.bp", cwd=data, ok=False)
    assert r.exit_code != 0 and "no host name" in r.stderr
    cfg = clean_env / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text("Campaign:\n  hostname: fromconfig\n")
    camp("--repo", root, "add", "heat.bp", cwd=data)
    assert manifest(root, "heat.bp").replicas[0].host == "fromconfig"


def test_commit_author_from_git_variables(campaign, camp, data, monkeypatch):
    monkeypatch.delenv("CAMP_AUTHOR_NAME")
    monkeypatch.delenv("CAMP_AUTHOR_EMAIL")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Git Person")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "git@example.org")
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "by git person")
    assert git(campaign, "log", "-1", "--format=%an <%ae>").stdout.strip() == "Git Person <git@example.org>"


def test_help_and_status_do_not_import_heavy_libraries(campaign):
    code = (
        "import sys\n"
        "from campaignvcs.cli import main\n"
        "for args in (['--help'], ['--repo', sys.argv[1], 'status']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "heavy = [m for m in ('adios2', 'h5py', 'PIL', 'numpy', 'nacl', 'paramiko') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([os.sys.executable, "-c", code, str(campaign)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_add_with_message_commits_in_one_call(campaign, camp, data):
    camp("--repo", campaign, "add", "-m", "job 42 outputs", "heat.bp", "notes.txt", cwd=data)
    assert git(campaign, "log", "-1", "--format=%s").stdout.strip() == "job 42 outputs"
    assert json.loads(camp("--repo", campaign, "status", "--json").output)["staged"] == []
    # Nothing new: no empty commit is made.
    camp("--repo", campaign, "add", "-m", "again", "heat.bp", cwd=data)
    assert git(campaign, "log", "-1", "--format=%s").stdout.strip() == "job 42 outputs"
