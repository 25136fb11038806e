"""What a fetch refuses of a downloaded pack (``verify_pack``), and the compact id collections of issue 16.

Each damaged or mismatched pack is refused with one ``RemoteError`` line, before it joins
the store; a sound pack (camp's undeltified one, or one git deltified) gives the ids of
its objects. The push's collections of object ids (``missing_objects``, the pack index)
hold 20 bytes per object and give the same pack, byte for byte, as before.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import struct
import subprocess
import zlib
from array import array

import pytest
from dulwich.pack import write_pack_index

from campaignvcs.oidsets import OidList, OidSet
from campaignvcs.packwrite import encode_entry, pack_index, write_pack_entries
from campaignvcs.remote.rclone import RemoteError
from campaignvcs.remote.transfer import verify_pack
from campaignvcs.repo import CampaignRepo

KINDS = {1: b"commit", 2: b"tree", 3: b"blob"}


def blob(content: bytes) -> tuple[bytes, bytes]:
    """(hex id, pack entry) of a blob."""
    oid = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest().encode()
    return oid, encode_entry(3, content)


def blobs(n: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [blob(b"content %d " % i + rng.randbytes(rng.randrange(0, 3000))) for i in range(n)]


@pytest.fixture
def repo(tmp_path):
    with CampaignRepo.create(str(tmp_path / "repo"), None) as camp:
        yield camp


def write(tmp_path, entries, name="out"):
    return write_pack_entries(str(tmp_path / name), iter(entries), len(entries), durable=False)


def refused(repo, pack, idx=None, name=None) -> str:
    with pytest.raises(RemoteError) as info:
        verify_pack(repo, pack.pack, idx or pack.idx, name or pack.name)
    message = str(info.value)
    assert "\n" not in message
    return message


def rewrite(path, change) -> None:
    os.chmod(path, 0o644)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    change(data)
    with open(path, "wb") as f:
        f.write(data)


def fix_pack_checksum(data: bytearray) -> None:
    data[-20:] = hashlib.sha1(data[:-20]).digest()


def test_a_sound_pack_gives_the_ids_of_its_objects(repo, tmp_path):
    entries = blobs(300)
    pack = write(tmp_path, entries)
    found = verify_pack(repo, pack.pack, pack.idx, pack.name)
    assert found == {oid for oid, _ in entries} and len(found) == 300
    assert entries[7][0] in found and b"0" * 40 not in found and b"xyz" not in found
    assert sorted(found) == sorted(oid for oid, _ in entries)


def test_an_empty_pack_verifies(repo, tmp_path):
    pack = write(tmp_path, [])
    assert verify_pack(repo, pack.pack, pack.idx, pack.name) == set()


def test_a_flipped_byte_in_an_object_is_a_checksum_mismatch(repo, tmp_path):
    pack = write(tmp_path, blobs(50))
    rewrite(pack.pack, lambda d: d.__setitem__(len(d) // 2, d[len(d) // 2] ^ 1))
    message = refused(repo, pack)
    assert message.startswith(f"pack {pack.name} from the remote is damaged (checksum mismatch: Checksum mismatch: "
                              "Expected "), message


def test_a_flipped_byte_in_the_index_is_a_checksum_mismatch(repo, tmp_path):
    pack = write(tmp_path, blobs(50))
    rewrite(pack.idx, lambda d: d.__setitem__(2000, d[2000] ^ 1))
    assert f"pack {pack.name} from the remote is damaged (checksum mismatch: " in refused(repo, pack)


def test_a_truncated_pack_or_index_is_damaged(repo, tmp_path):
    pack = write(tmp_path, blobs(50))
    shutil.copy(pack.pack, tmp_path / "whole.pack")
    rewrite(pack.pack, lambda d: d.__delitem__(slice(len(d) // 2, None)))
    assert refused(repo, pack).startswith(f"pack {pack.name} from the remote is damaged (")
    os.chmod(pack.pack, 0o644)
    shutil.copy(tmp_path / "whole.pack", pack.pack)
    rewrite(pack.idx, lambda d: d.__delitem__(slice(len(d) // 2, None)))
    assert refused(repo, pack).startswith(f"pack {pack.name} from the remote is damaged (")


def test_empty_files_are_damaged(repo, tmp_path):
    pack = write(tmp_path, blobs(3))
    rewrite(pack.pack, lambda d: d.clear())
    assert refused(repo, pack).startswith(f"pack {pack.name} from the remote is damaged (")


def test_a_pack_under_another_name_or_with_another_index_is_refused(repo, tmp_path):
    pack = write(tmp_path, blobs(20))
    other = write(tmp_path, blobs(20, seed=2), "other")
    assert refused(repo, pack, name="pack-" + "0" * 40) == (
        f"pack pack-{'0' * 40} from the remote does not match its name or index")
    assert refused(repo, pack, idx=other.idx) == f"pack {pack.name} from the remote does not match its name or index"


def test_an_index_that_lists_another_object_is_refused(repo, tmp_path):
    entries = blobs(40)
    wrong = [(entries[0][0] if i == 5 else oid, entry) for i, (oid, entry) in enumerate(entries)]
    pack = write(tmp_path, wrong)
    assert refused(repo, pack) == f"pack {pack.name} from the remote holds objects its index does not list"


def test_an_index_with_a_wrong_offset_or_crc_is_refused(repo, tmp_path):
    pack = write(tmp_path, blobs(40))
    with open(pack.idx, "rb") as f:
        good = f.read()
    count = 40
    crcs_at = 8 + 1024 + 20 * count
    offsets_at = crcs_at + 4 * count

    def crc(d):
        d[crcs_at + 12] ^= 1

    def offset(d):
        a, b = offsets_at + 4 * 3, offsets_at + 4 * 9  # two objects' offsets swapped
        d[a:a + 4], d[b:b + 4] = d[b:b + 4], d[a:a + 4]

    for change in (crc, offset):
        os.chmod(pack.idx, 0o644)
        with open(pack.idx, "wb") as f:
            f.write(good)

        def damage(d, change=change):
            change(d)
            d[-20:] = hashlib.sha1(d[:-20]).digest()

        rewrite(pack.idx, damage)
        assert refused(repo, pack) == f"pack {pack.name} from the remote holds objects its index does not list"


def test_an_index_that_lists_fewer_objects_than_the_pack_is_refused(repo, tmp_path):
    entries = blobs(30)
    pack = write(tmp_path, entries)
    fewer = write(tmp_path, entries[:29], "fewer")
    with open(pack.pack, "rb") as f:
        checksum = f.read()[-20:]
    shas = [bytes.fromhex(oid.decode()) for oid, _ in entries[:29]]
    with open(fewer.idx, "rb") as f:
        idx = bytearray(f.read())
    idx[-40:-20] = checksum  # the index of 29 objects, claiming the pack of 30
    idx[-20:] = hashlib.sha1(idx[:-20]).digest()
    os.chmod(pack.idx, 0o644)
    with open(pack.idx, "wb") as f:
        f.write(idx)
    assert len(shas) == 29
    assert refused(repo, pack) == f"pack {pack.name} from the remote holds objects its index does not list"


@pytest.mark.parametrize("damage", ["zlib", "size", "type"])
def test_a_damaged_object_under_a_sound_checksum_is_refused(repo, tmp_path, damage):
    entries = blobs(30)
    oid, entry = entries[10]
    if damage == "zlib":
        bad = entry[:-6] + b"\xff" * 6  # the stream's end and adler32 broken
    elif damage == "size":
        bad = encode_entry(3, b"x" * 10)[:1] + entry[1:]  # a header whose size disagrees with the data
    else:
        bad = bytes([(entry[0] & 0x8F) | (5 << 4)]) + entry[1:]  # type 5 is reserved
    entries[10] = (oid, bad)
    pack = write(tmp_path, entries)
    message = refused(repo, pack)
    assert message.startswith(f"pack {pack.name} from the remote ") and (
        " is damaged (" in message or "holds objects its index does not list" in message), message


def test_junk_between_the_last_object_and_the_checksum_is_refused(repo, tmp_path):
    """As git does: bytes past the last entry are damage, never ignored."""
    entries = blobs(10)
    pack = write(tmp_path, entries)

    def junk(d):
        d[-20:-20] = b"\0" * 7
        fix_pack_checksum(d)

    rewrite(pack.pack, junk)
    with open(pack.pack, "rb") as f:
        checksum = f.read()[-20:]

    def reindex(d):
        d[-40:-20] = checksum
        d[-20:] = hashlib.sha1(d[:-20]).digest()

    rewrite(pack.idx, reindex)
    name = "pack-" + checksum.hex()
    with pytest.raises(RemoteError) as refused_with:
        verify_pack(repo, pack.pack, pack.idx, name)
    assert str(refused_with.value).startswith(f"pack {name} from the remote is damaged ("), refused_with.value


def test_a_pack_git_deltified_verifies(repo, tmp_path):
    git_dir = tmp_path / "g.git"
    subprocess.run(["git", "init", "-q", "--bare", str(git_dir)], check=True)
    base = b"".join(b"line %d of a long text file\n" % i for i in range(400))
    oids = []
    for i in range(5):
        content = base + b"change %d\n" % i
        r = subprocess.run(["git", "--git-dir", str(git_dir), "hash-object", "-w", "--stdin"], input=content,
                           capture_output=True, check=True)
        oids.append(r.stdout.strip())
    subprocess.run(["git", "--git-dir", str(git_dir), "repack", "-a", "-d", "-f", "-q"], check=True,
                   input=b"\n".join(oids))
    # repack -a packs only reachable objects: make them reachable through a tree and commit
    tree_in = b"".join(b"100644 blob %s\tf%d\n" % (o, i) for i, o in enumerate(oids))
    tree = subprocess.run(["git", "--git-dir", str(git_dir), "mktree"], input=tree_in, capture_output=True,
                          check=True).stdout.strip()
    commit = subprocess.run(["git", "--git-dir", str(git_dir), "commit-tree", tree.decode(), "-m", "m"],
                            capture_output=True, check=True, env=dict(os.environ, GIT_AUTHOR_NAME="a",
                            GIT_AUTHOR_EMAIL="a@b", GIT_COMMITTER_NAME="a", GIT_COMMITTER_EMAIL="a@b")).stdout.strip()
    subprocess.run(["git", "--git-dir", str(git_dir), "update-ref", "refs/heads/main", commit.decode()], check=True)
    subprocess.run(["git", "--git-dir", str(git_dir), "repack", "-a", "-d", "-f", "-q"], check=True)
    packs = list((git_dir / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1
    listing = subprocess.run(["git", "verify-pack", "-v", str(packs[0])], capture_output=True, text=True).stdout
    assert any(len(line.split()) == 7 for line in listing.splitlines())  # at least one delta
    found = verify_pack(repo, str(packs[0]), str(packs[0].with_suffix(".idx")), packs[0].stem)
    assert found == set(oids) | {tree, commit}


# -- the push's compact collections -------------------------------------------------------------


def test_oid_set_and_list_hold_ids_as_a_set_and_a_list_would():
    rng = random.Random(5)
    pool = [rng.randbytes(20).hex().encode() for _ in range(3000)]
    pool += [b"ab" + p[2:] for p in pool[:200]]  # ids sharing their first bytes
    seen = OidSet()
    out = OidList()
    expected: list[bytes] = []
    for oid in [rng.choice(pool) for _ in range(8000)]:
        assert seen.add(oid) == (oid not in expected)
        assert oid in seen
        if oid not in expected:
            expected.append(oid)
            out.append(oid)
    assert list(out) == expected and len(out) == len(expected) and len(seen) == len(expected)
    assert expected[3] in out and b"f" * 40 not in out and b"xyz" not in out
    assert b"f" * 40 not in seen


def test_oid_set_tells_ids_that_overlap_across_entries():
    """An id whose bytes appear across two stored ids (not at an id's start) is not taken as stored."""
    a = bytes([0, 1]) + bytes(range(2, 10)) + bytes([0, 1]) + bytes(range(12, 20))
    b = bytes([0, 1]) + bytes(range(100, 118))
    seen = OidSet()
    assert seen.add(a.hex().encode()) and seen.add(b.hex().encode())
    probe = (a + b)[10:30]  # starts as both do: the same bucket, found there at byte 10
    assert probe.hex().encode() not in seen
    assert seen.add(probe.hex().encode()) and len(seen) == 3 and probe.hex().encode() in seen


def test_pack_index_of_flat_ids_equals_the_index_of_a_list():
    rng = random.Random(4)
    shas = [rng.randbytes(20) for _ in range(2000)]
    shas += shas[:10]  # duplicates keep their pack order, as a stable sort does
    offsets = array("Q", sorted(rng.randrange(0, 2**33) for _ in shas))
    crcs = array("I", (rng.randrange(0, 2**32) for _ in shas))
    checksum = rng.randbytes(20)
    expected = io.BytesIO()
    write_pack_index(expected, sorted(zip(shas, offsets, crcs), key=lambda e: e[0]), checksum)
    assert pack_index(shas, offsets, crcs, checksum) == expected.getvalue()
    assert pack_index(b"".join(shas), offsets, crcs, checksum) == expected.getvalue()
    assert pack_index(bytearray(b"".join(shas)), offsets, crcs, checksum) == expected.getvalue()


def test_pack_index_of_nothing():
    expected = io.BytesIO()
    write_pack_index(expected, [], b"\1" * 20)
    assert pack_index([], array("Q"), array("I"), b"\1" * 20) == expected.getvalue()


def test_the_pack_written_is_git_s_and_the_same_bytes_for_the_same_entries(tmp_path):
    entries = blobs(500, seed=9)
    first = write(tmp_path, entries, "a")
    second = write(tmp_path, entries, "b")
    for suffix in ("pack", "idx"):
        with open(getattr(first, suffix), "rb") as f1, open(getattr(second, suffix), "rb") as f2:
            assert f1.read() == f2.read()
    with open(first.idx, "rb") as f:
        idx = f.read()
    expected = io.BytesIO()
    offsets = []
    at = 12
    for _, entry in entries:
        offsets.append(at)
        at += len(entry)
    rows = sorted(((bytes.fromhex(o.decode()), off, zlib.crc32(e)) for (o, e), off in zip(entries, offsets)),
                  key=lambda r: r[0])
    with open(first.pack, "rb") as f:
        checksum = f.read()[-20:]
    write_pack_index(expected, rows, checksum)
    assert idx == expected.getvalue()
    assert struct.unpack(">I", idx[8 + 255 * 4: 8 + 256 * 4])[0] == 500
    if shutil.which("git"):
        r = subprocess.run(["git", "verify-pack", first.idx], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_a_pack_holding_an_object_twice_verifies_once_per_id(repo, tmp_path):
    entries = blobs(20)
    pack = write(tmp_path, [*entries, entries[4], entries[0]])
    found = verify_pack(repo, pack.pack, pack.idx, pack.name)
    assert found == {oid for oid, _ in entries} and len(found) == 20 and len(list(found)) == 20


def test_index_table_reads_back_what_pack_index_wrote_large_offsets_included():
    from campaignvcs.packreader import IndexTable

    rng = random.Random(6)
    shas = [rng.randbytes(20) for _ in range(500)]
    offsets = array("Q", (rng.randrange(0, 2**35) for _ in shas))
    crcs = array("I", (rng.randrange(0, 2**32) for _ in shas))
    table = IndexTable(pack_index(shas, offsets, crcs, b"\0" * 20))
    rows = sorted(zip(shas, offsets, crcs))
    assert table.count == 500
    assert [(table.sha(i), table.offset(i), table.crc(i)) for i in range(500)] == rows
    assert list(table.prefixes()) == [int.from_bytes(s[:8], "big") for s, _, _ in rows]
