"""Benchmark of ``camp search`` (issue 17): indexing cost and size per dataset, query times.

    python benchmarks/search.py                               # sizes 1000,10000,100000
    python benchmarks/search.py --sizes 1000,10000 --workdir /tmp/sbench --repeat 5

For each size N: the first N datasets of the synthetic corpus (benchmarks/corpus.py: BP5,
HDF5, PNG, text) are recorded with ``camp add`` into a new campaign, built with ``camp
build`` into a campaign store of its own, and then measured:

* indexing: the first ``camp search`` over the store (the index does not exist yet), per
  dataset; then the index file's size per dataset;
* queries: each query of :data:`QUERIES`, the median of ``--repeat`` runs, both as the
  whole ``camp search --json`` process (start-up included) and as the porcelain call
  alone (``campaignvcs.porcelain.search.search`` in this process).

Progress goes to stderr, one markdown table per size to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus as corpus_mod  # noqa: E402

CAMP = os.path.join(os.path.dirname(sys.executable), "camp")
BATCH = 2000
QUERIES: list[tuple[str, list[str]]] = [
    ("variable glob", ["--var", "rh*"]),
    ("value range", ["--range", "150:151"]),
    ("attribute = value", ["--attr", "prototype=7"]),
    ("name pattern", ["run_0001/*"]),
    ("kind + host", ["--kind", "HDF5", "--host", "bench"]),
    ("variable + range + name", ["*/fields.bp", "--var", "T", "--range", ":10"]),
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def camp(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([CAMP, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"camp {' '.join(args[:4])} failed: {proc.stderr.strip()}")
    return elapsed, proc.stdout


def setup(work: str, n: int, entries: list, root: str) -> tuple[dict[str, str], str]:
    """A campaign of the first ``n`` entries built into its own store; (environment, store)."""
    home = os.path.join(work, f"home-{n}")
    store = os.path.join(work, f"store-{n}")
    cfg = os.path.join(home, ".config", "hpc-campaign")
    os.makedirs(cfg, exist_ok=True)
    with open(os.path.join(cfg, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(f"Campaign:\n  hostname: bench\n  campaignstorepath: {store}\n")
    # PYTHONDONTWRITEBYTECODE (set on the development machines) would recompile every module in
    # every process: an installed camp has its bytecode cached, so measure that
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CAMP_", "GIT_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HOME=home, CAMP_AUTHOR_NAME="bench", CAMP_AUTHOR_EMAIL="bench@example.org")
    repo = os.path.join(work, f"repo-{n}")
    if os.path.exists(os.path.join(store, "bench", f"n{n}.aca")):
        return env, store
    camp(["init", repo, "--name", f"bench/n{n}", "--host", "bench"], env, work)
    paths = [e.path for e in entries[:n]]
    start = time.perf_counter()
    for i in range(0, len(paths), BATCH):
        camp(["--repo", repo, "add", *paths[i : i + BATCH]], env, root)
        log(f"  added {min(i + BATCH, len(paths)):,}/{len(paths):,}")
    camp(["--repo", repo, "commit", "-m", "corpus"], env, work)
    camp(["--repo", repo, "build"], env, work)
    log(f"  recorded and built {n:,} datasets in {time.perf_counter() - start:.0f} s")
    return env, store


def measure(n: int, env: dict[str, str], store: str, work: str, repeat: int) -> str:
    index = os.path.join(store, ".camp", "search.acx")
    if os.path.exists(index):
        os.unlink(index)
    first, _ = camp(["search", "--json", "--var", "no-such-variable"], env, work)
    size = os.path.getsize(index)
    from campaignvcs.porcelain.search import search
    from campaignvcs.searchindex import SearchIndex

    idx, _ = SearchIndex.open(index)
    datasets, contents = idx.counts()
    idx.close()
    lines = [
        f"### {n:,} datasets ({datasets:,} indexed, {contents:,} distinct metadata objects)",
        "",
        f"* indexing (first search, index absent): {first:.2f} s = {first / n * 1e3:.3f} ms per dataset",
        f"* index size: {size / 1024:.0f} KiB = {size / n:.0f} bytes per dataset",
        "",
        "| query | hits | `camp search` process (median) | porcelain call (median) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, args in QUERIES:
        walls, calls = [], []
        hits = 0
        for _ in range(repeat):
            wall, out = camp(["search", "--json", *args], env, work)
            walls.append(wall)
            hits = len(json.loads(out))
        kwargs = _kwargs(args)
        for _ in range(repeat):
            start = time.perf_counter()
            search(cwd=work, env=env, **kwargs)
            calls.append(time.perf_counter() - start)
        lines.append(f"| `{' '.join(args)}` ({label}) | {hits:,} | {statistics.median(walls):.3f} s | "
                     f"{statistics.median(calls):.3f} s |")
    return "\n".join(lines) + "\n"


def _kwargs(args: list[str]) -> dict[str, str]:
    names = {"--var": "var", "--range": "value_range", "--attr": "attr", "--kind": "kind", "--host": "host"}
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        if args[i] in names:
            out[names[args[i]]] = args[i + 1]
            i += 2
        else:
            out["pattern"] = args[i]
            i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="camp-search-bench-"))
    os.makedirs(work, exist_ok=True)
    log(f"corpus of {max(sizes):,} datasets in {work}/corpus")
    corpus = corpus_mod.make_corpus(os.path.join(work, "corpus"), max(sizes), args.seed, progress=log)
    for n in sizes:
        log(f"size {n:,}")
        env, store = setup(work, n, corpus.entries, corpus.campaign)
        print(measure(n, env, store, work, args.repeat), flush=True)
    log(f"work folder: {work}")


if __name__ == "__main__":
    main()
