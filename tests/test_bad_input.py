"""Bad input: one line on stderr, exit != 0, nothing recorded is lost, no stray files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from helpers import assert_one_line_error as assert_clean_failure


@pytest.fixture
def recorded(campaign, camp, example_data, tmp_path):
    """A campaign with one commit and one staged dataset, and a folder of data to add from."""
    data = tmp_path / "data"
    shutil.copytree(example_data, data)
    camp("--repo", campaign, "add", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "heat")
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    return data


def snapshot(root):
    """What must survive a failed command: HEAD, the staging area, the file listing of .git/camp."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    index = (root / ".git" / "camp" / "index.json").read_bytes()
    return head, index, sorted(os.listdir(root / ".git" / "camp"))


def make_bad(data):
    (data / "notbp").mkdir()
    (data / "notbp" / "readme").write_text("x")
    corrupt = data / "corrupt.bp"
    shutil.copytree(data / "heat.bp", corrupt)
    for name in ("md.idx", "md.0", "mmd.0"):
        (corrupt / name).write_bytes(os.urandom(300))
    (data / "trunc.h5").write_bytes((data / "mesh.h5").read_bytes()[:600])
    (data / "fake.png").write_text("this is not an image\n")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["add", "missing.bp"], ["missing.bp", "no such file"]),
        (["add", "notbp"], ["notbp", "not an ADIOS2 BP dataset"]),
        (["add", "corrupt.bp"], ["corrupt.bp", "not a readable ADIOS2 dataset"]),
        (["add", "trunc.h5"], ["trunc.h5"]),
        (["add", "fake.png"], ["fake.png", "not a readable image"]),
        (["add", "--kind", "image", "notes.txt"], ["notes.txt", "not a readable image"]),
        (["add", "notes.txt", "missing.bp"], ["missing.bp"]),
        (["add", "--name", "x", "notes.txt", "plot.png"], ["--name needs exactly one path"]),
        (["add", "--kind", "adios", "notes.txt"], ["notes.txt", "not a directory"]),
        (["show", "nosuchrev"], ["unknown revision: nosuchrev"]),
        (["show", "HEAD~9"], ["unknown revision: HEAD~9"]),
        (["commit", "-m", "  "], ["empty commit message"]),
    ],
)
def test_bad_input_is_one_line_and_loses_nothing(recorded, campaign, camp, args, needles):
    make_bad(recorded)
    before = snapshot(campaign)
    result = camp("--repo", campaign, *args, cwd=recorded, ok=False)
    assert_clean_failure(result, *needles)
    # A misused command line is a usage error (exit 2, pointing at --help); bad data is exit 1.
    usage = args[:2] == ["add", "--name"]
    assert result.exit_code == (2 if usage else 1)
    assert result.stderr.rstrip().endswith("(see 'camp add --help')") == usage
    assert snapshot(campaign) == before
    # The staged dataset is still staged, and nothing of the bad input was.
    st = camp("--repo", campaign, "status", "--json").output
    assert '"pressure.bp"' in st and "missing.bp" not in st and "notes.txt" not in st


def test_path_outside_any_repository(tmp_path, camp):
    outside = tmp_path / "nowhere"
    outside.mkdir()
    result = camp("status", cwd=outside, ok=False)
    assert_clean_failure(result, "not a campaign repository")


def test_non_campaign_repo_option(tmp_path, camp):
    plain = tmp_path / "plain"
    plain.mkdir()
    subprocess.run(["git", "init", "-q", str(plain)], check=True)
    for target in (plain, tmp_path / "does-not-exist"):
        result = camp("--repo", target, "status", cwd=tmp_path, ok=False)
        assert_clean_failure(result, "not a campaign repository", str(target))


def test_second_writer_waits_then_names_the_lock(recorded, campaign, camp):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from campaignvcs.repo import CampaignRepo\n"
         "r = CampaignRepo.open(sys.argv[1])\n"
         "with r.lock():\n"
         "    print('locked', flush=True)\n"
         "    time.sleep(30)\n",
         str(campaign)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(campaign)
        result = camp("--repo", campaign, "add", "notes.txt", cwd=recorded, ok=False)
        assert_clean_failure(result, "locked", str(campaign / ".git" / "camp" / "lock"))
        assert result.exit_code == 3
    finally:
        holder.kill()
        holder.wait()
    assert snapshot(campaign)[:2] == before[:2]
    # A lock left by a dead process on this host does not block forever.
    camp("--repo", campaign, "add", "notes.txt", cwd=recorded)


def test_no_temporary_files_left_anywhere(recorded, campaign, camp, tmp_path, monkeypatch):
    make_bad(recorded)
    # Temporaries through TMPDIR land in a folder of this test's own; names the reference tool
    # hard-codes in /tmp (md_<file>, <w>x<h>.png) are looked for there too, but only the names
    # this test's files would give: other test runs on the machine may write their own.
    private = tmp_path / "tmpdir"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", None)  # recomputed from TMPDIR
    tmp_before = set(os.listdir("/tmp"))
    before = snapshot(campaign)
    for bad, needle in (("corrupt.bp", "not a readable ADIOS2 dataset"), ("trunc.h5", "trunc.h5"),
                        ("fake.png", "not a readable image")):
        result = camp("--repo", campaign, "add", bad, cwd=recorded, ok=False)
        assert_clean_failure(result, bad, needle, status=1)
        assert snapshot(campaign) == before
    # 29x29: a thumbnail size no other test uses
    camp("--repo", campaign, "add", "--thumbnail", "29", "29", "plot.png", cwd=recorded)
    leftovers = [p for p in (campaign / ".git" / "camp").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert os.listdir(private) == []
    ours = ("md_corrupt.bp", "md_trunc.h5", "md_fake.png", "md_plot.png", "29x")
    assert {n for n in set(os.listdir("/tmp")) - tmp_before if n.startswith(ours)} == set()
