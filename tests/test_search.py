"""camp search over a real campaign store: two camp campaigns and an archive hpc-campaign wrote."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import make_data
import numpy as np
import pytest
from helpers import assert_one_line_error, require_module
from test_build import store  # noqa: F401  (fixture)
from test_info import write_bp

adios2 = require_module("adios2", "ADIOS2's Python API (pip install adios2)")
h5py = require_module("h5py", "h5py (pip install h5py)")
require_module("hpc_campaign", "the reference tool hpc-campaign (pip install .[test])")


def hpc_campaign(home, cwd, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env["HOME"] = str(home)
    r = subprocess.run([sys.executable, "-m", "hpc_campaign", *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.fixture
def campaigns(camp, store, tmp_path, clean_env):
    """proj/a (BP5 + text), proj/b (BP4 + HDF5) built into the store, and ref.aca written by hpc-campaign."""
    data = tmp_path / "data"
    data.mkdir()
    write_bp(data / "run.bp", "BP5", steps=4)
    write_bp(data / "old.bp", "BP4", steps=2)
    make_data.make_text(str(data / "notes.txt"), seed=1)
    with h5py.File(data / "mesh.h5", "w") as f:
        f.attrs["title"] = "mesh"
        f.create_dataset("grid/x", data=np.arange(50.0))
    make_data.make_bp5(str(data / "heat.bp"), steps=3, n=10, seed=5)
    a, b = tmp_path / "a", tmp_path / "b"
    camp("init", a, "--name", "proj/a", "--host", "laptop")
    camp("--repo", a, "add", "-m", "a", "run.bp", cwd=data)
    camp("--repo", a, "add", "-m", "notes", "--store", "notes.txt", cwd=data)
    camp("--repo", a, "build")
    camp("init", b, "--name", "proj/b", "--host", "cluster")
    camp("--repo", b, "add", "-m", "b", "old.bp", "mesh.h5", cwd=data)
    camp("--repo", b, "build")
    hpc_campaign(clean_env, data, "manager", store / "ref.aca", "data", "heat.bp")
    return a, b, data


def search(camp, *args, cwd, ok=True):
    return camp("search", *args, cwd=cwd, ok=ok)


def hits(camp, *args, cwd):
    return json.loads(search(camp, "--json", *args, cwd=cwd).stdout)


def test_finds_variables_attributes_and_ranges_across_camp_and_hpc_campaign_archives(camp, campaigns, tmp_path):
    a, b, data = campaigns
    everything = hits(camp, cwd=tmp_path)
    assert {(h["archive"], h["dataset"], h["kind"]) for h in everything} == {
        ("proj/a", "run.bp", "ADIOS"), ("proj/a", "notes.txt", "TEXT"), ("proj/b", "old.bp", "ADIOS"),
        ("proj/b", "mesh.h5", "HDF5"), ("ref", "heat.bp", "ADIOS")}
    assert all(h["source"] == "store" and h["variable"] is None for h in everything)

    found = hits(camp, "--var", "fields/T", cwd=tmp_path)
    assert [(h["archive"], h["dataset"]) for h in found] == [("proj/a", "run.bp"), ("proj/b", "old.bp")]
    with adios2.FileReader(str(data / "run.bp")) as f:
        info = f.available_variables()["fields/T"]
    first = found[0]
    assert (first["variable"], first["type"], first["shape"], first["steps"], first["min"], first["max"]) == (
        "fields/T", info["Type"], [2, 8], 4, float(info["Min"]), float(info["Max"]))
    assert first["hosts"] == ["laptop"] and found[1]["hosts"] == ["cluster"]

    # the archive hpc-campaign wrote: its variables, attributes and ranges are searched too
    heat = hits(camp, "--var", "T", cwd=tmp_path)
    assert [(h["archive"], h["dataset"], h["min"], h["max"]) for h in heat] == [("ref", "heat.bp", 5.0, 42.0)]
    assert [h["dataset"] for h in hits(camp, "--attr", "seed=5", cwd=tmp_path)] == ["heat.bp"]
    assert [h["dataset"] for h in hits(camp, "--attr", "title=heat run", cwd=tmp_path)] == ["run.bp", "old.bp"]
    assert [h["dataset"] for h in hits(camp, "--attr", "/title", cwd=tmp_path)] == ["mesh.h5"]
    ranged = hits(camp, "--range", "40:41", cwd=tmp_path)
    assert {(h["dataset"], h["variable"]) for h in ranged} == {
        ("heat.bp", "T"), ("run.bp", "particles/id"), ("old.bp", "particles/id")}
    assert [h["dataset"] for h in hits(camp, "--kind", "hdf5", cwd=tmp_path)] == ["mesh.h5"]
    assert {h["dataset"] for h in hits(camp, "--host", "cluster", cwd=tmp_path)} == {"old.bp", "mesh.h5"}
    assert [h["dataset"] for h in hits(camp, "*.bp", "--var", "step", "--range", ":0", cwd=tmp_path)] == [
        "run.bp", "old.bp", "heat.bp"]

    text = search(camp, "--var", "fields/T", cwd=tmp_path).stdout.splitlines()
    assert text[0].split()[:5] == ["proj/a", "run.bp", "fields/T", "double", "{2,"]
    assert text[0].endswith("laptop")


def test_limit_shows_the_first_hits_and_says_there_are_more(camp, campaigns, tmp_path):
    everything = hits(camp, cwd=tmp_path)
    r = search(camp, "--json", "--limit", "2", cwd=tmp_path)
    assert json.loads(r.stdout) == everything[:2]
    assert r.stderr == "camp: warning: showing the first 2 hits; more match (--limit 0 shows all)\n"
    per_variable = hits(camp, "--range", "40:41", cwd=tmp_path)
    r = search(camp, "--json", "--range", "40:41", "--limit", "1", cwd=tmp_path)
    assert json.loads(r.stdout) == per_variable[:1] and "more match" in r.stderr
    r = search(camp, "--json", "--limit", str(len(everything)), cwd=tmp_path)
    assert json.loads(r.stdout) == everything and r.stderr == ""


def test_inside_a_repository_its_head_is_searched_too(camp, campaigns):
    a, _, data = campaigns
    make_data.make_bp5(str(data / "new.bp"), steps=2, n=4, seed=9)
    camp("--repo", a, "add", "-m", "new", "new.bp", cwd=data)  # committed, not built
    found = hits(camp, "new.bp", cwd=a)
    assert [(h["archive"], h["source"], h["dataset"]) for h in found] == [("proj/a", "repository", "new.bp")]
    assert hits(camp, "new.bp", cwd=data) == []  # outside: the store only
    camp("--repo", a, "rm", "new.bp", cwd=data)  # indexed again from the tree difference only
    camp("--repo", a, "commit", "-m", "gone", cwd=data)
    make_data.make_bp5(str(data / "newer.bp"), steps=2, n=4, seed=10)
    camp("--repo", a, "add", "-m", "newer", "newer.bp", cwd=data)
    found = hits(camp, "new*.bp", "--var", "T", cwd=a)
    assert [(h["source"], h["dataset"], h["max"]) for h in found] == [("repository", "newer.bp", 26.0)]


def test_a_damaged_archive_is_skipped_with_one_warning_and_the_rest_is_searched(camp, campaigns, store,
                                                                                 tmp_path):
    (store / "broken.aca").write_bytes(b"SQLite format 3\0" + b"\x13" * 5000)
    (store / "old").mkdir()
    (store / "old" / "empty.aca").write_bytes(b"")
    r = search(camp, "--var", "fields/T", cwd=tmp_path)
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("camp: warning: skipped damaged archive") for w in warnings)
    assert "broken" in warnings[0] and "old/empty" in warnings[1]
    assert len(r.stdout.splitlines()) == 2
    r = search(camp, "--var", "fields/T", cwd=tmp_path)  # still damaged: still said
    assert len(r.stderr.strip().splitlines()) == 2


def test_a_deleted_or_corrupted_index_is_rebuilt(camp, campaigns, store, tmp_path):
    before = hits(camp, "--var", "*", cwd=tmp_path)
    index = store / ".camp" / "search.acx"
    assert index.is_file()
    index.unlink()
    assert hits(camp, "--var", "*", cwd=tmp_path) == before
    index.write_bytes(b"this is not a database" * 100)
    r = search(camp, "--json", "--var", "*", cwd=tmp_path)
    assert json.loads(r.stdout) == before
    assert r.stderr.startswith("camp: warning: search index") and "rebuilt" in r.stderr
    with sqlite3.connect(index) as con:  # damaged inside a valid SQLite file
        con.execute("drop table camp_variables")
    r = search(camp, "--json", "--var", "*", cwd=tmp_path)
    assert json.loads(r.stdout) == before and "rebuilt: it was damaged" in r.stderr


def test_hpc_campaign_index_reads_our_index(camp, campaigns, clean_env, tmp_path):
    hits(camp, cwd=tmp_path)
    listing = hpc_campaign(clean_env, tmp_path, "index", ".camp/search", "ls")
    names = [line.split()[0] for line in listing.splitlines()[2:]]
    assert {"proj/a", "proj/b", "ref"} <= set(names)
    dump = hpc_campaign(clean_env, tmp_path, "index", ".camp/search", "dump")
    assert "fields/T" in dump and "VARIABLES" in dump and "ATTRIBUTES" in dump


def test_build_updates_the_index_and_each_metadata_object_is_read_once(camp, campaigns, store, tmp_path):
    a, b, data = campaigns
    hits(camp, cwd=tmp_path)
    index = store / ".camp" / "search.acx"
    with sqlite3.connect(index) as con:
        contents = con.execute("select count(*) from camp_contents").fetchone()[0]
    os.mkdir(data / "copy")
    os.system(f"cp -r {data / 'run.bp'} {data / 'copy' / 'run.bp'}")  # same metadata, another dataset
    camp("--repo", b, "add", "-m", "copy", "copy/run.bp", cwd=data)
    camp("--repo", b, "build")
    with sqlite3.connect(index) as con:
        names = {r[0] for r in con.execute(
            "select d.name from datasets d join archives a using (archiveid) where a.name = 'proj/b'")}
        assert names == {"old.bp", "mesh.h5", "copy/run.bp"}
        assert con.execute("select count(*) from camp_contents").fetchone()[0] == contents
    assert {h["archive"] for h in hits(camp, "--var", "fields/T", cwd=tmp_path)} == {"proj/a", "proj/b"}


def test_bad_input_is_one_line(camp, campaigns, tmp_path):
    r = search(camp, "--range", "5", cwd=tmp_path, ok=False)
    assert_one_line_error(r, "--range", status=2)
    r = search(camp, "--range", "9:1", cwd=tmp_path, ok=False)
    assert_one_line_error(r, "--range")


def test_without_a_store_or_repository_it_says_what_is_missing(camp, tmp_path):
    r = camp("search", cwd=tmp_path, ok=False)
    assert_one_line_error(r, "campaignstorepath")


def test_encrypted_metadata_is_searched_in_memory_with_the_key_and_by_name_without(camp, store, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_bp(data / "secret.bp", "BP5", steps=2)
    key = tmp_path / "run.key"
    camp("key", "generate", key)
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/secret", "--host", "laptop")
    camp("--repo", root, "add", "-k", key, "-m", "secret", "secret.bp", cwd=data)
    camp("--repo", root, "build")
    r = search(camp, "--json", "--var", "fields/T", cwd=tmp_path)
    (hit,) = json.loads(r.stdout)
    assert (hit["dataset"], hit["encrypted"], hit["variable"]) == ("secret.bp", True, None)
    assert "encrypted metadata matched by name only" in r.stderr and len(r.stderr.splitlines()) == 1
    (hit,) = hits(camp, "--var", "fields/T", "-k", key, cwd=tmp_path)
    assert (hit["dataset"], hit["encrypted"], hit["variable"], hit["shape"]) == ("secret.bp", False, "fields/T", [2, 8])
    assert hits(camp, "--var", "nothing", "-k", key, cwd=tmp_path) == []
    with sqlite3.connect(store / ".camp" / "search.acx") as con:  # nothing decrypted was written down
        assert con.execute("select count(*) from camp_variables").fetchone()[0] == 0


def test_the_search_benchmark_runs_at_a_tiny_size(tmp_path, clean_env):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "search.py")
    r = subprocess.run([sys.executable, script, "--sizes", "40", "--repeat", "1", "--workdir", str(tmp_path / "w")],
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr
    assert "### 40 datasets (40 indexed" in r.stdout and "bytes per dataset" in r.stdout
    assert r.stdout.count("\n| `") == 6
