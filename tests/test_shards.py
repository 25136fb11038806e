"""Many writers into one campaign (issue 18), without Slurm: shards, file lists, provenance.

Writers record into shards of their own and never wait for or refuse each other; one
``camp commit`` gathers every shard with the replica-set union merge; a killed writer
leaves nothing that stops the next command. Real ``camp`` processes where concurrency or
a kill matters; the in-process runner elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
from camp_process import CAMP, run
from helpers import assert_one_line_error, manifest

from campaignvcs.provenance import parse_blocks, recorded_by
from campaignvcs.repo import CampaignRepo

SLURM = {"SLURM_JOB_ID": "4249", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7",
         "SLURM_CLUSTER_NAME": "frontier", "SLURM_JOB_NODELIST": "nid[001-002]", "SLURM_JOB_USER": "alice"}


@pytest.fixture
def notes(tmp_path):
    """A folder of 64 small text files (real datasets of kind TEXT)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(64):
        (folder / f"n{i:02d}.txt").write_text(f"note {i}\n")
    return folder


def shard_files(root):
    folder = root / ".git" / "camp" / "shards"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def committed_names(root):
    with CampaignRepo.open(str(root)) as repo:
        return sorted(ds.name for ds in repo.datasets(repo.tree_of(repo.head())))


def head_message(root):
    with CampaignRepo.open(str(root)) as repo:
        return repo.read_commit(repo.head()).message.decode()


def test_concurrent_writers_are_never_refused_and_one_commit_gathers_all(campaign, notes, camp):
    names = sorted(p.name for p in notes.iterdir())
    procs = [subprocess.Popen([CAMP, "--repo", str(campaign), "add", "--shard-staging", *names[i::16]],
                              cwd=notes, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(16)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert [code for code, _ in outcomes] == [0] * 16, outcomes
    assert len(shard_files(campaign)) == 16
    st = camp("--repo", campaign, "status").output
    assert "Recorded in 16 shards, gathered by the next 'camp commit':" in st
    assert sum(line.strip().startswith("new:") for line in st.splitlines()) == 64
    out = camp("--repo", campaign, "commit", "-m", "ingest").output
    assert "(64 datasets changed)" in out
    assert committed_names(campaign) == names
    assert shard_files(campaign) == []
    assert "nothing to commit" in camp("--repo", campaign, "status").output
    # the same user on the same host: one block of trailers that stands for every dataset
    message = head_message(campaign)
    assert len(parse_blocks(message)) == 1
    assert all(recorded_by(message, n)[0].get("Recorded-By", "").endswith(os.uname().nodename) for n in names)


def test_writers_committing_at_once_lose_nothing(campaign, notes):
    names = sorted(p.name for p in notes.iterdir())[:24]
    procs = [subprocess.Popen([CAMP, "--repo", str(campaign), "add", "--shard-staging", "-m", f"writer {i}",
                               *names[i::8]], cwd=notes, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(8)]
    codes = [p.wait(timeout=300) for p in procs]
    errors = [p.stderr.read() for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert codes == [0] * 8, errors
    assert not any("error" in e for e in errors), errors
    assert committed_names(campaign) == names
    assert shard_files(campaign) == []


def test_the_same_dataset_from_two_jobs_merges_its_replicas_and_names_both(campaign, camp, tmp_path, monkeypatch):
    for job, host in (("101", "nodeA"), ("102", "nodeB")):
        folder = tmp_path / host
        folder.mkdir()
        (folder / "out.txt").write_text("same content\n")
        monkeypatch.setenv("SLURM_JOB_ID", job)
        camp("--repo", campaign, "add", "--host", host, "--name", "run/out.txt", "out.txt", cwd=folder)
    monkeypatch.delenv("SLURM_JOB_ID")
    camp("--repo", campaign, "commit", "-m", "two nodes")
    ds = manifest(campaign, "run/out.txt", "HEAD")
    assert sorted(r.host for r in ds.live_replicas()) == ["nodeA", "nodeB"]
    where = camp("--repo", campaign, "whereis", "--history", "run/out.txt").output
    assert "recorded by Slurm-Job 101" in where and "recorded by Slurm-Job 102" in where


def test_a_conflict_between_shards_stops_the_commit_naming_the_shard(campaign, camp, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    f = folder / "x.txt"
    f.write_text("first\n")
    camp("--repo", campaign, "add", "--shard-staging", "x.txt", cwd=folder)
    f.write_text("second, longer\n")
    camp("--repo", campaign, "add", "--shard-staging", "x.txt", cwd=folder)
    shards = shard_files(campaign)
    assert len(shards) == 2
    result = camp("--repo", campaign, "commit", "-m", "both", ok=False)
    line = assert_one_line_error(result, "conflict in dataset x.txt", "nothing was committed")
    assert any(s in line for s in shards)
    assert shard_files(campaign) == shards  # nothing gathered, nothing lost
    assert committed_names(campaign) == []
    named = next(s for s in shards if s in line)
    shutil.move(campaign / ".git" / "camp" / "shards" / named, tmp_path / named)
    camp("--repo", campaign, "commit", "-m", "one")
    assert committed_names(campaign) == ["x.txt"]


def test_slurm_variables_become_trailers_shown_by_log_show_whereis_and_git(campaign, camp, notes, monkeypatch):
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    out = camp("--repo", campaign, "add", "--meta", "Input-Deck=deck.in", "n01.txt", "n02.txt", cwd=notes).output
    assert "recorded in shard" in out  # inside a Slurm job camp add goes to a shard by itself
    for key in SLURM:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SLURM_JOB_ID", "5000")
    monkeypatch.setenv("SLURM_CLUSTER_NAME", "frontier")
    camp("--repo", campaign, "add", "n03.txt", cwd=notes)
    monkeypatch.delenv("SLURM_JOB_ID")
    camp("--repo", campaign, "commit", "-m", "from two jobs")
    log = camp("--repo", campaign, "log", "-n", "1").output
    assert "Slurm-Job: 4242_7" in log and "Slurm-Cluster: frontier" in log and "Slurm-Job: 5000" in log
    assert "Slurm-Nodes: nid[001-002]" in log and "Slurm-User: alice" in log and "Input-Deck: deck.in" in log
    shown = camp("--repo", campaign, "show").output
    assert "Slurm-Job: 4242_7" in shown  # the trailers, with the message
    n02 = shown.split("TEXT   n02.txt", 1)[1].splitlines()[1]
    assert n02.strip() == "recorded by Slurm-Job 4242_7, Slurm-Cluster frontier, Slurm-Nodes nid[001-002], " \
                          "Slurm-User alice, Input-Deck deck.in"
    n03 = shown.split("TEXT   n03.txt", 1)[1].splitlines()[1]
    assert n03.strip() == "recorded by Slurm-Job 5000, Slurm-Cluster frontier"
    where = camp("--repo", campaign, "whereis", "--history", "n02.txt").output
    assert "recorded by Slurm-Job 4242_7, Slurm-Cluster frontier" in where
    assert "recorded by Slurm-Job 5000" in camp("--repo", campaign, "whereis", "--history", "n03.txt").output
    message = head_message(campaign)
    assert recorded_by(message, "n01.txt")[0]["Input-Deck"] == "deck.in"
    assert recorded_by(message, "n03.txt") == [{"Slurm-Job": "5000", "Slurm-Cluster": "frontier"}]
    if shutil.which("git"):
        jobs = subprocess.run(["git", "log", "-1", "--format=%(trailers:key=Slurm-Job,valueonly)"], cwd=campaign,
                              capture_output=True, text=True, check=True).stdout.split()
        assert sorted(jobs) == ["4242_7", "5000"]


def test_one_job_one_commit_has_plain_trailers(campaign, camp, notes, monkeypatch):
    for key, value in SLURM.items():
        monkeypatch.setenv(key, value)
    camp("--repo", campaign, "add", "-m", "job output", "n01.txt", "n02.txt", cwd=notes)
    message = head_message(campaign)
    assert message.endswith("\n\nSlurm-Job: 4242_7\nSlurm-Cluster: frontier\nSlurm-Nodes: nid[001-002]\n"
                            "Slurm-User: alice\n")
    assert shard_files(campaign) == []


def test_meta_with_a_commit_outside_slurm(campaign, camp, notes):
    camp("--repo", campaign, "add", "-m", "by hand", "--meta", "Code-Version=v1.2", "n01.txt", cwd=notes)
    assert "Code-Version: v1.2" in head_message(campaign)
    assert shard_files(campaign) == []
    bad = camp("--repo", campaign, "add", "--meta", "no equals sign", "n02.txt", cwd=notes, ok=False)
    assert_one_line_error(bad, "invalid --meta")
    bad = camp("--repo", campaign, "add", "--meta", "Slurm-Job=1", "n02.txt", cwd=notes, ok=False)
    assert_one_line_error(bad, "set by camp")


def test_files_from_and_shards_are_stable_disjoint_and_cover_the_list(campaign, camp, notes, tmp_path):
    names = [f"n{i:02d}.txt" for i in range(7)]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(names) + "\n\n")
    shares = []
    for i in (1, 2, 3):
        out = camp("--repo", campaign, "add", "--json", "--files-from", listing, "--shard", f"{i}/3",
                   cwd=notes).output
        shares.append([r["name"] for r in json.loads(out)])
    assert shares == [names[0::3], names[1::3], names[2::3]]
    camp("--repo", campaign, "commit", "-m", "three shares")
    assert committed_names(campaign) == names
    # more tasks than paths: a task with an empty share does nothing and succeeds
    assert "nothing to add in share 9/9" in camp("--repo", campaign, "add", "--files-from", listing, "--shard",
                                                 "9/9", cwd=notes).output


def test_files_from_stdin_and_nul_separated(campaign, camp, notes, tmp_path):
    out = camp("--repo", campaign, "add", "--json", "--files-from", "-", cwd=notes, input="n01.txt\nn02.txt\n").output
    assert [r["name"] for r in json.loads(out)] == ["n01.txt", "n02.txt"]
    nul = tmp_path / "list0"
    nul.write_bytes(b"n03.txt\0n04.txt\0")
    out = camp("--repo", campaign, "add", "--json", "--files-from", nul, "-0", cwd=notes).output
    assert [r["name"] for r in json.loads(out)] == ["n03.txt", "n04.txt"]
    out = camp("--repo", campaign, "add", "--json", "-0", "--files-from", "-", "--shard", "2/2", cwd=notes,
               input="n05.txt\0n06.txt\0n07.txt\0n08.txt\0").output
    assert [r["name"] for r in json.loads(out)] == ["n06.txt", "n08.txt"]


@pytest.mark.parametrize("args, needle", [
    (["--shard", "0/4", "n01.txt"], "invalid --shard '0/4'"),
    (["--shard", "5/4", "n01.txt"], "invalid --shard '5/4'"),
    (["--shard", "1/0", "n01.txt"], "invalid --shard '1/0'"),
    (["--shard", "x", "n01.txt"], "invalid --shard 'x'"),
    (["--files-from", "missing.txt"], "cannot read the file list missing.txt"),
    (["-0", "n01.txt"], "-0 goes with --files-from"),
    ([], "missing argument"),
])
def test_bad_file_lists_and_shards_are_one_line_errors(campaign, camp, notes, args, needle):
    result = camp("--repo", campaign, "add", *args, cwd=notes, ok=False)
    assert_one_line_error(result, needle)
    assert shard_files(campaign) == []


def test_a_writer_killed_before_its_shard_leaves_nothing_in_the_way(campaign, camp, notes):
    env = {k: v for k, v in os.environ.items() if k != "CAMP_FAULT"}
    env["CAMP_FAULT"] = "shard-before-write"
    killed = subprocess.run([CAMP, "--repo", str(campaign), "add", "--shard-staging", "n01.txt"], cwd=notes,
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert shard_files(campaign) == []
    assert "nothing to commit" in camp("--repo", campaign, "status").output
    camp("--repo", campaign, "add", "--shard-staging", "n02.txt", cwd=notes)
    camp("--repo", campaign, "commit", "-m", "after the kill")
    assert committed_names(campaign) == ["n02.txt"]


def test_a_half_written_shard_is_never_read_and_is_swept(campaign, camp, notes):
    folder = campaign / ".git" / "camp" / "shards"
    camp("--repo", campaign, "add", "--shard-staging", "n01.txt", cwd=notes)
    # what atomic_write leaves when its writer dies mid-write: a temporary naming a dead writer
    half = folder / f".{'vm~1~x'}.shard.~{os.uname().nodename}~999999999~0~dead.tmp"
    half.write_bytes(b'{"format": 1, "entr')
    st = camp("--repo", campaign, "status").output
    assert "Recorded in 1 shard," in st
    assert str(half) in st and "temporary file of an interrupted write" in st
    camp("--repo", campaign, "commit", "-m", "one")
    assert not half.exists()
    assert committed_names(campaign) == ["n01.txt"]


def test_a_commit_killed_after_the_branch_moved_is_finished_by_the_next(campaign, camp, notes):
    camp("--repo", campaign, "add", "--shard-staging", "n01.txt", "n02.txt", cwd=notes)
    env = {k: v for k, v in os.environ.items() if k != "CAMP_FAULT"}
    env["CAMP_FAULT"] = "commit-after-ref"
    killed = subprocess.run([CAMP, "--repo", str(campaign), "commit", "-m", "killed"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert committed_names(campaign) == ["n01.txt", "n02.txt"]
    assert "nothing to commit" in camp("--repo", campaign, "status").output
    result = run("--repo", campaign, "commit", "-m", "again")
    assert_one_line_error(result, "nothing to commit")
    assert shard_files(campaign) == []
    camp("--repo", campaign, "add", "--shard-staging", "n03.txt", cwd=notes)
    camp("--repo", campaign, "commit", "-m", "next")
    assert committed_names(campaign) == ["n01.txt", "n02.txt", "n03.txt"]


def test_the_writers_benchmark_runs_at_a_tiny_size(tmp_path):
    """benchmarks/writers.py keeps working (the figures come from a full run, not from here)."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "writers.py")
    r = subprocess.run([sys.executable, script, "--writers", "3", "--per", "2", "--no-slurm", "--no-lock-row",
                        "--workdir", str(tmp_path / "w")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2:4] == ["0", "0"], row  # refused, lost


def test_a_shard_recorded_already_is_removed_by_the_next_commit(campaign, camp, notes, tmp_path):
    camp("--repo", campaign, "add", "--shard-staging", "n01.txt", cwd=notes)
    (first,) = shard_files(campaign)
    folder = campaign / ".git" / "camp" / "shards"
    shutil.copy(folder / first, tmp_path / first)
    camp("--repo", campaign, "commit", "-m", "first")
    shutil.move(tmp_path / first, folder / first)  # as a commit killed before removing it leaves it
    assert "nothing to commit" in camp("--repo", campaign, "status").output
    assert_one_line_error(camp("--repo", campaign, "commit", "-m", "again", ok=False), "nothing to commit")
    assert shard_files(campaign) == []
    assert committed_names(campaign) == ["n01.txt"]
