"""Repository hooks: real scripts run as real subprocesses around real camp operations."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import make_data
import pytest

from campaignvcs.hooks import HOOK_NAMES, HookRefused, declared_hook_point, ready_hooks, run_hook
from campaignvcs.repo import CampaignRepo

ROOT = Path(__file__).resolve().parent.parent
READY = ROOT / "hooks"


def install(root, name, script, mode=0o755):
    """Put a hook file in place by hand (as a user may, instead of camp hooks install)."""
    folder = root / ".git" / "camp" / "hooks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(script)
    os.chmod(path, mode)
    return path


def git(root, *args):
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False).stdout


def head(root):
    return git(root, "rev-parse", "HEAD").strip()


def configure_store(home, store):
    cfg = home / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "config.yaml").write_text(f"Campaign:\n  hostname: laptop\n  campaignstorepath: {store}\n")


def dataset_names(aca):
    with sqlite3.connect(aca) as con:
        return sorted(r[0] for r in con.execute("select name from dataset"))


def tool_env(**extra):
    """Environment for running camp's scripts directly (as a job script would)."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


# -- pre-hooks refuse, nothing changes ---------------------------------------------------------------


def test_refusing_pre_commit_hook_stops_the_commit_with_its_first_line(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    index = (campaign / ".git" / "camp" / "index.json").read_bytes()
    before = head(campaign)
    install(campaign, "pre-commit", "#!/bin/sh\necho 'no commits without a run log' >&2\necho more >&2\nexit 1\n")
    r = camp("--repo", campaign, "commit", "-m", "heat", ok=False)
    assert r.exit_code == 1
    assert r.stderr == "camp: error: pre-commit hook refused: no commits without a run log\n"
    assert head(campaign) == before
    assert (campaign / ".git" / "camp" / "index.json").read_bytes() == index
    assert not (campaign / ".git" / "camp" / "lock").exists()
    # A silent refusal still says which hook and how it ended; stdout counts when stderr is empty.
    install(campaign, "pre-commit", "#!/bin/sh\nexit 4\n")
    r = camp("--repo", campaign, "commit", "-m", "heat", ok=False)
    assert r.stderr == "camp: error: pre-commit hook refused: the hook gave no reason (exit 4)\n"
    install(campaign, "pre-commit", "#!/bin/sh\necho 'said on stdout'\nexit 1\n")
    r = camp("--repo", campaign, "commit", "-m", "heat", ok=False)
    assert r.stderr == "camp: error: pre-commit hook refused: said on stdout\n"
    # A hook that accepts lets the commit through.
    install(campaign, "pre-commit", "#!/bin/sh\nexit 0\n")
    camp("--repo", campaign, "commit", "-m", "heat")
    assert head(campaign) != before


def test_pre_commit_hook_sees_the_repository_and_the_staged_changes(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    out = tmp_path / "env.txt"
    status = tmp_path / "status.json"
    install(campaign, "pre-commit", f"#!/bin/sh\nenv > '{out}'\npwd >> '{out}'\n"
                                    f"camp status --json > '{status}' || exit 1\n")
    before = head(campaign)
    camp("--repo", campaign, "commit", "-m", "heat run")
    lines = out.read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines[:-1] if "=" in line)
    assert env["CAMP_REPO"] == str(campaign) and lines[-1] == str(campaign)
    assert env["CAMP_HOOK"] == "pre-commit" and env["CAMP_MESSAGE"] == "heat run" and env["CAMP_HEAD"] == before
    assert "CAMP_COMMIT" not in env
    st = json.loads(status.read_text())  # a reading camp command works inside a pre-hook
    assert "heat.bp" in [c["name"] for c in st["staged"]]


def test_refusing_pre_add_hook_stages_nothing_and_gets_the_paths(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    index = (campaign / ".git" / "camp" / "index.json").read_bytes()
    args, paths = tmp_path / "args.txt", tmp_path / "paths.txt"
    install(campaign, "pre-add", f"#!/bin/sh\nprintf '%s\\n' \"$@\" > '{args}'\n"
                                 f"printf '%s' \"$CAMP_PATHS\" > '{paths}'\n"
                                 "echo 'pressure.bp: the run has not finished' >&2\nexit 1\n")
    r = camp("--repo", campaign, "add", "pressure.bp", "notes.txt", cwd=data, ok=False)
    assert r.stderr == "camp: error: pre-add hook refused: pressure.bp: the run has not finished\n"
    expected = [str(data / "pressure.bp"), str(data / "notes.txt")]
    assert args.read_text().splitlines() == expected
    assert paths.read_text().splitlines() == expected
    assert (campaign / ".git" / "camp" / "index.json").read_bytes() == index
    # add -m: the refusal also stops the commit.
    before = head(campaign)
    r = camp("--repo", campaign, "add", "-m", "run", "pressure.bp", cwd=data, ok=False)
    assert r.exit_code == 1 and head(campaign) == before


def test_a_pre_hook_that_cannot_run_is_a_clear_error(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    hook = install(campaign, "pre-commit", "#!/bin/sh\nexit 0\n", mode=0o644)
    r = camp("--repo", campaign, "commit", "-m", "x", ok=False)
    assert r.stderr == f"camp: error: pre-commit hook cannot run: {hook} is not executable (chmod +x it)\n"
    install(campaign, "pre-commit", "#!/nonexistent/interpreter\n")
    r = camp("--repo", campaign, "commit", "-m", "x", ok=False)
    assert r.stderr.startswith(f"camp: error: pre-commit hook cannot run: {hook} cannot be started (")
    assert len(git(campaign, "log", "--oneline").splitlines()) == 1


# -- post-hooks: after the lock, failures warn -------------------------------------------------------


def test_failing_post_commit_hook_warns_and_the_commit_stays(campaign, camp, data):
    install(campaign, "post-commit", "#!/bin/sh\necho boom >&2\nexit 2\n")
    r = camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    assert r.exit_code == 0
    assert r.stderr == "camp: warning: post-commit hook failed (exit 2): boom\n"
    assert "heat" in git(campaign, "log", "-1", "--format=%s")
    hook = install(campaign, "post-commit", "#!/bin/sh\nexit 0\n", mode=0o600)
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    r = camp("--repo", campaign, "commit", "-m", "pressure")
    assert r.stderr == f"camp: warning: post-commit hook failed: {hook} is not executable (chmod +x it)\n"


def test_post_commit_hook_runs_after_the_lock_is_released(campaign, camp, data, tmp_path):
    marker = tmp_path / "ran-once"
    install(campaign, "post-commit", f"""#!/bin/sh
if [ -e "$CAMP_REPO/.git/camp/lock" ]; then echo "lock still held" >&2; exit 1; fi
if [ -e '{marker}' ]; then exit 0; fi
echo "$CAMP_COMMIT" > '{marker}'
exec camp add -m "nested from the hook" '{data / "pressure.bp"}'
""")
    r = camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    assert r.stderr == ""
    subjects = git(campaign, "log", "--format=%s").splitlines()
    assert subjects[:2] == ["nested from the hook", "heat"]
    assert marker.read_text().strip() == git(campaign, "rev-parse", "HEAD~1").strip()


def test_build_hooks_can_refuse_and_see_the_archive(campaign, camp, data, tmp_path, clean_env, monkeypatch):
    store = tmp_path / "store"
    configure_store(clean_env, store)
    camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    aca = store / "proj" / "run_001.aca"
    install(campaign, "pre-build", "#!/bin/sh\necho \"not building $CAMP_COMMIT into $CAMP_ARCHIVE\" >&2\nexit 1\n")
    r = camp("--repo", campaign, "build", ok=False)
    assert r.stderr == f"camp: error: pre-build hook refused: not building {head(campaign)} into {aca}\n"
    assert not aca.exists()
    os.unlink(campaign / ".git" / "camp" / "hooks" / "pre-build")
    seen = tmp_path / "post-build.txt"
    install(campaign, "post-build", f"#!/bin/sh\nls \"$CAMP_ARCHIVE\" > '{seen}' && echo \"$CAMP_COMMIT\" >> '{seen}'\n"
                                    "exit 5\n")
    r = camp("--repo", campaign, "build")
    assert r.stderr == "camp: warning: post-build hook failed (exit 5)\n"
    install(campaign, "post-build", "#!/bin/sh\nsleep 30\n")
    monkeypatch.setenv("CAMP_HOOK_TIMEOUT", "0.5")
    r = camp("--repo", campaign, "build")
    assert r.stderr.startswith("camp: warning: post-build hook failed: ") and "did not finish within 0.5 s" in r.stderr
    assert seen.read_text().splitlines() == [str(aca), head(campaign)]
    assert dataset_names(aca) == ["heat.bp"]


def test_run_hook_contract_for_push_and_pull(campaign, tmp_path):
    """What porcelain.sync relies on: None without a hook, HookRefused from pre-push, a warning from post-pull."""
    out = tmp_path / "env.txt"
    with CampaignRepo.open(str(campaign)) as repo:
        assert run_hook(repo, "pre-push", {}, commit=repo.head()) is None
        install(campaign, "pre-push", f"#!/bin/sh\nenv > '{out}'\necho \"remote $CAMP_REMOTE is read-only\" >&2\n"
                                      "exit 1\n")
        with pytest.raises(HookRefused, match="^pre-push hook refused: remote origin is read-only$"):
            run_hook(repo, "pre-push", {"PATH": os.environ["PATH"], "CAMP_COMMIT": "stale"},
                     commit=repo.head(), extra={"CAMP_REMOTE": "origin", "CAMP_REMOTE_URL": "/srv/x"})
        env = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        assert env["CAMP_COMMIT"] == repo.head().decode() and env["CAMP_REMOTE_URL"] == "/srv/x"
        install(campaign, "post-pull", "#!/bin/sh\necho \"cannot reach $CAMP_REMOTE\"\nexit 1\n")
        run = run_hook(repo, "post-pull", {"PATH": os.environ["PATH"]}, commit=repo.head(),
                       extra={"CAMP_REMOTE": "origin"})
        assert run is not None and not run.ok
        assert run.warning == "post-pull hook failed (exit 1): cannot reach origin"


# -- camp hooks list / install / uninstall ----------------------------------------------------------


def test_hooks_install_list_uninstall(campaign, camp, tmp_path):
    r = camp("--repo", campaign, "hooks", "list", "--json")
    listing = json.loads(r.output)
    assert listing["installed"] == []
    assert {h["name"]: h["hook"] for h in listing["ready"]} == {
        "build-on-commit": "post-commit", "push-on-commit": "post-commit",
        "verify-before-push": "pre-push", "slurm-epilog": None,
    }
    r = camp("--repo", campaign, "hooks", "install", "build-on-commit")
    target = campaign / ".git" / "camp" / "hooks" / "post-commit"
    assert r.output == f"installed post-commit hook: {target}\n"
    assert target.read_bytes() == (READY / "build-on-commit").read_bytes()
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o755
    r = camp("--repo", campaign, "hooks", "install", "push-on-commit", ok=False)
    assert r.stderr == f"camp: error: a post-commit hook is already installed ({target}); pass --force to replace it\n"
    camp("--repo", campaign, "hooks", "install", "push-on-commit", "--force")
    assert target.read_bytes() == (READY / "push-on-commit").read_bytes()
    own = tmp_path / "check.sh"
    own.write_text("#!/bin/sh\nexit 0\n")
    camp("--repo", campaign, "hooks", "install", own, "--as", "pre-add")
    r = camp("--repo", campaign, "hooks", "list")
    assert r.output.splitlines()[:2] == ["pre-add      own script", "post-commit  ready hook push-on-commit"]
    # Mistakes are one line each and install nothing.
    for args, message in [
        (("slurm-epilog",), "slurm-epilog is a job-script helper, not a repository hook"),
        ((own,), f"{own}: say which hook it is with --as"),
        (("no-such-hook",), "no ready hook or file named 'no-such-hook'"),
        (("build-on-commit", "--as", "post-merge"), "unknown hook name: 'post-merge'"),
    ]:
        r = camp("--repo", campaign, "hooks", "install", *args, ok=False)
        assert r.exit_code == 1 and r.stderr.startswith("camp: error: " + message), r.stderr
    assert sorted(os.listdir(target.parent)) == ["post-commit", "pre-add"]
    # Uninstall by hook name or by the ready hook's name.
    camp("--repo", campaign, "hooks", "uninstall", "push-on-commit")
    camp("--repo", campaign, "hooks", "uninstall", "pre-add")
    assert os.listdir(target.parent) == []
    r = camp("--repo", campaign, "hooks", "uninstall", "pre-add", ok=False)
    assert r.stderr == "camp: error: no pre-add hook is installed\n"


def test_every_ready_hook_says_what_it_does_and_how_to_install_it():
    shipped = ready_hooks()
    assert set(shipped) == {"build-on-commit", "push-on-commit", "verify-before-push", "slurm-epilog"}
    for name, path in shipped.items():
        text = Path(path).read_text()
        assert text.startswith("#!/usr/bin/env bash\n# " + name + ": ")
        assert os.access(path, os.X_OK)
        point = declared_hook_point(path)
        assert point in (*HOOK_NAMES, None)
        assert (f"camp hooks install {name}" in text) == (point is not None)
        assert subprocess.run(["bash", "-n", path]).returncode == 0


# -- the ready hooks, on real repositories -----------------------------------------------------------


def test_build_on_commit_rebuilds_the_archive_after_each_commit(campaign, camp, data, tmp_path, clean_env):
    store = tmp_path / "store"
    configure_store(clean_env, store)
    camp("--repo", campaign, "hooks", "install", "build-on-commit")
    r = camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    assert r.stderr == ""
    aca = store / "proj" / "run_001.aca"
    assert dataset_names(aca) == ["heat.bp"]
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "pressure")
    assert dataset_names(aca) == ["heat.bp", "pressure.bp"]
    # Without a campaign store the build fails: the commit stays, camp says why.
    (clean_env / ".config" / "hpc-campaign" / "config.yaml").write_text("Campaign:\n  hostname: laptop\n")
    r = camp("--repo", campaign, "add", "-m", "notes", "notes.txt", cwd=data)
    assert r.stderr.startswith("camp: warning: post-commit hook failed (exit 1): camp: error: no campaign store")
    assert git(campaign, "log", "-1", "--format=%s").strip() == "notes"


def test_verify_before_push_refuses_when_a_local_replica_changed(campaign, camp, data):
    install(campaign, "pre-push", (READY / "verify-before-push").read_text())
    camp("--repo", campaign, "add", "-m", "heat", "heat.bp", "notes.txt", cwd=data)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}
    with CampaignRepo.open(str(campaign)) as repo:
        run = run_hook(repo, "pre-push", env, commit=repo.head(), extra={"CAMP_REMOTE": "origin"})
        assert run is not None and run.ok
        shutil.rmtree(data / "heat.bp")
        make_data.make_bp5(str(data / "heat.bp"), steps=5, seed=11)
        with pytest.raises(HookRefused) as info:
            run_hook(repo, "pre-push", env, commit=repo.head(), extra={"CAMP_REMOTE": "origin"})
    assert str(info.value) == ("pre-push hook refused: verified 2 replicas on laptop: 1 does not match; "
                               "not pushing (camp verify lists them)")
    camp("remote", "add", "origin", data.parent / "remote", cwd=campaign)
    r = camp("--repo", campaign, "push", ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("camp: error: pre-push hook refused: verified 2 replicas")


def test_push_on_commit_publishes_each_commit(campaign, camp, data, tmp_path, monkeypatch):
    monkeypatch.setenv("CAMP_HOOK_TIMEOUT", "60")  # a hung push fails the test instead of blocking it
    remote = tmp_path / "remote"
    remote.mkdir()
    camp("--repo", campaign, "remote", "add", "origin", remote)
    camp("--repo", campaign, "hooks", "install", "push-on-commit")
    r = camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    assert r.stderr == ""
    ref = remote / "proj" / "run_001.camp" / "refs" / "heads" / "main"
    assert ref.read_text().strip() == head(campaign)
    assert (remote / "proj" / "run_001.aca").is_file()
    camp("--repo", campaign, "add", "-m", "pressure", "pressure.bp", cwd=data)
    assert ref.read_text().strip() == head(campaign)


def test_slurm_epilog_records_job_outputs_and_never_retries_while_locked(campaign, camp, tmp_path):
    job = tmp_path / "job"
    (job / "out").mkdir(parents=True)
    make_data.make_bp5(str(job / "out" / "run.bp"), steps=2, seed=5)
    make_data.make_text(str(job / "out" / "log.txt"))
    env = tool_env(CAMP_REPO=str(campaign), SLURM_JOB_ID="4242", SLURM_JOB_NAME="heat",
                   SLURM_CLUSTER_NAME="frontier", CAMP_EPILOG_META="Input-Deck=heat.in")
    r = subprocess.run([str(READY / "slurm-epilog"), "out/run.bp", "out/log.txt"], cwd=job, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert git(campaign, "log", "-1", "--format=%s").strip() == "job 4242: heat on frontier"
    trailers = git(campaign, "log", "-1", "--format=%(trailers)")
    assert "Slurm-Job: 4242" in trailers and "Slurm-Cluster: frontier" in trailers
    assert "Input-Deck: heat.in" in trailers
    with CampaignRepo.open(str(campaign)) as repo:
        (rep,) = repo.dataset("out/run.bp", repo.head()).replicas
        assert rep.host == "laptop" and rep.dir == os.path.realpath(job)
        assert repo.dataset("out/log.txt", repo.head()) is not None
    # Nothing new: exit 0, no empty commit.
    before = head(campaign)
    r = subprocess.run([str(READY / "slurm-epilog"), "out/run.bp"], cwd=job, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and head(campaign) == before
    # Another job holds the lock for good: no retry loop, no refusal; the outputs wait in a shard
    # and the next commit records them.
    make_data.make_text(str(job / "out" / "late.txt"), seed=3)
    lock = campaign / ".git" / "camp" / "lock"
    lock.write_text(f"{socket.gethostname()} {os.getpid()}\n")
    try:
        r = subprocess.run([str(READY / "slurm-epilog"), "out/late.txt"], cwd=job, capture_output=True, text=True,
                           env={**env, "CAMP_SHARD_COMMIT_WAIT": "1"}, timeout=60)
    finally:
        lock.unlink()
    assert r.returncode == 0, r.stderr
    assert "the datasets wait in shard" in r.stderr and head(campaign) == before
    camp("--repo", campaign, "commit", "-m", "gather")
    assert git(campaign, "log", "-1", "--format=%(trailers:key=Slurm-Job,valueonly)").strip() == "4242"


def test_post_pull_sees_the_new_head_and_its_failure_only_warns(campaign, camp, data, tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir()
    camp("--repo", campaign, "remote", "add", "origin", remote)
    camp("--repo", campaign, "add", "-m", "heat", "heat.bp", cwd=data)
    camp("--repo", campaign, "push", "--no-build")
    other = tmp_path / "other"
    camp("clone", remote, other)
    seen = tmp_path / "seen.txt"
    install(other, "post-pull",
            f"#!/bin/sh\necho \"$CAMP_HOOK $CAMP_PULL_ACTION $CAMP_OLD_HEAD $CAMP_COMMIT\" > {seen}\n"
            "echo 'mirror offline' >&2\nexit 5\n")
    old = head(other)
    assert camp("--repo", other, "pull").stderr == ""  # nothing came: the hook does not run
    assert not seen.exists()
    camp("--repo", campaign, "add", "-m", "notes", "notes.txt", cwd=data)
    camp("--repo", campaign, "push", "--no-build")
    r = camp("--repo", other, "pull")
    assert r.exit_code == 0 and head(other) == head(campaign)
    assert seen.read_text() == f"post-pull fast-forward {old} {head(campaign)}\n"
    assert "camp: warning: post-pull hook" in r.stderr and "mirror offline" in r.stderr
