"""A real single-node Slurm cluster ingests one campaign with ``sbatch --array`` (issue 18).

The session starts munged, slurmctld and slurmd without systemd (``scripts/slurm-up.sh``,
everything under the pytest temporary folder, free ports) and stops them at its end
(``scripts/slurm-down.sh``). The array tasks run ``examples/slurm/ingest-array.sbatch``:
``camp add --files-from LIST --shard I/N`` into shards; one dependent job commits. The
test checks what a scientist would: every dataset recorded exactly once, by the task that
``--shard`` gave it to, with that job's provenance in the commit. Without Slurm's packages
(scripts/system-deps.sh installs them) the tests are skipped here and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest
from camp_process import CAMP
from helpers import missing_part

from campaignvcs.provenance import recorded_by
from campaignvcs.repo import CampaignRepo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
EXAMPLE = os.path.join(ROOT, "examples", "slurm")
SBIN = "/usr/sbin:/sbin"
TASKS = 4
DATASETS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _have_slurm() -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + SBIN
    missing = [b for b in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if not shutil.which(b, path=path)]
    return f"Slurm ({', '.join(missing)} not found; scripts/system-deps.sh installs slurmctld slurmd slurm-client " \
           "munge)" if missing else None


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running single-node cluster for the whole session (stopped at its end)."""
    why = _have_slurm()
    if why:
        missing_part(why)
    base = tmp_path_factory.mktemp("slurm") / "cluster"
    env = dict(os.environ, SLURM_CI_DIR=str(base), SLURM_CI_CPUS="8", SLURM_CI_CTLD_PORT=str(_free_port()),
               SLURM_CI_SLURMD_PORT=str(_free_port()), PATH=os.environ.get("PATH", "") + os.pathsep + SBIN)
    up = subprocess.run(["bash", os.path.join(SCRIPTS, "slurm-up.sh")], env=env, capture_output=True, text=True,
                        timeout=120)
    try:
        if up.returncode != 0 or "SLURM_CONF=" not in up.stdout:
            missing_part(f"a running Slurm (slurm-up.sh failed: {up.stderr.strip().splitlines()[-1:]})")
        yield up.stdout.strip().split("SLURM_CONF=", 1)[1]
    finally:
        subprocess.run(["bash", os.path.join(SCRIPTS, "slurm-down.sh")], env=env, capture_output=True, timeout=120)


def _wait(env: dict[str, str], *jobs: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-j", ",".join(jobs)], env=env, capture_output=True, text=True).stdout
        if not out.strip():
            return
        time.sleep(0.3)
    raise AssertionError(f"Slurm jobs {jobs} still queued or running after {timeout} s")


@pytest.fixture
def walk(tmp_path, example_data):
    """A campaign walk: DATASETS real BP5 datasets (written by adios2), listed one a line."""
    folder = tmp_path / "lustre" / "run42"
    for i in range(DATASETS):
        shutil.copytree(example_data / "heat.bp", folder / f"step_{i:03d}" / "heat.bp")
    listing = tmp_path / "run42.list"
    # relative to the folder the jobs run in (where sbatch ran), as `find lustre/run42 ...` prints them
    listing.write_text("".join(f"lustre/run42/step_{i:03d}/heat.bp\n" for i in range(DATASETS)))
    return folder, listing


def test_an_array_job_ingests_every_dataset_once_with_its_jobs_provenance(slurm, walk, campaign, tmp_path):
    _folder, listing = walk
    env = dict(os.environ, SLURM_CONF=slurm, CAMP=CAMP)
    for var in [v for v in env if v.startswith("SLURM_") and v != "SLURM_CONF"]:
        env.pop(var)
    submitted = subprocess.run(["bash", os.path.join(EXAMPLE, "submit.sh"), str(campaign), str(listing), str(TASKS),
                                "--meta", "Input-Deck=heat.in"], env=env, cwd=tmp_path, capture_output=True,
                               text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    words = submitted.stdout.split()
    array, commit = words[2].rstrip(","), words[5]
    _wait(env, array, commit)
    outputs = {p.name: p.read_text() for p in tmp_path.glob("camp-*.out")}
    assert len(outputs) == TASKS + 1, outputs
    assert not any("error" in text for text in outputs.values()), outputs
    assert not (campaign / ".git" / "camp" / "shards").exists() or \
        not os.listdir(campaign / ".git" / "camp" / "shards")
    with CampaignRepo.open(str(campaign)) as repo:
        head = repo.read_commit(repo.head())
        message = head.message.decode()
        datasets = list(repo.datasets(head.tree))
    paths = listing.read_text().split()
    # every dataset exactly once, named by the path listed, with one replica: that path
    assert sorted(ds.name for ds in datasets) == sorted(paths)
    recorded = sorted(os.path.join(r.dir, r.path) for ds in datasets for r in ds.live_replicas())
    assert recorded == sorted(str(tmp_path / p) for p in paths)
    assert message.startswith(f"Ingest run42.list (array job {array}, {TASKS} tasks)")
    for position, path in enumerate(paths):
        (prov,) = recorded_by(message, path)
        assert prov["Slurm-Job"] == f"{array}_{position % TASKS + 1}", (path, prov)
        assert prov["Slurm-Cluster"] == "ci" and prov["Input-Deck"] == "heat.in"
        assert prov.get("Slurm-Nodes") and prov.get("Slurm-User")
    where = subprocess.run([CAMP, "--repo", str(campaign), "whereis", "--history", datasets[0].name],
                           capture_output=True, text=True, env=env)
    assert f"recorded by Slurm-Job {array}_" in where.stdout, where.stdout + where.stderr
    if shutil.which("git"):
        jobs = subprocess.run(["git", "log", "-1", "--format=%(trailers:key=Slurm-Job,valueonly)"], cwd=campaign,
                              capture_output=True, text=True, check=True).stdout.split()
        assert sorted(jobs) == sorted(f"{array}_{i}" for i in range(1, TASKS + 1))


def test_jobs_ending_together_record_through_the_epilog_hook(slurm, campaign, tmp_path, example_data):
    env = dict(os.environ, SLURM_CONF=slurm, PATH=os.path.dirname(CAMP) + os.pathsep + os.environ["PATH"])
    for var in [v for v in env if v.startswith("SLURM_") and v != "SLURM_CONF"]:
        env.pop(var)
    for i in range(3):
        shutil.copytree(example_data / "heat.bp", tmp_path / f"job{i}" / "out.bp")
    hook = os.path.join(ROOT, "hooks", "slurm-epilog")
    jobs = []
    for i in range(3):
        script = f"#!/bin/bash\ncd {tmp_path / f'job{i}'}\nCAMP_REPO={campaign} {hook} out.bp\n"
        r = subprocess.run(["sbatch", "--parsable", "--job-name", f"sim{i}", "--output", str(tmp_path / f"e{i}.out")],
                           input=script, env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        jobs.append(r.stdout.strip().split(";")[0])
    _wait(env, *jobs)
    for i in range(3):
        assert "error" not in (tmp_path / f"e{i}.out").read_text()
    leftover = subprocess.run([CAMP, "--repo", str(campaign), "commit", "-m", "stragglers"], capture_output=True,
                              text=True, env=env)
    assert leftover.returncode != 0 and "nothing to commit" in leftover.stderr  # every job committed its own
    # three jobs wrote out.bp in their own folders: one dataset, three replicas (the union)
    with CampaignRepo.open(str(campaign)) as repo:
        (ds,) = repo.datasets(repo.tree_of(repo.head()))
    assert ds.name == "out.bp"
    assert sorted(r.dir for r in ds.live_replicas()) == [str(tmp_path / f"job{i}") for i in range(3)]
    where = subprocess.run([CAMP, "--repo", str(campaign), "whereis", "--history", "out.bp"], capture_output=True,
                           text=True, env=env).stdout
    for job in jobs:
        assert f"recorded by Slurm-Job {job}, Slurm-Cluster ci" in where, where
