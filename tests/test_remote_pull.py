"""camp remote / push / pull / resolve / clone through the CLI on a local-folder remote."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

import pytest
from conftest_remote import local_remote  # noqa: F401  (fixture)
from helpers import manifest

from campaignvcs.repo import CampaignRepo


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def head(root) -> str:
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for n in ("n1.txt", "n2.txt", "n3.txt"):
        (folder / n).write_text(f"notes of {n}\n")
    return folder


@pytest.fixture
def pair(tmp_path, camp, data, local_remote):  # noqa: F811
    """Clone a (pushed) and clone b of it, both with host laptop."""
    a, b = tmp_path / "a", tmp_path / "b"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push", "--no-build")
    camp("clone", local_remote.url, b, "--host", "laptop", "--no-build", cwd=tmp_path)
    return a, b


def test_remote_add_list_remove_in_a_camp_section_stock_git_ignores(campaign, camp, tmp_path):
    r = camp("--repo", campaign, "remote", "add", "origin", "backup/here", cwd=tmp_path)
    assert r.output == f"added remote origin: {tmp_path}/backup/here\n"
    camp("--repo", campaign, "remote", "add", "s3", "store:bucket/proj")
    listed = camp("--repo", campaign, "remote", "list").output
    assert listed == f"origin\t{tmp_path}/backup/here\ns3\tstore:bucket/proj\n"
    assert json.loads(camp("--repo", campaign, "remote", "list", "--json").output) == [
        {"name": "origin", "url": f"{tmp_path}/backup/here", "archive": True, "include": [], "exclude": []},
        {"name": "s3", "url": "store:bucket/proj", "archive": True, "include": [], "exclude": []}]
    assert git(campaign, "config", "--get", "camp-remote.origin.url").stdout == f"{tmp_path}/backup/here\n"
    assert git(campaign, "remote").stdout == ""
    r = camp("--repo", campaign, "remote", "add", "origin", "/x", ok=False)
    assert r.stderr == "camp: error: remote origin already exists (camp remote remove origin first)\n"
    for bad in ("a b", "-x", "../up", ""):
        r = camp("--repo", campaign, "remote", "add", "--", bad, "/x", ok=False)
        assert r.exit_code == 1 and "invalid remote name" in r.stderr
    r = camp("--repo", campaign, "remote", "add", "opt", "--", "--config=/etc/passwd", ok=False)
    assert r.exit_code == 1 and "would be read as an rclone option" in r.stderr
    camp("--repo", campaign, "remote", "remove", "s3")
    assert camp("--repo", campaign, "remote", "list").output == f"origin\t{tmp_path}/backup/here\n"
    r = camp("--repo", campaign, "remote", "remove", "s3", ok=False)
    assert r.stderr == "camp: error: no such remote: s3\n"
    r = camp("--repo", campaign, "push", "nowhere", ok=False)
    assert r.stderr == "camp: error: no such remote: nowhere (camp remote list shows the remotes)\n"


def test_a_one_dataset_change_pushes_a_small_fraction_of_the_first_push(campaign, camp, tmp_path, local_remote):  # noqa: F811
    data = tmp_path / "many"
    data.mkdir()
    for i in range(50):
        (data / f"d{i:02d}.txt").write_text(f"dataset {i}\n" * 20)
    camp("--repo", campaign, "add", *(f"d{i:02d}.txt" for i in range(50)), "-m", "fifty", cwd=data)
    camp("--repo", campaign, "remote", "add", "origin", local_remote.url)
    first = json.loads(camp("--repo", campaign, "push", "--json").output)
    (data / "d07.txt").write_text("changed\n")
    camp("--repo", campaign, "add", "d07.txt", "-m", "one changed", cwd=data)
    second = json.loads(camp("--repo", campaign, "push", "--json").output)
    assert second["objects"] <= 10 < first["objects"]
    # ~3 KB vs ~32 KB, 1 KB of it the .idx fan-out
    assert second["pack_bytes"] * 5 < first["pack_bytes"], (first, second)
    fresh = tmp_path / "fresh"
    camp("clone", local_remote.url, fresh, cwd=tmp_path)
    assert manifest(fresh, "d07.txt", "HEAD").replicas[0].size == len("changed\n")


def test_pull_conflict_is_named_staged_around_resolved_then_committed_with_two_parents(
        pair, camp, data, local_remote):  # noqa: F811
    a, b = pair
    # The same replica (laptop, data/n1.txt) is recorded differently on both sides; each
    # side also changes something the other does not touch.
    (data / "n1.txt").write_text("version a\n")
    camp("--repo", a, "add", "n1.txt", "-m", "n1 in a", cwd=data)
    camp("--repo", a, "add", "n2.txt", "-m", "n2 in a", cwd=data)
    (data / "n1.txt").write_text("version b, longer\n")
    camp("--repo", b, "add", "n1.txt", "-m", "n1 in b", cwd=data)
    camp("--repo", b, "add", "n3.txt", "-m", "n3 in b", cwd=data)
    camp("--repo", b, "push", "--no-build")
    theirs = head(b)

    r = camp("--repo", a, "pull", ok=False)
    assert r.exit_code == 4
    assert f"CONFLICT n1.txt: replica laptop:{data}/n1.txt: changed differently on both sides" in r.output
    st = json.loads(camp("--repo", a, "status", "--json").output)
    assert st["merging"] and st["conflicts"] == ["n1.txt"]
    assert [c["name"] for c in st["staged"]] == ["n3.txt"]  # the clean part of the merge is staged
    assert "conflict:       n1.txt" in camp("--repo", a, "status").output
    r = camp("--repo", a, "commit", "-m", "too early", ok=False)
    assert r.exit_code == 4 and r.stderr == ("camp: error: cannot commit: 1 unresolved conflict(s): n1.txt "
                                             "(camp resolve NAME --ours|--theirs)\n")
    r = camp("--repo", a, "push", ok=False)
    assert "a merge is in progress" in r.stderr
    r = camp("--repo", a, "resolve", "n9.txt", "--ours", ok=False)
    assert r.stderr == "camp: error: no conflict named n9.txt (conflicts: n1.txt)\n"

    r = camp("--repo", a, "resolve", "n1.txt", "--theirs")
    assert r.output == "resolved n1.txt (theirs); no conflicts left: 'camp commit' to finish the merge\n"
    camp("--repo", a, "commit", "-m", "merge b")
    parents = git(a, "log", "-1", "--format=%P").stdout.split()
    assert parents[1] == theirs
    assert manifest(a, "n1.txt", "HEAD").replicas[0].size == len("version b, longer\n")
    assert {manifest(a, n, "HEAD") is not None for n in ("n2.txt", "n3.txt")} == {True}
    assert not json.loads(camp("--repo", a, "status", "--json").output)["merging"]
    camp("--repo", a, "push", "--no-build")
    camp("--repo", b, "pull", "--no-build")
    assert head(b) == head(a)
    assert git(b, "fsck", "--strict").returncode == 0


def test_pull_abort_returns_to_the_state_before_the_pull(pair, camp, data):
    a, b = pair
    (data / "n1.txt").write_text("version a\n")
    camp("--repo", a, "add", "n1.txt", "-m", "n1 in a", cwd=data)
    (data / "n1.txt").write_text("version b, longer\n")
    camp("--repo", b, "add", "n1.txt", "n3.txt", "-m", "n1 in b", cwd=data)
    camp("--repo", b, "push", "--no-build")
    before = head(a)
    assert camp("--repo", a, "pull", ok=False).exit_code == 4
    r = camp("--repo", a, "pull", ok=False)
    assert r.stderr.startswith("camp: error: a merge is in progress")
    assert camp("--repo", a, "pull", "--abort").output == f"merge aborted; staging area reset to {before[:10]}\n"
    st = json.loads(camp("--repo", a, "status", "--json").output)
    assert st["staged"] == [] and not st["merging"] and head(a) == before
    assert (st["ahead"], st["behind"]) == (1, 1)


def test_pull_refuses_staged_changes(pair, camp, data):
    a, b = pair
    camp("--repo", b, "add", "n3.txt", "-m", "n3", cwd=data)
    camp("--repo", b, "push", "--no-build")
    camp("--repo", a, "add", "n2.txt", cwd=data)
    r = camp("--repo", a, "pull", ok=False)
    assert r.stderr == ("camp: error: you have staged changes: commit them first ('camp commit -m MESSAGE'), "
                        "then pull\n")


def test_a_tombstone_wins_over_a_stale_copy_and_replicas_merge_as_a_union(pair, camp, data):
    a, b = pair
    with CampaignRepo.open(str(a)) as repo, repo.transaction() as tx:  # a deletes its replica of n1 (a tombstone)
        ds = repo.dataset("n1.txt")
        tx.stage_dataset(dataclasses.replace(ds, replicas=(dataclasses.replace(ds.replicas[0], deltime=123),)))
    camp("--repo", a, "commit", "-m", "n1 deleted here")
    camp("--repo", b, "add", "n1.txt", "--host", "hpc", "-m", "n1 also on hpc", cwd=data)
    camp("--repo", b, "push", "--no-build")
    merged = json.loads(camp("--repo", a, "pull", "--json", "--no-build").output)
    assert merged["action"] == "merged"
    reps = {r.host: r for r in manifest(a, "n1.txt", "HEAD").replicas}
    assert reps["laptop"].deltime == 123 and reps["hpc"].live


def test_pull_rebuilds_the_archive_into_the_campaign_store(pair, camp, data, clean_env, tmp_path):
    a, b = pair
    store = tmp_path / "store"
    (clean_env / ".config" / "hpc-campaign").mkdir(parents=True)
    (clean_env / ".config" / "hpc-campaign" / "config.yaml").write_text(f"Campaign:\n  campaignstorepath: {store}\n")
    camp("--repo", b, "add", "n3.txt", "-m", "n3", cwd=data)
    camp("--repo", b, "push", "--no-build")
    result = json.loads(camp("--repo", a, "pull", "--json").output)
    assert result["action"] == "fast-forward" and result["archive"] == str(store / "proj" / "run_001.aca")
    import sqlite3

    with sqlite3.connect(result["archive"]) as db:
        assert sorted(r[0] for r in db.execute("select name from dataset")) == ["n1.txt", "n3.txt"]


def test_clone_finds_the_campaign_and_refuses_bad_targets(pair, camp, tmp_path, local_remote):  # noqa: F811
    a, _b = pair
    via_folder = tmp_path / "via-folder"
    r = camp("clone", str(local_remote.backing / "proj" / "run_001.camp"), via_folder, "--json", cwd=tmp_path)
    assert json.loads(r.output)["url"] == str(local_remote.backing)  # origin is the root, not the .camp folder
    assert camp("--repo", via_folder, "remote", "list").output == f"origin\t{local_remote.backing}\n"
    assert head(via_folder) == head(a)
    default = camp("clone", local_remote.url, "--json", cwd=tmp_path / "data").output
    assert json.loads(default)["path"] == str(tmp_path / "data" / "run_001")
    r = camp("clone", local_remote.url, tmp_path / "data", cwd=tmp_path, ok=False)
    assert r.stderr == f"camp: error: destination {tmp_path / 'data'} already exists and is not an empty folder\n"
    r = camp("clone", str(tmp_path / "empty-remote"), tmp_path / "x", cwd=tmp_path, ok=False)
    assert r.stderr.startswith("camp: error: no campaign at ") and not (tmp_path / "x").exists()


def test_push_uploads_the_stores_archive_when_it_is_current_else_builds_the_pushed_commit(
        campaign, camp, data, tmp_path, local_remote, monkeypatch):  # noqa: F811
    import sqlite3

    store = tmp_path / "store"
    cfg = tmp_path / "home" / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.yaml").write_text(f"Campaign:\n  hostname: laptop\n  campaignstorepath: {store}\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    camp("--repo", campaign, "remote", "add", "origin", local_remote.url)
    camp("--repo", campaign, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", campaign, "build")
    built = store / "proj" / "run_001.aca"
    with sqlite3.connect(built) as con:  # builds are deterministic: mark this file so a copy is told from a rebuild
        con.execute("insert into camp_build values ('marker', 'from the store')")
    camp("--repo", campaign, "push")
    pushed = local_remote.backing / "proj" / "run_001.aca"
    assert pushed.read_bytes() == built.read_bytes()
    with sqlite3.connect(pushed) as con:
        assert dict(con.execute("select key, value from camp_build"))["marker"] == "from the store"

    camp("--repo", campaign, "add", "n2.txt", "-m", "second", cwd=data)  # the store's archive is now stale
    camp("--repo", campaign, "push")
    with sqlite3.connect(pushed) as con:
        assert dict(con.execute("select key, value from camp_build"))["commit"] == head(campaign)
        assert sorted(r[0] for r in con.execute("select name from dataset")) == ["n1.txt", "n2.txt"]
        assert "marker" not in dict(con.execute("select key, value from camp_build"))


# -- a remote whose ref names something that is not a whole history ---------------------------------


def local_state(root) -> dict[str, object]:
    """Everything a fetch could change here: refs, packs and loose objects, camp's own files."""
    git_dir = root / ".git"
    files = {}
    for path in sorted(git_dir.rglob("*")):
        if path.is_file() and "logs" not in path.parts and path.name not in ("lock", "statcache.sqlite"):
            files[str(path.relative_to(git_dir))] = path.read_bytes()
    return files


def remote_ref_file(remote):
    return remote.backing / "proj" / "run_001.camp" / "refs" / "heads" / "main"


@pytest.mark.parametrize("what", ["tree", "blob"])
def test_fetch_refuses_a_ref_that_names_no_commit_and_changes_nothing(pair, camp, local_remote, what):  # noqa: F811
    a, b = pair
    target = git(a, "rev-parse", "HEAD^{tree}" if what == "tree" else "HEAD:campaign.json").stdout.strip()
    remote_ref_file(local_remote).write_text(target + "\n")
    before = local_state(b)
    for verb in ("fetch", "pull"):
        r = camp("--repo", b, verb, ok=False)
        assert r.exit_code == 1
        assert r.stderr == (f"camp: error: remote origin: refs/heads/main points at {target}, "
                            f"which is a {what}, not a commit\n")
        assert local_state(b) == before  # no ref moved, no pack, no bookkeeping
    assert camp("--repo", b, "status").exit_code == 0
    assert camp("--repo", b, "fsck").exit_code == 0
    r = camp("clone", local_remote.url, b.parent / "c", ok=False, cwd=b.parent)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and f"which is a {what}, not a commit" in r.stderr
    assert not (b.parent / "c").exists()  # no half-made folder


def _replace_newest_pack(camp_repo_root, remote, leave_out) -> str:
    """Push a's new commit as a pack without one of its objects; returns the object left out."""
    from campaignvcs.graph import missing_objects
    from campaignvcs.remote.transfer import pack_for_push

    with CampaignRepo.open(str(camp_repo_root)) as repo:
        head_id = repo.head()
        old = remote_ref_file(remote).read_text().strip().encode()
        oids = missing_objects(repo, head_id, old)
        dropped = leave_out(repo, oids)
        pack_dir = remote.backing / "proj" / "run_001.camp" / "objects" / "pack"
        out = pack_dir.parent / "build"
        out.mkdir()
        written = pack_for_push(repo, [o for o in oids if o != dropped], str(out))
    for f in out.iterdir():
        f.rename(pack_dir / f.name)
    out.rmdir()
    remote_ref_file(remote).write_text(head_id.decode() + "\n")
    assert written.objects == len(oids) - 1
    return dropped.decode()


@pytest.mark.parametrize("missing", ["blob", "tree"])
def test_fetch_refuses_a_history_with_a_missing_object_and_stores_no_pack(
        pair, camp, data, local_remote, missing):  # noqa: F811
    a, b = pair
    camp("--repo", a, "add", "n2.txt", "-m", "n2", cwd=data)

    def leave_out(repo, oids):
        kinds = {o: repo.read_raw(o)[0] for o in oids}
        return next(o for o in oids if kinds[o] == missing.encode() and o != repo.read_commit(repo.head()).tree)

    dropped = _replace_newest_pack(a, local_remote, leave_out)
    before = local_state(b)
    r = camp("--repo", b, "fetch", ok=False)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"camp: error: remote origin: refs/heads/main ({head(a)[:10]}): history is "
                               "incomplete: ")
    assert f"{dropped} missing" in r.stderr
    assert local_state(b) == before  # the pack that holds the rest is not kept either
    r = camp("clone", local_remote.url, b.parent / "c", ok=False, cwd=b.parent)
    assert r.exit_code == 1 and f"{dropped} missing" in r.stderr and not (b.parent / "c").exists()


def test_fetch_refuses_a_history_without_its_first_commit(pair, camp, data, local_remote, tmp_path):  # noqa: F811
    a, _b = pair
    camp("--repo", a, "add", "n2.txt", "-m", "n2", cwd=data)
    camp("--repo", a, "push", "--no-build")
    first = git(a, "rev-parse", "HEAD~1").stdout.strip()
    pack_dir = local_remote.backing / "proj" / "run_001.camp" / "objects" / "pack"
    oldest = min(pack_dir.glob("*.idx"), key=os.path.getmtime)
    oldest.unlink()
    oldest.with_suffix(".pack").unlink()
    r = camp("clone", local_remote.url, tmp_path / "c", ok=False, cwd=tmp_path)
    assert r.exit_code == 1 and r.stderr.count("\n") == 1
    assert f"history is incomplete: commit {first} missing (parent of {head(a)[:10]})" in r.stderr
    assert not (tmp_path / "c").exists()


def test_a_bad_remote_tracking_ref_left_by_an_older_camp_does_not_wedge_the_repository(
        pair, camp, data, local_remote):  # noqa: F811
    a, b = pair
    tree = git(a, "rev-parse", "HEAD^{tree}").stdout.strip()
    assert git(b, "update-ref", "refs/remotes/origin/main", tree).returncode == 0  # as camp < 0.2 recorded it
    r = camp("--repo", b, "status")
    assert r.exit_code == 0
    assert (f"refs/remotes/origin/main: points at {tree}, which is a tree, not a commit (recorded by an older "
            "camp); 'camp fetch origin' replaces it") in r.output
    camp("--repo", a, "add", "n2.txt", "-m", "n2", cwd=data)
    camp("--repo", a, "push", "--no-build")
    r = camp("--repo", b, "pull", "--no-build")
    assert r.stderr == (f"camp: warning: removed refs/remotes/origin/main (points at {tree}, which is a tree, not a "
                        "commit): an older camp recorded it; the remote's ref is recorded again once it checks out\n")
    assert head(b) == head(a)
    assert git(b, "rev-parse", "refs/remotes/origin/main").stdout.strip() == head(a)
    assert "points at" not in camp("--repo", b, "status").output


def test_fsck_names_a_bad_remote_tracking_ref_and_the_command_that_clears_it(pair, camp):
    a, b = pair
    tree = git(a, "rev-parse", "HEAD^{tree}").stdout.strip()
    assert git(b, "update-ref", "refs/remotes/origin/main", tree).returncode == 0  # as camp < 0.2 recorded it
    r = camp("--repo", b, "fsck", ok=False)
    assert r.exit_code == 1 and "Traceback" not in r.output + r.stderr
    assert "refs/remotes/origin/main" in r.output and "'camp fetch origin'" in r.output
    camp("--repo", b, "fetch")
    camp("--repo", b, "fsck")


def test_a_clone_reads_a_remote_pack_that_git_deltified(camp, local_remote, tmp_path):  # noqa: F811
    """Packs camp writes are undeltified; a remote whose history stock git repacked has deltas (trees too)."""
    data = tmp_path / "many"
    data.mkdir()
    for i in range(60):
        (data / f"d{i:02}.txt").write_text(f"notes {i}\n")
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", *[f"d{i:02}.txt" for i in range(30)], "-m", "first half", cwd=data)
    camp("--repo", a, "add", *[f"d{i:02}.txt" for i in range(30, 60)], "-m", "second half", cwd=data)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push", "--no-build")
    history = local_remote.backing / "proj" / "run_001.camp"
    (history / "HEAD").write_text("ref: refs/heads/main\n")
    repack = git(history, "--git-dir", str(history), "repack", "-a", "-d", "-f", "--window=250", "--depth=50")
    assert repack.returncode == 0, repack.stderr
    (history / "HEAD").unlink()
    packs = list((history / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    listing = git(history, "verify-pack", "-v", str(packs[0])).stdout.splitlines()
    assert any(len(line.split()) == 7 and line.split()[1] in ("tree", "commit") for line in listing), listing
    camp("clone", local_remote.url, tmp_path / "b", "--host", "laptop", "--no-build", cwd=tmp_path)
    assert head(tmp_path / "b") == head(a)
    assert manifest(tmp_path / "b", "d42.txt") == manifest(a, "d42.txt")
