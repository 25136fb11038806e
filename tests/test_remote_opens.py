"""One command, one open repository: push and pull hand the open repository down.

``CampaignRepo.on_disk`` is what every way of opening a repository ends in (open,
discover, create), so counting its calls counts the opens of one ``camp`` run.
"""

from __future__ import annotations

import pytest
from conftest_remote import diverged, local_remote, store  # noqa: F401  (fixtures)

from campaignvcs.repo import CampaignRepo


@pytest.fixture
def opens(monkeypatch):
    """A list that gets one item per repository opened from now on."""
    seen: list[str] = []
    real = CampaignRepo.on_disk.__func__

    def counting(cls, root):
        seen.append(str(root))
        return real(cls, root)

    monkeypatch.setattr(CampaignRepo, "on_disk", classmethod(counting))
    return seen


@pytest.fixture
def notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in ("n1.txt", "n2.txt", "n3.txt"):
        (folder / n).write_text(f"notes of {n}\n")
    return folder


def test_push_opens_the_repository_once(tmp_path, camp, notes, local_remote, store, opens):  # noqa: F811
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=notes)
    camp("--repo", a, "build")
    camp("--repo", a, "add", "n2.txt", "-m", "second", cwd=notes)  # the store's archive is one commit behind
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    opens.clear()
    camp("--repo", a, "push")
    assert len(opens) == 1, opens
    assert (local_remote.backing / "proj" / "run_001.aca").exists()


def test_pull_opens_the_repository_once(tmp_path, camp, notes, local_remote, store, opens):  # noqa: F811
    a, b = diverged(camp, tmp_path, local_remote.url, notes, clone_build=True)
    opens.clear()
    r = camp("--repo", b, "pull")
    assert "fast-forward" in r.output
    assert len(opens) == 1, opens
    opens.clear()
    camp("--repo", b, "add", "n3.txt", "-m", "from b", cwd=notes)
    camp("--repo", a, "add", "n3.txt", "-m", "from a", "--name", "other", cwd=notes)
    camp("--repo", a, "push", "--no-build")
    opens.clear()
    r = camp("--repo", b, "pull")  # a merge commit, then the rebuild
    assert "merged" in r.output, r.output
    assert len(opens) == 1, opens
    (store / "proj" / "run_001.aca").unlink()
    opens.clear()
    r = camp("--repo", b, "pull")  # nothing new, but the store's archive is missing: rebuilt
    assert "up to date" in r.output and (store / "proj" / "run_001.aca").exists()
    assert len(opens) == 1, opens


def test_fetch_and_clone_open_the_repository_once(tmp_path, camp, notes, local_remote, store, opens):  # noqa: F811
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=notes)
    camp("--repo", a, "remote", "add", "origin", local_remote.url)
    camp("--repo", a, "push", "--no-build")
    opens.clear()
    camp("clone", local_remote.url, tmp_path / "b", "--host", "laptop", cwd=tmp_path)
    assert len(opens) == 1, opens
    opens.clear()
    camp("--repo", tmp_path / "b", "fetch")
    assert len(opens) == 1, opens
