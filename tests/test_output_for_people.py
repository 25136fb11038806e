"""Output for people (issue 19): pager, camp show's summary, colour, renames and replica moves, grammar, merges."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys

CAMP = [sys.executable, "-m", "campaignvcs"]


def on_terminal(args, env, cwd, timeout=60) -> str:
    """Run camp with stdout on a pseudo-terminal, as a person runs it; returns what reached the terminal."""
    status, out, err = run_on_terminal(args, env, cwd, timeout)
    assert status == 0, err
    return out.decode(errors="replace").replace("\r\n", "\n")


def run_on_terminal(args, env, cwd, timeout=60) -> tuple[int, bytes, str]:
    """(exit status, what reached the terminal, stderr) of camp run with stdout on a pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(CAMP + list(args), stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE,
                            env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            proc.kill()
            raise AssertionError("camp did not finish on the terminal")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout)
    os.close(master)
    return proc.returncode, b"".join(chunks), proc.stderr.read().decode()


def test_long_output_goes_through_the_pager_on_a_terminal_only(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", "-m", "one", cwd=data)
    env = dict(os.environ, CAMP_REPO=str(campaign), CAMP_PAGER="sed s/^/PAGED:/", PAGER="false")
    env.pop("NO_COLOR", None)
    assert "PAGED:commit " in on_terminal(["log", "--color=never"], env, data)
    assert "PAGED:" not in on_terminal(["log", "--no-pager"], env, data)
    assert "PAGED:" not in on_terminal(["--no-pager", "show"], env, data)
    assert "PAGED:" not in on_terminal(["log"], dict(env, CAMP_PAGER="cat"), data)
    del env["CAMP_PAGER"]
    assert "PAGED:dataset added heat.bp" in on_terminal(["diff", "HEAD~1", "HEAD", "--color=never"],
                                                        dict(env, PAGER="sed s/^/PAGED:/"), data)
    piped = subprocess.run(CAMP + ["log"], env=dict(env, PAGER="sed s/^/PAGED:/"), cwd=data, capture_output=True,
                           text=True)
    assert piped.returncode == 0 and piped.stdout.startswith("commit ")  # not a terminal: no pager


def test_colour_on_a_terminal_never_with_no_color_and_always_on_request(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    env = dict(os.environ, CAMP_REPO=str(campaign), CAMP_PAGER="cat")
    env.pop("NO_COLOR", None)
    assert "\x1b[32m  new:" in on_terminal(["status"], env, data)
    assert "\x1b[" not in on_terminal(["status"], dict(env, NO_COLOR="1"), data)
    assert "\x1b[" not in on_terminal(["status", "--color=never"], env, data)
    assert "\x1b[" not in camp("--repo", campaign, "status").output  # a pipe
    forced = camp("--repo", campaign, "diff", "--color=always").output
    assert "\x1b[32mdataset added heat.bp [ADIOS]\x1b[0m" in forced
    camp("--repo", campaign, "commit", "-m", "one")
    assert camp("--repo", campaign, "log", "--color", "always").output.startswith("\x1b[33mcommit ")


def test_show_summarises_a_large_campaign_and_all_lists_every_dataset(campaign, camp, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    names = [f"n{i:03}.txt" for i in range(60)]
    for name in names:
        (folder / name).write_text(f"{name}\n")
    camp("--repo", campaign, "add", *names, "-m", "sixty", cwd=folder)
    out = camp("--repo", campaign, "show").output.splitlines()
    assert "campaign proj/run_001: 60 datasets" in out
    assert "by kind: TEXT 60" in out
    assert "by host: laptop 60  (live datasets with a replica there)" in out
    assert "first 20:" in out and sum(line.startswith("TEXT   ") for line in out) == 20
    assert out[-1].startswith("... and 40 more ('camp show --all'")
    every = camp("--repo", campaign, "show", "--all").output
    assert sum(line.startswith("TEXT   ") for line in every.splitlines()) == 60
    one = camp("--repo", campaign, "show", "--dataset", "n007.txt").output
    assert "by kind" not in one and "n007.txt" in one


def test_renames_and_replica_changes_are_named_as_such(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", "-m", "one", cwd=data)
    camp("--repo", campaign, "mv", "heat.bp", "heat-renamed.bp")
    camp("--repo", campaign, "add", "--host", "frontier", "pressure.bp", cwd=data)
    status = camp("--repo", campaign, "status").output
    assert "  renamed:        heat.bp -> heat-renamed.bp" in status
    assert "  replica added:  pressure.bp" in status
    assert "removed:" not in status and "modified:" not in status
    st = json.loads(camp("--repo", campaign, "status", "--json").output)
    assert {"change": "renamed", "name": "heat-renamed.bp", "path": "heat.bp"} in st["staged"]
    diff = camp("--repo", campaign, "diff").output
    assert "dataset renamed heat.bp -> heat-renamed.bp [ADIOS]" in diff
    assert "dataset pressure.bp: replica added [ADIOS]" in diff


def test_counts_read_as_english(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    assert "(1 dataset changed)" in camp("--repo", campaign, "commit", "-m", "one").output
    from campaignvcs.cli.workspace import tracking_line

    assert tracking_line("origin/main", 0, 1) == "Branch is behind origin/main by 1 commit ('camp pull' to merge)"
    assert tracking_line("origin/main", 2, 0) == "Branch is ahead of origin/main by 2 commits ('camp push' to publish)"
    assert tracking_line("origin/main", 1, 2).startswith("Branch and origin/main have diverged: 1 and 2 different")
