"""A killed camp (kill -9 at every named fault point), a leftover lock or temporary: never a wedged repository.

Each trial runs the real ``camp`` in a child process that SIGKILLs itself at the fault
point (CAMP_FAULT, campaignvcs/faults.py), then checks what a scientist would: ``camp
fsck`` and ``git fsck`` are clean, nothing committed before is lost, and running the
same command again completes without anybody cleaning up by hand.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

N_FILES = 40  # enough objects for one add to write a pack (campaignvcs.repo.PACK_THRESHOLD)


def camp_run(*args, cwd=None, fault=None, timeout=120):
    env = dict(os.environ)
    env.pop("CAMP_FAULT", None)
    if fault:
        env["CAMP_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "campaignvcs", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def head(root) -> str:
    return git(root, "rev-parse", "HEAD").stdout.strip()


def names_at(root, rev="HEAD") -> set[str]:
    out = camp_run("--repo", root, "show", rev, "--json")
    assert out.returncode == 0, out.stderr
    return {d["name"] for d in json.loads(out.stdout)["datasets"]}


def assert_whole(root) -> dict:
    """fsck clean (camp's and git's); returns camp's report."""
    out = camp_run("--repo", root, "fsck", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["problems"] == []
    g = git(root, "fsck", "--strict", "--no-dangling")
    assert g.returncode == 0 and "error" not in g.stderr.lower(), g.stderr
    return report


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(N_FILES):
        (folder / f"f{i:02d}.txt").write_text(f"note {i}\n")
    return folder


@pytest.fixture
def base(campaign, camp, data):
    camp("--repo", campaign, "add", "-m", "base", "heat.bp", "notes.txt", cwd=data)
    return head(campaign)


ADD_FAULTS = ["pack-half-written", "pack-index-written", "pack-before-index", "stage-before-index"]
COMMIT_FAULTS = ["commit-before-ref", "commit-after-ref"]


@pytest.mark.parametrize("fault", ADD_FAULTS)
def test_add_killed_at_each_fault_point(campaign, base, files, fault):
    paths = sorted(os.listdir(files))
    killed = camp_run("--repo", campaign, "add", "-m", "second", *paths, cwd=files, fault=fault)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert head(campaign) == base and names_at(campaign) == {"heat.bp", "notes.txt"}
    assert_whole(campaign)
    status = camp_run("--repo", campaign, "status")
    assert status.returncode == 0, status.stderr
    again = camp_run("--repo", campaign, "add", "-m", "second", *paths, cwd=files)
    assert again.returncode == 0, again.stderr
    assert names_at(campaign) == {"heat.bp", "notes.txt", *paths}
    report = assert_whole(campaign)
    # What the rerun did not sweep is only a pack whose index never appeared (never read, swept when old).
    assert all(": pack without its index" in line for line in report["leftovers"]), report["leftovers"]
    pack_dir = campaign / ".git" / "objects" / "pack"
    assert not [n for n in os.listdir(pack_dir) if n.startswith("tmp_")]


@pytest.mark.parametrize("fault", COMMIT_FAULTS)
def test_commit_killed_at_each_fault_point(campaign, camp, base, files, fault):
    paths = sorted(os.listdir(files))[:3]
    camp("--repo", campaign, "add", *paths, cwd=files)
    killed = camp_run("--repo", campaign, "commit", "-m", "three notes", fault=fault)
    assert killed.returncode == -signal.SIGKILL
    assert_whole(campaign)
    moved = head(campaign) != base
    assert moved == (fault == "commit-after-ref")
    again = camp_run("--repo", campaign, "commit", "-m", "three notes")
    if moved:  # the commit was made; the staging area agrees that nothing is left to commit
        assert again.returncode == 1
        assert again.stderr == "camp: error: nothing to commit (use 'camp add' to record datasets)\n"
    else:
        assert again.returncode == 0, again.stderr
    assert git(campaign, "log", "-1", "--format=%s").stdout.strip() == "three notes"
    assert git(campaign, "rev-parse", "HEAD~1").stdout.strip() == base
    assert names_at(campaign) == {"heat.bp", "notes.txt", *paths}
    st = json.loads(camp_run("--repo", campaign, "status", "--json").stdout)
    assert st["staged"] == [] and st["leftovers"] == []
    assert_whole(campaign)


def test_partial_pack_index_of_an_older_camp_is_never_read(campaign, base):
    """Issue 14 repro: a tmp_camp_*.pack beside three quarters of its index (camp < 0.2 named them so)."""
    pack_dir = campaign / ".git" / "objects" / "pack"
    assert git(campaign, "repack", "-a", "-d", "-q").returncode == 0
    (pack,) = [n for n in os.listdir(pack_dir) if n.endswith(".pack")]
    shutil.copy(pack_dir / pack, pack_dir / "tmp_camp_demo.pack")
    idx = (pack_dir / (pack[:-5] + ".idx")).read_bytes()
    (pack_dir / "tmp_camp_demo.idx").write_bytes(idx[: len(idx) * 3 // 4])
    for args in (["show"], ["log"], ["verify"], ["build", "-o", str(campaign.parent / "x.aca")]):
        out = camp_run("--repo", campaign, *args)
        assert out.returncode == 0, (args, out.stderr)
        assert "internal error" not in out.stderr
    assert not (pack_dir / "tmp_camp_demo.idx").exists()
    assert_whole(campaign)


def test_a_ref_lock_left_by_a_killed_commit(campaign, camp, base, files):
    lock = campaign / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    st = camp("--repo", campaign, "status")
    assert f"{lock}: git ref lock left by a killed process" in st.output and f"rm {lock}" in st.output
    fsck = camp("--repo", campaign, "fsck")
    assert f"leftover: {lock}" in fsck.output
    camp("--repo", campaign, "add", "-m", "after the lock", "f00.txt", cwd=files)
    assert not lock.exists() and head(campaign) != base


def test_a_fresh_ref_lock_is_waited_for_then_broken(campaign, camp, base, files):
    lock = campaign / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")  # just made: a git process may be writing the ref right now
    started = time.monotonic()
    camp("--repo", campaign, "add", "-m", "x", "f01.txt", cwd=files)
    assert time.monotonic() - started >= 1.0 and not lock.exists()


def test_repository_lock_of_a_dead_process_is_broken(campaign, camp, base, files):
    child = subprocess.Popen(["true"])
    child.wait()
    lock = campaign / ".git" / "camp" / "lock"
    lock.write_text(f"{os.uname().nodename}~{child.pid}~0\n")
    st = camp("--repo", campaign, "status")
    assert f"pid {child.pid} on {os.uname().nodename}, which is no longer running" in st.output
    camp("--repo", campaign, "add", "f02.txt", cwd=files)
    assert not lock.exists()


def test_an_empty_lock_file_left_by_a_full_disk_is_broken(campaign, camp, base, files):
    lock = campaign / ".git" / "camp" / "lock"
    lock.write_text("")
    camp("--repo", campaign, "add", "f03.txt", cwd=files)  # waits out the empty file's grace period
    assert not lock.exists()


def test_a_lock_held_on_another_host_is_named_with_the_command_that_clears_it(campaign, camp, base, files):
    lock = campaign / ".git" / "camp" / "lock"
    lock.write_text("frontier-login07~4242~123\n")
    r = camp("--repo", campaign, "add", "f04.txt", cwd=files, ok=False)
    assert r.exit_code == 3
    assert r.stderr == (f"camp: error: repository is locked by pid 4242 on frontier-login07 (cannot be checked "
                        f"from {os.uname().nodename}): {lock} (if no camp process is using it, remove it: rm {lock})\n")
    assert f"rm {lock}" in camp("--repo", campaign, "status").output
    lock.unlink()
    camp("--repo", campaign, "add", "f04.txt", cwd=files)


def test_a_live_holder_is_not_disturbed(campaign, camp, base, files):
    lock = campaign / ".git" / "camp" / "lock"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        start = open(f"/proc/{sleeper.pid}/stat").read().rsplit(")", 1)[1].split()[19]
        lock.write_text(f"{os.uname().nodename}~{sleeper.pid}~{start}\n")
        r = camp("--repo", campaign, "add", "f05.txt", cwd=files, ok=False)
        assert r.exit_code == 3 and "(running)" in r.stderr
        assert lock.exists()
        assert "Left by an interrupted process" not in camp("--repo", campaign, "status").output
    finally:
        sleeper.kill()
        sleeper.wait()
    camp("--repo", campaign, "add", "f05.txt", cwd=files)  # the holder is gone now: its lock is broken


def _writer(root: str, folder: str, names: list[str], env: dict[str, str], out) -> None:
    from campaignvcs import porcelain
    from campaignvcs.errors import RepoLocked

    refused = 0
    for name in names:
        while True:
            try:
                porcelain.add([name], repo=root, cwd=folder, env=env, message=f"add {name}")
                break
            except RepoLocked:
                refused += 1
    out.put(refused)


def test_eight_concurrent_writers_lose_nothing(campaign, base, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    names = [f"w{w}-{i:02d}.txt" for w in range(8) for i in range(50)]
    for name in names:
        (folder / name).write_text(name + "\n")
    env = dict(os.environ)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    writers = [ctx.Process(target=_writer, args=(str(campaign), str(folder), names[w * 50:(w + 1) * 50], env, out))
               for w in range(8)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(300)
        assert p.exitcode == 0
    refused = sum(out.get() for _ in writers)
    assert names_at(campaign) == {"heat.bp", "notes.txt", *names}
    count = git(campaign, "rev-list", "--count", "HEAD").stdout.strip()
    assert int(count) == 2 + len(names)  # init, base, one commit per add: none overwritten
    assert_whole(campaign)
    print(f"8 writers x 50 adds: {refused} lock refusals retried")
