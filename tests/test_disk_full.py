"""A full disk, for real: a 3 MiB tmpfs filled to the last byte (no LD_PRELOAD, no mocks).

Every command that writes (init, add, commit, build, clone) must fail with one line saying
the disk is full, exit non-zero, print no traceback, and leave a repository that works
as soon as space is freed, without anyone removing a lock or a temporary by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
from camp_process import assert_healthy, run
from helpers import missing_part

PAGE = 4096
FREE_AMOUNTS = [0, PAGE, 2 * PAGE, 4 * PAGE, 8 * PAGE, 16 * PAGE]
"""Bytes left free for a command: it fails at a different point for each (lock, objects, staging)."""


@pytest.fixture
def small_fs(tmp_path):
    """A 3 MiB tmpfs at tmp_path/small, unmounted afterwards."""
    if os.geteuid() != 0:
        missing_part("mounting a small tmpfs needs root (CI and this container run the tests as root)")
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:  # as root this is the real part the test needs: a failure, never a silent skip
        pytest.fail(f"cannot mount a tmpfs as root here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


class Filler:
    """Takes the free space of a file system, down to a chosen number of bytes."""

    def __init__(self, folder):
        self.path = folder / "filler"

    def fill(self, leave: int = 0) -> None:
        """Fill to the last byte, then give back ``leave`` bytes."""
        with open(self.path, "ab", buffering=0) as f:
            chunk = 1 << 20
            while chunk:
                try:
                    f.write(b"\0" * chunk)
                except OSError:
                    chunk //= 2
        assert free(self.path.parent) == 0
        if leave:
            os.truncate(self.path, self.path.stat().st_size - leave)

    def free(self) -> None:
        self.path.unlink(missing_ok=True)


def free(folder) -> int:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def head(root) -> str:
    r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return r.stdout.strip()


def staged(root) -> list[str]:
    r = run("--repo", root, "status", "--json")
    assert r.returncode == 0, r.stderr
    return sorted(c["name"] for c in json.loads(r.stdout)["staged"])


def assert_disk_full_line(r, *needles):
    """One line, non-zero, no traceback, says the disk is full and that nothing recorded was lost."""
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("camp: error: "), line
    assert "internal error" not in line and "Traceback" not in r.stderr
    assert re.search(r"no space left on device|disk is full|remaining disk space", line, re.I), line
    for n in needles:
        assert n in line, line


def says_nothing_lost(line: str) -> bool:
    return "nothing" in line and ("lost" in line or "changed" in line)


@pytest.fixture
def repo_on_small_fs(small_fs, data, camp):
    """A campaign with one commit on the small file system; the data stays outside it."""
    root = small_fs / "campaign"
    camp("init", root, "--name", "proj/full", "--host", "laptop")
    camp("--repo", root, "add", "-m", "heat", "heat.bp", cwd=data)
    return root


@pytest.mark.parametrize("leave", FREE_AMOUNTS)
def test_add_on_a_full_disk(repo_on_small_fs, small_fs, data, leave):
    root = repo_on_small_fs
    before, filler = head(root), Filler(small_fs)
    new = ["mesh.h5", "notes.txt", "plot.png", "pressure.bp"]
    filler.fill(leave)
    r = run("--repo", root, "add", *new, cwd=data)
    if r.returncode != 0:
        assert_disk_full_line(r)
        assert says_nothing_lost(r.stderr), r.stderr
    filler.free()
    assert_healthy(root)
    assert head(root) == before
    assert staged(root) in ([], new)  # all or nothing
    r = run("--repo", root, "add", *new, cwd=data)
    assert r.returncode == 0, r.stderr
    assert staged(root) == new


@pytest.mark.parametrize("leave", FREE_AMOUNTS)
def test_commit_on_a_full_disk(repo_on_small_fs, small_fs, data, leave):
    root = repo_on_small_fs
    new = ["mesh.h5", "notes.txt", "plot.png", "pressure.bp"]
    assert run("--repo", root, "add", *new, cwd=data).returncode == 0
    before, filler = head(root), Filler(small_fs)
    filler.fill(leave)
    r = run("--repo", root, "commit", "-m", "four more")
    if r.returncode != 0:
        assert_disk_full_line(r)
        assert says_nothing_lost(r.stderr), r.stderr
        assert head(root) == before
        assert staged(root) == new  # the staging area is as it was
    filler.free()
    assert_healthy(root)
    if head(root) == before:
        r = run("--repo", root, "commit", "-m", "four more")
        assert r.returncode == 0, r.stderr
    assert staged(root) == []
    r = run("--repo", root, "show", "--json")
    assert r.returncode == 0
    assert {"heat.bp", *new} <= set(r.stdout.replace('"', " ").split())


@pytest.mark.parametrize("leave", [0, 2 * PAGE])
def test_add_with_message_on_a_full_disk(repo_on_small_fs, small_fs, data, leave):
    """``add -m``: stage and commit under one lock; neither half may remain."""
    root = repo_on_small_fs
    before, filler = head(root), Filler(small_fs)
    filler.fill(leave)
    r = run("--repo", root, "add", "-m", "pressure", "pressure.bp", cwd=data)
    assert_disk_full_line(r)
    filler.free()
    assert_healthy(root)
    assert head(root) == before
    assert run("--repo", root, "add", "-m", "pressure", "pressure.bp", cwd=data).returncode == 0
    assert head(root) != before


def test_init_on_a_full_disk(small_fs):
    filler = Filler(small_fs)
    filler.fill()
    target = small_fs / "new"
    r = run("init", target, "--name", "proj/new", "--host", "laptop")
    assert_disk_full_line(r)
    filler.free()
    # Once there is space, the same command works: no half-made .git stands in its way.
    r = run("init", target, "--name", "proj/new", "--host", "laptop")
    assert r.returncode == 0, r.stderr
    assert_healthy(target)


def test_build_into_a_full_store(small_fs, campaign, camp, data):
    camp("--repo", campaign, "add", "-m", "all", "heat.bp", "pressure.bp", "mesh.h5", "notes.txt", cwd=data)
    store = small_fs / "store"
    store.mkdir()
    archive = store / "proj" / "run.aca"
    filler = Filler(small_fs)
    filler.fill()
    r = run("--repo", campaign, "build", "-o", archive)
    assert_disk_full_line(r, str(archive))
    assert not archive.exists()
    filler.free()
    r = run("--repo", campaign, "build", "-o", archive)
    assert r.returncode == 0, r.stderr
    leftovers = [p.name for p in store.rglob("*") if p.is_file() and p != archive]
    assert leftovers == []


def test_clone_onto_a_full_disk(small_fs, campaign, camp, data, tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    camp("--repo", campaign, "remote", "add", "origin", remote)
    camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    camp("--repo", campaign, "push", "--no-build")
    filler = Filler(small_fs)
    target = small_fs / "clone"
    for leave in (0, 4 * PAGE):
        filler.fill(leave)
        r = run("clone", remote, target, "--no-build")
        assert_disk_full_line(r)
        assert not target.exists()  # nothing half-cloned to trip over
        filler.free()
    r = run("clone", remote, target, "--no-build")
    assert r.returncode == 0, r.stderr
    assert head(target) == head(campaign)
    assert_healthy(target)


def test_the_filler_really_fills(small_fs):
    """Guards the tests above: a full tmpfs refuses even one more byte."""
    filler = Filler(small_fs)
    filler.fill()
    with pytest.raises(OSError) as info, open(small_fs / "one-byte", "wb", buffering=0) as f:
        f.write(b"x")
    assert info.value.errno == 28  # ENOSPC
    filler.free()
    assert free(small_fs) > 2 << 20
    shutil.rmtree(small_fs / "one-byte", ignore_errors=True)
