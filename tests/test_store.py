"""camp store ls / rm / pull on a real campaign store, real builds and real rclone remotes."""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import subprocess
import sys

import make_data
import pytest
from conftest_remote import make_remote, rclone_servers  # noqa: F401  (fixture)
from test_build import store  # noqa: F401  (fixture)

from campaignvcs.repo import CampaignRepo

CAMP = os.path.join(os.path.dirname(sys.executable), "camp")


def head(root) -> str:
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    make_data.make_bp5(str(folder / "heat.bp"), steps=3, n=10, seed=1)
    make_data.make_text(str(folder / "notes.txt"), seed=2)
    return folder


def built_campaign(camp, root, name, data, *paths):
    camp("init", root, "--name", name, "--host", "laptop")
    camp("--repo", root, "add", "-m", "first", *paths, cwd=data)
    camp("--repo", root, "build")
    return root


def test_ls_shows_each_archive_with_its_commit_and_repository_and_marks_those_behind(
        camp, store, data, tmp_path, clean_env):
    a = built_campaign(camp, tmp_path / "a", "proj/run_001", data, "heat.bp")
    b = built_campaign(camp, tmp_path / "b", "proj/run_002", data, "notes.txt")
    camp("--repo", b, "add", "-m", "second", "heat.bp", cwd=data)  # b's archive is now behind
    # an archive hpc-campaign wrote
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    env["HOME"] = str(clean_env)
    r = subprocess.run([sys.executable, "-m", "hpc_campaign", "manager", str(store / "old.aca"), "data", "heat.bp"],
                       cwd=data, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr

    out = camp("store", "ls").output.splitlines()
    assert [line.split()[0] for line in out] == ["old", "proj/run_001", "proj/run_002"]
    assert out[0].endswith("  not built by camp")
    assert out[1].endswith(f"  {head(a)[:10]}  {a}")
    assert f"  {a}" in out[1] and "behind" not in out[1]
    assert "(behind: the repository has newer commits)" in out[2]
    listing = json.loads(camp("store", "ls", "--json", "proj/*").output)
    assert listing["store"] == str(store)
    first, second = listing["entries"]
    assert (first["name"], first["commit"], first["repository"], first["repository_exists"], first["stale"]) == (
        "proj/run_001", head(a), str(a), True, False)
    assert (second["name"], second["stale"]) == ("proj/run_002", True) and second["commit"] != head(b)


def camp_in_terminal(args, answer: str, cwd) -> tuple[int, str]:
    """Run the real ``camp`` with a terminal as stdin/stdout, answer its question, return (exit code, output)."""
    main, child = pty.openpty()
    proc = subprocess.Popen([CAMP, *map(str, args)], stdin=child, stdout=child, stderr=child, cwd=cwd,
                            env=dict(os.environ), close_fds=True)
    os.close(child)
    out = b""
    try:
        while b"[y/N]" not in out:
            ready, _, _ = select.select([main], [], [], 30)
            assert ready, f"camp never asked: {out!r}"
            chunk = os.read(main, 4096)
            assert chunk, f"camp never asked: {out!r}"
            out += chunk
        os.write(main, answer.encode() + b"\n")
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(main)
    return proc.wait(timeout=30), out.decode().replace("\r\n", "\n")


def aca_files(store) -> set[str]:
    return {p.relative_to(store).as_posix() for p in store.rglob("*.aca")}


def test_rm_asks_deletes_only_on_yes_and_a_pattern_matching_nothing_deletes_nothing(camp, store, data, tmp_path):
    built_campaign(camp, tmp_path / "a", "proj/run_001", data, "heat.bp")
    built_campaign(camp, tmp_path / "b", "proj/run_002", data, "notes.txt")
    built_campaign(camp, tmp_path / "c", "other/run_001", data, "notes.txt")
    archives = aca_files(store)
    assert archives == {"proj/run_001.aca", "proj/run_002.aca", "other/run_001.aca"}

    code, out = camp_in_terminal(["store", "rm", "proj"], "n", tmp_path)
    assert code == 1 and "Delete these 2 archives? [y/N]" in out
    assert f"  {store}/proj/run_001.aca\n" in out and f"  {store}/proj/run_002.aca\n" in out
    assert aca_files(store) == archives

    # no terminal to ask on (a script, a pipe): refuse, even with an answer waiting on stdin
    r = camp("store", "rm", ".", input="y\n", ok=False)
    assert r.exit_code == 1 and r.stderr == ("camp: error: not deleting 3 archives without asking: "
                                             "no terminal to confirm on (pass --yes)\n")
    assert aca_files(store) == archives

    r = camp("store", "rm", "proj/*", "nothing*", ok=False)
    assert r.exit_code == 1 and r.stderr == (f"camp: error: no archive in {store} matches 'nothing*' "
                                             "(camp store ls lists them)\n")
    assert aca_files(store) == archives

    code, out = camp_in_terminal(["store", "rm", "proj/run_00[2]"], "y", tmp_path)
    assert code == 0 and out.endswith(f"removed {store}/proj/run_002.aca\n")
    assert aca_files(store) == {"proj/run_001.aca", "other/run_001.aca"}
    r = camp("store", "rm", "--yes", "other/*")
    assert r.output == f"removed {store}/other/run_001.aca\n"
    assert not (store / "other").exists()  # the folder it left empty goes too
    assert aca_files(store) == {"proj/run_001.aca"}
    assert (tmp_path / "b" / ".git").is_dir()  # repositories are never touched

    # '.' is the whole store, as for hpc_campaign manager rm . — but camp still asks first
    code, out = camp_in_terminal(["store", "rm", "."], "n", tmp_path)
    assert code == 1 and f"  {store}/proj/run_001.aca\n" in out and aca_files(store) == {"proj/run_001.aca"}
    assert camp("store", "rm", "--yes", ".").output == f"removed {store}/proj/run_001.aca\n"
    assert aca_files(store) == set()


def test_ls_says_when_the_repository_that_built_an_archive_is_gone(camp, store, data, tmp_path):
    a = built_campaign(camp, tmp_path / "a", "run", data, "notes.txt")
    shutil.rmtree(a)
    assert camp("store", "ls").output.endswith(f"  {a}  (repository not found)\n")
    (entry,) = json.loads(camp("store", "ls", "--json").output)["entries"]
    assert (entry["built_by_camp"], entry["repository_exists"], entry["stale"]) == (True, False, None)


def test_store_needs_a_configured_store(camp, tmp_path):
    r = camp("store", "ls", ok=False)
    assert r.exit_code == 1
    assert r.stderr == ("camp: error: no campaign store: set Campaign.campaignstorepath in "
                        "~/.config/hpc-campaign/config.yaml\n")


@pytest.mark.parametrize("kind", ["local", "webdav"])
def test_pull_fetches_only_the_archives_and_adios2_opens_them(
        kind, camp, store, data, tmp_path, rclone_servers, monkeypatch):  # noqa: F811
    import adios2

    remote = make_remote(kind, rclone_servers, tmp_path)
    for key, value in remote.env.items():
        monkeypatch.setenv(key, value)
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "-m", "first", "heat.bp", "notes.txt", cwd=data)
    camp("--repo", a, "remote", "add", "origin", remote.url)
    camp("--repo", a, "push")
    assert (remote.backing / "proj" / "run_001.camp").is_dir()

    reader = tmp_path / "reader"  # a user who never edits: not inside any campaign
    reader.mkdir()
    r = camp("store", "pull", remote.url, "--json", cwd=reader)
    result = json.loads(r.output)
    pulled = store / "proj" / "run_001.aca"
    assert result["archives"] == ["proj/run_001"] and result["bytes_received"] == pulled.stat().st_size
    assert pulled.read_bytes() == (remote.backing / "proj" / "run_001.aca").read_bytes()
    assert sorted(p.name for p in store.rglob("*")) == ["proj", "run_001.aca"]  # no history, no leftovers
    with adios2.FileReader(str(pulled)) as f:
        assert "heat.bp/T" in f.available_variables()
        assert "notes.txt" in f.available_variables()

    # inside the campaign, the remote's name works too; a pattern matching nothing is an error
    # (there, the campaign's own archive is rebuilt from its fetched history instead of downloaded)
    assert camp("--repo", a, "store", "pull", "origin", cwd=a).output.startswith(
        "proj/run_001.aca (rebuilt from the fetched history)\n")
    r = camp("store", "pull", remote.url, "other/*", cwd=reader, ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("camp: error: no archives matching 'other/*' at ")


def test_pull_from_a_remote_that_is_not_there_is_one_line(camp, store, tmp_path):
    r = camp("store", "pull", tmp_path / "nowhere", ok=False, cwd=tmp_path)
    assert r.exit_code == 1 and r.stderr == f"camp: error: no archives at {tmp_path / 'nowhere'}\n"
    r = camp("store", "pull", "--", "--config=x", ok=False, cwd=tmp_path)
    assert r.exit_code == 1 and "would be read as an rclone option" in r.stderr
    assert not store.exists() or not any(store.rglob("*.aca"))
