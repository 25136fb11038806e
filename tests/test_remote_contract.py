"""One contract for every remote kind: a local folder and rclone serve webdav | sftp | s3 (real servers).

push → clone → push from the clone → fetch/status → pull (fast-forward) → diverge →
refused push → pull (merge) → push → a fresh clone has everything, and stock git agrees.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess

from conftest_remote import rclone_servers, remote_spec  # noqa: F401  (fixtures)

from campaignvcs.repo import CampaignRepo


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def head(root) -> str:
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


def datasets(root) -> dict[str, list[str]]:
    with CampaignRepo.open(str(root)) as repo:
        return {d.name: sorted(r.host for r in d.replicas) for d in repo.datasets(repo.tree_of(repo.head()))}


def notes(folder, *names):
    folder.mkdir(exist_ok=True)
    for n in names:
        (folder / n).write_text(f"notes of {n}\n")
    return folder


def test_push_clone_pull_merge_contract(remote_spec, tmp_path, camp):  # noqa: F811
    data = notes(tmp_path / "data", "n1.txt", "n2.txt", "n3.txt", "n4.txt")
    a, b = tmp_path / "a", tmp_path / "b"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "n2.txt", "-m", "first", cwd=data)
    camp("--repo", a, "remote", "add", "origin", remote_spec.url)

    pushed = json.loads(camp("--repo", a, "push", "--json").output)
    assert pushed["old"] is None and pushed["new"] == head(a) and pushed["objects"] > 0
    assert pushed["archive_bytes"] > 0 and pushed["bytes_sent"] == pushed["pack_bytes"] + pushed["archive_bytes"]
    # The layout on the remote (read through the folder that backs it).
    assert (remote_spec.backing / "proj" / "run_001.camp" / "refs" / "heads" / "main").read_text() == head(a) + "\n"
    packs = sorted(p.name for p in (remote_spec.backing / "proj" / "run_001.camp" / "objects" / "pack").iterdir())
    assert len(packs) == 2 and packs[0].endswith(".idx") and packs[1].endswith(".pack")
    with sqlite3.connect(remote_spec.backing / "proj" / "run_001.aca") as db:
        assert sorted(r[0] for r in db.execute("select name from dataset")) == ["n1.txt", "n2.txt"]
    again = json.loads(camp("--repo", a, "push", "--json").output)
    assert again["up_to_date"] and again["bytes_sent"] == 0

    cloned = json.loads(camp("clone", remote_spec.url, b, "--host", "laptop", "--json", cwd=tmp_path).output)
    assert cloned["path"] == str(b) and cloned["name"] == "proj/run_001" and cloned["head"] == head(a)
    assert git(b, "fsck", "--strict").returncode == 0
    assert datasets(b) == {"n1.txt": ["laptop"], "n2.txt": ["laptop"]}

    # The clone publishes; the first repository fetches (status shows it behind), then fast-forwards.
    camp("--repo", b, "add", "n3.txt", "-m", "third", cwd=data)
    camp("--repo", b, "push")
    fetched = json.loads(camp("--repo", a, "fetch", "--json").output)
    assert fetched["new"] == head(b) and fetched["packs"] == 1
    status = json.loads(camp("--repo", a, "status", "--json").output)
    assert status["tracking"] == "origin/main" and (status["ahead"], status["behind"]) == (0, 1)
    assert "behind origin/main by 1 commit" in camp("--repo", a, "status").output
    pulled = json.loads(camp("--repo", a, "pull", "--json").output)
    assert pulled["action"] == "fast-forward" and pulled["changed"] == 1 and head(a) == head(b)

    # Both sides commit: the second push is refused, pull merges, the push then goes through.
    camp("--repo", a, "add", "n1.txt", "--host", "hpc", "-m", "n1 on hpc", cwd=data)
    camp("--repo", b, "add", "n4.txt", "-m", "fourth", cwd=data)
    camp("--repo", b, "push")
    refused = camp("--repo", a, "push", ok=False)
    assert refused.exit_code == 1
    assert refused.stderr == ("camp: error: push rejected: remote origin has commits you do not have; "
                              "run 'camp pull' first\n")
    merged = json.loads(camp("--repo", a, "pull", "--json").output)
    assert merged["action"] == "merged" and merged["conflicts"] == []
    camp("--repo", a, "push")

    c = tmp_path / "c"
    camp("clone", remote_spec.url, c, cwd=tmp_path)
    assert datasets(c) == {"n1.txt": ["hpc", "laptop"], "n2.txt": ["laptop"], "n3.txt": ["laptop"],
                           "n4.txt": ["laptop"]}
    assert head(c) == head(a)
    assert git(c, "fsck", "--strict").returncode == 0
    parents = git(c, "log", "-1", "--format=%P").stdout.split()
    assert len(parents) == 2
    with sqlite3.connect(remote_spec.backing / "proj" / "run_001.aca") as db:
        assert len(db.execute("select name from dataset").fetchall()) == 4
