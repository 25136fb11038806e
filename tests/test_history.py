"""diff, whereis (--history) and log --replicas: where a dataset is, where it was, who moved it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import make_data

from campaignvcs.model import Dataset, EmbeddedFile, HostName, Replica
from campaignvcs.repo import CampaignRepo

IDENTITY = b"Bench <bench@example.org>"


def as_author(monkeypatch, name):
    monkeypatch.setenv("CAMP_AUTHOR_NAME", name)
    monkeypatch.setenv("CAMP_AUTHOR_EMAIL", f"{name.lower()}@example.org")


def head(root):
    with CampaignRepo.open(str(root)) as repo:
        return repo.head().decode()


def jrun(camp, *args, **kw):
    return json.loads(camp(*args, "--json", **kw).output)


def test_whereis_history_tells_host_to_tape_to_deleted_original(campaign, camp, data, tmp_path, monkeypatch):
    """The story: recorded on the laptop, archived into a tape TAR, original removed, then all deleted."""
    d = os.path.realpath(data)
    as_author(monkeypatch, "Alice")
    camp("--repo", campaign, "add", "-m", "run 1 outputs", "heat.bp", "pressure.bp", cwd=data)
    c1 = head(campaign)

    as_author(monkeypatch, "Bob")
    subprocess.run(["tar", "-cf", str(tmp_path / "run1.tar"), "heat.bp"], cwd=data, check=True)
    camp("tar-index", tmp_path / "run1.tar")
    camp(
        "--repo",
        campaign,
        "archive",
        "add",
        "HPSS",
        "tape",
        "/arch/proj",
        "run1.tar",
        "run1.tar.idx",
        cwd=tmp_path,
    )
    camp("--repo", campaign, "commit", "-m", "heat.bp to tape")
    c2 = head(campaign)

    as_author(monkeypatch, "Carol")
    laptop_id = next(
        r["id"]
        for r in jrun(camp, "--repo", campaign, "whereis", "heat.bp")["replicas"]
        if r["host"] == "laptop"
    )
    camp("--repo", campaign, "rm", "--replica", laptop_id)
    camp("--repo", campaign, "commit", "-m", "scratch purged")
    c3 = head(campaign)

    # Unrelated commits in between are not walked into the story.
    as_author(monkeypatch, "Dave")
    camp("--repo", campaign, "add", "-m", "notes", "notes.txt", cwd=data)
    camp("--repo", campaign, "rm", "heat.bp")
    camp("--repo", campaign, "commit", "-m", "heat.bp retired")
    c5 = head(campaign)

    w = jrun(camp, "--repo", campaign, "whereis", "heat.bp", "--history")
    assert (w["state"], w["replicas"]) == ("deleted", [])
    story = [
        (
            e["commit"],
            e["author"].split(" <")[0],
            e["event"],
            e["replica"] and (e["replica"]["host"], e["replica"]["dir"], e["replica"]["archive"]),
        )
        for e in w["history"]
    ]
    tape_where = ("tape", "/arch/proj", "run1.tar")
    assert story == [
        (c1, "Alice", "created", None),
        (c1, "Alice", "appeared", ("laptop", d, None)),
        (c2, "Bob", "archived", tape_where),
        (c3, "Carol", "removed", ("laptop", d, None)),
        (c5, "Dave", "removed", tape_where),
        (c5, "Dave", "deleted", None),
    ]
    assert [e["message"] for e in w["history"]][2:4] == ["heat.bp to tape", "scratch purged"]
    removed = w["history"][3]["replica"]
    assert removed["id"] == laptop_id and removed["deltime"] > 0
    # Dates are the commits' dates.
    with CampaignRepo.open(str(campaign)) as repo:
        assert w["history"][2]["time"] == repo.read_commit(c2.encode()).author_time

    # At c2 the dataset lived in both places; whereis --rev answers for any commit.
    at_c2 = jrun(camp, "--repo", campaign, "whereis", "heat.bp", "--rev", c2)
    assert sorted((r["host"], r["archive"], r["path"]) for r in at_c2["replicas"]) == [
        ("laptop", None, "heat.bp"),
        ("tape", "run1.tar", "heat.bp"),
    ]

    text = camp("--repo", campaign, "whereis", "heat.bp", "--history").output
    assert f"  {c2[:10]}  " in text and "Bob <bob@example.org>  heat.bp to tape" in text
    assert f"archived replica {w['history'][2]['replica']['id']} tape:/arch/proj[run1.tar]/heat.bp" in text

    # log --replicas: only commits that changed where heat.bp lives (all four here), newest first.
    log = jrun(camp, "--repo", campaign, "log", "--replicas", "heat.bp")
    assert [e["id"] for e in log] == [c5, c3, c2, c1]
    everything = jrun(camp, "--repo", campaign, "log", "--replicas")
    assert [(e["id"], e["datasets"]) for e in everything][:3] == [
        (c5, ["heat.bp"]),
        (head_of(campaign, "HEAD~1"), ["notes.txt"]),
        (c3, ["heat.bp"]),
    ]


def head_of(root, rev):
    with CampaignRepo.open(str(root)) as repo:
        return repo.resolve(rev).decode()


def test_archive_move_in_one_commit_and_staged_events(campaign, camp, data, monkeypatch):
    as_author(monkeypatch, "Alice")
    camp("--repo", campaign, "add", "-m", "run", "pressure.bp", cwd=data)
    camp("--repo", campaign, "archive", "add", "Kronos", "tape", "/k", "y1.tar")
    camp("--repo", campaign, "archive", "replica", "pressure.bp", "tape:/k:y1.tar", "--move")
    # Before the commit, the staged change is part of the story.
    w = jrun(camp, "--repo", campaign, "whereis", "pressure.bp", "--history")
    assert [(e["commit"], e["event"]) for e in w["history"]][-2:] == [(None, "archived"), (None, "removed")]
    assert "staged, not committed" in camp("--repo", campaign, "whereis", "pressure.bp", "--history").output
    as_author(monkeypatch, "Bob")
    camp("--repo", campaign, "commit", "-m", "to tape")
    w = jrun(camp, "--repo", campaign, "whereis", "pressure.bp", "--history")
    assert [
        (e["author"].split(" <")[0], e["event"], e["replica"] and e["replica"]["host"]) for e in w["history"]
    ] == [
        ("Alice", "created", None),
        ("Alice", "appeared", "laptop"),
        ("Bob", "archived", "tape"),
        ("Bob", "removed", "laptop"),
    ]
    assert [r["host"] for r in w["replicas"]] == ["tape"]
    # The diff of that commit calls it a move.
    d = jrun(camp, "--repo", campaign, "diff", "HEAD~1", "HEAD")
    (ds,) = d["datasets"]
    (move,) = ds["replicas"]
    assert (ds["name"], ds["change"], move["change"]) == ("pressure.bp", "modified", "moved")
    assert (move["before"]["host"], move["replica"]["host"], move["replica"]["archive"]) == (
        "laptop",
        "tape",
        "y1.tar",
    )
    text = camp("--repo", campaign, "diff", "HEAD~1", "HEAD").output
    assert f"  moved    laptop:{os.path.realpath(data)}/pressure.bp -> tape:/k[y1.tar]/pressure.bp" in text


def test_whereis_lists_live_replicas_with_ids_and_errors(campaign, camp, data):
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "add", "--host", "cluster", "heat.bp", cwd=data)
    w = jrun(camp, "--repo", campaign, "whereis", "heat.bp")
    assert w["state"] == "live" and w["history"] is None and len(w["uuid"]) == 32
    assert {r["host"] for r in w["replicas"]} == {"laptop", "cluster"}
    for r in w["replicas"]:
        assert set(r) >= {"id", "host", "dir", "path", "archive", "size", "mtime", "checksum", "key"}
        assert len(r["id"]) == 8 and r["path"] == "heat.bp" and r["archive"] is None
    text = camp("--repo", campaign, "whereis", "heat.bp").output
    assert text.startswith(f"heat.bp (ADIOS, uuid {w['uuid']})\n")
    assert all(r["id"] in text for r in w["replicas"])
    r = camp("--repo", campaign, "whereis", 'nothing" OR "1"="1', ok=False)
    assert (
        r.exit_code == 1
        and r.stderr == """camp: error: no dataset named 'nothing" OR "1"="1' in the campaign\n"""
    )
    # Renamed away: absent now, but its history is still there.
    camp("--repo", campaign, "commit", "-m", "heat")
    camp("--repo", campaign, "mv", "heat.bp", "heat-renamed.bp")
    camp("--repo", campaign, "commit", "-m", "rename")
    gone = jrun(camp, "--repo", campaign, "whereis", "heat.bp", "--history")
    assert gone["state"] == "absent" and gone["kind"] == "ADIOS" and gone["uuid"] == w["uuid"]
    assert [e["event"] for e in gone["history"]][-1] == "dropped"
    assert jrun(camp, "--repo", campaign, "whereis", "heat-renamed.bp")["uuid"] == w["uuid"]


def test_diff_reports_datasets_replicas_metadata_hosts_and_series(campaign, camp, data, tmp_path):
    camp("--repo", campaign, "add", "-m", "base", "heat.bp", "pressure.bp", "notes.txt", cwd=data)
    base = head(campaign)
    assert (
        camp("--repo", campaign, "diff").output == f"no differences between HEAD ({base[:10]}) and staged\n"
    )
    # heat.bp gains a step (new metadata object), pressure.bp a copy elsewhere, notes.txt goes.
    shutil.rmtree(data / "heat.bp")
    make_data.make_bp5(str(data / "heat.bp"), steps=4, seed=1)
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "replica", "add", "pressure.bp", "--host", "frontier", "--dir", "/lustre")
    camp("--repo", campaign, "rm", "notes.txt")
    camp("--repo", campaign, "add", "mesh.h5", cwd=data)
    camp("--repo", campaign, "timeseries", "s", "heat.bp", "pressure.bp")
    d = jrun(camp, "--repo", campaign, "diff")
    assert (d["old"], d["new"], d["old_commit"], d["new_commit"]) == ("HEAD", "staged", base, None)
    by = {c["name"]: c for c in d["datasets"]}
    assert {n: c["change"] for n, c in by.items()} == {
        "heat.bp": "modified",
        "pressure.bp": "modified",
        "notes.txt": "deleted",
        "mesh.h5": "added",
    }
    (heat_rep,) = by["heat.bp"]["replicas"]
    assert heat_rep["change"] == "changed" and {"size", "mtime", "checksum", "files"} <= set(
        heat_rep["fields"]
    )
    meta = {m["name"]: m for m in by["heat.bp"]["metadata"]}
    assert meta["metadata"]["change"] == "changed" and meta["metadata"]["old"] != meta["metadata"]["new"]
    assert [(r["change"], r["replica"]["host"]) for r in by["pressure.bp"]["replicas"]] == [
        ("added", "frontier")
    ]
    assert by["pressure.bp"]["metadata"] == []
    assert [r["change"] for r in by["notes.txt"]["replicas"]] == ["removed"]
    assert [(h["name"], h["change"]) for h in d["hosts"]] == [("frontier", "added")]
    assert [(s["name"], s["change"], s["after"]) for s in d["timeseries"]] == [
        ("s", "added", ["heat.bp", "pressure.bp"])
    ]
    text = camp("--repo", campaign, "diff").output
    assert "dataset deleted notes.txt [TEXT]" in text and "  + added   frontier:/lustre/pressure.bp" in text
    assert (
        "  metadata metadata changed (" in text and "time series added s: - -> heat.bp, pressure.bp" in text
    )
    camp("--repo", campaign, "commit", "-m", "second")
    # One REV: staged against it; two: between them. Both directions.
    assert jrun(camp, "--repo", campaign, "diff", base)["datasets"] == d["datasets"]
    back = jrun(camp, "--repo", campaign, "diff", "HEAD", base)
    assert {c["name"]: c["change"] for c in back["datasets"]} == {
        "heat.bp": "modified",
        "pressure.bp": "modified",
        "notes.txt": "revived",
        "mesh.h5": "removed",
    }
    assert jrun(camp, "--repo", campaign, "diff", "HEAD", "HEAD")["datasets"] == []
    r = camp("--repo", campaign, "diff", "nosuchrev", ok=False)
    assert r.exit_code == 1 and r.stderr == "camp: error: unknown revision: nosuchrev\n"


def test_log_replicas_skips_metadata_only_commits(campaign, camp, data):
    camp("--repo", campaign, "add", "-m", "first", "heat.bp", cwd=data)
    make_data.make_bp5(str(data / "heat.bp"), steps=5, seed=1)
    camp("--repo", campaign, "add", "-m", "more steps, same place", "heat.bp", cwd=data)
    camp("--repo", campaign, "timeseries", "s", "heat.bp")
    camp("--repo", campaign, "commit", "-m", "series only")
    camp("--repo", campaign, "add", "-m", "second copy", "--host", "cluster", "heat.bp", cwd=data)
    msgs = [e["message"].strip() for e in jrun(camp, "--repo", campaign, "log", "--replicas")]
    assert msgs == ["second copy", "first"]
    assert [e["message"].strip() for e in jrun(camp, "--repo", campaign, "log", "heat.bp")] == [
        "second copy",
        "more steps, same place",
        "first",
    ]
    text = camp("--repo", campaign, "log", "--replicas", "-n", "1").output
    assert "second copy" in text and "replica locations changed: heat.bp" in text and "first" not in text


def synthetic(i: int) -> Dataset:
    f = EmbeddedFile("metadata", "0" * 40, 1, 10, 10, 1, "a" * 40)
    r = Replica(
        HostName("laptop"), "/data", f"run{i}.bp", 100 + i, 1_700_000_000_000_000_000, "c" * 40, files=(f,)
    )
    return Dataset(f"run{i}.bp", f"{i:032x}", "ADIOS", 1_700_000_000_000_000_000, replicas=(r,))


def test_diff_cost_follows_the_change_not_the_campaign(campaign, camp, monkeypatch):
    """3,000 datasets, one changes: diff opens a handful of objects (equal subtrees are skipped)."""
    with CampaignRepo.open(str(campaign)) as repo, repo.transaction() as tx:
        repo.add_blob(b"x")  # blob ids in manifests need not exist for a diff
        for i in range(3000):
            tx.stage_dataset(synthetic(i))
        tx.commit("3000 datasets", IDENTITY)
    with CampaignRepo.open(str(campaign)) as repo, repo.transaction() as tx:
        ds = synthetic(1234)
        moved = Replica(
            HostName("tape"),
            "/arch",
            ds.replicas[0].path,
            ds.replicas[0].size,
            1,
            "c" * 40,
            archive="",
            files=ds.replicas[0].files,
        )
        tx.stage_dataset(Dataset(ds.name, ds.uuid, ds.kind, ds.modtime, replicas=(moved,)))
        tx.commit("moved one", IDENTITY)
    reads = []
    real = CampaignRepo.read_raw

    def counting(self, oid):
        reads.append(oid)
        return real(self, oid)

    monkeypatch.setattr(CampaignRepo, "read_raw", counting)
    t0 = time.process_time()  # CPU time: the work done, whatever else the machine runs
    d = jrun(camp, "--repo", campaign, "diff", "HEAD~1", "HEAD")
    elapsed = time.process_time() - t0
    assert [(c["name"], [r["change"] for r in c["replicas"]]) for c in d["datasets"]] == [
        ("run1234.bp", ["moved"])
    ]
    # Per side: root, datasets/, <aa>/, <bb>/, the folder, its manifest; plus the commits.
    assert len(reads) <= 16, len(reads)
    assert elapsed < 2.0
    reads.clear()
    log = jrun(camp, "--repo", campaign, "log", "--replicas", "-n", "1")
    assert log[0]["datasets"] == ["run1234.bp"] and len(reads) <= 20


def test_history_of_a_merge_reports_only_what_the_merge_brought(campaign, camp, data):
    """A merge commit whose version equals one parent's adds no events twice."""
    camp("--repo", campaign, "add", "-m", "base", "heat.bp", cwd=data)
    with CampaignRepo.open(str(campaign)) as repo, repo.transaction() as tx:
        base = repo.head()
        ds = repo.dataset("heat.bp")
        r0 = ds.replicas[0]
        side = ds.with_replica(
            Replica(HostName("cluster"), "/c", "heat.bp", r0.size, r0.mtime, r0.checksum, files=r0.files)
        )
        tx.stage_dataset(side)
        left = tx.commit("copy to cluster", IDENTITY)
        # A merge of "left" and "base" whose tree is left's.
        from dulwich.objects import Commit

        merge = Commit()
        merge.tree = repo.read_commit(left).tree
        merge.parents = [base, left]
        merge.author = merge.committer = IDENTITY
        merge.author_time = merge.commit_time = int(time.time())
        merge.author_timezone = merge.commit_timezone = 0
        merge.message = b"merge\n"
        repo.objects.add_object(merge)
        repo.flush()
        tx.move_branch(left, merge.id)
    w = jrun(camp, "--repo", campaign, "whereis", "heat.bp", "--history")
    assert [(e["message"], e["event"]) for e in w["history"]] == [
        ("base", "created"),
        ("base", "appeared"),
        ("copy to cluster", "appeared"),
    ]


def test_diff_lists_two_archives_added_on_one_host(campaign, camp):
    """Two archival locations on the same host in one change: diff orders them, never an internal error."""
    camp("--repo", campaign, "archive", "add", "fs", "tape01", "/a")
    camp("--repo", campaign, "archive", "add", "HPSS", "tape01", "/b")
    camp("--repo", campaign, "archive", "add", "fs", "tape01", "/b", "run.tar")
    d = jrun(camp, "--repo", campaign, "diff")
    (host,) = d["hosts"]
    assert [(a["dir"], a["tarname"], a["system"]) for a in host["archives_added"]] == [
        ("/a", "", "fs"), ("/b", "", "HPSS"), ("/b", "run.tar", "fs")
    ]
    text = camp("--repo", campaign, "diff").output
    assert text.index("/a") < text.index("/b")
