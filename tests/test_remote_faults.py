"""kill -9 during push, and two clones pushing at once: the remote stays consistent, nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from conftest_remote import local_remote  # noqa: F401  (fixture)

from campaignvcs.repo import CampaignRepo


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def head(root) -> str:
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


def names(root) -> set[str]:
    with CampaignRepo.open(str(root)) as repo:
        return {d.name for d in repo.datasets(repo.tree_of(repo.head()))}


def run_camp(*args, cwd=None, **env):
    return subprocess.Popen([sys.executable, "-m", "campaignvcs", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for n in ("n1.txt", "n2.txt", "n3.txt", "n4.txt"):
        (folder / n).write_text(f"notes of {n}\n")
    return folder


def remote_ref(remote) -> str:
    return (remote.backing / "proj" / "run_001.camp" / "refs" / "heads" / "main").read_text().strip()


@pytest.mark.parametrize("point", ["after-pack", "after-aca", "before-ref"])
def test_push_killed_at_any_point_leaves_the_previous_state_and_the_next_push_completes(
        point, tmp_path, camp, data, local_remote):  # noqa: F811
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push")
    before = head(a)
    camp("--repo", a, "add", "n2.txt", "-m", "second", cwd=data)

    proc = run_camp("--repo", a, "push", CAMP_FAULT=point)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert remote_ref(local_remote) == before  # readers still see the previous consistent state
    early = tmp_path / "early"
    camp("clone", local_remote.url, early, cwd=tmp_path)
    assert head(early) == before and names(early) == {"n1.txt"}
    assert git(early, "fsck", "--strict").returncode == 0

    camp("--repo", a, "push")  # completes it (a lease left by the killed push is broken: its process is gone)
    assert remote_ref(local_remote) == head(a)
    assert not (local_remote.backing / "proj" / "run_001.camp" / "lock").exists()
    fresh = tmp_path / "fresh"
    camp("clone", local_remote.url, fresh, cwd=tmp_path)
    assert head(fresh) == head(a) and names(fresh) == {"n1.txt", "n2.txt"}
    assert git(fresh, "fsck", "--strict").returncode == 0
    camp("--repo", early, "pull")  # and the early clone catches up
    assert head(early) == head(a)


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

    camp("--repo", loser, "pull")
    camp("--repo", loser, "push")
    fresh = tmp_path / "fresh"
    camp("clone", local_remote.url, fresh, cwd=tmp_path)
    assert names(fresh) == {"n1.txt", "n2.txt", "n3.txt"}
    assert git(fresh, "fsck", "--strict").returncode == 0
    camp("--repo", winner, "pull")
    assert head(winner) == head(loser) == head(fresh)
