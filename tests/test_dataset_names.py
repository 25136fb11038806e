"""One file, one dataset: its name does not depend on the folder camp add runs in."""

from __future__ import annotations

import json

import make_data


def shown_names(camp, root) -> list[str]:
    return sorted(d["name"] for d in json.loads(camp("--repo", root, "show", "--json").output)["datasets"])


def staged_names(camp, root) -> list[str]:
    st = json.loads(camp("--repo", root, "status", "--json").output)
    return sorted(c["name"] for c in st["staged"] if not c["change"].endswith("host"))


def test_a_dataset_inside_the_campaign_folder_is_named_from_there(tmp_path, camp):
    root = tmp_path / "proj"
    camp("init", root, "--name", "proj", "--host", "laptop")
    run = root / "run"
    run.mkdir()
    make_data.make_bp5(str(run / "x.bp"))
    r = camp("add", "x.bp", cwd=run)
    assert r.stdout == "added: run/x.bp (ADIOS, laptop)\n"
    r = camp("add", "run/x.bp", cwd=root)
    assert r.stdout == "unchanged: run/x.bp (ADIOS, laptop)\n"
    r = camp("add", "../run/x.bp", cwd=run)
    assert r.stdout == "unchanged: run/x.bp (ADIOS, laptop)\n" and r.stderr == ""
    camp("commit", "-m", "x", cwd=root)
    assert shown_names(camp, root) == ["run/x.bp"]


def test_a_file_outside_keeps_the_name_it_was_first_added_under(campaign, camp, tmp_path):
    data = tmp_path / "data"
    (data / "run").mkdir(parents=True)
    (data / "run" / "note.txt").write_text("hello\n")
    assert camp("--repo", campaign, "add", "run/note.txt", cwd=data).stdout == "added: run/note.txt (TEXT, laptop)\n"
    r = camp("--repo", campaign, "add", "note.txt", cwd=data / "run")
    assert r.stdout == "unchanged: run/note.txt (TEXT, laptop)\n"
    (data / "run" / "note.txt").write_text("hello again\n")
    r = camp("--repo", campaign, "add", str(data / "run" / "note.txt"), cwd=tmp_path)
    assert r.stdout == "updated: run/note.txt (TEXT, laptop)\n" and r.stderr == ""  # its name is settled
    assert staged_names(camp, campaign) == ["run/note.txt"]


def test_name_given_records_another_dataset_and_then_ambiguity_is_refused(campaign, camp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "plot.txt").write_text("1 2 3\n")
    camp("--repo", campaign, "add", "plot.txt", cwd=data)
    camp("--repo", campaign, "add", "--name", "figures/plot", "plot.txt", cwd=data)
    assert staged_names(camp, campaign) == ["figures/plot", "plot.txt"]
    r = camp("--repo", campaign, "add", "./plot.txt", cwd=data)  # its own name: no question which
    assert r.stdout == "unchanged: plot.txt (TEXT, laptop)\n"
    sub = data / "sub"
    sub.mkdir()
    r = camp("--repo", campaign, "add", "../plot.txt", cwd=sub, ok=False)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == ("camp: error: ../plot.txt is recorded by datasets figures/plot, plot.txt: "
                                         "give --name NAME to say which one to update")
    assert staged_names(camp, campaign) == ["figures/plot", "plot.txt"]


def test_names_with_dotdot_or_absolute_paths_are_warned_about(campaign, camp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a\n")
    (data / "b.txt").write_text("b\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = camp("--repo", campaign, "add", "../data/a.txt", cwd=elsewhere)
    assert r.stdout == "added: ../data/a.txt (TEXT, laptop)\n"
    assert r.stderr == ("camp: warning: dataset name '../data/a.txt' depends on the folder camp add ran in ('..' or "
                        "an absolute path); give --name NAME for a stable one, or add it from a folder above it\n")
    r = camp("--repo", campaign, "add", str(data / "b.txt"), cwd=elsewhere)
    assert "camp: warning: dataset name '" + str(data / "b.txt") + "' depends on" in r.stderr
    r = camp("--repo", campaign, "add", "--name", "notes/b", str(data / "b.txt"), cwd=elsewhere)
    assert r.stderr == ""
