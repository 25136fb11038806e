"""Output for people (issue 19) around remotes: "behind by 1 commit", "1 dataset changed", diff during a merge."""

from __future__ import annotations

from conftest_remote import local_remote  # noqa: F401  (fixture)
from test_remote_pull import data, pair  # noqa: F401  (fixtures)


def test_status_says_behind_by_one_commit_and_pull_says_one_dataset(pair, camp, data):  # noqa: F811
    a, b = pair
    camp("--repo", a, "add", "n2.txt", "-m", "n2", cwd=data)
    camp("--repo", a, "push", "--no-build")
    camp("--repo", b, "fetch")
    assert "Branch is behind origin/main by 1 commit ('camp pull' to merge)" in camp("--repo", b, "status").output
    pulled = camp("--repo", b, "pull", "--no-build").output
    assert "(1 dataset changed)" in pulled and "(s)" not in pulled


def test_diff_during_a_merge_shows_the_merge_state(pair, camp, data):  # noqa: F811
    a, b = pair
    (data / "n1.txt").write_text("version a\n")
    camp("--repo", a, "add", "n1.txt", "-m", "n1 in a", cwd=data)
    (data / "n1.txt").write_text("version b, longer\n")
    camp("--repo", b, "add", "n1.txt", "-m", "n1 in b", cwd=data)
    camp("--repo", b, "push", "--no-build")
    camp("--repo", a, "pull", ok=False)
    out = camp("--repo", a, "diff").output
    assert out.startswith("Merging ") and "1 unresolved conflict: n1.txt (camp resolve NAME --ours|--theirs)" in out
    assert "no differences" in out or "diff HEAD" in out
    camp("--repo", a, "resolve", "n1.txt", "--ours")
    assert "all conflicts resolved ('camp commit' to finish the merge)" in camp("--repo", a, "diff").output
