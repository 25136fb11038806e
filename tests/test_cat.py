"""camp cat (issue 19): no binary onto a terminal, --replica ID|HOST, and which replica it showed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from helpers import assert_one_line_error
from test_output_for_people import on_terminal, run_on_terminal

CAMP = [sys.executable, "-m", "campaignvcs"]


def test_binary_content_is_refused_on_a_terminal_unless_asked_for(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", "--store", "notes.txt", cwd=data)
    env = dict(os.environ, CAMP_REPO=str(campaign))
    piped = subprocess.run(CAMP + ["cat", "heat.bp", "metadata"], env=env, cwd=data, capture_output=True)
    assert piped.returncode == 0 and piped.stdout.startswith(b"BP5")  # a pipe gets the bytes
    status, shown, err = run_on_terminal(["cat", "heat.bp", "metadata"], env, data)
    assert status == 1 and shown == b""
    assert err.startswith("camp: error: heat.bp: metadata is binary (") and "-o PATH" in err and "--force" in err
    assert "BP5" in on_terminal(["cat", "heat.bp", "metadata", "--force"], env, data)
    assert on_terminal(["cat", "notes.txt", "notes.txt"], env, data).startswith((data / "notes.txt").read_text()[:20])
    out = tmp_path / "md.bin"
    camp("--repo", campaign, "cat", "heat.bp", "metadata", "-o", out)
    assert out.read_bytes().startswith(b"BP5")


def test_replica_by_host_and_a_note_when_replicas_differ(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copytree(data / "pressure.bp", other / "heat.bp")  # another version under the same name
    camp("--repo", campaign, "add", "--host", "frontier", "heat.bp", cwd=other)
    laptop = camp("--repo", campaign, "cat", "heat.bp", "metadata", "--replica", "laptop")
    frontier = camp("--repo", campaign, "cat", "heat.bp", "metadata", "--replica", "frontier")
    assert laptop.stdout_bytes != frontier.stdout_bytes
    assert laptop.stderr == "" and frontier.stderr == ""  # chosen: nothing to say
    r = camp("--repo", campaign, "cat", "heat.bp", "metadata")
    note = r.stderr.strip()
    assert note.startswith("camp: note: showing metadata of replica ")
    assert "other replicas embed a different version" in note
    assert "(choose with --replica ID|HOST)" in note and len(r.stderr.splitlines()) == 1
    shown_host = note.split("(")[1].split(":")[0]
    assert r.stdout_bytes == (laptop if shown_host == "laptop" else frontier).stdout_bytes
    assert_one_line_error(camp("--repo", campaign, "cat", "heat.bp", "metadata", "--replica", "mars", ok=False),
                          "has no replica mars")
