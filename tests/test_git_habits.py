"""git habits (issue 19): unstaging, the commit editor, options after the verb, "did you mean", identity."""

from __future__ import annotations

import subprocess
import sys

from helpers import assert_one_line_error


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)


def test_restore_staged_unstages_a_new_dataset_and_restores_a_committed_one(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", "mesh.h5", cwd=data)
    camp("--repo", campaign, "commit", "-m", "one")
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    camp("--repo", campaign, "rm", "mesh.h5")
    r = camp("--repo", campaign, "restore", "--staged", "pressure.bp", "mesh.h5", "heat.bp")
    assert r.output.splitlines() == ["restored: mesh.h5 (as committed)", "unstaged: pressure.bp",
                                     "unchanged: heat.bp (nothing staged)"]
    status = camp("--repo", campaign, "status").output
    assert "nothing to commit" in status and "pressure.bp" not in status
    assert_one_line_error(camp("--repo", campaign, "restore", "heat.bp", ok=False), "--staged", status=2)
    assert_one_line_error(camp("--repo", campaign, "restore", "--staged", "nope", ok=False), "no dataset named")


def test_rm_of_a_never_committed_dataset_only_unstages_it(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "one")
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    r = camp("--repo", campaign, "rm", "pressure.bp", "heat.bp")
    assert "unstaged: pressure.bp (never committed: nothing to record)" in r.output
    assert "deleted: heat.bp" in r.output
    status = camp("--repo", campaign, "status").output
    assert "pressure.bp" not in status and "heat.bp" in status
    camp("--repo", campaign, "commit", "-m", "rm heat")
    shown = camp("--repo", campaign, "show", "--json").output
    assert "pressure.bp" not in shown  # no tombstone of something that never existed


def _editor(tmp_path, text):
    script = tmp_path / "editor.py"
    script.write_text("import sys, shutil\n"
                      f"shutil.copy(sys.argv[1], {str(tmp_path / 'seen.txt')!r})\n"
                      f"open(sys.argv[1], 'w').write({text!r} + open(sys.argv[1]).read())\n")
    return f"{sys.executable} {script}"


def test_commit_without_m_opens_the_editor_with_the_staged_changes(campaign, camp, data, tmp_path, monkeypatch):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    monkeypatch.setenv("EDITOR", _editor(tmp_path, "Run 1 from the editor\n\nbody line\n"))
    monkeypatch.delenv("VISUAL", raising=False)
    r = camp("--repo", campaign, "commit")
    assert r.output.startswith("[") and "Run 1 from the editor (1 dataset changed)" in r.output
    assert git(campaign, "log", "-1", "--format=%B").stdout.strip() == "Run 1 from the editor\n\nbody line"


def test_visual_wins_and_an_empty_message_aborts(campaign, camp, data, tmp_path, monkeypatch):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    monkeypatch.setenv("EDITOR", "false")
    monkeypatch.setenv("VISUAL", _editor(tmp_path, "# only a comment\n"))
    r = camp("--repo", campaign, "commit", ok=False)
    assert_one_line_error(r, "aborting commit: empty commit message")
    seen = (tmp_path / "seen.txt").read_text()
    assert "# Changes to be committed:" in seen and "new:" in seen and "heat.bp" in seen
    assert "nothing to commit" not in camp("--repo", campaign, "status").output  # still staged


def test_global_options_after_the_verb(campaign, camp, data):
    camp("add", "heat.bp", "--repo", campaign, cwd=data)
    camp("commit", "-m", "x", f"--repo={campaign}", "--debug")
    assert "x" in camp("log", "--repo", campaign, "--no-pager", "--color", "never").output
    camp("remote", "add", "origin", str(data.parent / "share"), "--repo", campaign)


def test_a_mistyped_verb_gets_did_you_mean(camp):
    line = assert_one_line_error(camp("stauts", ok=False), status=2)
    assert "no such command 'stauts'; did you mean 'status'?" in line
    assert "did you mean" not in camp("frobnicate", ok=False).stderr


def test_identity_part_by_part_like_git(campaign, camp, data, monkeypatch, clean_env):
    monkeypatch.delenv("CAMP_AUTHOR_EMAIL")
    (clean_env / ".gitconfig").write_text("[user]\n\tname = Config Name\n\temail = config@example.org\n")
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "a")  # CAMP_AUTHOR_NAME alone is not ignored
    assert git(campaign, "log", "-1", "--format=%an <%ae>").stdout.strip() == "Test Scientist <config@example.org>"
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "git@example.org")
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "b")
    assert git(campaign, "log", "-1", "--format=%an <%ae>").stdout.strip() == "Test Scientist <git@example.org>"


def test_no_sensible_identity_is_one_clear_line(campaign, camp, data, monkeypatch):
    for var in ("CAMP_AUTHOR_NAME", "CAMP_AUTHOR_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("socket.getfqdn", lambda *a: "vm")
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    r = camp("--repo", campaign, "commit", "-m", "who?", ok=False)
    assert_one_line_error(r, "cannot tell who you are", "CAMP_AUTHOR_EMAIL", "git config --global user.email")


def test_commit_without_m_and_without_an_editor_or_terminal_asks_for_m(campaign, camp, data, monkeypatch):
    for var in ("EDITOR", "VISUAL", "CAMP_EDITOR"):
        monkeypatch.delenv(var, raising=False)
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    assert_one_line_error(camp("--repo", campaign, "commit", ok=False), "no commit message: pass -m MESSAGE")
