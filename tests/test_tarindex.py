"""camp tar-index: offsets that really point at each member, in every TAR dialect, read back both ways."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from helpers import missing_part

from campaignvcs import tarindex
from campaignvcs.errors import CampError

WEIRD = ["plain.txt", "a,b.txt", 'it"s.json', "it's.json", 'q"",x.dat', "ünï cödé.txt"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A folder with a BP-like subfolder and files whose names need CSV quoting."""
    root = tmp_path_factory.mktemp("tartree")
    src = root / "src"
    (src / "heat.bp").mkdir(parents=True)
    for i, name in enumerate(["md.idx", "md.0", "mmd.0", "data.0"]):
        (src / "heat.bp" / name).write_bytes(bytes([i]) * (100 + 700 * i))
    for i, name in enumerate(WEIRD):
        (src / name).write_bytes(f"{name}\n".encode() * (i + 1))
    return src


def members_of(root):
    """Relative names of everything under root, as tar stores them."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for n in sorted(dirnames) + sorted(filenames):
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return out


def make_tar(path, src, fmt):
    with tarfile.open(path, "w", format=fmt) as tf:
        for name in members_of(src):
            tf.add(src / name, arcname=name, recursive=False)
    return path


def gnu_tar(*args, cwd):
    if shutil.which("tar") is None:
        missing_part("GNU tar (the tar binary)")
    subprocess.run(["tar", *args], cwd=cwd, check=True, capture_output=True)


def assert_offsets_true(tar_path, entries, src):
    """Every regular entry's data range holds the file's bytes; every header offset is a header."""
    data = open(tar_path, "rb").read()
    assert entries, "no members"
    for e in entries:
        assert e.offset % 512 == 0 and e.offset_data % 512 == 0 and e.offset_data > e.offset
        header = data[e.offset : e.offset + 512]
        assert tarfile.calc_chksums(header)[0] == int(header[148:156].strip(b"\0 ") or b"0", 8)
        if e.type == tarindex.REGULAR:
            assert data[e.offset_data : e.offset_data + e.size] == (src / e.name).read_bytes(), e.name
        elif e.type == tarindex.DIRECTORY:
            assert (src / e.name).is_dir()


@pytest.mark.parametrize(
    "fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"]
)
def test_scan_each_python_format_and_round_trip(tmp_path, tree, fmt):
    path = make_tar(tmp_path / "x.tar", tree, fmt)
    entries = tarindex.scan(str(path))
    assert sorted(e.name for e in entries) == sorted(members_of(tree))
    assert_offsets_true(path, entries, tree)
    text = tarindex.dumps(entries)
    assert tarindex.parse(text, "x") == entries
    # Quoting is CSV: commas stay inside the quoted name, quotes are doubled.
    assert "0," in text and '"a,b.txt"' in text and '"it""s.json"' in text and '"q"""",x.dat"' in text


def test_v7_and_gnu_long_names_from_the_tar_binary(tmp_path, tree):
    deep = tmp_path / "deep"
    shutil.copytree(tree, deep)
    long_dir = deep / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / "long,name.txt").write_text("long\n")
    gnu_tar("--format=gnu", "-cf", str(tmp_path / "gnu.tar"), ".", cwd=deep)
    v7_src = tmp_path / "v7src"
    shutil.copytree(tree, v7_src)
    gnu_tar("--format=v7", "--no-recursion", "-cf", str(tmp_path / "v7.tar"), *members_of(v7_src), cwd=v7_src)
    for name, src in (("gnu.tar", deep), ("v7.tar", v7_src)):
        entries = tarindex.scan(str(tmp_path / name))
        names = {os.path.normpath(e.name) for e in entries}
        assert {n for n in members_of(src)} <= names, name
        entries = [
            tarindex.IndexEntry(e.type, e.offset, e.offset_data, e.size, os.path.normpath(e.name))
            for e in entries
            if e.name not in (".", "./")
        ]
        assert_offsets_true(tmp_path / name, entries, src)
    # V7 stores regular files with type NUL: indexed as 0 like any regular file.
    v7 = tarindex.scan(str(tmp_path / "v7.tar"))
    assert {e.type for e in v7} == {"0", "5"}


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_members_are_marked_and_sized_as_stored(tmp_path, fmt):
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse.dat", "wb") as f:
        f.truncate(4 * 1024 * 1024)
        f.seek(1024 * 1024)
        f.write(b"middle" * 1000)
        f.seek(4 * 1024 * 1024 - 5)
        f.write(b"tail!")
    (src / "after.txt").write_text("after the sparse file\n")
    gnu_tar(f"--format={fmt}", "--sparse", "-cf", str(tmp_path / "s.tar"), "sparse.dat", "after.txt", cwd=src)
    entries = tarindex.scan(str(tmp_path / "s.tar"))
    sparse, after = entries
    assert sparse.type == tarindex.SPARSE and sparse.name == "sparse.dat"
    # Stored size: the data chunks without the holes, read back from the archive itself.
    real = (src / "sparse.dat").read_bytes()
    with tarfile.open(tmp_path / "s.tar") as tf:
        chunks = tf.getmember("sparse.dat").sparse
    stored = b"".join(real[o : o + n] for o, n in chunks)
    assert sparse.size == len(stored) < len(real)
    data = (tmp_path / "s.tar").read_bytes()
    assert data[sparse.offset_data : sparse.offset_data + sparse.size] == stored
    assert (
        after.type == "0"
        and data[after.offset_data : after.offset_data + after.size] == b"after the sparse file\n"
    )
    assert tarindex.parse(tarindex.dumps(entries), "x") == entries
    assert '"S",' in tarindex.dumps(entries)


def test_matches_the_reference_taridx_where_it_works(tmp_path, tree, camp):
    """hpc-campaign's index (names quoted but never escaped) reads back to exactly our rows."""
    ref = shutil.which("hpc_campaign") or os.path.join(os.path.dirname(sys.executable), "hpc_campaign")
    if not os.path.exists(ref):
        missing_part("the reference tool hpc-campaign (pip install .[test])")
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        path = make_tar(tmp_path / f"{fmt}.tar", tree, fmt)
        r = subprocess.run(
            [ref, "taridx", str(path), str(tmp_path / "ref.idx")], capture_output=True, text=True
        )
        assert r.returncode == 0, r.stderr
        theirs = tarindex.load(str(tmp_path / "ref.idx"))
        # The one ambiguity (module docstring): the reference writes q"",x.dat as "q"",x.dat",
        # which is also valid CSV for q",x.dat.
        assert [e for e in theirs if "q" not in e.name] == [
            e for e in tarindex.scan(str(path)) if "q" not in e.name
        ]
        assert [e.name for e in theirs if e.name.startswith("q")] == ['q",x.dat']
        camp("tar-index", path, tmp_path / "ours.idx")
        ours = (tmp_path / "ours.idx").read_text(encoding="utf-8").splitlines()
        reference = (tmp_path / "ref.idx").read_text(encoding="utf-8").splitlines()
        # Byte-identical wherever the reference's output is valid CSV (names without quotes).
        for a, b in zip(ours, reference, strict=True):
            if '"' not in b[b.index('"') + 1 : -1]:
                assert a == b
    # Where the reference crashes (V7's NUL type, GNU sparse 'S'), camp still indexes.
    src = tmp_path / "sp"
    src.mkdir()
    with open(src / "sparse.dat", "wb") as f:
        f.truncate(1 << 20)
        f.write(b"x")
    gnu_tar("--format=gnu", "--sparse", "-cf", str(tmp_path / "sp.tar"), "sparse.dat", cwd=src)
    r = subprocess.run(
        [ref, "taridx", str(tmp_path / "sp.tar"), str(tmp_path / "sp.idx")], capture_output=True, text=True
    )
    assert r.returncode != 0 and "ValueError" in r.stderr
    assert tarindex.scan(str(tmp_path / "sp.tar"))[0].type == "S"


def test_cli_default_output_and_json(tmp_path, tree, camp):
    path = make_tar(tmp_path / "run.tar", tree, tarfile.PAX_FORMAT)
    out = camp("tar-index", path, cwd=tmp_path).output
    assert out == (
        f"wrote {tmp_path / 'run.tar.idx'}: {len(members_of(tree))} members "
        f"({len(members_of(tree)) - 1} files, 1 directory, 0 other)\n"
    )
    assert tarindex.load(str(tmp_path / "run.tar.idx")) == tarindex.scan(str(path))
    import json

    got = json.loads(camp("tar-index", "run.tar", "other.idx", "--json", cwd=tmp_path).output)
    assert got["members"] == len(members_of(tree)) and got["directories"] == 1


@pytest.mark.parametrize(
    "kind, writer",
    [
        ("gzip", lambda d: gzip.compress(d)),
        ("bzip2", lambda d: bz2.compress(d)),
        ("xz", lambda d: lzma.compress(d)),
        ("zstd", lambda d: b"\x28\xb5\x2f\xfd" + d),
    ],
)
def test_compressed_tars_are_refused_with_a_clear_message(tmp_path, tree, camp, kind, writer):
    plain = make_tar(tmp_path / "p.tar", tree, tarfile.USTAR_FORMAT)
    (tmp_path / "c.tar").write_bytes(writer(plain.read_bytes()))
    r = camp("tar-index", tmp_path / "c.tar", ok=False)
    assert r.exit_code == 1
    assert r.stderr == (
        f"camp: error: {tmp_path / 'c.tar'}: is a {kind}-compressed TAR file; index the "
        "uncompressed TAR (readers need offsets into the plain archive)\n"
    )
    assert not (tmp_path / "c.tar.idx").exists()


def test_broken_tars_are_refused_and_write_nothing(tmp_path, tree, camp):
    good = make_tar(tmp_path / "good.tar", tree, tarfile.GNU_FORMAT).read_bytes()
    entries = tarindex.scan(str(tmp_path / "good.tar"))
    third = entries[2].offset
    cases = {
        "empty.tar": b"",
        "random.tar": os.urandom(4096),
        "truncated.tar": good[: entries[-1].offset_data + 3],
        # A damaged header in the middle: tarfile would silently stop listing there.
        "damaged.tar": good[:third] + b"\x07" * 512 + good[third + 512 :],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        r = camp("tar-index", tmp_path / name, ok=False)
        assert r.exit_code == 1 and r.stderr.startswith(f"camp: error: {tmp_path / name}: "), name
        assert len(r.stderr.splitlines()) == 1
        assert not (tmp_path / (name + ".idx")).exists()
    r = camp("tar-index", tmp_path / "missing.tar", ok=False)
    assert "cannot read TAR file (No such file or directory)" in r.stderr
    r = camp("tar-index", tmp_path / "good.tar", tmp_path / "good.tar", ok=False)
    assert "would overwrite the TAR file" in r.stderr


def test_reading_reference_style_and_csv_names():
    text = (
        '5,0,512,0,"heat.bp"\n'
        '0,512,1024,10,"heat.bp/md.idx"\n'
        '0,2048,2560,5,"it"s,a.json"\n'  # reference: quoted, not escaped
        '0,3072,3584,5,"csv ""quoted"", name"\n'  # CSV escaping
        "0,4096,4608,5,unquoted.txt\n"
        '"S",5120,5632,7,"sparse"\n'
        '0,6144,6656,3,"multi\nline"\n'
        "\n"
    )
    got = tarindex.parse(text, "idx")
    assert [e.name for e in got] == [
        "heat.bp",
        "heat.bp/md.idx",
        'it"s,a.json',
        'csv "quoted", name',
        "unquoted.txt",
        "sparse",
        "multi\nline",
    ]
    assert [e.type for e in got] == ["5", "0", "0", "0", "0", "S", "0"]


@pytest.mark.parametrize(
    "line, why",
    [
        ("0,1,2,3\n", "expected type,offset,data offset,size,name"),
        ('0,x,2,3,"n"\n', "offsets and size must be integers"),
        ('0,512,0,3,"n"\n', "bad type or offsets"),
        ('0,0,512,-1,"n"\n', "bad type or offsets"),
        ('0,0,512,3,"unterminated\n', "unterminated quoted name"),
        ('0,0,512,3,""\n', "empty member name"),
    ],
)
def test_malformed_index_lines_name_the_line(line, why):
    with pytest.raises(CampError) as err:
        tarindex.parse('5,0,512,0,"ok"\n' + line, "run.idx")
    assert str(err.value).startswith("run.idx line 2: malformed TAR index line") and why in str(err.value)
