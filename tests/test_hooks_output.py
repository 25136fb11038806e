"""Hook output passes through as it comes, like git's hooks' (issue 19), on camp's stderr."""

from __future__ import annotations

import os
import subprocess
import sys

CAMP = [sys.executable, "-m", "campaignvcs"]


def install(campaign, name, body):
    folder = campaign / ".git" / "camp" / "hooks"
    folder.mkdir(parents=True, exist_ok=True)
    hook = folder / name
    hook.write_text("#!/bin/sh\n" + body)
    hook.chmod(0o755)
    return hook


def run(args, cwd):
    return subprocess.run(CAMP + list(args), cwd=cwd, capture_output=True, text=True, env=dict(os.environ))


def test_a_successful_hook_is_heard_on_stderr_and_stdout_stays_camps(campaign, data):
    install(campaign, "post-commit", "echo 'post-commit says: rebuilt'\necho 'on its stderr' >&2\n")
    assert run(["--repo", campaign, "add", "heat.bp"], data).returncode == 0
    r = run(["--repo", campaign, "commit", "-m", "one", "--json"], data)
    assert r.returncode == 0, r.stderr
    assert "post-commit says: rebuilt\n" in r.stderr and "on its stderr\n" in r.stderr
    assert "post-commit says" not in r.stdout and r.stdout.lstrip().startswith("{")


def test_a_refusing_hook_is_heard_then_camp_names_the_reason(campaign, data):
    install(campaign, "pre-add", "echo 'checking the run log...'\necho 'no run log' >&2\nexit 3\n")
    r = run(["--repo", campaign, "add", "heat.bp"], data)
    assert r.returncode == 1
    # the hook's own lines first (stdout and stderr as they came), then camp's one line
    assert sorted(r.stderr.splitlines()[:2]) == ["checking the run log...", "no run log"]
    assert r.stderr.splitlines()[2:] == ["camp: error: pre-add hook refused: no run log"]
