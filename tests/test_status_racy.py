"""camp status never trusts a timestamp alone: changes made in the same clock tick, or hidden with touch -r, show."""

from __future__ import annotations

import json
import os
import subprocess

import make_data
import numpy as np

from campaignvcs.porcelain import workspace


def unstaged(camp, campaign) -> dict[str, str]:
    st = json.loads(camp("--repo", campaign, "status", "--json").output)
    return {c["name"]: c["change"] for c in st["unstaged"]}


def append_step(path) -> None:
    import adios2

    with adios2.Stream(str(path), "a") as stream:
        for _ in stream.steps(1):
            stream.write("T", np.full(10, 42.0), [10], [0], [10])
            stream.write("step", 99)


def same_tick(path, like) -> None:
    """Give ``path`` exactly the times of ``like``: what a coarse clock (or touch -r) leaves."""
    st = os.stat(like)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_bp5_append_right_after_add_in_the_same_tick_as_its_folder(campaign, camp, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    bp = make_data.make_bp5(str(run / "x.bp"))
    same_tick(bp, os.path.join(bp, "md.idx"))  # folder created and written in one tick
    camp("--repo", campaign, "add", "x.bp", cwd=run)
    assert unstaged(camp, campaign) == {}
    append_step(bp)  # rewrites md.idx, md.0, mmd.0; the folder's mtime stays that of the first write
    assert os.stat(bp).st_mtime_ns != os.stat(os.path.join(bp, "md.idx")).st_mtime_ns
    assert unstaged(camp, campaign) == {"x.bp": "modified"}
    assert "x.bp" in camp("--repo", campaign, "verify", ok=False).output


def test_bp5_append_that_keeps_every_mtime(campaign, camp, tmp_path):
    """A coarse clock: the append leaves md.idx, md.0 and mmd.0 with their old mtimes."""
    bp = make_data.make_bp5(str(tmp_path / "y.bp"))
    before = {n: os.stat(os.path.join(bp, n)) for n in ("md.idx", "md.0", "mmd.0")}
    camp("--repo", campaign, "add", "y.bp", cwd=tmp_path)
    append_step(bp)
    for name, st in before.items():
        os.utime(os.path.join(bp, name), ns=(st.st_atime_ns, st.st_mtime_ns))
    assert unstaged(camp, campaign) == {"y.bp": "modified"}


def test_text_rewritten_in_place_with_the_same_size_and_mtime(campaign, camp, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("temperature 300 K\n")
    camp("--repo", campaign, "add", "note.txt", cwd=tmp_path)
    st = os.stat(note)
    with open(note, "r+") as f:  # in place: same inode, same size
        f.write("temperature 900 K\n")
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(note).st_size == st.st_size and os.stat(note).st_ino == st.st_ino
    assert unstaged(camp, campaign) == {"note.txt": "modified"}


def test_touch_r_does_not_hide_a_change(campaign, camp, tmp_path):
    note = tmp_path / "old.txt"
    note.write_text("abc\n")
    old = 1_600_000_000_000_000_000
    os.utime(note, ns=(old, old))  # long before the add: not racy
    ref = tmp_path / "ref"
    ref.write_text("")
    os.utime(ref, ns=(old, old))
    camp("--repo", campaign, "add", "old.txt", cwd=tmp_path)
    assert unstaged(camp, campaign) == {}
    note.write_text("xyz\n")
    assert subprocess.run(["touch", "-r", str(ref), str(note)]).returncode == 0
    assert os.stat(note).st_mtime_ns == old
    assert unstaged(camp, campaign) == {"old.txt": "modified"}


def test_hdf5_rewritten_with_the_same_size_in_the_same_second(campaign, camp, tmp_path):
    import h5py

    h5 = make_data.make_hdf5(str(tmp_path / "m.h5"))
    camp("--repo", campaign, "add", "m.h5", cwd=tmp_path)
    st = os.stat(h5)
    with h5py.File(h5, "r+") as f:
        f["fields/small"][0] = 12345  # a small dataset: its values are part of the recorded metadata
    os.utime(h5, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(h5).st_size == st.st_size
    assert unstaged(camp, campaign) == {"m.h5": "modified"}


def test_unchanged_data_is_clean_and_checked_by_content_only_while_racy(campaign, camp, data, monkeypatch):
    names = ["heat.bp", "pressure.bp", "mesh.h5", "notes.txt", "plot.png"]

    def probes(name):
        path = data / name
        return [path / n for n in ("md.idx", "md.0", "mmd.0")] if path.is_dir() else [path]

    for name in names:
        for sub in probes(name):
            os.utime(sub)  # just written
    camp("--repo", campaign, "add", *names, cwd=data)
    reads: list[str] = []
    real = workspace.content_digest

    def counting(kind: str, path: str) -> str:
        reads.append(os.path.basename(path))
        return real(kind, path)

    monkeypatch.setattr(workspace, "content_digest", counting)
    assert unstaged(camp, campaign) == {}
    assert sorted(reads) == sorted(names)  # just written and added: every one is racy, checked by content
    # Once the files are older than the margin, a status is stats only.
    old = 1_600_000_000_000_000_000
    for name in names:
        for sub in probes(name):
            os.utime(sub, ns=(old, old))
    camp("--repo", campaign, "add", *names, cwd=data)  # re-recorded with the old times
    reads.clear()
    assert unstaged(camp, campaign) == {}
    assert unstaged(camp, campaign) == {}
    assert reads == []


def test_a_rebuilt_cache_checks_content_once(campaign, camp, data, monkeypatch):
    camp("--repo", campaign, "add", "-m", "x", "notes.txt", cwd=data)
    os.unlink(campaign / ".git" / "camp" / "statcache.sqlite")
    st = os.stat(data / "notes.txt")
    (data / "notes.txt").write_text("changed behind camp's back!\n"[:st.st_size])
    os.utime(data / "notes.txt", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert unstaged(camp, campaign) == {"notes.txt": "modified"}
    assert oct(os.stat(campaign / ".git" / "camp" / "statcache.sqlite").st_mode & 0o777) == "0o600"


def test_keyed_replica_checked_against_its_private_digest(campaign, camp, tmp_path):
    key = tmp_path / "k.key"
    camp("key", "generate", key)
    note = tmp_path / "secret.txt"
    note.write_text("classified 1\n")
    camp("--repo", campaign, "add", "--key", key, "--store", "secret.txt", cwd=tmp_path)
    assert unstaged(camp, campaign) == {}
    st = os.stat(note)
    note.write_text("classified 2\n")
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert unstaged(camp, campaign) == {"secret.txt": "modified"}
