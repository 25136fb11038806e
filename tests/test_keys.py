"""camp key, camp add -k, camp cat: key files the reference tool reads (and the other way round),
and encrypted metadata that ADIOS2's published algorithm decrypts.

Argon2i SENSITIVE costs ~4 s and 512 MiB per derivation, so only one test derives
(five derivations, the reference's running beside ours).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import zlib

import pytest
import yaml
from helpers import manifest
from nacl.secret import SecretBox

from campaignvcs.repo import CampaignRepo

REFERENCE = [sys.executable, "-m", "hpc_campaign", "genkey"]


def reference(*args, input="", env=None):
    """Run ``hpc_campaign genkey`` (it reads notes and passwords from stdin without a tty)."""
    return subprocess.run([*REFERENCE, *map(str, args)], input=input, capture_output=True, text=True,
                          env=env, timeout=120)


def reference_bg(*args, input=""):
    proc = subprocess.Popen([*REFERENCE, *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdin.write(input)
    proc.stdin.close()
    return proc


def finish(proc):
    out = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    return out


def blob(root, oid):
    with CampaignRepo.open(str(root)) as repo:
        return repo.read_blob(oid.encode())


def manifest_bytes(root, name):
    from campaignvcs import layout

    with CampaignRepo.open(str(root)) as repo:
        return repo.read_blob(repo.current(layout.dataset_dir(name) + "/" + layout.MANIFEST)[1])


def raw_key(path):
    """The 32-byte key of a plain key file, read the way hpc-campaign reads it."""
    from hpc_campaign.key import Key

    k = Key()
    k.read(str(path))
    return k.get_decrypted_key()


# -- key files -----------------------------------------------------------------------------


def test_generate_writes_the_reference_format_0600_and_never_overwrites(camp, tmp_path):
    path = tmp_path / "keys" / "sub" / "proj.key"
    r = camp("key", "generate", path, "--note", "heat runs 2025")
    text = path.read_text()
    doc = yaml.safe_load(text)
    assert list(doc) == ["note", "id", "key", "date"]
    assert doc["note"] == "heat runs 2025" and len(doc["id"]) == 32 and len(bytes.fromhex(doc["key"])) == 32
    assert f"Generated key {doc['id']}" in r.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["proj.key"]  # no temporary file left behind
    # The reference tool reads it.
    ref = reference("info", path)
    assert ref.returncode == 0 and f"uuid: {doc['id']}" in ref.stdout and "encryption: none" in ref.stdout
    assert raw_key(path) == bytes.fromhex(doc["key"])
    # Never replaced without --force.
    r = camp("key", "generate", path, ok=False)
    assert r.exit_code == 1
    assert r.stderr == f"camp: error: key file {path} already exists (archives may depend on it): " \
                       "pass --force to replace it\n"
    assert path.read_text() == text
    camp("key", "generate", path, "--force")
    assert yaml.safe_load(path.read_text())["id"] != doc["id"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077, 0o277], ids=["000", "022", "077", "277"])
def test_generate_makes_every_missing_folder_0700_and_the_file_0600_whatever_the_umask(camp, tmp_path, umask):
    """``makedirs(mode=0o700)`` gives parents 0777 minus the umask (0777 under umask 000): each folder camp
    creates for a key is 0700; a folder that was there already keeps its mode."""
    existing = tmp_path / "home"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    path = existing / ".config" / "hpc-campaign" / "keys" / "proj.key"
    old = os.umask(umask)
    try:
        camp("key", "generate", path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
    assert camp("key", "info", "--json", path).output.count('"mode": "0600"') == 1


def test_ctrl_c_at_the_password_prompt_is_an_interrupt_not_a_missing_password(tmp_path):
    """Ctrl-C typed on a real terminal (the pty is camp's controlling terminal) while camp asks for a password."""
    import fcntl
    import pty
    import select
    import termios

    from camp_process import CAMP, foreground_signals

    def terminal():
        foreground_signals()  # as a shell starts a command: Ctrl-C is not ignored
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    path = tmp_path / "keys" / "sealed.key"
    main, child = pty.openpty()
    proc = subprocess.Popen([CAMP, "key", "generate", "-p", str(path)], stdin=child, stdout=child, stderr=child,
                            start_new_session=True, preexec_fn=terminal)
    os.close(child)
    out, ended = b"", False
    try:
        while b"New password" not in out:
            ready, _, _ = select.select([main], [], [], 30)
            assert ready, f"camp never asked: {out!r}"
            out += os.read(main, 4096)
        os.write(main, b"\x03")  # what the Ctrl-C key sends; the terminal turns it into SIGINT
        while True:
            ready, _, _ = select.select([main], [], [], 30)
            assert ready, f"camp did not end after Ctrl-C: {out!r}"
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: camp closed the terminal
                break
            if not chunk:
                break
            out += chunk
        ended = True
    finally:
        os.close(main)
        if not ended:  # a failed wait: do not leave camp waiting for a password
            proc.kill()
    assert proc.wait(timeout=30) == 130
    text = out.decode().replace("\r\n", "\n")
    assert "camp: interrupted" in text and "no password given" not in text and "Aborted" not in text
    assert not path.exists()
    assert not path.parent.exists() or os.listdir(path.parent) == []


def test_camp_reads_a_reference_plain_key(camp, tmp_path):
    path = tmp_path / "ref.key"
    assert reference("generate", path, input="made by genkey\n").returncode == 0
    doc = yaml.safe_load(path.read_text())
    info = json.loads(camp("key", "info", path, "--json").output)
    assert info["id"] == doc["id"] and info["note"] == "made by genkey" and info["protected"] is False
    # The reference writes 0644; camp says so.
    assert info["mode"] == "0644"
    assert "readable by others: chmod 600" in camp("key", "info", path).output
    r = camp("key", "verify", path)
    assert r.output == f"key {doc['id']}: valid (not password-protected)\n"


def test_password_keys_interchange_both_ways_and_a_wrong_password_fails(camp, tmp_path, monkeypatch):
    ours, theirs = tmp_path / "ours.key", tmp_path / "theirs.key"
    # The reference seals its key while we seal ours.
    ref_gen = reference_bg("generate", "--password", theirs, input="sealed by genkey\nPw-2 théirs\nPw-2 théirs\n")
    r = camp("key", "generate", "-p", ours, input="Pw 1 ours\nPw 1 ours\n")
    assert "(password-protected)" in r.output
    finish(ref_gen)
    doc = yaml.safe_load(ours.read_text())
    assert list(doc) == ["note", "id", "key", "salt", "date"]
    assert len(bytes.fromhex(doc["key"])) == 72 and len(bytes.fromhex(doc["salt"])) == 16
    assert stat.S_IMODE(ours.stat().st_mode) == 0o600
    # The reference opens our key with our password, while we open theirs.
    ref_verify = reference_bg("verify", ours, input="Pw 1 ours\n")
    monkeypatch.setenv("CAMP_KEY_PASSWORD", "Pw-2 théirs")
    their_id = yaml.safe_load(theirs.read_text())["id"]
    assert camp("key", "verify", theirs).output == f"key {their_id}: password is correct\n"
    assert "Password is correct" in finish(ref_verify)
    # A wrong password is an error (the reference exits 0 here).
    monkeypatch.setenv("CAMP_KEY_PASSWORD", "not it")
    r = camp("key", "verify", theirs, ok=False)
    assert r.exit_code == 1 and r.stderr == f"camp: error: wrong password for key file {theirs}\n"
    assert r.stdout == ""


def test_protected_key_without_a_password_source_is_refused_before_any_work(camp, tmp_path, campaign, data):
    sealed = {"note": "", "id": "ab" * 16, "key": "00" * 72, "salt": "11" * 16, "date": "2025-01-01T00:00:00+00:00"}
    path = tmp_path / "sealed.key"
    path.write_text(yaml.safe_dump(sealed, sort_keys=False))
    r = camp("key", "verify", path, input="", ok=False)
    assert r.exit_code == 1
    assert r.stderr.endswith("camp: error: no password given: type it on a terminal or set CAMP_KEY_PASSWORD\n")
    r = camp("--repo", campaign, "add", "-k", path, "heat.bp", cwd=data, input="", ok=False)
    assert r.exit_code != 0
    assert json.loads(camp("--repo", campaign, "status", "--json").output)["staged"] == []


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("just text", "not a key file (needs 'id' and 'key')"),
    ("id: abc\nkey: zz\n", "not a key file (key or salt is not hex)"),
    ("id: abc\nkey: '0011'\n", "not a key file (the key must be 32 bytes, found 2)"),
    ("id: 'a b'\nkey: 00\n", "not a key file (invalid id 'a b')"),
    ("[unclosed", "not a key file (not YAML)"),
])
def test_bad_key_files_are_one_line_errors(camp, tmp_path, content, message):
    path = tmp_path / "k"
    if content is not None:
        path.write_text(content)
    for verb in ("info", "verify"):
        r = camp("key", verb, path, ok=False)
        assert r.exit_code == 1 and r.stderr == f"camp: error: key file {path}: {message}\n"


# -- encryption ----------------------------------------------------------------------------


@pytest.fixture
def key(camp, tmp_path):
    path = tmp_path / "k.key"
    camp("key", "generate", path)
    return path


def test_add_with_key_seals_every_embedded_object_as_adios2_expects(campaign, camp, data, key, tmp_path):
    import adios2

    key_id = yaml.safe_load(key.read_text())["id"]
    k = raw_key(key)
    camp("--repo", campaign, "add", "-k", key, "heat.bp", cwd=data)
    camp("--repo", campaign, "add", "-k", key, "--store", "notes.txt", cwd=data)
    camp("--repo", campaign, "add", "-k", key, "--store", "--thumbnail", "64", "64", "plot.png", cwd=data)
    with adios2.FileReader(str(data / "heat.bp")) as fr:
        metadata = fr.get_metadata()
    originals = {
        ("heat.bp", "metadata"): metadata,
        ("heat.bp", "profiling.json"): (data / "heat.bp" / "profiling.json").read_bytes(),
        ("notes.txt", "notes.txt"): (data / "notes.txt").read_bytes(),
        ("plot.png", "640x480.png"): (data / "plot.png").read_bytes(),
    }
    secrets = [hashlib.sha1(b).hexdigest() for b in originals.values()]
    seen = set()
    for name in ("heat.bp", "notes.txt", "plot.png"):
        ds = manifest(campaign, name)
        text = manifest_bytes(campaign, name).decode()
        for rep in ds.replicas:
            assert rep.key == key_id and rep.checksum == ""
            for f in rep.files:
                stored = blob(campaign, f.blob)
                # Every sealed object is compressed (ADIOS2 mis-copies raw keyed blobs) and 40 bytes longer.
                assert f.compression == 1 and len(stored) == f.lencompressed + 40
                plain = zlib.decompress(SecretBox(k).decrypt(stored))
                assert len(plain) == f.lenorig
                assert f.checksum == hashlib.sha1(stored).hexdigest()
                if (name, f.name) in originals:
                    assert plain == originals[(name, f.name)]
                    seen.add((name, f.name))
                assert hashlib.sha1(plain).hexdigest() not in text
        for s in secrets:
            assert s not in text
    assert seen == set(originals)
    # camp cat decrypts with the key, and says what it needs without it.
    r = camp("--repo", campaign, "cat", "heat.bp", "metadata", "-k", key)
    assert r.stdout_bytes == metadata
    r = camp("--repo", campaign, "cat", "heat.bp", "metadata", ok=False)
    assert r.stderr == f"camp: error: heat.bp: metadata is encrypted with key {key_id}: pass -k KEYFILE\n"
    other = tmp_path / "other.key"
    camp("key", "generate", other)
    other_id = yaml.safe_load(other.read_text())["id"]
    r = camp("--repo", campaign, "cat", "heat.bp", "metadata", "-k", other, ok=False)
    assert r.stderr == (f"camp: error: heat.bp: metadata is encrypted with key {key_id}, "
                        f"but key file {other} holds key {other_id}\n")
    # show lists names only.
    camp("--repo", campaign, "commit", "-m", "sealed")
    shown = camp("--repo", campaign, "show", "--dataset", "notes.txt").output
    assert "notes.txt" in shown and "Outcome" not in shown


def test_built_archive_decrypts_with_the_published_algorithm(campaign, camp, data, key, tmp_path):
    """What ADIOS2 with libsodium does: key from the connector, secretbox_open, then inflate."""
    import adios2

    key_id = yaml.safe_load(key.read_text())["id"]
    camp("--repo", campaign, "add", "-k", key, "heat.bp", "--store", "notes.txt", cwd=data)
    camp("--repo", campaign, "add", "pressure.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "sealed")
    aca = tmp_path / "sealed.aca"
    camp("--repo", campaign, "build", "-o", aca)
    con = sqlite3.connect(aca)
    assert con.execute("select rowid, keyid from key").fetchall() == [(1, key_id)]
    rows = dict(con.execute("select r.name, r.keyid from replica r").fetchall())
    assert rows == {"heat.bp": 1, "notes.txt": 1, "pressure.bp": 0}
    (data_blob, lenc, lenorig, checksum) = con.execute(
        "select f.data, f.lencompressed, f.lenorig, f.checksum from file f join repfiles rf on rf.fileid = f.fileid "
        "join replica r on r.rowid = rf.replicaid where r.name = 'heat.bp' and f.name = 'metadata'").fetchone()
    con.close()
    assert len(data_blob) == lenc + 40
    with adios2.FileReader(str(data / "heat.bp")) as fr:
        expected = fr.get_metadata()
    # hpc-campaign's own Key class gives the key; nacl SecretBox + zlib is ADIOS2's algorithm.
    plain = zlib.decompress(SecretBox(raw_key(key)).decrypt(data_blob))
    assert plain == expected and len(plain) == lenorig
    assert checksum != hashlib.sha1(expected).hexdigest()
    # The reference tool lists the archive and flags the keyed replicas and files.
    ref = subprocess.run([sys.executable, "-m", "hpc_campaign", "manager", str(aca), "info", "-r", "-f"],
                         capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    assert f"k1. {key_id}" in ref.stdout
    modes = {w[-1]: w[1] for w in map(str.split, ref.stdout.splitlines())
             if len(w) > 3 and w[0].isdigit() and len(w[1]) == 5}
    assert modes == {"heat.bp": "rk---", "notes.txt": "ek---", "pressure.bp": "r----"}


def test_equal_content_gives_unrelated_blobs_across_keys_and_adds(campaign, camp, data, key, tmp_path):
    second = tmp_path / "second.key"
    camp("key", "generate", second)
    camp("--repo", campaign, "add", "-k", key, "--name", "a", "heat.bp", cwd=data)
    camp("--repo", campaign, "add", "-k", key, "--name", "b", "heat.bp", cwd=data)
    camp("--repo", campaign, "add", "-k", second, "--name", "c", "heat.bp", cwd=data)
    camp("--repo", campaign, "add", "--name", "plain", "heat.bp", cwd=data)
    meta = {n: next(f for f in manifest(campaign, n).replicas[0].files if f.name == "metadata")
            for n in ("a", "b", "c", "plain")}
    assert len({f.blob for f in meta.values()}) == 4
    assert len({f.checksum for f in meta.values()}) == 4
    # The plaintext checksum appears only in the unencrypted dataset's manifest.
    plain_sum = meta["plain"].checksum
    assert plain_sum == hashlib.sha1(zlib.decompress(blob(campaign, meta["plain"].blob))).hexdigest()
    for n in ("a", "b", "c"):
        assert plain_sum not in manifest_bytes(campaign, n).decode()
    # Re-adding with the same key seals afresh as well.
    before = meta["a"].blob
    camp("--repo", campaign, "add", "-k", key, "--name", "a", "heat.bp", cwd=data)
    after = next(f for f in manifest(campaign, "a").replicas[0].files if f.name == "metadata")
    assert after.blob != before


def test_cat_plain_objects_and_errors(campaign, camp, data):
    camp("--repo", campaign, "add", "--store", "notes.txt", "heat.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "plain")
    r = camp("--repo", campaign, "cat", "notes.txt", "notes.txt")
    assert r.stdout_bytes == (data / "notes.txt").read_bytes()
    out = data / "copy.txt"
    camp("--repo", campaign, "cat", "notes.txt", "notes.txt", "-o", out)
    assert out.read_bytes() == (data / "notes.txt").read_bytes()
    r = camp("--repo", campaign, "cat", "heat.bp", "md.0", ok=False)
    assert r.stderr == "camp: error: dataset heat.bp embeds no file named 'md.0' " \
                       "(embedded: metadata, profiling.json)\n"
    r = camp("--repo", campaign, "cat", "nope", "x", ok=False)
    assert r.stderr == "camp: error: no dataset named 'nope' in the staging area or HEAD\n"
    r = camp("--repo", campaign, "cat", "heat.bp", "metadata", "--replica", "deadbeef", ok=False)
    assert r.stderr == ("camp: error: dataset heat.bp has no replica deadbeef "
                        "(an id or a host: camp whereis heat.bp)\n")


def test_add_with_a_missing_key_file_records_nothing(campaign, camp, data, tmp_path):
    r = camp("--repo", campaign, "add", "-k", tmp_path / "none.key", "heat.bp", cwd=data, ok=False)
    assert r.exit_code == 1 and r.stderr == f"camp: error: key file {tmp_path / 'none.key'}: no such file\n"
    assert json.loads(camp("--repo", campaign, "status", "--json").output)["staged"] == []
