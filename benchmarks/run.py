"""Benchmarks of issue 8: camp against the reference tool hpc-campaign, on one synthetic corpus.

    python benchmarks/run.py [--sizes 1000,10000,100000] [--repeat 5] [--workdir DIR] [--only NAME,...]
                             [--distinct] [--trace FILE]

Every measurement runs real processes as a user would (``python -m campaignvcs ...`` and,
when hpc-campaign is importable, ``python -m hpc_campaign manager ...``) from the corpus'
campaign folder with relative paths, under one HOME whose config.yaml names the host
(``bench``), the campaign store and ADIOS2's cache. A cell is the median of --repeat runs
(this machine's speed varies by about 30 %). In a row with a reference cell the two tools'
runs alternate, one of each per repeat in ABBA order (camp, ref, ref, camp, camp, ref ...),
so a drift in the machine's load shifts both medians alike (see :meth:`Bench.alternate`;
``--trace FILE`` logs every timed run, in order). Peak memory is the largest resident set of
one measured process (with its children) over the runs, as GNU ``/usr/bin/time -f %M``
reports it; see :func:`run` for why our own ``wait4`` would be wrong.

Measurement names for --only: startup, add1000, hdf5, images, open, addone, status,
build, rebuild, push (the last five share the campaigns of --sizes; build also gives the
archive size row: camp build's .aca against the reference's archive of the same datasets,
which means something only with ``--distinct``, the corpus whose every dataset is written
for real). Progress goes to stderr; the table (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus as corpus_mod  # noqa: E402

CAMP = [sys.executable, "-m", "campaignvcs"]
REF = [sys.executable, "-m", "hpc_campaign", "manager"]
HOST = "bench"
BATCH = 5_000
"""Paths per process when filling a campaign (stays far below the kernel's ARG_MAX)."""
MEASUREMENTS = (
    "startup",
    "add1000",
    "hdf5",
    "images",
    "open",
    "addone",
    "status",
    "build",
    "rebuild",
    "push",
)
SIZED = {"addone", "status", "build", "rebuild", "push"}
SMALL = 10
"""Datasets in the small campaign that start-up's status runs on."""

OPEN_SCRIPT = """
import sys, time, adios2
start = time.perf_counter()
with adios2.FileReader(sys.argv[1]) as reader:
    names = reader.available_variables()
print(time.perf_counter() - start, len(names))
"""


# -- running and timing processes -----------------------------------------------------------


class CommandFailed(RuntimeError):
    """A command the benchmark relies on exited non-zero."""


@dataclass(frozen=True)
class Sample:
    """One run: wall seconds, peak resident set (KiB) and captured output."""

    seconds: float
    peak_kib: int
    returncode: int
    stdout: str
    stderr: str


TIME = "/usr/bin/time"
"""GNU time: reports the peak resident set of the one process it starts (``-f %M``, KiB)."""


def run(argv: Sequence[str], cwd: str, env: dict[str, str], check: bool = True) -> Sample:
    """Run ``argv`` once and measure it.

    The clock runs from spawn to reaping. The peak memory is GNU time's ``%M``: ru_maxrss
    from ``wait4`` on a child that time itself forked. It cannot come from our own
    ``wait4``: Linux keeps the high-water mark of the memory a process had before
    ``execve``, and subprocess spawns with vfork, so every child would report at least the
    harness' own resident set (172 MiB at 100,000 datasets). time is a small C program,
    so its children start near zero. Without it the peak is left out ("-"). Output goes
    to temporary files (never a pipe that could fill up while we wait), read after the
    clock stops.
    """
    use_time = os.access(TIME, os.X_OK)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="peak-") as peak,
    ):
        command = [TIME, "-f", "%M", "-o", peak.name, *argv] if use_time else list(argv)
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        returncode = proc.wait()
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        kib = 0
        if use_time:
            lines = peak.read().decode(errors="replace").split()
            kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        sample = Sample(
            seconds, kib, returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace")
        )
    if check and sample.returncode != 0:
        tail = (sample.stderr or sample.stdout).strip().splitlines()[-3:]
        raise CommandFailed(f"{' '.join(argv[:6])} ... exited {sample.returncode}: " + " | ".join(tail))
    return sample


# -- results ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """One tool's result for one row: samples (seconds or bytes), or a reason there are none."""

    samples: list[float] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    text: str = ""

    @property
    def value(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def peak_mib(self) -> float | None:
        return max(self.peaks) / 1024 if self.peaks else None

    def add(self, sample: Sample, value: float | None = None) -> None:
        self.samples.append(sample.seconds if value is None else value)
        if sample.peak_kib:
            self.peaks.append(sample.peak_kib)


@dataclass
class Row:
    """A line of the table; ``goal`` decides 'met' from (camp, reference) values."""

    label: str
    camp: Cell
    ref: Cell
    unit: str = "s"
    goal: str = ""
    check: Callable[[float, float | None], bool] | None = None

    def ratio(self) -> str:
        c, r = self.camp.value, self.ref.value
        return f"{r / c:.1f}x" if c and r else ""

    def met(self) -> str:
        c = self.camp.value
        if self.check is None or c is None:
            return ""
        return "yes" if self.check(c, self.ref.value) else "NO"


def at_most(limit: float) -> Callable[[float, float | None], bool]:
    return lambda camp, ref: camp <= limit


def faster(times: float) -> Callable[[float, float | None], bool]:
    return lambda camp, ref: ref is not None and ref / camp >= times


def fmt(value: float | None, unit: str, text: str) -> str:
    if value is None:
        return text or "—"
    if unit == "B":
        for limit, name in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if value >= limit:
                return f"{value / limit:,.1f} {name}"
        return f"{value:,.0f} B"
    return f"{value:.3f} s"


def table(rows: list[Row], repeat: int) -> str:
    head = ["measurement", "camp", "reference", "ref/camp", "goal", "met", "camp peak", "ref peak"]
    lines = [head]
    for r in rows:
        lines.append(
            [
                r.label,
                fmt(r.camp.value, r.unit, r.camp.text),
                fmt(r.ref.value, r.unit, r.ref.text),
                r.ratio(),
                r.goal,
                r.met(),
                f"{r.camp.peak_mib:.0f} MiB" if r.camp.peak_mib else "",
                f"{r.ref.peak_mib:.0f} MiB" if r.ref.peak_mib else "",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return (
        "\n".join(out)
        + f"\n\nTimes: median of {repeat} runs. "
        + "Peak: largest resident set of one measured process (GNU time %M).\n"
    )


# -- the benchmark ----------------------------------------------------------------------------


class Bench:
    """Sets up the environment and corpus, runs the selected measurements, collects rows."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.repeat = args.repeat
        self.sizes = sorted(int(s) for s in args.sizes.split(",") if s)
        self.only = set(args.only.split(",")) if args.only else set(MEASUREMENTS)
        unknown = self.only - set(MEASUREMENTS)
        if unknown:
            raise SystemExit(
                f"run.py: unknown measurement(s) {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(MEASUREMENTS)}"
            )
        self.work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="camp-bench-"))
        os.makedirs(self.work, exist_ok=True)
        self.have_ref = (
            importlib.util.find_spec("hpc_campaign") is not None
            and importlib.util.find_spec("dateutil") is not None
        )
        self.rows: list[Row] = []
        self.t0 = time.perf_counter()
        self.home = os.path.join(self.work, "home")
        self.store = os.path.join(self.work, "store")
        self.cache = os.path.join(self.work, "adios-cache")
        for d in (self.home, self.store, self.cache):
            os.makedirs(d, exist_ok=True)
        cfg = os.path.join(self.home, ".config", "hpc-campaign")
        os.makedirs(cfg, exist_ok=True)
        with open(os.path.join(cfg, "config.yaml"), "w", encoding="utf-8") as f:
            f.write(
                f"Campaign:\n  hostname: {HOST}\n  campaignstorepath: {self.store}\n"
                f"  cachepath: {self.cache}\n"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMP_", "GIT_"))}
        env.update(
            HOME=self.home,
            GIT_CONFIG_NOSYSTEM="1",
            CAMP_AUTHOR_NAME="Bench",
            CAMP_AUTHOR_EMAIL="bench@example.org",
        )
        env.pop("XDG_CONFIG_HOME", None)
        # Measure installed-like processes: with bytecode caching (kept in the work folder, not
        # the source tree), whatever PYTHONDONTWRITEBYTECODE the calling shell has.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(self.work, "pycache")
        self.env = env
        self.corpus: corpus_mod.Corpus | None = None
        self.distinct = bool(args.distinct)
        self.trace = args.trace
        if self.trace:
            open(self.trace, "w", encoding="utf-8").close()

    # helpers

    def log(self, message: str) -> None:
        elapsed = time.perf_counter() - self.t0
        print(f"[{int(elapsed) // 60:3d}:{int(elapsed) % 60:02d}] {message}", file=sys.stderr, flush=True)

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    def camp(self, *args: str, cwd: str | None = None, check: bool = True) -> Sample:
        return run([*CAMP, *args], cwd or self.data, self.env, check)

    def ref(self, archive: str, *args: str, check: bool = True) -> Sample:
        sample = run([*REF, archive, *args], self.data, self.env, check)
        if check and ("ERROR" in sample.stdout or "Traceback" in sample.stderr):
            raise CommandFailed(
                f"hpc_campaign {' '.join(args[:3])}: " + (sample.stdout + sample.stderr)[-300:]
            )
        return sample

    @property
    def data(self) -> str:
        assert self.corpus is not None
        return self.corpus.campaign

    def new_repo(self, name: str) -> str:
        repo = self.path("repos", name)
        shutil.rmtree(repo, ignore_errors=True)
        os.makedirs(os.path.dirname(repo), exist_ok=True)
        self.camp("init", repo, "--name", f"bench/{name}", "--host", HOST, cwd=self.work)
        return repo

    def empty_archive(self, name: str) -> str:
        """A new, empty reference archive (the reference has no 'create' command: its API)."""
        path = self.path("ref", f"{name}.aca")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.remove(path)
        template = self.path("ref", "empty.template")
        if not os.path.exists(template):
            code = (
                "import sys; from hpc_campaign.manager import Manager; "
                "m = Manager(archive=sys.argv[1], hostname=sys.argv[2], campaign_store=sys.argv[3]); "
                "m.open(create=True); m.close()"
            )
            run([sys.executable, "-c", code, template + ".aca", HOST, self.store], self.work, self.env)
            os.replace(template + ".aca", template)
        shutil.copyfile(template, path)
        return path

    def fill(self, repo: str | None, archive: str | None, entries: Sequence[corpus_mod.Entry]) -> None:
        """Record ``entries`` (BP5 and text) into the camp repo and/or reference archive, in batches."""
        bp = [e.path for e in entries if e.kind == "bp5"]
        text = [e.path for e in entries if e.kind == "text"]
        others = [e for e in entries if e.kind not in ("bp5", "text")]
        assert not others, "fill() records BP5 and text only"
        for i in range(0, max(len(bp), len(text)), BATCH):
            chunk = bp[i : i + BATCH] + text[i : i + BATCH]
            if repo and chunk:
                self.camp("--repo", repo, "add", *chunk)
            if archive:
                if bp[i : i + BATCH]:
                    self.ref(archive, "data", *bp[i : i + BATCH])
                if text[i : i + BATCH]:
                    self.ref(archive, "text", *text[i : i + BATCH])

    def ref_count(self, archive: str) -> int:
        with sqlite3.connect(f"file:{archive}?mode=ro", uri=True) as con:
            return con.execute("select count(*) from dataset where deltime = 0").fetchone()[0]

    def measure(self, fn: Callable[[int], Sample | None], cell: Cell, key: str = "") -> Cell:
        """Call ``fn(i)`` --repeat times; a Sample it returns is recorded (rows without a reference)."""
        self.alternate(key, [("camp", fn, cell)])
        return cell

    def alternate(self, key: str, runs: Sequence[tuple[str, Callable[[int], Sample | None], Cell]]) -> None:
        """--repeat rounds of one call of each ``(tool, fn, cell)``, in ABBA order.

        Round i runs them in the given order when i is even and in reverse when it is odd
        (camp, ref, ref, camp, camp, ref, ...), so a slow drift of the machine's speed
        weighs on every tool alike and the medians stay comparable. ``fn(i)`` may record
        into its cell itself and return None; a Sample it returns is added to ``cell``.
        Every call is logged to --trace as ``key<TAB>tool<TAB>i``.
        """
        for i in range(self.repeat):
            for tool, fn, cell in runs if i % 2 == 0 else list(reversed(runs)):
                if self.trace:
                    with open(self.trace, "a", encoding="utf-8") as f:
                        f.write(f"{key}\t{tool}\t{i}\n")
                sample = fn(i)
                if sample is not None:
                    cell.add(sample)

    def pair(
        self,
        key: str,
        camp_fn: Callable[[int], Sample | None],
        ref_fn: Callable[[int], Sample | None] | None,
        camp: Cell | None = None,
        ref: Cell | None = None,
    ) -> tuple[Cell, Cell]:
        """camp against the reference, alternating (no ``ref_fn``: camp alone, reference 'not installed')."""
        camp = Cell() if camp is None else camp
        if ref_fn is None:
            self.measure(camp_fn, camp, key)
            return camp, self.no_ref()
        ref = Cell() if ref is None else ref
        self.alternate(key, [("camp", camp_fn, camp), ("ref", ref_fn, ref)])
        return camp, ref

    def no_ref(self) -> Cell:
        return Cell(text="—" if self.have_ref else "not installed")

    # the corpus

    def make_corpus(self) -> None:
        """One corpus big enough for every selected measurement (reused from --workdir)."""
        a = self.args
        need = {
            "bp5": a.add_count if self.only & {"add1000", "open"} else 0,
            "hdf5": a.hdf5_count if "hdf5" in self.only else 0,
            "png": a.image_count if "images" in self.only else 0,
            "sized": SMALL,
        }
        if self.only & SIZED:
            need["sized"] = self.sizes[-1] + self.extras_needed()
        guess = int(max(need["sized"], a.add_count) * 1.3) + 500
        entries = corpus_mod.plan(guess, a.seed)
        while True:
            counts = {"bp5": 0, "hdf5": 0, "png": 0, "sized": 0}
            cut = None
            for i, e in enumerate(entries):
                if e.kind in counts:
                    counts[e.kind] += 1
                if e.kind in ("bp5", "text"):
                    counts["sized"] += 1
                if all(counts[k] >= need[k] for k in need):
                    cut = i + 1
                    break
            if cut is not None:
                break
            guess *= 2
            entries = corpus_mod.plan(guess, a.seed)
        folder = self.path("corpus-distinct" if self.distinct else "corpus")
        kind = "distinct " if self.distinct else ""
        self.log(f"{kind}corpus of {cut:,} datasets in {folder} (seed {a.seed})")
        self.corpus = corpus_mod.make_corpus(folder, cut, a.seed, progress=self.log, distinct=self.distinct)
        self.sized_entries = [e for e in self.corpus.entries if e.kind in ("bp5", "text")]

    def extras_needed(self) -> int:
        return 4 * self.repeat + 2

    # measurements

    def startup(self) -> None:
        self.log("start-up")
        camp, ref = self.pair(
            "start-up: --help",
            lambda i: self.camp("--help"),
            (lambda i: run([*REF, "--help"], self.data, self.env)) if self.have_ref else None,
        )
        self.rows.append(Row("start-up: --help", camp, ref, goal="≤ 0.15 s", check=at_most(0.15)))
        small = self.sized_entries[:SMALL]
        repo = self.new_repo("small")
        archive = self.empty_archive("small") if self.have_ref else None
        self.fill(repo, archive, small)
        self.camp("--repo", repo, "commit", "-m", "small")
        self.camp("--repo", repo, "status")
        camp, ref = self.pair(
            "start-up: status",
            lambda i: self.camp("--repo", repo, "status"),
            (lambda i: self.ref(archive, "info")) if archive else None,
        )
        self.rows.append(
            Row(
                f"start-up: status of {SMALL} datasets (ref: info)",
                camp,
                ref,
                goal="≤ 0.15 s",
                check=at_most(0.15),
            )
        )

    def add1000(self) -> None:
        assert self.corpus is not None
        paths = [e.path for e in self.corpus.of_kind("bp5")[: self.args.add_count]]
        n = len(paths)
        self.log(f"add of {n:,} BP5 in one call")

        def camp_once(i: int) -> Sample:
            repo = self.new_repo("add1000")
            return self.camp("--repo", repo, "add", *paths)

        def ref_once(i: int) -> Sample:
            archive = self.empty_archive("add1000")
            return self.ref(archive, "data", *paths)

        camp, ref = self.pair("add1000", camp_once, ref_once if self.have_ref else None)
        self.camp("--repo", self.path("repos", "add1000"), "commit", "-m", "bp5")
        if self.have_ref:
            assert self.ref_count(self.path("ref", "add1000.aca")) == n
        self.rows.append(Row(f"add {n:,} BP5 in one call", camp, ref, goal="≥ 8x faster", check=faster(8)))

    def hdf5(self) -> None:
        """Per file: all files in one call / n; and the marginal cost without start-up."""
        assert self.corpus is not None
        paths = [e.path for e in self.corpus.of_kind("hdf5")[: self.args.hdf5_count]]
        n = len(paths)
        self.log(f"HDF5: {n} files")
        cells = {tool: (Cell(), Cell(), Cell()) for tool in ("camp", "ref")}  # per file, one file, marginal

        def once(tool: str, i: int) -> None:
            per_file, one, marginal = cells[tool]
            times = []
            for chosen in (paths, paths[:1]):
                if tool == "camp":
                    sample = self.camp("--repo", self.new_repo("hdf5"), "add", *chosen)
                else:
                    sample = self.ref(self.empty_archive("hdf5"), "data", *chosen)
                times.append(sample.seconds)
                (per_file if chosen is paths else one).add(sample, sample.seconds / len(chosen))
            if n > 1:
                marginal.add(sample, (times[0] - times[1]) / (n - 1))

        self.pair("hdf5", lambda i: once("camp", i), (lambda i: once("ref", i)) if self.have_ref else None)
        ref_cells = cells["ref"] if self.have_ref else (self.no_ref(), self.no_ref(), self.no_ref())
        self.rows.append(
            Row(
                f"HDF5 per file ({n} files in one call, total / {n})",
                cells["camp"][0],
                ref_cells[0],
                goal="≥ 5x faster",
                check=faster(5),
            )
        )
        self.rows.append(Row("HDF5, one file in one call", cells["camp"][1], ref_cells[1]))
        if n > 1:
            cells["camp"][2].peaks, ref_cells[2].peaks = [], []
            self.rows.append(
                Row(f"HDF5 extraction alone per file ((t{n} - t1) / {n - 1})", cells["camp"][2], ref_cells[2])
            )

    def warm_up(self) -> None:
        """One run of every command on a tiny campaign, so bytecode is cached before the clock runs."""
        assert self.corpus is not None
        self.log("warm-up (bytecode caches)")
        first = {}
        for e in self.corpus.entries:
            first.setdefault(e.kind, e.path)
        repo = self.new_repo("warmup")
        data = [first[k] for k in ("bp5", "hdf5", "text") if k in first]
        self.camp("--repo", repo, "add", *data)
        if "png" in first:
            self.camp("--repo", repo, "add", "--thumbnail", "64", "64", first["png"])
        self.camp("--repo", repo, "commit", "-m", "warm-up")
        self.camp("--repo", repo, "status")
        self.camp("--repo", repo, "log", check=False)
        self.camp("--repo", repo, "build", "-o", self.path("warmup.aca"), check=False)
        if self.have_ref:
            archive = self.empty_archive("warmup")
            run([*REF, "--help"], self.data, self.env)
            self.ref(archive, "data", *[first[k] for k in ("bp5", "hdf5") if k in first])
            if "text" in first:
                self.ref(archive, "text", first["text"])
            if "png" in first:
                self.ref(archive, "image", first["png"], "--thumbnail", "64", "64")
            self.ref(archive, "info")
        run([sys.executable, "-c", "import adios2"], self.work, self.env)

    def images(self) -> None:
        assert self.corpus is not None
        paths = [e.path for e in self.corpus.of_kind("png")[: self.args.image_count]]
        n = len(paths)
        self.log(f"{n} images with thumbnails")

        def camp_once(i: int) -> Sample:
            repo = self.new_repo("images")
            return self.camp("--repo", repo, "add", "--thumbnail", "64", "64", *paths)

        ref_cell = Cell()

        def ref_once(i: int) -> None:
            archive = self.empty_archive("images")
            samples = [self.ref(archive, "image", p, "--thumbnail", "64", "64") for p in paths]
            ref_cell.samples.append(sum(s.seconds for s in samples))
            ref_cell.peaks.extend(s.peak_kib for s in samples if s.peak_kib)

        camp, ref = self.pair("images", camp_once, ref_once if self.have_ref else None, ref=ref_cell)
        self.rows.append(
            Row(
                f"{n} images with 64x64 thumbnails, total (camp: 1 call; ref: {n} calls)",
                camp,
                ref,
                goal="≥ 2x faster",
                check=faster(2),
            )
        )

    def adios_open(self) -> None:
        """ADIOS2 opens both tools' archives of the same BP5 datasets, with an empty cache each time."""
        camp_aca = self.path("camp-add1000.aca")
        repo = self.path("repos", "add1000")
        if not os.path.isdir(repo):
            self.add_for_open()
        self.log("ADIOS2 open")
        build = self.camp("--repo", repo, "build", "-o", camp_aca, check=False)
        ref_aca = self.path("ref", "add1000.aca")
        n = self.args.add_count

        def opener(path: str, out: Cell) -> Callable[[int], None]:
            def once(i: int) -> None:
                shutil.rmtree(self.cache, ignore_errors=True)
                os.makedirs(self.cache)
                sample = run([sys.executable, "-c", OPEN_SCRIPT, path], self.work, self.env)
                seconds, count = sample.stdout.split()
                out.add(sample, float(seconds))
                out.text = count

            return once

        camp, ref = Cell(), Cell()
        runs = []
        if build.returncode == 0:
            runs.append(("camp", opener(camp_aca, camp), camp))
        else:
            camp.text = "n/a (camp build failed)"
        if self.have_ref and os.path.exists(ref_aca):
            runs.append(("ref", opener(ref_aca, ref), ref))
        else:
            ref = self.no_ref()
        self.alternate("open", runs)
        if camp.samples and ref.samples and camp.text != ref.text:
            self.log(
                f"warning: ADIOS2 shows {camp.text} variables in camp's archive, "
                f"{ref.text} in the reference's"
            )
        self.rows.append(Row(f"ADIOS2 open + available_variables, {n:,} BP5 (empty cache)", camp, ref))

    def add_for_open(self) -> None:
        assert self.corpus is not None
        paths = [e.path for e in self.corpus.of_kind("bp5")[: self.args.add_count]]
        repo = self.new_repo("add1000")
        self.camp("--repo", repo, "add", "-m", "bp5", *paths)
        if self.have_ref:
            self.ref(self.empty_archive("add1000"), "data", *paths)

    def sized(self) -> None:
        """Grow one camp campaign and one reference archive through --sizes; measure at each size."""
        repo = self.new_repo("big")
        archive = self.empty_archive("big") if self.have_ref else None
        made = 0
        for size in self.sizes:
            self.log(f"filling the campaigns to {size:,} datasets")
            start = time.perf_counter()
            self.fill(repo, None, self.sized_entries[made:size])
            self.camp("--repo", repo, "commit", "-m", f"{size} datasets")
            self.log(f"  camp: {time.perf_counter() - start:.1f} s (add in batches of {BATCH:,}, commit)")
            if archive:
                start = time.perf_counter()
                self.fill(None, archive, self.sized_entries[made:size])
                self.log(f"  reference: {time.perf_counter() - start:.1f} s")
                assert self.ref_count(archive) >= size, (self.ref_count(archive), size)
            made = size
            extras = [e.path for e in self.sized_entries[size : size + self.extras_needed()]]
            self.measure_at(size, repo, archive, extras)

    def measure_at(self, size: int, repo: str, archive: str | None, extras: list[str]) -> None:
        r = self.repeat
        label = f"{size:,}"
        if "build" in self.only:
            self.archive_sizes(size, repo, archive)
        if "addone" in self.only:
            self.log(f"add + commit of one dataset at {label}")

            def two_calls(i: int) -> None:
                a = self.camp("--repo", repo, "add", extras[i])
                c = self.camp("--repo", repo, "commit", "-m", f"one more {i}")
                two.samples.append(a.seconds + c.seconds)
                two.peaks.extend(p for p in (a.peak_kib, c.peak_kib) if p)

            two, one, ref = Cell(), Cell(), Cell()
            runs = [
                ("camp add; commit", two_calls, two),
                ("camp add -m", lambda i: self.camp("--repo", repo, "add", "-m", f"one {i}", extras[r + i]), one),
            ]
            if archive:
                runs.insert(1, ("ref", lambda i: self.ref(archive, "data", extras[i]), ref))
            else:
                ref = self.no_ref()
            self.alternate(f"addone at {label}", runs)
            self.rows.append(
                Row(
                    f"add; commit one dataset at {label} (2 calls; ref: 1 data call)",
                    two,
                    ref,
                    goal="≤ 0.15 s",
                    check=at_most(0.15),
                )
            )
            self.rows.append(
                Row(
                    f"add -m one dataset at {label} (1 call; ref: 1 data call)",
                    one,
                    ref,
                    goal="≤ 0.15 s",
                    check=at_most(0.15),
                )
            )
        if self.only & {"status", "build", "rebuild"}:
            self.camp("--repo", repo, "status")  # the first status after a bulk add may fill caches
        if "status" in self.only:
            self.log(f"status at {label}")
            status = self.measure(lambda i: self.camp("--repo", repo, "status"), Cell(), f"status at {label}")
            self.rows.append(Row(f"status at {label}", status, self.no_ref(), goal="≤ 1 s", check=at_most(1)))
        output = self.path("store", f"big-{size}.aca")
        can_build = self.camp("build", "--help", check=False).returncode == 0
        if "build" in self.only:
            self.log(f"build at {label}")
            if can_build:

                def build_once(i: int) -> Sample:
                    if os.path.exists(output):
                        os.remove(output)
                    return self.camp("--repo", repo, "build", "-o", output)

                build = self.measure(build_once, Cell(), f"build at {label}")
            else:
                build = Cell(text="n/a (no camp build)")
            self.rows.append(Row(f"build at {label}", build, self.no_ref(), goal="≤ 10 s", check=at_most(10)))
        if "rebuild" in self.only or "status" in self.only:
            self.log(f"one change, then status and rebuild at {label}")
            after = Cell()
            rebuild = Cell() if can_build else Cell(text="n/a (no camp build)")
            if can_build and not os.path.exists(output):
                self.camp("--repo", repo, "build", "-o", output)
            for i in range(r):
                self.camp("--repo", repo, "add", "-m", f"change {i}", extras[2 * r + i])
                after.add(self.camp("--repo", repo, "status"))
                if can_build:
                    rebuild.add(self.camp("--repo", repo, "build", "-o", output))
            if "status" in self.only:
                self.rows.append(
                    Row(
                        f"status at {label}, first after a commit",
                        after,
                        self.no_ref(),
                        goal="≤ 1 s",
                        check=at_most(1),
                    )
                )
            if "rebuild" in self.only:
                self.rows.append(
                    Row(
                        f"rebuild after one change at {label}",
                        rebuild,
                        self.no_ref(),
                        goal="≤ 1 s",
                        check=at_most(1),
                    )
                )
        if "push" in self.only and size == self.sizes[-1]:
            self.push(size, repo, archive, extras[3 * r : 4 * r])

    def archive_sizes(self, size: int, repo: str, archive: str | None) -> None:
        """Bytes of camp build's .aca and of the reference's archive, both of the same ``size`` datasets.

        On the hard-linked corpus identical embedded metadata is stored once, so both
        archives are far smaller than real ones: compare sizes on --distinct data.
        """
        label = f"{size:,}"
        self.log(f"archive sizes at {label}")
        camp = Cell()
        output = self.path("sizes", f"camp-{size}.aca")
        os.makedirs(os.path.dirname(output), exist_ok=True)
        if os.path.exists(output):
            os.remove(output)
        try:
            sample = self.camp("--repo", repo, "build", "-o", output)
            camp.add(sample, os.path.getsize(output))
            camp.peaks = []
        except CommandFailed as exc:
            camp.text = f"n/a ({exc})"[:60]
        ref = self.no_ref()
        if archive:
            ref = Cell(samples=[float(os.path.getsize(archive))])
        self.log(
            f"  camp build: {camp.value or 0:,.0f} bytes; reference: "
            + (f"{ref.value:,.0f} bytes" if ref.value else "-")
        )
        data = "distinct data" if self.distinct else "hard-linked data: use --distinct"
        self.rows.append(Row(f"archive size at {label} ({data})", camp, ref, unit="B"))

    def push(self, size: int, repo: str, archive: str | None, extras: list[str]) -> None:
        """A one-dataset change pushed to a local-folder remote: time and bytes that reached the remote."""
        label = f"{size:,}"
        self.log(f"push at {label}")
        remote = self.path("remote")
        shutil.rmtree(remote, ignore_errors=True)
        os.makedirs(remote)
        time_cell, bytes_cell = Cell(), Cell()
        runs: list[tuple[str, Callable[[int], Sample | None], Cell]] = []
        if self.camp("push", "--help", check=False).returncode != 0:
            time_cell.text = bytes_cell.text = "n/a (no camp push)"
        else:
            try:
                if self.camp("remote", "--help", check=False).returncode == 0:
                    self.camp("--repo", repo, "remote", "add", "bench", remote)
                    target = ["bench"]
                else:
                    target = [remote]
                self.camp("--repo", repo, "push", *target)
            except CommandFailed as exc:
                time_cell.text = f"n/a ({exc})"[:60]
                bytes_cell.text = "n/a"
            else:

                def camp_once(i: int) -> None:
                    if bytes_cell.text:
                        return  # an earlier push failed
                    try:
                        self.camp("--repo", repo, "add", "-m", f"push {i}", extras[i])
                        before = folder_files(remote)
                        sample = self.camp("--repo", repo, "push", *target)
                    except CommandFailed as exc:
                        time_cell.samples, bytes_cell.samples = [], []
                        time_cell.text = f"n/a ({exc})"[:60]
                        bytes_cell.text = "n/a"
                        return
                    time_cell.add(sample)
                    bytes_cell.add(sample, changed_bytes(before, folder_files(remote)))

                runs.append(("camp", camp_once, time_cell))
        ref_time, ref_bytes = self.no_ref(), self.no_ref()
        rclone = shutil.which("rclone") or os.path.join(os.path.dirname(sys.executable), "rclone")
        if archive and os.path.exists(rclone):
            ref_time, ref_bytes = Cell(), Cell()

            def ref_once(i: int) -> None:
                copy = os.path.join(remote + "-ref", "big.aca")
                shutil.rmtree(os.path.dirname(copy), ignore_errors=True)
                sample = run([rclone, "copyto", archive, copy], self.work, self.env)
                ref_time.add(sample)
                ref_bytes.add(sample, os.path.getsize(copy))

            runs.append(("ref", ref_once, ref_time))
        self.alternate(f"push at {label}", runs)
        self.rows.append(
            Row(
                f"push of a one-dataset change at {label}: time (ref: rclone copy of the .aca)",
                time_cell,
                ref_time,
            )
        )
        bytes_cell.peaks, ref_bytes.peaks = [], []  # the same runs as the time row
        self.rows.append(
            Row(
                f"push of a one-dataset change at {label}: bytes (ref: whole .aca)",
                bytes_cell,
                ref_bytes,
                unit="B",
            )
        )

    def main(self) -> str:
        self.log(f"work folder {self.work}; reference {'found' if self.have_ref else 'not installed'}")
        self.make_corpus()
        self.warm_up()
        steps = {
            "startup": self.startup,
            "add1000": self.add1000,
            "hdf5": self.hdf5,
            "images": self.images,
            "open": self.adios_open,
        }
        for name, step in steps.items():
            if name in self.only:
                step()
        if self.only & SIZED:
            self.sized()
        self.log("done")
        return self.report()

    def report(self) -> str:
        load = ""
        try:
            with open("/proc/loadavg", encoding="ascii") as f:
                load = " ".join(f.read().split()[:3])
        except OSError:
            pass
        versions = []
        for dist in ("campaignvcs", "hpc-campaign", "adios2", "dulwich"):
            try:
                from importlib.metadata import version

                versions.append(f"{dist} {version(dist)}")
            except Exception:  # noqa: BLE001 (a missing package is reported as such)
                versions.append(f"{dist} -")
        header = (
            f"{datetime.datetime.now().isoformat(timespec='minutes')}, {platform.node()}, "
            f"{os.cpu_count()} CPUs, load average at the end {load}; Python {platform.python_version()}; "
            + ", ".join(versions)
            + f"\nsizes {','.join(map(str, self.sizes))}, repeat {self.repeat}, "
            f"corpus seed {self.args.seed} ({'distinct' if self.distinct else 'hard-linked'}), "
            f"wall time {time.perf_counter() - self.t0:.0f} s, work folder {self.work}\n\n"
        )
        return header + table(self.rows, self.repeat)


def folder_files(path: str) -> dict[str, tuple[int, int]]:
    """Relative path → (size, mtime_ns) of every file below ``path``."""
    files = {}
    for root, _dirs, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(root, name))
            files[os.path.relpath(os.path.join(root, name), path)] = (st.st_size, st.st_mtime_ns)
    return files


def changed_bytes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> int:
    """Bytes of the files that are new or changed (what was written to the remote)."""
    return sum(size for name, (size, mtime) in after.items() if before.get(name) != (size, mtime))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="campaign sizes (datasets)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument(
        "--workdir", help="work folder (default: a new temporary one; a corpus there is reused)"
    )
    parser.add_argument("--only", help=f"comma-separated subset of: {','.join(MEASUREMENTS)}")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--add-count", type=int, default=1000, help="BP5 datasets added in one call")
    parser.add_argument("--hdf5-count", type=int, default=20, help="HDF5 files for the extraction row")
    parser.add_argument("--image-count", type=int, default=50, help="images for the thumbnail row")
    parser.add_argument(
        "--distinct",
        action="store_true",
        help="use the corpus whose every dataset is written for real (slow to make; real archive sizes)",
    )
    parser.add_argument("--trace", help="append every timed run to this file, in order: ROW<TAB>TOOL<TAB>REPEAT")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    print(Bench(args).main())


if __name__ == "__main__":
    main()
