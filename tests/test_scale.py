"""Scale (issue 16): pushes that cost what changed, sub-archives, history-only remotes, bounded reads.

Each test checks what a user sees: what lands on the remote, what the archive holds (and
that ADIOS2 opens it: ``camp build --check`` reads every item in a child process), and
that the readers and writers built for a million datasets give the same bytes as the
simple ones they replace.
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import sqlite3
from array import array

import make_data
import pytest
from conftest_remote import local_remote  # noqa: F401
from dulwich.pack import write_pack_index
from helpers import assert_one_line_error

from campaignvcs import packreader
from campaignvcs.packwrite import pack_index
from campaignvcs.remote.transfer import pack_for_push, verify_pack
from campaignvcs.repo import CampaignRepo
from campaignvcs.statcache import _scan_range as _SCAN_RANGE  # noqa: PLC2701 - wrapped to see it run


def names_in(aca) -> list[str]:
    with sqlite3.connect(aca) as db:
        return [n for (n,) in db.execute("select name from dataset order by name")]


@pytest.fixture
def store(clean_env, tmp_path):
    """config.yaml: this host is laptop (so ADIOS2 reads its replicas), with a campaign store."""
    cfg = clean_env / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text(f"Campaign:\n  hostname: laptop\n  campaignstorepath: {tmp_path / 'store'}\n"
                                     f"  cachepath: {tmp_path / 'cache'}\n")
    return tmp_path / "store"


@pytest.fixture
def runs(tmp_path, camp):
    """A campaign of two runs (BP5 and text each), committed: run_1/* and run_2/*."""
    data = tmp_path / "data"
    for run in ("run_1", "run_2"):
        make_data.make_bp5(str(data / run / "fields.bp"), steps=2, seed=len(run))
        make_data.make_text(str(data / run / "notes.txt"), seed=len(run))
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/big", "--host", "laptop")
    camp("--repo", root, "add", "-m", "two runs", "run_1/fields.bp", "run_1/notes.txt", "run_2/fields.bp",
         "run_2/notes.txt", cwd=data)
    return root, data


# -- sub-archives --------------------------------------------------------------------------------


def test_sub_archive_holds_only_the_selected_run_and_adios2_reads_it(runs, camp, tmp_path, store):
    root, data = runs
    out = tmp_path / "run_1.aca"
    r = camp("--repo", root, "build", "-o", out, "--include", "run_1/*", "--check")
    assert names_in(out) == ["run_1/fields.bp", "run_1/notes.txt"]
    assert "check: ok: ADIOS2 opened the archive and read all 2 datasets" in r.output
    camp("--repo", root, "build", "-o", tmp_path / "no-notes.aca", "--exclude", "*.txt")
    assert names_in(tmp_path / "no-notes.aca") == ["run_1/fields.bp", "run_2/fields.bp"]


def test_sub_archive_is_patched_with_the_same_selection_only(runs, camp, tmp_path):
    root, data = runs
    out = tmp_path / "run_1.aca"
    camp("--repo", root, "build", "-o", out, "--include", "run_1/*")
    make_data.make_text(str(data / "run_2" / "later.txt"), seed=9)
    make_data.make_text(str(data / "run_1" / "later.txt"), seed=9)
    camp("--repo", root, "add", "-m", "more", "run_2/later.txt", "run_1/later.txt", cwd=data)
    r = json.loads(camp("--repo", root, "build", "-o", out, "--include", "run_1/*", "--json").output)
    assert r["incremental"] and names_in(out) == ["run_1/fields.bp", "run_1/later.txt", "run_1/notes.txt"]
    # another selection over the same file: built in full, never a mix of two selections
    r = json.loads(camp("--repo", root, "build", "-o", out, "--include", "run_2/*", "--json").output)
    assert not r["incremental"] and names_in(out) == ["run_2/fields.bp", "run_2/later.txt", "run_2/notes.txt"]


def test_sub_archive_needs_an_output_and_a_sane_glob(runs, camp):
    root, _ = runs
    assert_one_line_error(camp("--repo", root, "build", "--include", "run_1/*", ok=False),
                          "a sub-archive (--include/--exclude) needs -o PATH.aca")
    assert_one_line_error(camp("--repo", root, "build", "-o", "x.aca", "--include", "a;b", ok=False),
                          "bad dataset glob 'a;b'")


# -- pushes --------------------------------------------------------------------------------------


def remote_archive(remote) -> str:
    return str(remote.backing / "proj" / "big.aca")


def push_json(camp, root, *args) -> dict:
    return json.loads(camp("--repo", root, "push", "--json", *args).output)


def test_push_keeps_its_archive_and_patches_it_next_time(runs, camp, local_remote):  # noqa: F811
    """Without a campaign store: the first push builds in full, the next ones patch what it kept."""
    root, data = runs
    camp("--repo", root, "remote", "add", "origin", local_remote.url)
    first = push_json(camp, root)
    assert first["archive"] == "built in full"  # no store, no earlier push: nothing to start from
    kept = root / ".git" / "camp" / "remotes" / "origin" / "pushed.aca"
    assert kept.read_bytes() == open(remote_archive(local_remote), "rb").read()
    make_data.make_text(str(data / "run_1" / "later.txt"), seed=9)
    camp("--repo", root, "add", "-m", "one more", "run_1/later.txt", cwd=data)
    second = push_json(camp, root)
    assert second["archive"] == "patched" and second["objects"] < 12
    assert "run_1/later.txt" in names_in(remote_archive(local_remote))
    assert kept.read_bytes() == open(remote_archive(local_remote), "rb").read()


def test_push_copies_the_store_archive_at_the_pushed_commit(runs, camp, local_remote, store):  # noqa: F811
    root, _ = runs
    camp("--repo", root, "build")
    camp("--repo", root, "remote", "add", "origin", local_remote.url)
    assert push_json(camp, root)["archive"] == "store copy"


def test_history_only_remote_gets_no_archive_and_a_reader_rebuilds(runs, camp, local_remote, store,  # noqa: F811
                                                                    tmp_path):
    root, data = runs
    r = camp("--repo", root, "remote", "add", "--no-archive", "origin", local_remote.url)
    assert r.output.endswith("(history only, no archive)\n")
    assert camp("--repo", root, "remote", "list").output.endswith("(history only, no archive)\n")
    result = push_json(camp, root)
    assert result["archive"] == "" and result["archive_bytes"] == 0
    assert not os.path.exists(remote_archive(local_remote))
    # A reader with camp follows the campaign from its history alone.
    reader = tmp_path / "reader"
    camp("clone", local_remote.url, reader, "--host", "laptop", cwd=tmp_path)
    built = store / "proj" / "big.aca"
    assert names_in(built) == ["run_1/fields.bp", "run_1/notes.txt", "run_2/fields.bp", "run_2/notes.txt"]
    make_data.make_text(str(data / "run_2" / "later.txt"), seed=9)
    camp("--repo", root, "add", "-m", "one more", "run_2/later.txt", cwd=data)
    camp("--repo", root, "push")
    pulled = json.loads(camp("--repo", reader, "store", "pull", "origin", "--json", cwd=reader).output)
    assert pulled["rebuilt"] == ["proj/big"] and pulled["archives"] == []
    assert 0 < pulled["bytes_received"] < built.stat().st_size / 4  # history of one change, not an archive
    assert "run_2/later.txt" in names_in(built)


def test_sub_archive_remote_gets_its_selection(runs, camp, local_remote):  # noqa: F811
    root, _ = runs
    camp("--repo", root, "remote", "add", "--include", "run_2/*", "origin", local_remote.url)
    assert camp("--repo", root, "remote", "list").output.endswith("(sub-archive: +run_2/*)\n")
    camp("--repo", root, "push")
    assert names_in(remote_archive(local_remote)) == ["run_2/fields.bp", "run_2/notes.txt"]
    r = camp("--repo", root, "remote", "add", "--no-archive", "--include", "x", "other", local_remote.url,
             ok=False)
    assert_one_line_error(r, "a --no-archive remote gets none")


# -- the bulk reader and the push pack -------------------------------------------------------------


@pytest.fixture
def many_packs(runs, camp, tmp_path, monkeypatch):
    """The campaign after several more commits: several packs (small writes packed too) and loose objects."""
    from campaignvcs import objectstore

    root, data = runs
    for i in range(6):
        monkeypatch.setattr(objectstore, "PACK_THRESHOLD", 1 if i % 2 else 10_000)
        names = []
        for j in range(3):
            name = f"extra_{i}/n{j}.txt"
            (data / f"extra_{i}").mkdir(exist_ok=True)
            make_data.make_text(str(data / name), seed=10 * i + j)
            names.append(name)
        camp("--repo", root, "add", "-m", f"batch {i}", *names, cwd=data)
    return root


def all_objects(root) -> list[bytes]:
    from dulwich.repo import Repo

    with Repo(str(root)) as repo:
        return sorted(repo.object_store)


def test_bulk_index_finds_every_object_as_the_simple_search_does(many_packs, monkeypatch):
    oids = all_objects(many_packs)
    with CampaignRepo.open(str(many_packs)) as simple:
        expected = {oid: simple.read_raw(oid) for oid in oids}
    monkeypatch.setattr(packreader, "BULK_AFTER", 0)
    with CampaignRepo.open(str(many_packs)) as bulk:
        got = {oid: bulk.read_raw(oid) for oid in random.Random(1).sample(oids, len(oids))}
        reader = bulk.objects._pack_reader()  # noqa: SLF001 - which path served the reads
        assert reader._bulk is not None and len(reader._packs) > 1  # noqa: SLF001
    assert got == expected


def test_push_pack_copies_stored_entries_and_git_reads_them(many_packs, tmp_path):
    oids = all_objects(many_packs)
    with CampaignRepo.open(str(many_packs)) as camp:
        copied = sum(camp.objects.stored_entry(oid) is not None for oid in oids)
        assert 0 < copied  # packed objects travel as stored; loose ones are encoded
        pack = pack_for_push(camp, oids, str(tmp_path / "out"))
        assert verify_pack(camp, pack.pack, pack.idx, pack.name) == set(oids)
    if shutil.which("git"):
        import subprocess

        r = subprocess.run(["git", "verify-pack", pack.idx], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_pack_index_is_byte_for_byte_git_s_format_with_large_offsets():
    rng = random.Random(3)
    shas = [rng.randbytes(20) for _ in range(3000)]
    offsets = array("Q", (rng.randrange(0, 2**34) for _ in shas))
    crcs = array("I", (rng.randrange(0, 2**32) for _ in shas))
    checksum = rng.randbytes(20)
    expected = io.BytesIO()
    write_pack_index(expected, sorted(zip(shas, offsets, crcs)), checksum)
    assert pack_index(shas, offsets, crcs, checksum) == expected.getvalue()


def test_a_build_with_bounded_file_memory_holds_the_same_datasets(runs, camp, tmp_path, store, monkeypatch):
    """With only one file key remembered, identical files may get rows of their own; nothing else changes."""
    from campaignvcs.aca import writer

    root, data = runs
    shutil.copytree(data / "run_1", data / "run_3")  # identical metadata files in other datasets
    camp("--repo", root, "add", "-m", "copies", "run_3/fields.bp", "run_3/notes.txt", cwd=data)
    camp("--repo", root, "build", "-o", tmp_path / "shared.aca")
    monkeypatch.setattr(writer, "FILE_KEYS_KEPT", 1)
    r = camp("--repo", root, "build", "-o", tmp_path / "bounded.aca", "--check")
    assert "check: ok" in r.output
    assert names_in(tmp_path / "bounded.aca") == names_in(tmp_path / "shared.aca")
    with sqlite3.connect(tmp_path / "shared.aca") as a, sqlite3.connect(tmp_path / "bounded.aca") as b:
        shared = a.execute("select count(*) from file").fetchone()[0]
        bounded = b.execute("select count(*) from file").fetchone()[0]
    assert bounded > shared  # the copies' files were shared in the first, not in the second


@pytest.mark.parametrize("slow, split", [(False, False), (True, False), (False, True)])
def test_status_sees_the_same_changes_however_the_stats_are_spread(runs, camp, monkeypatch, slow, split):
    """Slow first stats (a cold cache, NFS) switch to threads, a big cache to forked workers by rowid
    range; what status reports must not change."""
    from campaignvcs import statcache

    root, data = runs
    monkeypatch.setattr(statcache, "STAT_BATCH", 1)
    monkeypatch.setattr(statcache, "SLOW_STAT_SECONDS", 0 if slow else 1e9)
    monkeypatch.setattr(statcache, "SPLIT_ABOVE", 0 if split else 10**9)
    scanned = []
    monkeypatch.setattr(statcache, "_scan_range", lambda *a: scanned.append(a[-1]) or _SCAN_RANGE(*a))
    (data / "run_2" / "notes.txt").write_text("changed\n")
    shutil.rmtree(data / "run_1" / "fields.bp")
    out = json.loads(camp("--repo", root, "status", "--json").output)
    assert bool(scanned) == split  # (the parent's share; the forked worker's is not seen here)
    text = json.dumps(out)
    assert "run_2/notes.txt" in text and "run_1/fields.bp" in text and "run_2/fields.bp" not in text
