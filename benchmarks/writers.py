"""Many concurrent writers into one campaign (issue 18): shards against the lock, and a Slurm array.

    python benchmarks/writers.py [--writers 64,256] [--per 10] [--slurm-tasks 16] [--workdir DIR] [--no-slurm]

Rows (real ``camp`` processes, real BP5 datasets: copies of one written by adios2):

* ``one writer``: one ``camp add`` of all W x per datasets, then ``camp commit``;
* ``W writers, lock``: W processes started at once, each ``camp add --no-shard-staging``
  of its ``per`` datasets (the staging area under the repository lock: the old way);
* ``W writers, shards``: the same with ``--shard-staging``, then one ``camp commit``
  gathering the W shards (timed on its own);
* ``Slurm array``: a single-node Slurm (scripts/slurm-up.sh) runs examples/slurm/submit.sh:
  an array of --slurm-tasks tasks over a file list of tasks x per datasets, then one commit job.

"refused" counts writers that exited non-zero; "lost" counts datasets missing from the
branch after the final commit. Progress goes to stderr, the table (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "examples"))
CAMP = os.path.join(os.path.dirname(sys.executable), "camp")
SBIN = "/usr/sbin:/sbin"


def log(msg: str) -> None:
    """Progress on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_datasets(folder: str, count: int) -> list[str]:
    """``count`` BP5 datasets (hard-linked copies of one adios2 wrote) below ``folder``; their relative paths."""
    import make_data

    proto = os.path.join(folder, "proto.bp")
    if not os.path.isdir(proto):
        make_data.make_bp5(proto, steps=3, n=16)
    paths = []
    for i in range(count):
        rel = f"data/run_{i // 100:03d}/step_{i % 100:03d}.bp"
        target = os.path.join(folder, rel)
        if not os.path.isdir(target):
            os.makedirs(target)
            for name in os.listdir(proto):
                os.link(os.path.join(proto, name), os.path.join(target, name))
        paths.append(rel)
    return paths


def environment(home: str) -> dict[str, str]:
    """A clean environment for camp: own HOME, an author, no Slurm variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CAMP_"))}
    env.update(HOME=home, CAMP_AUTHOR_NAME="Bench", CAMP_AUTHOR_EMAIL="bench@example.org")
    return env


def new_campaign(work: str, name: str, env: dict[str, str]) -> str:
    """A fresh campaign folder inside ``work``."""
    root = os.path.join(work, name)
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run([CAMP, "init", root, "--name", f"bench/{name}", "--host", "bench"], env=env, check=True,
                   capture_output=True)
    return root


def committed(root: str, env: dict[str, str]) -> int:
    """How many datasets the branch holds."""
    from campaignvcs.repo import CampaignRepo

    with CampaignRepo.open(root) as repo:
        return sum(1 for _ in repo.datasets(repo.tree_of(repo.head())))


def commit(root: str, env: dict[str, str]) -> tuple[float, int]:
    """Seconds ``camp commit`` took, and its exit status."""
    t0 = time.monotonic()
    r = subprocess.run([CAMP, "--repo", root, "commit", "-m", "gather"], env=env, capture_output=True, text=True)
    return time.monotonic() - t0, r.returncode


def one_writer(work: str, data: str, paths: list[str], env: dict[str, str]) -> dict[str, object]:
    """One process adds everything, then commits."""
    root = new_campaign(work, "one", env)
    t0 = time.monotonic()
    r = subprocess.run([CAMP, "--repo", root, "add", "--no-shard-staging", "--files-from", "-"], cwd=data, env=env,
                       input="\n".join(paths), capture_output=True, text=True)
    add = time.monotonic() - t0
    took, code = commit(root, env)
    return {"row": f"one writer, {len(paths)} datasets", "writers": 1, "refused": int(r.returncode != 0),
            "lost": len(paths) - committed(root, env), "add": add, "commit": took, "total": add + took}


def concurrent(work: str, data: str, paths: list[str], writers: int, shards: bool,
               env: dict[str, str]) -> dict[str, object]:
    """``writers`` processes at once, each adding its share; with ``shards`` into shards, then one commit."""
    root = new_campaign(work, f"w{writers}{'s' if shards else 'l'}", env)
    mode = "--shard-staging" if shards else "--no-shard-staging"
    t0 = time.monotonic()
    procs = [subprocess.Popen([CAMP, "--repo", root, "add", mode, "--files-from", "-", "--shard", f"{i + 1}/{writers}"],
                              cwd=data, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(writers)]
    listing = "\n".join(paths)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(listing)
        p.stdin.close()
    codes = [p.wait() for p in procs]
    for p in procs:
        assert p.stderr is not None
        p.stderr.close()
    add = time.monotonic() - t0
    took, _ = commit(root, env)
    return {"row": f"{writers} writers x {len(paths) // writers}, {'shards' if shards else 'lock'}",
            "writers": writers, "refused": sum(c != 0 for c in codes), "lost": len(paths) - committed(root, env),
            "add": add, "commit": took, "total": add + took}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_array(work: str, data: str, paths: list[str], tasks: int, env: dict[str, str]) -> dict[str, object]:
    """examples/slurm/submit.sh on a single-node Slurm started here (and stopped)."""
    cluster = os.path.join(work, "slurm")
    senv = dict(env, SLURM_CI_DIR=cluster, SLURM_CI_CPUS=str(tasks), SLURM_CI_CTLD_PORT=str(_free_port()),
                SLURM_CI_SLURMD_PORT=str(_free_port()), PATH=env.get("PATH", "") + os.pathsep + SBIN)
    up = subprocess.run(["bash", os.path.join(ROOT, "scripts", "slurm-up.sh")], env=senv, capture_output=True,
                        text=True)
    if up.returncode != 0:
        raise SystemExit(f"Slurm did not start: {up.stderr.strip().splitlines()[-1:]}")
    try:
        senv["SLURM_CONF"] = up.stdout.strip().split("SLURM_CONF=", 1)[1]
        root = new_campaign(work, "slurm-array", env)
        listing = os.path.join(work, "walk.list")
        with open(listing, "w") as f:
            f.write("\n".join(paths) + "\n")
        t0 = time.monotonic()
        r = subprocess.run(["bash", os.path.join(ROOT, "examples", "slurm", "submit.sh"), root, listing, str(tasks)],
                           cwd=data, env=dict(senv, CAMP=CAMP), capture_output=True, text=True, check=True)
        words = r.stdout.split()
        array, commit_job = words[2].rstrip(","), words[5]
        while subprocess.run(["squeue", "-h", "-j", f"{array},{commit_job}"], env=senv, capture_output=True,
                             text=True).stdout.strip():
            time.sleep(0.2)
        total = time.monotonic() - t0
        outs = [os.path.join(data, n) for n in os.listdir(data) if n.startswith(f"camp-ingest-{array}_")]
        refused = 0
        for out in outs:
            with open(out) as f:
                refused += "error" in f.read()
        refused += tasks - len(outs)
        return {"row": f"Slurm array of {tasks} tasks x {len(paths) // tasks}, one commit job", "writers": tasks,
                "refused": refused, "lost": len(paths) - committed(root, env), "add": None, "commit": None,
                "total": total}
    finally:
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "slurm-down.sh")], env=senv, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    """Run the rows and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--writers", default="64,256", help="concurrent writer counts (default 64,256)")
    ap.add_argument("--per", type=int, default=10, help="datasets per writer (default 10)")
    ap.add_argument("--slurm-tasks", type=int, default=16, help="tasks of the Slurm array (default 16)")
    ap.add_argument("--no-slurm", action="store_true", help="skip the Slurm row")
    ap.add_argument("--no-lock-row", action="store_true", help="skip the rows through the lock")
    ap.add_argument("--workdir", help="work folder (default: a new temporary one)")
    args = ap.parse_args(argv)
    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="camp-writers-"))
    os.makedirs(work, exist_ok=True)
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    env = environment(home)
    counts = [int(n) for n in args.writers.split(",") if n]
    data = os.path.join(work, "data-root")
    os.makedirs(data, exist_ok=True)
    rows = []
    for writers in counts:
        paths = make_datasets(data, writers * args.per)
        log(f"{len(paths)} datasets: one writer")
        rows.append(one_writer(work, data, paths, env))
        if not args.no_lock_row:
            log(f"{writers} writers through the lock")
            rows.append(concurrent(work, data, paths, writers, False, env))
        log(f"{writers} writers into shards")
        rows.append(concurrent(work, data, paths, writers, True, env))
    if not args.no_slurm:
        paths = make_datasets(data, args.slurm_tasks * args.per)
        log(f"Slurm array of {args.slurm_tasks} tasks")
        rows.append(slurm_array(work, data, paths, args.slurm_tasks, env))
    cpus = os.cpu_count()
    print(f"camp writers benchmark, {platform.node()}, {cpus} CPUs, Python {platform.python_version()}; "
          f"work folder {work}\n")
    print("| row | writers | refused | lost | add (s) | commit (s) | total (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        def cell(v: object) -> str:
            return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

        print(f"| {r['row']} | {r['writers']} | {r['refused']} | {r['lost']} | {cell(r['add'])} | "
              f"{cell(r['commit'])} | {cell(r['total'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
