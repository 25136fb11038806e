"""Core repository benchmarks (run by hand; not a test).

    python benchmarks/bench_core.py [--sizes 1000,10000,100000] [--repeat 5] [--workdir DIR]

Measures, with the real ``camp`` command in fresh processes (median of --repeat runs):
  * add of 1,000 BP5 datasets in one call (worker processes as camp chooses, and one process);
  * add + commit of one dataset into campaigns of each size;
  * status of campaigns of each size;
  * ``camp --help`` start-up.
Datasets are folders of hard links to one BP5 dataset written by adios2, so making
100,000 of them is quick and takes no space; their manifests still differ (paths).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "examples"))

import make_data  # noqa: E402

CAMP = [sys.executable, "-m", "campaignvcs"]
LINKS_PER_COPY = 20000


def camp(*args: str, cwd: str, env: dict[str, str]) -> float:
    """Run camp once; seconds of wall time."""
    start = time.perf_counter()
    subprocess.run([*CAMP, *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def make_runs(proto: str, folder: str, count: int, start: int = 0) -> list[str]:
    """``count`` BP5 dataset folders of hard links to ``proto``."""
    names = []
    files = os.listdir(proto)
    source = proto
    for i in range(start, start + count):
        if i % LINKS_PER_COPY == 0 and i:
            # ext4 allows ~65,000 links per inode: link to a fresh copy now and then.
            source = f"{proto}.{i // LINKS_PER_COPY}"
            if not os.path.exists(source):
                shutil.copytree(proto, source)
        name = f"r{i // 1000:03d}/run{i:06d}.bp"
        target = os.path.join(folder, name)
        os.makedirs(target)
        for f in files:
            os.link(os.path.join(source, f), os.path.join(target, f))
        names.append(name)
    return names


def median_of(repeat: int, fn) -> float:
    return statistics.median(fn() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.workdir or tempfile.mkdtemp(prefix="camp-bench-")
    env = dict(os.environ, HOME=os.path.join(work, "home"), CAMP_AUTHOR_NAME="Bench", CAMP_AUTHOR_EMAIL="b@example.org")
    # Time installed-like processes: with bytecode caching (in the work folder), whatever
    # PYTHONDONTWRITEBYTECODE the calling shell has (else every camp start compiles camp).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("CAMP_JOBS", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    os.makedirs(env["HOME"], exist_ok=True)
    proto = make_data.make_bp5(os.path.join(work, "proto.bp"), steps=3)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    rows = []

    camp("--help", cwd=work, env=env)  # bytecode cache
    rows.append(("camp --help", median_of(args.repeat, lambda: camp("--help", cwd=work, env=env))))

    # add of 1,000 BP5 datasets in one call (fresh campaign each run)
    names = make_runs(proto, os.path.join(data, "k1"), 1000)

    def add_1000(with_env: dict[str, str] = env) -> float:
        repo = os.path.join(work, "c1000")
        shutil.rmtree(repo, ignore_errors=True)
        camp("init", repo, "--name", "bench/k", "--host", "bench", cwd=work, env=with_env)
        return camp("--repo", repo, "add", *names, cwd=os.path.join(data, "k1"), env=with_env)

    add_1000()  # fills the bytecode cache of everything camp add loads before the clock runs
    rows.append(("add 1,000 BP5 in one call", median_of(args.repeat, add_1000)))
    serial = dict(env, CAMP_JOBS="1")
    rows.append(("add 1,000 BP5 in one call, one process (CAMP_JOBS=1)",
                 median_of(args.repeat, lambda: add_1000(serial))))

    made = 0
    repo = os.path.join(work, "big")
    shutil.rmtree(repo, ignore_errors=True)
    camp("init", repo, "--name", "bench/big", "--host", "bench", cwd=work, env=env)
    big = os.path.join(data, "big")
    for size in sizes:
        batch = make_runs(proto, big, size - made, start=made)
        t0 = time.perf_counter()
        for i in range(0, len(batch), 20000):
            camp("--repo", repo, "add", *batch[i:i + 20000], cwd=big, env=env)
        camp("--repo", repo, "commit", "-m", f"{size} datasets", cwd=work, env=env)
        rows.append((f"bulk add+commit up to {size:,} (not a goal)", time.perf_counter() - t0))
        made = size
        extra = make_runs(proto, os.path.join(data, f"one{size}"), args.repeat * 4)

        def add_commit_one(extra: list[str] = extra, size: int = size) -> float:
            name = extra.pop()
            t = camp("--repo", repo, "add", name, cwd=os.path.join(data, f"one{size}"), env=env)
            return t + camp("--repo", repo, "commit", "-m", "one more", cwd=work, env=env)

        rows.append((f"add; commit one dataset at {size:,} (2 calls)", median_of(args.repeat, add_commit_one)))

        def add_m_one(extra: list[str] = extra, size: int = size) -> float:
            name = extra.pop()
            return camp("--repo", repo, "add", "-m", "one more", name, cwd=os.path.join(data, f"one{size}"), env=env)

        rows.append((f"add -m one dataset at {size:,} (1 call)", median_of(args.repeat, add_m_one)))
        camp("--repo", repo, "status", cwd=work, env=env)  # the first status after commits may rebuild caches
        rows.append((f"status at {size:,}", median_of(args.repeat, lambda: camp("--repo", repo, "status",
                                                                                 cwd=work, env=env))))
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  seconds (median of {args.repeat})")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:8.3f}")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
