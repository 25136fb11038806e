"""Scale figures of issue 16: what every verb costs as a campaign grows to a million datasets.

    python benchmarks/scale.py --corpus DIR --sizes 1000,10000,100000 [--repeat 3] [--workdir W]
    python benchmarks/scale.py --repo R1M --label 1,000,000 [--repeat 1] [--workdir W]

With ``--corpus`` (a folder made by ``benchmarks/corpus.py``), a campaign of each size is
recorded from the corpus's first datasets (``add`` in calls of 10,000 paths, one commit
per 100,000; reused from ``--workdir``); with ``--repo`` an existing campaign is measured as
it is (the million-dataset one takes ~40 minutes to record, so it is made once by hand).
Every command runs as its own process under GNU time: wall seconds and peak resident set
(``%M``). A one-dataset change is added before the rows that need one; pushes go to a
local-folder remote, with no campaign store (so nothing but camp's own kept archive helps).

Rows: status; add -m of one dataset; log -n 5; whereis; build (full, fresh output);
rebuild after one change; first push without archive (history only) and with it; the push
of a one-dataset change (no ``camp build`` before it); clone (history + local rebuild);
a sub-archive of one run (``build --include``) and ADIOS2 opening it against the whole archive
(up to 100,000 datasets: the whole archive costs ADIOS2 ~0.5 ms and ~65 KiB per dataset).
Prints a markdown table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

HOST = "bench"
OPEN = """
import sys, time, adios2
start = time.perf_counter()
with adios2.FileReader(sys.argv[1]) as reader:
    n = len(reader.available_variables())
print(time.perf_counter() - start, n)
"""


def timed(argv: Sequence[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak KiB, stdout) of one run; a failure stops the benchmark."""
    with tempfile.NamedTemporaryFile(prefix="peak-") as peak:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak.name, *argv], env=env, cwd=cwd,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        kib = int((peak.read().decode().split() or ["0"])[-1])
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:6])} failed: {proc.stderr.strip()[-500:]}")
    return seconds, kib, proc.stdout


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="camp-scale-"))
        os.makedirs(self.work, exist_ok=True)
        home = os.path.join(self.work, "home")
        os.makedirs(os.path.join(home, ".config", "hpc-campaign"), exist_ok=True)
        with open(os.path.join(home, ".config", "hpc-campaign", "config.yaml"), "w") as f:
            f.write(f"Campaign:\n  hostname: {HOST}\n  cachepath: {self.work}/cache\n")
        self.env = dict(os.environ, HOME=home, CAMP_AUTHOR_NAME="Bench", CAMP_AUTHOR_EMAIL="bench@example.org",
                        PYTHONPYCACHEPREFIX=os.path.join(self.work, "pycache"))
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.rows: list[tuple[str, str, str, str]] = []
        self.spare = 0

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def camp(self, *args: str, cwd: str | None = None) -> tuple[float, int, str]:
        return timed([sys.executable, "-m", "campaignvcs", *args], self.env, cwd)

    def row(self, label: str, what: str, runs: list[tuple[float, int, str]], extra: str = "") -> None:
        seconds = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs) / 1024
        self.rows.append((label, what, f"{seconds:.2f} s", f"{peak:.0f} MiB" + (f"; {extra}" if extra else "")))
        self.log(f"{label}: {what}: {seconds:.2f} s, {peak:.0f} MiB {extra}")

    # -- campaigns ---------------------------------------------------------------------------

    def campaign_of(self, size: int) -> tuple[str, str]:
        """(repository, campaign folder) holding the corpus's first ``size`` datasets."""
        corpus = os.path.abspath(self.args.corpus)
        folder = os.path.join(corpus, "campaign")
        repo = os.path.join(self.work, f"repo-{size}")
        if os.path.isdir(os.path.join(repo, ".git")):
            return repo, folder
        with open(os.path.join(corpus, "corpus.json")) as f:
            entries = json.load(f)["entries"]
        paths = [e["path"] for e in entries[:size]]
        self.log(f"recording {size:,} datasets into {repo}")
        self.camp("init", repo, "--name", f"bench/scale{size}", "--host", HOST)
        for start in range(0, len(paths), 10_000):
            self.camp("--repo", repo, "add", *paths[start:start + 10_000], cwd=folder)
            if (start + 10_000) % 100_000 == 0 or start + 10_000 >= len(paths):
                self.camp("--repo", repo, "commit", "-m", f"{start + 10_000} datasets")
        return repo, folder

    def one_change(self, repo: str, folder: str) -> None:
        """Add one new text dataset (a change every rebuild/push row starts from)."""
        self.spare += 1
        name = f"scale-extra-{self.spare}-{time.time_ns()}.txt"
        with open(os.path.join(folder, name), "w") as f:
            f.write(f"one more dataset {name}\n")
        self.camp("--repo", repo, "add", "-m", f"one more {self.spare}", name, cwd=folder)

    # -- rows --------------------------------------------------------------------------------

    def measure(self, label: str, repo: str, folder: str) -> None:
        r = self.args.repeat
        self.camp("--repo", repo, "status")
        self.row(label, "status", [self.camp("--repo", repo, "status") for _ in range(r)])
        runs = []
        for _ in range(r):
            self.spare += 1
            name = f"scale-one-{self.spare}-{time.time_ns()}.txt"
            with open(os.path.join(folder, name), "w") as f:
                f.write(name)
            runs.append(self.camp("--repo", repo, "add", "-m", "one", name, cwd=folder))
        self.row(label, "add -m of one dataset", runs)
        self.row(label, "log -n 5", [self.camp("--repo", repo, "log", "-n", "5") for _ in range(r)])
        self.row(label, "whereis (one dataset)", [self.camp("--repo", repo, "whereis", name) for _ in range(r)])
        whole = os.path.join(self.work, f"whole-{label}.aca")
        builds = []
        for _ in range(r):
            if os.path.exists(whole):
                os.unlink(whole)
            builds.append(self.camp("--repo", repo, "build", "-o", whole))
        self.row(label, "build (full)", builds, f"archive {os.path.getsize(whole) / 2**20:.1f} MiB")
        rebuilds = []
        for _ in range(r):
            self.one_change(repo, folder)
            rebuilds.append(self.camp("--repo", repo, "build", "-o", whole))
        self.row(label, "rebuild after one change", rebuilds)
        self.pushes(label, repo, folder)
        self.sub_archive(label, repo, whole)

    def pushes(self, label: str, repo: str, folder: str) -> None:
        remotes = os.path.join(self.work, f"remotes-{label}")
        shutil.rmtree(remotes, ignore_errors=True)
        for name in ("history", "full"):
            subprocess.run([sys.executable, "-m", "campaignvcs", "--repo", repo, "remote", "remove", name],
                           env=self.env, capture_output=True)
            shutil.rmtree(os.path.join(repo, ".git", "camp", "remotes", name), ignore_errors=True)
        self.camp("--repo", repo, "remote", "add", "--no-archive", "history", f"{remotes}/history")
        self.camp("--repo", repo, "remote", "add", "full", f"{remotes}/full")
        self.row(label, "first push, history only", [self.camp("--repo", repo, "push", "history")])
        first = self.camp("--repo", repo, "push", "full", "--json")
        self.row(label, "first push with archive (no store, no build before)", [first],
                 _push_bytes(first[2]))
        runs = []
        for _ in range(self.args.repeat):
            self.one_change(repo, folder)
            runs.append(self.camp("--repo", repo, "push", "full", "--json"))
        self.row(label, "push of a one-dataset change (no camp build before)", runs, _push_bytes(runs[-1][2]))
        runs = []
        for _ in range(self.args.repeat):
            self.one_change(repo, folder)
            runs.append(self.camp("--repo", repo, "push", "history", "--json"))
        self.row(label, "push of a one-dataset change, history-only remote", runs, _push_bytes(runs[-1][2]))
        clone = os.path.join(self.work, f"clone-{label}")
        shutil.rmtree(clone, ignore_errors=True)
        self.row(label, "clone (history only; no store to build into)",
                 [self.camp("clone", f"{remotes}/history", clone, "--host", HOST)])
        shutil.rmtree(clone, ignore_errors=True)

    def sub_archive(self, label: str, repo: str, whole: str) -> None:
        sub = os.path.join(self.work, f"run1-{label}.aca")
        if os.path.exists(sub):
            os.unlink(sub)
        # The PyPI adios2 has no HDF5 engine and refuses an archive listing HDF5: left out for the opens.
        built = self.camp("--repo", repo, "build", "-o", sub, "--include", "run_0001/*", "--exclude-kind", "HDF5")
        self.row(label, "sub-archive of one run (build --include run_0001/*)", [built],
                 f"archive {os.path.getsize(sub) / 2**20:.2f} MiB")
        targets = [("one run", sub)]
        if self.args.open_whole:
            whole = whole[:-4] + "-no-hdf5.aca"
            self.camp("--repo", repo, "build", "-o", whole, "--exclude-kind", "HDF5")
            targets.append(("whole campaign", whole))
        for what, path in targets:
            shutil.rmtree(os.path.join(self.work, "cache"), ignore_errors=True)
            seconds, kib, out = timed([sys.executable, "-c", OPEN, path], self.env)
            inside, variables = out.split()
            self.rows.append((label, f"ADIOS2 open + available_variables, {what}",
                              f"{float(inside):.2f} s", f"{kib / 1024:.0f} MiB; {variables} variables"))
            self.log(f"{label}: ADIOS2 open {what}: {float(inside):.2f} s {kib / 1024:.0f} MiB")


def _push_bytes(stdout: str) -> str:
    result = json.loads(stdout)
    return (f"{result['pack_bytes'] / 1024:.0f} KiB history + {result['archive_bytes'] / 2**20:.1f} MiB archive"
            f" ({result.get('archive') or 'none'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", help="a corpus folder (benchmarks/corpus.py) to record campaigns from")
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--repo", help="measure this existing campaign instead (its folder of data: --data)")
    p.add_argument("--data", help="with --repo: the folder its datasets were added from")
    p.add_argument("--label", default="", help="with --repo: the size shown in the table")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workdir")
    p.add_argument("--open-whole", action="store_true", help="also open the whole archive with ADIOS2")
    args = p.parse_args()
    bench = Bench(args)
    if args.repo:
        bench.measure(args.label or os.path.basename(args.repo), os.path.abspath(args.repo),
                      os.path.abspath(args.data or "."))
    else:
        for size in (int(s) for s in args.sizes.split(",")):
            repo, folder = bench.campaign_of(size)
            bench.measure(f"{size:,}", repo, folder)
    print("| datasets | measurement | time (median) | peak memory; notes |")
    print("| --- | --- | --- | --- |")
    for row in bench.rows:
        print("| " + " | ".join(row) + " |")
    bench.log(f"work folder: {bench.work}")


if __name__ == "__main__":
    main()
