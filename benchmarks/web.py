"""`camp web`: time to first page and export time at 1k/10k/100k datasets (issue 20).

    python benchmarks/web.py --workdir /tmp/camp-web-bench                 # 1000,10000,100000
    python benchmarks/web.py --workdir /tmp/camp-web-bench --sizes 1000    # quick
    python benchmarks/web.py --workdir /tmp/camp-web-bench --prepare       # only corpus and campaigns

For each size, a campaign of the first N datasets of benchmarks/corpus.py (BP5, HDF5, PNG
with 64x64 thumbnails, text) is recorded with `camp add` (kept in the work folder and
reused). Then, with real processes:

* **first page**: from spawning `camp web --port 0` until the dataset list's first page
  (`list/1.html`) has been received, and the same for a filtered, size-sorted page after
  it (the server is warm then);
* **export**: `camp web --export DIR` into an empty folder; then one more dataset is
  committed and the export repeated into the same folder (files rewritten are counted).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import corpus as corpus_mod  # noqa: E402

CAMP = [sys.executable, "-m", "campaignvcs"]
BATCH = 5_000


def environment(work: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
    home = os.path.join(work, "home")
    os.makedirs(home, exist_ok=True)
    env.update(HOME=home, GIT_CONFIG_NOSYSTEM="1", CAMP_AUTHOR_NAME="Bench", CAMP_AUTHOR_EMAIL="bench@example.org")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
    return env


def camp(env: dict[str, str], *args: str, cwd: str) -> None:
    subprocess.run([*CAMP, *args], cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def prepare(work: str, size: int, corpus: corpus_mod.Corpus, env: dict[str, str]) -> str:
    """The campaign of the first ``size`` datasets (made once, then reused)."""
    repo = os.path.join(work, "repos", f"web{size}")
    if os.path.exists(os.path.join(repo, ".git", "camp", "campaign")):
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(os.path.dirname(repo), exist_ok=True)
    camp(env, "init", repo, "--name", f"bench/web{size}", "--host", "bench", cwd=work)
    entries = corpus.entries[:size]
    pngs = [e.path for e in entries if e.kind == "png"]
    rest = [e.path for e in entries if e.kind != "png"]
    for i in range(0, len(rest), BATCH):
        camp(env, "--repo", repo, "add", *rest[i:i + BATCH], cwd=corpus.campaign)
    for i in range(0, len(pngs), BATCH):
        camp(env, "--repo", repo, "add", "--thumbnail", "64", "64", *pngs[i:i + BATCH], cwd=corpus.campaign)
    camp(env, "--repo", repo, "commit", "-m", f"{size} datasets", cwd=corpus.campaign)
    return repo


def first_page(repo: str, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to the first list page, and for a filtered, sorted page after it."""
    start = time.perf_counter()
    proc = subprocess.Popen([*CAMP, "--repo", repo, "web", "--port", "0"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line).group(0)
        with urllib.request.urlopen(url + "/list/1.html", timeout=600) as r:
            r.read()
        first = time.perf_counter() - start
        t1 = time.perf_counter()
        with urllib.request.urlopen(url + "/list/3.html?q=step_0001&sort=size&order=desc", timeout=600) as r:
            r.read()
        return first, time.perf_counter() - t1
    finally:
        proc.terminate()
        proc.wait()


def export(repo: str, out: str, env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([*CAMP, "--repo", repo, "web", "--export", out], env=env, check=True,
                          capture_output=True, text=True)
    return time.perf_counter() - start, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--prepare", action="store_true", help="only make the corpus and the campaigns")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)
    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="camp-web-bench-"))
    os.makedirs(work, exist_ok=True)
    env = environment(work)
    corpus = corpus_mod.make_corpus(os.path.join(work, "corpus"), max(sizes) + 1)
    rows = []
    for size in sizes:
        t = time.perf_counter()
        repo = prepare(work, size, corpus, env)
        print(f"[{size}] campaign ready ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        if args.prepare:
            continue
        first, filtered = first_page(repo, env)
        out = os.path.join(work, "export", f"web{size}")
        shutil.rmtree(out, ignore_errors=True)
        full, full_note = export(repo, out, env)
        extra = corpus.entries[size]
        camp(env, "--repo", repo, "add", "-m", "one more", extra.path, cwd=corpus.campaign)
        try:
            again, again_note = export(repo, out, env)
        finally:  # the campaign stays the corpus of N live datasets for the next run
            camp(env, "--repo", repo, "rm", extra.path, cwd=corpus.campaign)
            camp(env, "--repo", repo, "commit", "-m", "undo one more", cwd=corpus.campaign)
        rows.append((size, first, filtered, full, full_note, again, again_note))
        print(f"[{size}] done", file=sys.stderr)
    if args.prepare:
        return
    print("| datasets | first page (spawn → list/1.html) | filtered+sorted page, warm | export | "
          "re-export after one commit |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size, first, filtered, full, full_note, again, again_note in rows:
        print(f"| {size:,} | {first:.2f} s | {filtered * 1000:.0f} ms | {full:.1f} s ({full_note}) | "
              f"{again:.1f} s ({again_note}) |")
    print(f"\nwork folder: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
