"""kill -9 at every named point of push and pull, and two clones pushing at once.

Each trial kills camp where ``CAMP_FAULT`` names (the process SIGKILLs itself there, as a
scheduler or a node failure would), then checks what a user would: the repository is
clean (``camp fsck``, stock ``git fsck --strict``, here and on the remote's history),
nothing committed is lost, the remote names either the old or the new commit, a fresh
clone sees a consistent campaign, and running the same command again completes the job
with nothing to clean up by hand (no ``tmp-*`` left on the remote).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys

import pytest
from conftest_remote import diverged, local_remote, make_remote, rclone_servers, store  # noqa: F401  (fixtures)

from campaignvcs.porcelain.sync import PULL_FAULT_POINTS
from campaignvcs.remote.sync import FETCH_FAULT_POINTS, PUSH_FAULT_POINTS
from campaignvcs.repo import CampaignRepo


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def head(root) -> str:
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


def names(root, commit: str | None = None) -> set[str]:
    with CampaignRepo.open(str(root)) as repo:
        return {d.name for d in repo.datasets(repo.tree_of(commit.encode() if commit else repo.head()))}


def ancestors(root, commit: str) -> set[str]:
    return set(git(root, "rev-list", commit).stdout.split())


def run_camp(*args, cwd=None, **env):
    return subprocess.Popen([sys.executable, "-m", "campaignvcs", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def killed_at(point: str, *args) -> None:
    """Run camp with CAMP_FAULT=point and check it died there, by SIGKILL."""
    proc = run_camp(*args, CAMP_FAULT=point)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, out, err)


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for n in ("n1.txt", "n2.txt", "n3.txt", "n4.txt"):
        (folder / n).write_text(f"notes of {n}\n")
    return folder


def camp_dir(remote):
    return remote.backing / "proj" / "run_001.camp"


def remote_ref(remote) -> str:
    return (camp_dir(remote) / "refs" / "heads" / "main").read_text().strip()


def remote_tmps(remote) -> list[str]:
    return sorted(str(p.relative_to(remote.backing)) for p in remote.backing.rglob("tmp-*"))


def remote_git_fsck(remote, tmp_path) -> subprocess.CompletedProcess:
    """Stock git's strict check of the history on the remote (a copy, given the HEAD git wants)."""
    copy = tmp_path / "remote-history.git"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(camp_dir(remote), copy, ignore=shutil.ignore_patterns("lock", "tmp-*"))
    (copy / "HEAD").write_text("ref: refs/heads/main\n")
    return git(copy, "--git-dir", str(copy), "fsck", "--strict", "--no-dangling")


def assert_fsck_clean(camp, root) -> None:
    r = camp("--repo", root, "fsck")
    assert r.output.rstrip().endswith("no problems"), r.output
    assert git(root, "fsck", "--strict", "--no-dangling").returncode == 0


def assert_fresh_clone_consistent(camp, remote, tmp_path, name: str) -> str:
    """A new clone has exactly the remote's commit, complete; returns that commit."""
    fresh = tmp_path / name
    camp("clone", remote.url, fresh, "--no-build", cwd=tmp_path)
    assert head(fresh) == remote_ref(remote)
    assert git(fresh, "fsck", "--strict", "--no-dangling").returncode == 0
    return head(fresh)


# -- push ---------------------------------------------------------------------------------------------


PUSH_STATE = {
    # point: (new pack published, lease held, archive new, ref new, a dead push's tmp swept, own tmp-* left)
    "push-after-upload": (False, False, False, False, False, True),
    "push-after-pack": (True, False, False, False, False, True),
    "push-after-lease": (True, True, False, False, False, True),
    "push-after-aca": (True, True, True, False, False, True),
    "push-after-ref": (True, True, True, True, False, False),
    "push-after-sweep": (True, True, True, True, True, False),
}


def test_every_push_fault_point_is_tried_and_each_kills_after_a_different_step():
    assert tuple(PUSH_STATE) == PUSH_FAULT_POINTS
    assert len(set(PUSH_STATE.values())) == len(PUSH_STATE)


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.mark.parametrize("point", PUSH_FAULT_POINTS)
def test_push_killed_at_each_point_leaves_a_consistent_remote_and_the_rerun_cleans_up(
        point, tmp_path, camp, data, local_remote):  # noqa: F811
    from campaignvcs.tempfiles import hostname

    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push")
    before = head(a)
    camp("--repo", a, "add", "n2.txt", "-m", "second", cwd=data)
    after = head(a)
    # What an earlier push on this host left when it was killed (its process is gone).
    dead = camp_dir(local_remote) / "refs" / "heads" / f"tmp-{hostname()}~{dead_pid()}~0~9999999999~0a1b-main"
    dead.write_text("0" * 40 + "\n")

    killed_at(point, "--repo", a, "push")
    packs = len(list((camp_dir(local_remote) / "objects" / "pack").glob("pack-*.idx")))
    lease = camp_dir(local_remote) / "lock"
    with sqlite3.connect(local_remote.backing / "proj" / "run_001.aca") as db:
        archived = sorted(r[0] for r in db.execute("select name from dataset"))
    own = [t for t in remote_tmps(local_remote) if not t.endswith(dead.name)]
    state = (packs == 2, lease.exists(), archived == ["n1.txt", "n2.txt"], remote_ref(local_remote) == after,
             not dead.exists(), bool(own))
    assert state == PUSH_STATE[point]
    assert remote_ref(local_remote) in (before, after)  # the old or the new commit, never anything else
    assert head(a) == after and names(a) == {"n1.txt", "n2.txt"}  # nothing committed lost
    assert_fsck_clean(camp, a)
    assert remote_git_fsck(local_remote, tmp_path).returncode == 0
    seen = assert_fresh_clone_consistent(camp, local_remote, tmp_path, "early")
    assert names(tmp_path / "early") == ({"n1.txt", "n2.txt"} if seen == after else {"n1.txt"})

    camp("--repo", a, "push")  # completes the job: no lease to break by hand, nothing to delete
    assert remote_ref(local_remote) == after
    assert remote_tmps(local_remote) == [] and not lease.exists()
    assert not list((a / ".git" / "camp").glob("tmp-push-*"))
    assert remote_git_fsck(local_remote, tmp_path).returncode == 0
    assert assert_fresh_clone_consistent(camp, local_remote, tmp_path, "fresh") == after
    assert names(tmp_path / "fresh") == {"n1.txt", "n2.txt"}
    with sqlite3.connect(local_remote.backing / "proj" / "run_001.aca") as db:
        assert sorted(r[0] for r in db.execute("select name from dataset")) == ["n1.txt", "n2.txt"]
    with CampaignRepo.open(str(a)) as repo:  # this clone's record of the remote caught up too
        assert repo.refs[b"refs/remotes/origin/main"].decode() == after


@pytest.mark.parametrize("kind", ["webdav", "sftp", "s3"])
def test_a_killed_push_to_a_served_remote_is_completed_and_swept_by_the_next(
        kind, tmp_path, camp, data, rclone_servers, monkeypatch):  # noqa: F811
    remote = make_remote(kind, rclone_servers, tmp_path)
    for key, value in remote.env.items():
        monkeypatch.setenv(key, value)
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", remote.url)
    camp("--repo", a, "push")
    before = head(a)
    camp("--repo", a, "add", "n2.txt", "-m", "second", cwd=data)
    killed_at("push-after-aca", "--repo", a, "push")
    assert remote_ref(remote) == before and remote_tmps(remote)  # the ref's temporary is still there
    camp("--repo", a, "push")
    assert remote_ref(remote) == head(a) and remote_tmps(remote) == []
    assert not (camp_dir(remote) / "lock").exists()
    assert assert_fresh_clone_consistent(camp, remote, tmp_path, "fresh") == head(a)


def test_a_ref_lock_a_killed_push_left_on_its_record_of_the_remote_is_broken_by_the_next(
        tmp_path, camp, data, local_remote):  # noqa: F811
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push", "--no-build")
    camp("--repo", a, "add", "n2.txt", "-m", "second", cwd=data)
    # A kill -9 while dulwich wrote refs/remotes/origin/main leaves its lock file (1 of 50 random kills).
    lock = a / ".git" / "refs" / "remotes" / "origin" / "main.lock"
    lock.write_text("")
    camp("--repo", a, "push", "--no-build")
    assert not lock.exists()
    assert git(a, "rev-parse", "refs/remotes/origin/main").stdout.strip() == head(a) == remote_ref(local_remote)


# -- pull ---------------------------------------------------------------------------------------------

PULL_POINTS = (*FETCH_FAULT_POINTS, *PULL_FAULT_POINTS)
PULL_STATE = {
    # point: (their pack stored here, origin/main recorded, the staging area moved on (names the new
    #         commit or holds the merge), branch moved)
    "fetch-after-download": (False, False, False, False),
    "fetch-after-packs": (True, False, False, False),
    "fetch-after-ref": (True, True, False, False),
    "pull-mid-fast-forward": (True, True, True, False),
    "pull-mid-merge": (True, True, True, False),
    "pull-after-branch": (True, True, True, True),
}
PULL_TRIALS = [(p, kind) for kind in ("fast-forward", "merge") for p in PULL_POINTS
               if (p, kind) not in (("pull-mid-merge", "fast-forward"), ("pull-mid-fast-forward", "merge"))]


def test_every_pull_fault_point_is_tried():
    assert tuple(PULL_STATE) == PULL_POINTS
    assert {p for p, _kind in PULL_TRIALS} == set(PULL_POINTS)


@pytest.mark.parametrize(("point", "kind"), PULL_TRIALS)
def test_pull_killed_at_each_point_loses_nothing_and_the_rerun_completes(
        point, kind, tmp_path, camp, data, local_remote, store):  # noqa: F811
    a, b = diverged(camp, tmp_path, local_remote.url, data, clone_build=True)
    theirs = head(a)
    if kind == "merge":
        camp("--repo", b, "add", "n3.txt", "-m", "from b", cwd=data)
    ours = head(b)
    archive = store / "proj" / "run_001.aca"
    their_pack = max((camp_dir(local_remote) / "objects" / "pack").glob("*.idx"), key=os.path.getmtime).name

    killed_at(point, "--repo", b, "pull")
    assert remote_ref(local_remote) == theirs
    now = head(b)
    with CampaignRepo.open(str(b)) as repo:
        tracked = repo.refs[b"refs/remotes/origin/main"].decode()
        staged_on, staged = repo.staging.base, dict(repo.staging.entries)
    state = ((b / ".git" / "objects" / "pack" / their_pack).exists(), tracked == theirs,
             staged_on != ours or bool(staged), now != ours)
    assert state == PULL_STATE[point]
    assert ours in ancestors(b, now)  # nothing committed here is lost
    assert now == ours or {ours, theirs} <= ancestors(b, now)  # the branch is the old or the new commit
    assert_fsck_clean(camp, b)
    assert not json.loads(camp("--repo", b, "status", "--json").output)["merging"]

    r = camp("--repo", b, "pull")  # no manual clean-up first
    assert "Traceback" not in r.output + r.stderr
    done = head(b)
    expected = {"n1.txt", "n2.txt"} | ({"n3.txt"} if kind == "merge" else set())
    assert names(b) == expected
    if kind == "fast-forward":
        assert done == theirs
    else:
        assert git(b, "log", "-1", "--format=%P", done).stdout.split() == [ours, theirs]
    assert_fsck_clean(camp, b)
    st = json.loads(camp("--repo", b, "status", "--json").output)
    assert st["staged"] == [] and not st["merging"]
    assert (st["ahead"], st["behind"]) == ((2, 0) if kind == "merge" else (0, 0))
    assert not list((b / ".git" / "camp").glob("tmp-fetch-*"))
    assert not (b / ".git" / "camp" / "MERGE_PENDING").exists()
    with sqlite3.connect(archive) as db:  # the store's archive was rebuilt at the pulled commit
        assert dict(db.execute("select key, value from camp_build"))["commit"] == done
        assert sorted(r[0] for r in db.execute("select name from dataset")) == sorted(expected)
    if kind == "merge":  # and the merge goes out like any other commit
        camp("--repo", b, "push", "--no-build")
        assert assert_fresh_clone_consistent(camp, local_remote, tmp_path, "fresh") == done


def test_a_pull_killed_while_merging_can_be_aborted_and_a_changed_staging_area_is_kept(
        tmp_path, camp, data, local_remote):  # noqa: F811
    a, b = diverged(camp, tmp_path, local_remote.url, data)
    camp("--repo", b, "add", "n3.txt", "-m", "from b", cwd=data)
    ours = head(b)
    killed_at("pull-mid-merge", "--repo", b, "pull", "--no-build")
    # What the kill left is the merge's staged half, recognised as such:
    assert [c["name"] for c in json.loads(camp("--repo", b, "status", "--json").output)["staged"]] == ["n2.txt"]
    assert camp("--repo", b, "pull", "--abort").output == f"merge aborted; staging area reset to {ours[:10]}\n"
    st = json.loads(camp("--repo", b, "status", "--json").output)
    assert st["staged"] == [] and head(b) == ours

    # A user who has changed the staging area since keeps it: only the marker goes.
    killed_at("pull-mid-merge", "--repo", b, "pull", "--no-build")
    camp("--repo", b, "add", "n4.txt", cwd=data)
    r = camp("--repo", b, "pull", "--no-build", ok=False)
    assert r.stderr.startswith("camp: error: you have staged changes")
    assert not (b / ".git" / "camp" / "MERGE_PENDING").exists()
    staged = json.loads(camp("--repo", b, "status", "--json").output)["staged"]
    assert {c["name"] for c in staged} == {"n2.txt", "n4.txt"}


def test_a_pull_killed_after_its_merge_commit_is_finished_by_the_next_pull(
        tmp_path, camp, data, local_remote):  # noqa: F811
    a, b = diverged(camp, tmp_path, local_remote.url, data)
    camp("--repo", b, "add", "n3.txt", "-m", "from b", cwd=data)
    ours, theirs = head(b), head(a)
    killed_at("commit-after-ref", "--repo", b, "pull", "--no-build")  # the merge commit's own fault point
    merged = head(b)
    assert git(b, "log", "-1", "--format=%P", merged).stdout.split() == [ours, theirs]
    assert camp("--repo", b, "pull", "--no-build").output == "origin: already up to date\n"
    st = json.loads(camp("--repo", b, "status", "--json").output)
    assert not st["merging"] and st["staged"] == [] and head(b) == merged
    # Killed a moment later (the staging area already emptied, the merge state not yet removed):
    (b / ".git" / "camp" / "MERGE_HEAD").write_text(theirs + "\n")
    (b / ".git" / "camp" / "CONFLICTS").write_text("{}\n")
    assert camp("--repo", b, "pull", "--no-build").output == "origin: already up to date\n"
    assert not json.loads(camp("--repo", b, "status", "--json").output)["merging"]
    assert head(b) == merged and names(b) == {"n1.txt", "n2.txt", "n3.txt"}


# -- concurrency --------------------------------------------------------------------------------------


def test_two_clones_pushing_at_once_one_wins_the_other_pulls_merges_and_pushes(
        tmp_path, camp, data, local_remote):  # noqa: F811
    a, b = tmp_path / "a", tmp_path / "b"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push")
    camp("clone", local_remote.url, b, "--host", "laptop", cwd=tmp_path)
    camp("--repo", a, "add", "n2.txt", "-m", "from a", cwd=data)
    camp("--repo", b, "add", "n3.txt", "-m", "from b", cwd=data)

    procs = {root: run_camp("--repo", root, "push") for root in (a, b)}
    outcomes = {root: (p.communicate(timeout=120), p.returncode) for root, p in procs.items()}
    codes = sorted(code for _out, code in outcomes.values())
    assert codes == [0, 1], outcomes
    winner = next(root for root, (_out, code) in outcomes.items() if code == 0)
    loser = b if winner == a else a
    (_stdout, stderr), _code = outcomes[loser]
    assert stderr.startswith("camp: error: push rejected: remote origin ") and "run 'camp pull' first" in stderr
    assert remote_ref(local_remote) == head(winner)
    assert remote_tmps(local_remote) == []  # the refused push took its own uploads away

    camp("--repo", loser, "pull")
    camp("--repo", loser, "push")
    fresh = tmp_path / "fresh"
    camp("clone", local_remote.url, fresh, cwd=tmp_path)
    assert names(fresh) == {"n1.txt", "n2.txt", "n3.txt"}
    assert git(fresh, "fsck", "--strict").returncode == 0
    camp("--repo", winner, "pull")
    assert head(winner) == head(loser) == head(fresh)
