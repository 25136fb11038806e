"""Kind detection (issue 19): a file that is not text is never recorded as TEXT without --kind text."""

from __future__ import annotations

import json

from helpers import assert_one_line_error


def test_binary_files_are_refused_as_text_unless_asked(campaign, camp, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "blob.dat").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4)
    (folder / "latin1.txt").write_bytes("température\n".encode("latin-1"))
    (folder / "notes.txt").write_text("plain notes, ünïcode\n", encoding="utf-8")
    (folder / "empty.txt").write_bytes(b"")
    r = camp("--repo", campaign, "add", "blob.dat", cwd=folder, ok=False)
    assert_one_line_error(r, "blob.dat: not a text file (it has NUL bytes)", "--kind text")
    r = camp("--repo", campaign, "add", "latin1.txt", cwd=folder, ok=False)
    assert_one_line_error(r, "latin1.txt: not a text file (byte 4 is not UTF-8)")
    assert json.loads(camp("--repo", campaign, "status", "--json").output)["staged"] == []  # nothing staged
    out = camp("--repo", campaign, "add", "notes.txt", "empty.txt", cwd=folder).output
    assert "added: notes.txt (TEXT, laptop)" in out and "added: empty.txt (TEXT, laptop)" in out
    out = camp("--repo", campaign, "add", "--kind", "text", "blob.dat", "latin1.txt", cwd=folder).output
    assert "added: blob.dat (TEXT, laptop)" in out and "added: latin1.txt (TEXT, laptop)" in out
