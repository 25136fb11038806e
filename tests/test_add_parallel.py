"""camp add with worker processes: the same campaign, the same output and the same errors as one process."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from campaignvcs.extract.parallel import map_in_order
from campaignvcs.repo import CampaignRepo


def manifests(root):
    """Every staged dataset as its manifest dict, without the random uuid."""
    with CampaignRepo.open(str(root)) as repo:
        out = []
        for ds in repo.datasets(repo.staged_tree()):
            d = ds.to_dict()
            d.pop("uuid")
            out.append(d)
        return out


@pytest.fixture
def many(tmp_path, example_data):
    """13 datasets of every kind, interleaved so each worker gets some of each."""
    folder = tmp_path / "many"
    folder.mkdir()
    paths = []
    for i in range(3):
        for name in ("heat.bp", "mesh.h5", "plot.png", "notes.txt"):
            stem, ext = os.path.splitext(name)
            target = f"{stem}_{i}{ext}"
            source = example_data / name
            if source.is_dir():
                shutil.copytree(source, folder / target)
            else:
                shutil.copy2(source, folder / target)
            paths.append(target)
    shutil.copytree(example_data / "pressure.bp", folder / "pressure.bp")
    paths.append("pressure.bp")
    return folder, paths


def add(camp, tmp_path, name, folder, paths, jobs, ok=True, extra=()):
    """``camp add`` into a new campaign with ``CAMP_JOBS=jobs``: (campaign, result)."""
    root = tmp_path / name
    camp("init", root, "--name", f"proj/{name}", "--host", "laptop")
    camp.monkeypatch.setenv("CAMP_JOBS", str(jobs))
    try:
        return root, camp("--repo", root, "add", *extra, "--json", *paths, cwd=folder, ok=ok)
    finally:
        camp.monkeypatch.delenv("CAMP_JOBS")


@pytest.mark.parametrize("jobs", [2, 3])
def test_workers_record_exactly_what_one_process_records(camp, tmp_path, many, jobs):
    folder, paths = many
    serial, one = add(camp, tmp_path, "serial", folder, paths, 1, extra=("--thumbnail", "16", "16"))
    parallel, more = add(camp, tmp_path, "parallel", folder, paths, jobs, extra=("--thumbnail", "16", "16"))
    assert manifests(parallel) == manifests(serial)
    assert len(manifests(serial)) == len(paths)
    assert json.loads(more.output) == json.loads(one.output)
    assert [r["path"] for r in json.loads(one.output)] == paths  # results in the order given


@pytest.mark.parametrize("bad", [(3, 4), (4, 5), (2, 9)])
def test_the_first_bad_path_in_order_is_the_error_whichever_process_meets_it(camp, tmp_path, many, bad):
    folder, paths = many
    paths = list(paths)
    broken = folder / "broken.bp"
    shutil.copytree(folder / "heat_0.bp", broken)
    (broken / "md.idx").write_bytes(b"not an index")
    paths[bad[0]] = "broken.bp"
    paths[bad[1]] = "missing.h5"
    serial, one = add(camp, tmp_path, "serial", folder, paths, 1, ok=False)
    parallel, two = add(camp, tmp_path, "parallel", folder, paths, 2, ok=False)
    assert one.exit_code == two.exit_code == 1
    assert two.stderr == one.stderr
    assert two.stderr.count("\n") == 1 and "broken.bp" in two.stderr
    assert manifests(parallel) == manifests(serial) == []  # nothing staged


def test_invalid_camp_jobs_is_one_line_and_stages_nothing(camp, tmp_path, many):
    folder, paths = many
    root, result = add(camp, tmp_path, "c", folder, paths, "two", ok=False)
    assert result.exit_code == 1
    assert result.stderr == ("camp: error: invalid CAMP_JOBS: 'two' "
                             "(a number of processes, 1 for no worker processes)\n")
    assert manifests(root) == []


def test_many_slow_items_go_to_workers_in_order():
    parent = os.getpid()

    def work(i):
        time.sleep(0.004)
        return i, os.getpid()

    done = []
    out = map_in_order(work, list(range(60)), None, lambda n, total: done.append((n, total)))
    assert [i for i, _ in out] == list(range(60))
    assert parent in {pid for _, pid in out}
    if len(os.sched_getaffinity(0)) > 1:
        assert len({pid for _, pid in out}) > 1  # worth forking: ~0.24 s of work
    assert done[-1] == (60, 60) and [n for n, _ in done] == sorted(n for n, _ in done)


def test_few_quick_items_stay_in_this_process():
    # The estimate is wall time: this process losing the CPU for a few ms between two items (a
    # loaded machine, parallel tests) makes 50 quick items look worth forking. One try in three
    # must stay here; a real regression forks every time.
    pids = [{pid for _, pid in map_in_order(lambda i: (i, os.getpid()), list(range(50)))} for _ in range(3)]
    assert {os.getpid()} in pids, pids


def test_a_worker_that_dies_has_its_share_done_here():
    parent = os.getpid()

    def work(i):
        if os.getpid() != parent:
            os._exit(3)  # killed mid-way (OOM killer, a signal)
        return i * i

    assert map_in_order(work, list(range(10)), 2) == [i * i for i in range(10)]


class Unpicklable(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}/{b}")


def test_an_error_that_does_not_pickle_comes_back_as_its_text():
    parent = os.getpid()

    def work(i):
        if i == 1 and os.getpid() != parent:
            raise Unpicklable("x", "y")
        return i

    with pytest.raises(RuntimeError, match=r"^Unpicklable: x/y$"):
        map_in_order(work, list(range(4)), 2)


def test_the_pack_camp_writes_is_one_stock_git_reads(camp, tmp_path, many):
    """Over 64 objects go into one pack written by camp itself, compressed payloads stored as they are."""
    import subprocess

    folder, paths = many
    for i in range(30):  # distinct objects: copies would be stored once
        (folder / f"note_{i}.txt").write_text(f"note {i}\n" * (i + 1))
    paths = paths + [f"note_{i}.txt" for i in range(30)]
    root, _ = add(camp, tmp_path, "packed", folder, paths, 2, extra=("--store",))
    packs = list((root / ".git" / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, check=False)  # noqa: E731
    assert git("verify-pack", str(packs[0])).returncode == 0
    camp("--repo", root, "commit", "-m", "all")
    assert git("fsck", "--strict", "--full").returncode == 0
    with CampaignRepo.open(str(root)) as repo:
        for ds in repo.datasets(repo.tree_of(repo.head())):
            for f in ds.replicas[0].files:
                assert git("cat-file", "blob", f.blob).stdout == repo.read_blob(f.blob.encode())


def test_streamed_results_come_in_order_while_the_consumer_works():
    from campaignvcs.extract.parallel import imap_in_order

    parent = os.getpid()
    seen = []
    for i, pid in imap_in_order(lambda i: (i, os.getpid()), list(range(100)), 2):
        seen.append((i, pid))
        time.sleep(0.0005)  # the consumer's own work per result
    assert [i for i, _ in seen] == list(range(100))
    assert parent not in {pid for _, pid in seen}  # once workers run, they compute every item


def test_streamed_error_is_the_first_failing_item_in_order():
    from campaignvcs.extract.parallel import imap_in_order

    def work(i):
        if i in (7, 12):
            raise ValueError(f"item {i}")
        return i

    got = []
    with pytest.raises(ValueError, match="^item 7$"):
        for value in imap_in_order(work, list(range(40)), 3):
            got.append(value)
    assert got == list(range(7))


def test_a_streaming_worker_that_dies_has_its_items_done_here():
    from campaignvcs.extract.parallel import imap_in_order

    parent = os.getpid()

    def work(i):
        if os.getpid() != parent and i >= 20:
            os._exit(3)  # killed mid-way, after sending some results
        return i * i

    assert list(imap_in_order(work, list(range(60)), 2)) == [i * i for i in range(60)]


def test_closing_the_stream_early_stops_its_workers():
    from campaignvcs.extract.parallel import imap_in_order

    def work(i):
        time.sleep(0.01)
        return os.getpid()

    stream = imap_in_order(work, list(range(400)), 2)
    workers = {next(stream), next(stream)}
    stream.close()
    for pid in workers:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: nothing left running


def test_loose_objects_camp_writes_are_ones_stock_git_reads(camp, tmp_path, many):
    """A few datasets go into loose objects; compressed payloads are stored as they are, still valid zlib."""
    import subprocess

    folder, paths = many
    root, _ = add(camp, tmp_path, "loose", folder, ["mesh_0.h5", "heat_0.bp"], 1)
    objects = [p for p in (root / ".git" / "objects").glob("??/*")]
    assert objects and not list((root / ".git" / "objects" / "pack").glob("*.pack"))
    camp("--repo", root, "commit", "-m", "two")
    git = lambda *a: subprocess.run(["git", *a], cwd=root, capture_output=True, check=False)  # noqa: E731
    assert git("fsck", "--strict", "--full").returncode == 0
    with CampaignRepo.open(str(root)) as repo:
        for ds in repo.datasets(repo.tree_of(repo.head())):
            for f in ds.replicas[0].files:
                assert git("cat-file", "blob", f.blob).stdout == repo.read_blob(f.blob.encode())
