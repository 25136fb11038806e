"""Every archive camp builds opens in ADIOS2 2.12.1, whatever happened to the data.

Each test drives one lifecycle through the CLI on real data (BP5 written by adios2, text,
images, TAR files made with Python's tarfile), removes the purged copies from disk as the
scientist's job would, builds with the default options and with --keep-deleted, and opens
each archive with the PyPI adios2 in a child process that reads every variable it lists:
a crash (exit 139) is a test failure, not a lost pytest run. The reader is host ``laptop``
(config.yaml), where the data was recorded; ``tape``, ``web``, ``s3store`` and ``frontier``
are other machines.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import zlib

import make_data
import pytest

OPENER = r"""
import json, sys
import adios2
result = {"opened": False, "variables": {}, "failed": {}}
try:
    reader = adios2.FileReader(sys.argv[1])
except Exception as exc:
    result["error"] = str(exc)
else:
    result["opened"] = True
    variables = reader.available_variables()
    attributes = reader.available_attributes()
    for name, info in sorted(variables.items()):
        steps = int(info["AvailableStepsCount"])
        result["variables"][name] = steps
        try:
            # texts and images whole: ADIOS2 copies them whole whatever the selection
            if info["Shape"] and name + "/__dataset_type__" not in attributes or steps > 1:
                reader.read(name, step_selection=[0, steps])
            else:
                reader.read(name)
        except Exception as exc:
            result["failed"][name] = str(exc)
    try:
        reader.close()
    except Exception:
        pass
print("RESULT " + json.dumps(result), flush=True)
"""
"""Opens argv[1] with ADIOS2, reads every variable whole; prints what happened as one JSON line."""

BP = {"T", "step"}


def adios_open(path):
    """(exit status, what the child saw) of opening ``path`` with ADIOS2 in a child process."""
    proc = subprocess.run([sys.executable, "-c", OPENER, str(path)], capture_output=True, text=True,
                          env=dict(os.environ), timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return proc.returncode, json.loads(lines[-1][len("RESULT "):]) if lines else None


@pytest.fixture
def reader(clean_env, tmp_path):
    """config.yaml of the reader (and writer): this host is ``laptop``; returns the hosts.yaml path."""
    cfg = clean_env / ".config" / "hpc-campaign"
    cfg.mkdir(parents=True)
    (cfg / "config.yaml").write_text(
        f"Campaign:\n  hostname: laptop\n  campaignstorepath: {tmp_path / 'store'}\n"
        f"  cachepath: {tmp_path / 'cache'}\n"
    )
    return cfg / "hosts.yaml"


def list_frontier(hosts_yaml):
    """A hosts.yaml entry for frontier, as a collaborator reading remote data has one."""
    hosts_yaml.write_text(
        "frontier:\n  adios:\n    protocol: ssh\n    host: frontier.example.org\n    user: me\n"
        "    authentication: password\n    serverpath: /opt/adios2/bin/adios2_remote_server\n"
    )


@pytest.fixture
def recorded(campaign, camp, data, reader):
    """heat.bp and pressure.bp, a stored note and an image, recorded on laptop and committed."""
    camp("--repo", campaign, "add", "heat.bp", "pressure.bp", "plot.png", cwd=data)
    camp("--repo", campaign, "add", "--store", "notes.txt", cwd=data)
    camp("--repo", campaign, "commit", "-m", "run1")
    return data


def replica_id(camp, campaign, name, host):
    replicas = json.loads(camp("--repo", campaign, "whereis", name, "--json").output)["replicas"]
    (found,) = [r["id"] for r in replicas if r["host"] == host and not r.get("archive")]
    return found


def purge(data, *names):
    """The scratch copies are really gone, as after a purge."""
    for name in names:
        path = data / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def build_both(camp, campaign, tmp_path, *extra):
    """Build with the default options and with --keep-deleted: {option: (path, stderr lines)}."""
    out = {}
    for option in ("--omit-deleted", "--keep-deleted"):
        path = tmp_path / f"{option[2:]}.aca"
        r = camp("--repo", campaign, "build", "-o", path, option, *extra)
        out[option] = (path, r.stderr.splitlines())
    return out


def assert_opens(path, variables, failing=()):
    """ADIOS2 opens ``path`` without crashing and shows exactly ``variables``; only ``failing`` reads fail."""
    status, seen = adios_open(path)
    assert status == 0, f"ADIOS2 ended with status {status} opening {path.name}"
    assert seen["opened"], seen.get("error")
    assert set(seen["variables"]) == set(variables)
    assert set(seen["failed"]) == set(failing), seen["failed"]
    return seen


def warned_left_out(lines, *names):
    """The build said, one line each, that these datasets were left out and why."""
    for name in names:
        (line,) = [ln for ln in lines if ln.startswith(f"camp: warning: {name} left out of the archive:")]
        assert "ADIOS2 2.12.1 crashes (exit 139) on a dataset it finds no replica of" in line
    return lines


def dataset_names(path):
    with sqlite3.connect(path) as con:
        return sorted(n for (n,) in con.execute("select name from dataset"))


# -- moved to tape ------------------------------------------------------------------------


@pytest.mark.parametrize("system", ["HPSS", "Kronos", "fs"])
def test_moved_to_tape(campaign, camp, recorded, tmp_path, system):
    camp("--repo", campaign, "archive", "add", system, "tape", "/arch/proj")
    for name in ("heat.bp", "notes.txt", "plot.png"):
        camp("--repo", campaign, "archive", "replica", name, "tape:/arch/proj", "--move")
    camp("--repo", campaign, "commit", "-m", "to tape")
    purge(recorded, "heat.bp", "notes.txt", "plot.png")
    hint = "which ADIOS2 reads only where the reader's hosts.yaml lists tape" if system == "fs" else \
        "which ADIOS2 never reads"
    for option, (path, lines) in build_both(camp, campaign, tmp_path).items():
        assert_opens(path, {"pressure.bp/T", "pressure.bp/step"})
        warned_left_out(lines, "heat.bp", "notes.txt", "plot.png")
        assert f"tape:/arch/proj[archive]/heat.bp ({system} archive, {hint})" in "\n".join(lines)
        assert dataset_names(path) == ["pressure.bp"]
        if option == "--keep-deleted":  # the scratch replicas' tombstones would send ADIOS2 to purged data
            assert any("the deleted rows of 1 ADIOS dataset (heat.bp)" in ln for ln in lines)


# -- scratch purged after TAR archival ------------------------------------------------------


def make_tar(data, tmp_path, names):
    """run1.tar of ``names`` (made with Python's tarfile, as a tape job would) and its index by camp."""
    tar = tmp_path / "run1.tar"
    with tarfile.open(tar, "w", format=tarfile.GNU_FORMAT) as tf:
        for name in names:
            tf.add(data / name, arcname=name)
    return tar


@pytest.mark.parametrize("system", ["HPSS", "fs"])
def test_scratch_purged_after_tar_archival(campaign, camp, recorded, tmp_path, system):
    make_tar(recorded, tmp_path, ["heat.bp", "notes.txt", "plot.png"])
    camp("tar-index", "run1.tar", cwd=tmp_path)
    out = camp("--repo", campaign, "archive", "add", system, "tape", "/arch", "run1.tar", "run1.tar.idx",
               cwd=tmp_path).output
    assert out.count("archived: ") == 3
    for name in ("heat.bp", "notes.txt", "plot.png"):
        camp("--repo", campaign, "rm", "--replica", replica_id(camp, campaign, name, "laptop"))
    camp("--repo", campaign, "commit", "-m", "scratch purged")
    purge(recorded, "heat.bp", "notes.txt", "plot.png")
    for _option, (path, lines) in build_both(camp, campaign, tmp_path).items():
        assert_opens(path, {"pressure.bp/T", "pressure.bp/step"})
        warned_left_out(lines, "heat.bp", "notes.txt", "plot.png")
        assert "tape:/arch[run1.tar]/heat.bp" in "\n".join(lines)
        assert dataset_names(path) == ["pressure.bp"]


# -- https only -----------------------------------------------------------------------------


def test_https_only(campaign, camp, recorded, tmp_path):
    with open(recorded / "heat.bp" / "md.idx", "rb") as f:
        md_idx = f.read()
    make_data.make_bp5(str(recorded / "old.bp"), steps=2, engine="BP4", seed=7)
    camp("--repo", campaign, "add", "-m", "a BP4 run", "old.bp", cwd=recorded)
    camp("--repo", campaign, "archive", "add", "https", "web", "/srv/www", "--long-host-name", "www.example.org")
    for name in ("heat.bp", "notes.txt", "plot.png", "old.bp"):
        camp("--repo", campaign, "archive", "replica", name, "web:/srv/www", "--move")
    camp("--repo", campaign, "commit", "-m", "published")
    purge(recorded, "heat.bp", "notes.txt", "plot.png", "old.bp")
    for option, (path, lines) in build_both(camp, campaign, tmp_path).items():
        shutil.rmtree(tmp_path / "cache", ignore_errors=True)  # a cold cache, as a new reader has
        seen = assert_opens(
            path,
            {"heat.bp/T", "heat.bp/step", "notes.txt", "plot.png/640x480", "pressure.bp/T", "pressure.bp/step"},
            failing={"heat.bp/T", "plot.png/640x480"},  # their bytes are on www.example.org
        )
        assert seen["variables"]["heat.bp/T"] == 3, option
        assert "getaddrinfo" in seen["failed"]["heat.bp/T"]
        # ADIOS2 reads https replicas with its BP5 engine only: BP4 there would fail the whole open.
        assert [ln for ln in lines if "old.bp: replica" in ln or "left out of the archive" in ln] == [
            "camp: warning: old.bp: replica web:/srv/www[archive]/old.bp left out: it holds BP4 data, and ADIOS2 "
            "2.12.1 reads replicas in https archives with its BP5 engine only (it refuses the whole archive when "
            "it picks one)",
            "camp: warning: old.bp left out of the archive: it has no live replica left that ADIOS2 can read",
        ]
        assert dataset_names(path) == ["heat.bp", "notes.txt", "plot.png", "pressure.bp"]
        # ADIOS2 opens a BP replica in an https archive from md.0, md.idx and mmd.0 in its cache,
        # split out of the recorded metadata object; it asks the web server only for data.
        with sqlite3.connect(path) as con:
            files = dict(con.execute(
                "select f.name, f.data from file f join repfiles x on x.fileid = f.fileid "
                "join replica r on r.rowid = x.replicaid join dataset d on d.rowid = r.datasetid "
                "where d.name = 'heat.bp'"))
        assert sorted(files) == ["md.0", "md.idx", "mmd.0", "profiling.json"]
        assert zlib.decompress(files["md.idx"]) == md_idx


# -- S3 only --------------------------------------------------------------------------------


def test_s3_only(campaign, camp, recorded, tmp_path):
    camp("--repo", campaign, "archive", "add", "S3", "s3store", "bucket/proj")
    camp("--repo", campaign, "archive", "replica", "heat.bp", "s3store:bucket/proj", "--move")
    camp("--repo", campaign, "commit", "-m", "to s3")
    purge(recorded, "heat.bp")
    for _option, (path, lines) in build_both(camp, campaign, tmp_path).items():
        assert_opens(path, {"notes.txt", "plot.png/640x480", "pressure.bp/T", "pressure.bp/step"})
        warned_left_out(lines, "heat.bp")
        assert "s3store:bucket/proj[archive]/heat.bp (S3 archive, which ADIOS2 reads only where the " \
               "reader's hosts.yaml lists s3store, and only when built with the AWS SDK" in "\n".join(lines)
        assert dataset_names(path) == ["notes.txt", "plot.png", "pressure.bp"]


# -- only on remote hosts -------------------------------------------------------------------


def test_only_on_remote_hosts(campaign, camp, recorded, tmp_path, reader):
    for name in ("heat.bp", "notes.txt"):
        camp("--repo", campaign, "replica", "add", name, "--host", "frontier", "--dir", "/lustre/proj")
        camp("--repo", campaign, "rm", "--replica", replica_id(camp, campaign, name, "laptop"))
    camp("--repo", campaign, "commit", "-m", "moved to frontier")
    purge(recorded, "heat.bp", "notes.txt")
    built = build_both(camp, campaign, tmp_path)
    for _option, (path, lines) in built.items():
        assert [ln for ln in lines if "left out of the archive" in ln] == [], lines
        assert dataset_names(path) == ["heat.bp", "notes.txt", "plot.png", "pressure.bp"]
        # Without a hosts.yaml entry for frontier ADIOS2 refuses the archive — a clean error, no crash.
        status, seen = adios_open(path)
        assert status == 0 and not seen["opened"] and "No acceptable protocol" in seen["error"]
    list_frontier(reader)
    for _option, (path, _lines) in built.items():
        seen = assert_opens(
            path, {"heat.bp/T", "heat.bp/step", "notes.txt", "plot.png/640x480", "pressure.bp/T",
                   "pressure.bp/step"},
            failing={"heat.bp/T"},  # the data is on frontier: read through the connector, not running here
        )
        assert seen["variables"]["heat.bp/T"] == 3  # the embedded metadata: all steps, without frontier


# -- time series members in all those states ------------------------------------------------


def test_time_series_members_in_every_state(campaign, camp, data, tmp_path, reader):
    runs = tmp_path / "runs"
    runs.mkdir()
    members = [f"s{i}.bp" for i in range(6)]
    for i, name in enumerate(members):
        make_data.make_bp5(str(runs / name), steps=1, seed=i)
    camp("--repo", campaign, "add", *members, cwd=runs)
    camp("--repo", campaign, "timeseries", "run", *members)
    camp("--repo", campaign, "archive", "add", "HPSS", "tape", "/arch")
    camp("--repo", campaign, "archive", "add", "S3", "s3store", "bucket")
    camp("--repo", campaign, "archive", "add", "https", "web", "/srv", "--long-host-name", "www.example.org")
    camp("--repo", campaign, "commit", "-m", "series")
    camp("--repo", campaign, "archive", "replica", "s1.bp", "tape:/arch", "--move")       # on tape
    camp("--repo", campaign, "replica", "add", "s2.bp", "--host", "frontier", "--dir", "/lustre")
    camp("--repo", campaign, "rm", "--replica", replica_id(camp, campaign, "s2.bp", "laptop"))  # remote only
    camp("--repo", campaign, "archive", "replica", "s3.bp", "web:/srv", "--move")         # https only
    camp("--repo", campaign, "archive", "replica", "s4.bp", "s3store:bucket", "--move")   # S3 only
    camp("--repo", campaign, "archive", "replica", "s5.bp", "web:/srv")                   # here and on the web
    camp("--repo", campaign, "commit", "-m", "members everywhere")
    purge(runs, "s1.bp", "s2.bp", "s3.bp", "s4.bp")
    list_frontier(reader)
    for _option, (path, lines) in build_both(camp, campaign, tmp_path).items():
        seen = assert_opens(path, {"run/T", "run/step", "s3.bp/T", "s3.bp/step"},
                            failing={"run/T", "s3.bp/T"})  # s2 is on frontier, s3 on www.example.org
        assert seen["variables"]["run/T"] == 3
        warned_left_out(lines, "s1.bp", "s4.bp")
        text = "\n".join(lines)
        # ADIOS2 reads a series through one I/O object: an https member would take it over.
        assert "camp: warning: s3.bp written outside time series run, as a dataset of its own" in text
        assert "camp: warning: s5.bp: replica web:/srv[archive]/s5.bp left out of time series run" in text
        with sqlite3.connect(path) as con:
            series = con.execute("select d.name, d.tsorder from dataset d join timeseries t on t.tsid = d.tsid "
                                 "where t.name = 'run' order by d.tsorder").fetchall()
        assert series == [("s0.bp", 0), ("s2.bp", 1), ("s5.bp", 2)]


def test_a_series_member_archived_into_a_tar_on_this_host(campaign, camp, tmp_path, reader):
    """ADIOS2 reads a member on its own host at dir/path, never through the TAR index: that replica goes."""
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(3):
        make_data.make_bp5(str(runs / f"m{i}.bp"), steps=1, seed=i)
    camp("--repo", campaign, "add", "m0.bp", "m1.bp", "m2.bp", cwd=runs)
    camp("--repo", campaign, "timeseries", "run", "m0.bp", "m1.bp", "m2.bp")
    make_tar(runs, tmp_path, ["m1.bp"])
    camp("tar-index", "run1.tar", cwd=tmp_path)
    camp("--repo", campaign, "archive", "add", "fs", "laptop", tmp_path, "run1.tar", "run1.tar.idx", cwd=tmp_path)
    camp("--repo", campaign, "commit", "-m", "m1 also in a TAR here")
    for _option, (path, lines) in build_both(camp, campaign, tmp_path).items():
        seen = assert_opens(path, {"run/T", "run/step"})
        assert seen["variables"]["run/T"] == 3
        assert any(ln.startswith(f"camp: warning: m1.bp: replica laptop:{tmp_path}[run1.tar]/m1.bp in a TAR file "
                                 "left out of time series run") for ln in lines), lines


# -- camp build --check ---------------------------------------------------------------------


def check_lines(result):
    return [ln for ln in result.stdout.splitlines() if ln.startswith("check")]


def test_check_lists_what_the_installed_adios2_cannot_read(campaign, camp, recorded, tmp_path, reader):
    r = camp("--repo", campaign, "build", "--check")
    assert check_lines(r)[-1] == "check: ok: ADIOS2 opened the archive and read all 4 datasets (6 variables)"
    camp("--repo", campaign, "archive", "add", "https", "web", "/srv", "--long-host-name", "www.example.org")
    camp("--repo", campaign, "archive", "replica", "heat.bp", "web:/srv", "--move")
    camp("--repo", campaign, "commit", "-m", "published")
    purge(recorded, "heat.bp")
    r = camp("--repo", campaign, "build", "--check", ok=False)
    assert r.exit_code == 1
    lines = check_lines(r)
    assert lines[1].startswith("check: cannot read heat.bp: reading heat.bp/T: getaddrinfo failed")
    assert lines[-1] == "check failed: ADIOS2 could not read 1 of 4 datasets"
    # An HDF5 dataset: the PyPI wheel cannot open the archive at all; the check says which kind and the way out.
    camp("--repo", campaign, "add", "-m", "mesh", "mesh.h5", cwd=recorded)
    r = camp("--repo", campaign, "build", "--check", ok=False)
    assert r.exit_code == 1
    assert "camp: warning: this archive lists 1 HDF5 dataset (mesh.h5): ADIOS2 builds without HDF5" in r.stderr
    lines = check_lines(r)
    assert "check: ADIOS2 cannot open the archive: ERROR: this version didn't compile with HDF5 library, " \
           "can't use HDF5 engine" in lines
    assert "check: this ADIOS2 has no HDF5 engine: it cannot open an archive that lists any HDF5 dataset " \
           "(mesh.h5); camp build --exclude-kind HDF5 writes one it can open" in lines
    assert lines[-1] == "check failed: ADIOS2 could not read 5 of 5 datasets"
    r = camp("--repo", campaign, "build", "--check", "--exclude-kind", "HDF5", "-o", tmp_path / "x.aca", "--json",
             ok=False)
    report = json.loads(r.stdout)["check"]
    assert (report["ok"], report["opened"], report["missing_kinds"]) == (False, True, [])
    assert [u["dataset"] for u in report["unreadable"]] == ["heat.bp"]


def test_check_reports_a_crash_instead_of_suffering_it(campaign, camp, recorded, tmp_path, reader):
    from campaignvcs.aca.check import check_archive

    path = tmp_path / "a.aca"
    camp("--repo", campaign, "build", "-o", path)
    with sqlite3.connect(path) as con:  # heat.bp only on tape, as hpc-campaign writes it: ADIOS2 dies
        host = con.execute("insert into host values ('tape', NULL, 0, 0, '')").lastrowid
        folder = con.execute("insert into directory values (?, '/arch', 0, 0)", (host,)).lastrowid
        archive = con.execute("insert into archive values (?, '', 'HPSS', NULL)", (folder,)).lastrowid
        con.execute("update replica set hostid = ?, dirid = ?, archiveid = ? where name = 'heat.bp'",
                    (host, folder, archive))
    assert adios_open(path)[0] == -11  # SIGSEGV: exit 139 in a shell
    report = check_archive(str(path), dict(os.environ))
    assert report.crashed and not report.ok
    assert report.error == "ADIOS2 crashed (SIGSEGV) while opening the archive"
