"""camp connect end to end: the full ADIOS2 2.12.1 reads remote data of camp-built archives.

The world (tests/adios2_world.py) is a private network namespace with sshd on 127.0.0.1
(ports 2222 and 22 there: hosts "REMOTEHOST" and "OTHERHOST"), ``camp connect`` on
port 30000 and readers that cannot see the data folders: every value read below came
from ``adios2_remote_server`` through camp connect's SSH tunnel. The archives are made
by ``camp build``; ``config.yaml`` says this host is "LOCALHOST".
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from adios2_world import World, extract_adios2, world_missing
from helpers import missing_part
from nacl.secret import SecretBox

from campaignvcs import keys

# Sums of the test data (written by DATA below).
A_BP = {"a.bp/T": 3798.0, "a.bp/step": 3.0}
H_H5 = {"h.h5/x": 67.5, "h.h5/g/y": 15.0, "h.h5/big": 499500.0}
O_BP = {"o.bp/T": 3798.0 + 3 * 12 * 7, "o.bp/step": 3.0}
PASSWORD = "e2e-secret"

DATA = r'''
import sys, numpy as np, adios2, h5py
from PIL import Image
where, what = sys.argv[1], sys.argv[2]
if what == "remote":
    with adios2.Stream(where + "/a.bp", "w") as s:
        for step in range(3):
            s.begin_step()
            s.write("T", np.arange(12, dtype=np.float64).reshape(3, 4) + 100 * step, [3, 4], [0, 0], [3, 4])
            s.write("step", step)
            s.end_step()
    with h5py.File(where + "/h.h5", "w") as f:
        f["x"] = np.arange(10, dtype=np.float64) * 1.5
        f.create_group("g")["y"] = np.arange(6, dtype=np.int32).reshape(2, 3)
        f["big"] = np.arange(1000, dtype=np.float64)  # > 128 elements: not in the archive's metadata
    with open(where + "/notes.txt", "w") as f:
        f.write("remote notes\n" * 20)
    Image.fromarray((np.indices((48, 64)).sum(axis=0) % 251 + 3).astype(np.uint8)).convert("RGB").save(
        where + "/plot.png")
else:
    with adios2.Stream(where + "/o.bp", "w") as s:
        for step in range(3):
            s.begin_step()
            s.write("T", np.arange(12, dtype=np.float64).reshape(3, 4) + 100 * step + 7, [3, 4], [0, 0], [3, 4])
            s.write("step", step)
            s.end_step()
'''

_why = world_missing()


@pytest.fixture(scope="session")
def adios2_full(tmp_path_factory):
    """The full ADIOS2 build, extracted once per session (worker)."""
    if _why:
        missing_part(_why)
    prefix, why = extract_adios2(tmp_path_factory.mktemp("adios2-full"))
    if prefix is None:
        missing_part(why)
    return prefix


class Setup:
    """The world plus the campaign, the archives and the hosts.yaml every test starts from."""

    def __init__(self, root: Path, adios2: Path):
        self.world = World(root, adios2)
        try:
            self._build(root)
        except BaseException:
            self.world.close()
            raise

    def _build(self, root: Path) -> None:
        w = self.world
        self.remote = root / "remote"  # REMOTEHOST's data
        self.other = root / "other"  # OTHERHOST's data
        for folder, what in ((self.remote, "remote"), (self.other, "other")):
            folder.mkdir()
            subprocess.run([sys.executable, "-c", DATA, str(folder), what], check=True, env=w.env())
        self.known = [w.start_sshd(2222), w.start_sshd(22)]
        w.trust(*self.known)
        self.hosts = {
            "REMOTEHOST": {"adios": self.entry(port=2222)},
            "OTHERHOST": {"adios": self.entry()},  # port 22: the default
        }
        self.write_hosts()
        # The key camp add -k uses, and the same key sealed with a password for camp connect, which
        # unlocks it at start-up (CAMP_KEY_PASSWORD). (Each unlock costs seconds of Argon2 on purpose.)
        self.plain_key = root / "e2e-plain.key"
        self.camp("key", "generate", self.plain_key, "--note", "e2e")
        kf = keys.read_keyfile(str(self.plain_key))
        salt = os.urandom(16)
        sealed = bytes(SecretBox(keys.derive(PASSWORD, salt)).encrypt(kf.key))
        self.key = w.cfg / "keys" / "e2e.key"
        keys.write_keyfile(str(self.key), keys.KeyFile(kf.id, sealed, kf.note, salt, kf.date))
        self.key_id = kf.id
        # plain.aca: a.bp + h.h5 on REMOTEHOST, o.bp on OTHERHOST; enc.aca: the same, metadata encrypted.
        for name, key in (("plain", None), ("enc", self.plain_key)):
            repo = root / f"campaign-{name}"
            self.camp("init", repo, "--name", f"e2e/{name}", "--host", "REMOTEHOST")
            k = ["-k", key] if key else []
            self.camp("add", "a.bp", "h.h5", *k, repo=repo, cwd=self.remote)
            self.camp("add", "--host", "OTHERHOST", "o.bp", *k, repo=repo, cwd=self.other)
            self.camp("commit", "-m", name, repo=repo)
            self.camp("build", "-o", w.store / f"{name}.aca", repo=repo)
        self.hide = [self.remote, self.other]

    def entry(self, **extra) -> dict:
        e = {"protocol": "ssh", "host": "127.0.0.1", "user": "root", "authentication": "publickey",
             "identity_file": str(self.world.home / ".ssh" / "id_ed25519"),
             "serverpath": str(self.world.server), "args": "-background -report_port_selection"}
        e.update(extra)
        return e

    def write_hosts(self) -> None:
        (self.world.cfg / "hosts.yaml").write_text(yaml.safe_dump(self.hosts, sort_keys=False))

    def camp(self, *args, repo: Path | None = None, cwd: Path | None = None, env: dict | None = None,
             ok: bool = True) -> subprocess.CompletedProcess:
        extra = {"CAMP_AUTHOR_NAME": "E2E", "CAMP_AUTHOR_EMAIL": "e2e@example.org", "CAMP_KEY_PASSWORD": PASSWORD}
        if repo is not None:
            extra["CAMP_REPO"] = str(repo)
        extra.update(env or {})
        r = subprocess.run([sys.executable, "-m", "campaignvcs", *map(str, args)], capture_output=True, text=True,
                           env=self.world.env(**extra), cwd=cwd or self.world.root)
        if ok:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def connect(self, *args: str, password: bool = True) -> str:
        """(Re)start camp connect; returns its start-up output."""
        env = self.world.env(CAMP_KEY_PASSWORD=PASSWORD) if password else None
        self.world.start_connector(*args, env=env)
        return self.world.connector_text()


@pytest.fixture(scope="module")
def setup(tmp_path_factory, adios2_full):
    s = Setup(tmp_path_factory.mktemp("world"), adios2_full)
    yield s
    s.world.close()


def assert_all_values(reading, expected: dict) -> None:
    assert reading.returncode == 0 and reading.opened, reading
    for name, total in expected.items():
        assert reading.sums.get(name) == total, (name, reading)


def test_bp5_and_hdf5_on_two_remote_hosts_through_the_tunnel_and_a_second_read_reuses_it(setup):
    w = setup.world
    out = setup.connect(password=False)
    assert "listening on 127.0.0.1:30000" in out
    first = w.read(w.store / "plain.aca", hide=setup.hide)
    assert_all_values(first, {**A_BP, **H_H5, **O_BP})
    log = w.connector_text()
    # hosts.yaml's port: is the SSH port dialled (2222), the default is 22; the log says which.
    assert re.search(r"\] /run_service REMOTEHOST/adios: tunnel 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ "
                     r"via ssh root@127\.0\.0\.1:2222\n", log), log
    assert re.search(r"\] /run_service OTHERHOST/adios: tunnel 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ "
                     r"via ssh root@127\.0\.0\.1:22\n", log), log
    servers = len(w.server_processes())
    second = w.read(w.store / "plain.aca", hide=setup.hide)
    assert_all_values(second, {**A_BP, **H_H5, **O_BP})
    log = w.connector_text()
    # The second reader got the same tunnels: no new login, no new remote server.
    assert log.count("/run_service REMOTEHOST/adios: tunnel 127.0.0.1") == 1, log
    assert log.count("/run_service OTHERHOST/adios: tunnel 127.0.0.1") == 1, log
    assert log.count("/run_service OTHERHOST/adios: tunnel already open on 127.0.0.1:") >= 1, log
    assert len(w.server_processes()) == servers
    assert w.stop_connector() == 0


def test_encrypted_metadata_with_a_password_protected_key_unlocked_at_start_up(setup):
    w = setup.world
    out = setup.connect(password=True)
    assert f"1 key loaded ({setup.key_id})" in out
    reading = w.read(w.store / "enc.aca", hide=setup.hide)
    assert_all_values(reading, {**A_BP, **H_H5, **O_BP})
    log = w.connector_text()
    assert f"/get_key {setup.key_id}: sent" in log
    assert yaml.safe_load(setup.key.read_text())["key"] not in log
    assert w.stop_connector() == 0


def test_key_not_available(setup):
    w = setup.world
    empty = w.root / "no-keys"
    empty.mkdir(exist_ok=True)
    setup.connect("--keys", str(empty), password=False)
    reading = w.read(w.store / "enc.aca", hide=setup.hide)
    # ADIOS2 cannot open the archive; it says which key camp connect lacks.
    assert not reading.opened
    assert reading.open_error.endswith(
        f"Error response from connection manager: key_{setup.key_id}_is_not_loaded_in_camp_connect"), reading
    line = (f"/get_key {setup.key_id}: this key is not loaded (used by {w.store / 'enc.aca'}); put its key file "
            f"in {empty} and restart camp connect (camp key info FILE shows the id of a key file)")
    assert w.connector_text().count(line) == 1, w.connector_text()
    # A protected key whose password was not given at start-up: the log says so.
    setup.connect(password=False)
    reading = w.read(w.store / "enc.aca", hide=setup.hide)
    assert not reading.opened
    assert (f"/get_key {setup.key_id}: this key is not loaded; its key file {setup.key} was skipped at start-up "
            "(password-protected, and no terminal to ask on (set CAMP_KEY_PASSWORD)): restart camp connect to "
            "unlock it") in w.connector_text()
    w.stop_connector()


def reads_all_but_other_host(reading) -> None:
    """REMOTEHOST's data read, OTHERHOST's refused with an error (not a crash, not zeros)."""
    assert reading.opened, reading
    for name, total in {**A_BP, **H_H5}.items():
        assert reading.sums.get(name) == total, (name, reading)
    assert "o.bp/T" in reading.errors and "o.bp/T" not in reading.sums, reading
    assert "Remote file o.bp cannot be opened" in reading.errors["o.bp/T"], reading


def other_host_line(reading, world, answer: str) -> str:
    """:func:`reads_all_but_other_host` with ``answer`` from the connection manager; the one
    line camp connect logged about OTHERHOST."""
    reads_all_but_other_host(reading)
    assert f"Error response from connection manager: {answer}" in " ".join(reading.error_lines()), reading
    log = world.connector_text()
    lines = [x for x in log.splitlines() if "OTHERHOST" in x]
    assert len(lines) == 1, log
    return lines[0]


def test_sshd_down(setup):
    w = setup.world
    setup.connect(password=False)
    w.stop_sshd(22)
    try:
        reading = w.read(w.store / "plain.aca", hide=setup.hide)
    finally:
        w.start_sshd(22)
    reads_all_but_other_host(reading)
    assert ("<Toolkit> <Remote> <EstablishConnection> : Error response from connection manager: "
            "cannot_connect_to_remote_server") in " ".join(reading.error_lines()), reading
    line = ("/run_service OTHERHOST/adios: ssh root@127.0.0.1:22: cannot connect (Connection refused: is an sshd "
            "listening there? (host and port: in hosts.yaml))")
    assert w.connector_text().count(line) == 1, w.connector_text()
    w.stop_connector()


def test_unknown_host_key(setup):
    w = setup.world
    w.trust(setup.known[0])  # REMOTEHOST's key only
    try:
        setup.connect(password=False)
        reading = w.read(w.store / "plain.aca", hide=setup.hide)
    finally:
        w.trust(*setup.known)
    line = other_host_line(reading, w, "cannot_connect_to_remote_server")
    assert re.search(r"/run_service OTHERHOST/adios: ssh root@127\.0\.0\.1:22: unknown SSH host key for "
                     r"127\.0\.0\.1 \(ssh-ed25519 SHA256:\S+\): check it, then restart with "
                     r"--accept-new-host-keys \(or ssh to the host once\)$", line), w.connector_text()
    w.stop_connector()


def test_remote_server_missing(setup):
    w = setup.world
    setup.hosts["OTHERHOST"]["adios"]["serverpath"] = "/opt/nowhere/adios2_remote_server"
    setup.write_hosts()
    try:
        setup.connect(password=False)
        reading = w.read(w.store / "plain.aca", hide=setup.hide)
    finally:
        setup.hosts["OTHERHOST"]["adios"]["serverpath"] = str(w.server)
        setup.write_hosts()
    line = other_host_line(reading, w, "service_not_available")
    assert line.endswith(
        "/run_service OTHERHOST/adios: ssh root@127.0.0.1:22: '/opt/nowhere/adios2_remote_server -background "
        "-report_port_selection' exited with status 127 before reporting its port (not found: check serverpath "
        "in hosts.yaml): bash: line 1: /opt/nowhere/adios2_remote_server: No such file or directory"), \
        w.connector_text()
    w.stop_connector()


def test_check_logs_in_to_every_host_and_starts_its_server(setup):
    w = setup.world

    def check(*hosts: str):
        return subprocess.run([*w.ns, sys.executable, "-m", "campaignvcs", "connect", "--check", *hosts],
                              capture_output=True, text=True, env=w.env(), cwd=w.root, timeout=120)

    # A second entry for REMOTEHOST reaches it through a jump host (OTHERHOST's sshd), no ProxyCommand.
    setup.hosts["REMOTEHOST"]["viajump"] = setup.entry(
        port=2222, jumphost="127.0.0.1", jumpuser="root", jumpidentity_file=str(w.home / ".ssh" / "id_ed25519"))
    setup.write_hosts()
    try:
        r = check()
    finally:
        del setup.hosts["REMOTEHOST"]["viajump"]
        setup.write_hosts()
    assert r.returncode == 0, r.stderr
    assert re.search(r"^REMOTEHOST/adios: ok: ssh root@127\.0\.0\.1:2222: remote server reported port \d+$",
                     r.stdout, re.M), r.stdout
    assert re.search(r"^REMOTEHOST/viajump: ok: ssh root@127\.0\.0\.1:2222 through jump host root@127\.0\.0\.1:22: "
                     r"remote server reported port \d+$", r.stdout, re.M), r.stdout
    assert re.search(r"^OTHERHOST/adios: ok: ssh root@127\.0\.0\.1:22: remote server reported port \d+$",
                     r.stdout, re.M), r.stdout
    assert r.stdout.endswith("camp connect --check: all 3 ssh entries ok\n")
    w.stop_sshd(22)
    try:
        r = check()
        only = check("REMOTEHOST")
    finally:
        w.start_sshd(22)
    assert r.returncode == 1
    assert ("OTHERHOST/adios: FAILED: ssh root@127.0.0.1:22: cannot connect (Connection refused: is an sshd "
            "listening there? (host and port: in hosts.yaml))\n") in r.stdout
    assert r.stderr.strip().splitlines()[-1] == "camp: error: 1 of 2 ssh entries failed the check: OTHERHOST/adios"
    assert only.returncode == 0 and "OTHERHOST" not in only.stdout and "REMOTEHOST/adios: ok:" in only.stdout
    r = check("NOSUCHHOST")
    assert r.returncode != 0 and "no host 'NOSUCHHOST' with services in" in r.stderr


PNG = "89504e470d0a1a0a"


def test_encrypted_embedded_items_what_readers_see_and_the_warnings(setup):
    """ADIOS2 2.12.1 never asks for the key of an embedded image; camp says which images readers miss."""
    w = setup.world
    k = ["-k", setup.plain_key]
    repo = w.root / "campaign-stored"
    setup.camp("init", repo, "--name", "e2e/stored", "--host", "REMOTEHOST")
    add = setup.camp("add", "--store", "plot.png", *k, "-m", "stored image", repo=repo, cwd=setup.remote)
    assert ("camp: warning: plot.png: the stored image is encrypted, and ADIOS2 2.12.1 never asks for the key "
            "of an embedded image: readers see zeros unless the archive also holds a replica on another host "
            "encrypted with this key (camp build says which images)") in add.stderr, add.stderr
    build = setup.camp("build", "-o", w.store / "stored.aca", repo=repo)
    assert (f"camp: warning: plot.png/64x48: encrypted embedded image that ADIOS2 2.12.1 readers see as zeros: "
            f"it never asks camp connect for the key of an embedded image, and no other replica in this archive "
            f"makes it fetch key {setup.key_id}") in build.stderr, build.stderr

    repo = w.root / "campaign-thumb"
    setup.camp("init", repo, "--name", "e2e/thumb", "--host", "REMOTEHOST")
    add = setup.camp("add", "--thumbnail", "32", "32", "plot.png", *k, repo=repo, cwd=setup.remote)
    assert ("camp: warning: plot.png: readers on host REMOTEHOST will see zeros for its encrypted thumbnail "
            "(ADIOS2 2.12.1 fetches the key only for a replica on another host; elsewhere it decrypts)") in add.stderr
    setup.camp("add", "--store", "notes.txt", *k, "-m", "thumbnail and text", repo=repo, cwd=setup.remote)
    build = setup.camp("build", "-o", w.store / "thumb.aca", repo=repo)
    assert (f"camp: warning: plot.png/32x24: encrypted embedded image that ADIOS2 2.12.1 readers on host "
            f"REMOTEHOST see as zeros (it fetches key {setup.key_id} only for a replica on another host; "
            f"elsewhere it decrypts)") in build.stderr, build.stderr

    setup.connect(password=True)
    stored = w.read(w.store / "stored.aca", hide=setup.hide)
    assert stored.blobs["plot.png/64x48"]["zeros"] == stored.blobs["plot.png/64x48"]["size"], stored
    thumb = w.read(w.store / "thumb.aca", hide=setup.hide)
    assert thumb.sums["notes.txt"] == sum(b"remote notes\n" * 20), thumb  # stored text: decrypted
    assert thumb.blobs["plot.png/32x24"]["bytes"].startswith(PNG), thumb  # thumbnail: decrypted
    assert thumb.blobs["plot.png/64x48"]["bytes"].startswith(PNG), thumb  # the original, through the tunnel
    # On REMOTEHOST itself, nothing fetches the key: the thumbnail is zeros, as camp warned.
    config = (w.cfg / "config.yaml").read_text()
    (w.cfg / "config.yaml").write_text(config.replace("LOCALHOST", "REMOTEHOST"))
    try:
        there = w.read(w.store / "thumb.aca", hide=[])
    finally:
        (w.cfg / "config.yaml").write_text(config)
    assert there.blobs["plot.png/32x24"]["zeros"] == there.blobs["plot.png/32x24"]["size"], there
    assert there.sums["notes.txt"] == thumb.sums["notes.txt"]

    # camp build --check with the full ADIOS2 ($ADIOS2_DIR) reads through camp connect too, and sees the zeros.
    def check(repo: Path, archive: str) -> subprocess.CompletedProcess:
        env = w.env(CAMP_REPO=str(repo), CAMP_AUTHOR_NAME="E2E", CAMP_AUTHOR_EMAIL="e2e@example.org",
                    ADIOS2_DIR=str(w.adios2))
        cmd = [*w.ns, "unshare", "--mount", "--", sys.executable, str(Path(__file__).parent / "private_tmp.py"),
               "--hide", *map(str, setup.hide), "--", sys.executable, "-m", "campaignvcs", "build", "--check",
               "-o", str(w.store / archive)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=w.root, timeout=300)

    r = check(w.root / "campaign-stored", "stored.aca")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"check: adios2 2.12.1 ({w.adios2 / 'lib'}" in r.stdout, r.stdout
    assert ("check: cannot read plot.png: reading plot.png/64x48: ADIOS2 returned an image of zeros (an encrypted "
            "embedded image whose key ADIOS2 2.12.1 never asked for)") in r.stdout, r.stdout
    r = check(w.root / "campaign-enc", "enc.aca")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "check: ok: ADIOS2 opened the archive and read all 3 datasets (7 variables)" in r.stdout, r.stdout
    assert "from $ADIOS2_DIR" in r.stdout
    w.stop_connector()


def test_find_adios2_prefers_the_full_build(adios2_full, tmp_path):
    from campaignvcs.adios2env import find_adios2

    full = find_adios2({"ADIOS2_DIR": str(adios2_full)})
    assert full is not None and full.source == "$ADIOS2_DIR" and full.version == "2.12.1"
    assert full.has("HDF5") and full.has("SODIUM") and full.has("SST")
    assert full.remote_server == str(adios2_full / "bin" / "adios2_remote_server")
    assert full.child_env({"PYTHONPATH": "/x"})["PYTHONPATH"] == f"{full.package[:-len('/adios2')]}:/x"
    assert full.describe() == f"adios2 2.12.1 ({adios2_full}, $ADIOS2_DIR: HDF5, SODIUM, SST)"
    # The same build found on PYTHONPATH; a prefix without bindings for this Python is passed over, saying why.
    (tmp_path / "empty").mkdir()
    found = find_adios2({"ADIOS2_DIR": str(tmp_path / "empty"),
                         "PYTHONPATH": str(adios2_full / "lib" / "python3.11" / "site-packages")})
    assert found is not None and found.source == "python" and found.has("HDF5") and found.prefix == str(adios2_full)
    assert found.notes == [f"$ADIOS2_DIR={tmp_path / 'empty'} has no Python bindings for Python 3.11 "
                           f"({tmp_path / 'empty' / 'lib' / 'python3.11' / 'site-packages' / 'adios2'})"]


def test_build_says_on_which_hosts_readers_see_an_encrypted_embedded_image_as_zeros(camp, campaign, data, tmp_path,
                                                                                   monkeypatch):
    """No ADIOS2 needed: camp build reads the archive it wrote (the behaviour is the e2e test's above)."""
    key = tmp_path / "k.key"
    camp("key", "generate", key)
    key_id = yaml.safe_load(key.read_text())["id"]
    monkeypatch.chdir(data)
    monkeypatch.setenv("CAMP_REPO", str(campaign))

    def warnings() -> list[str]:
        r = camp("build", "-o", tmp_path / "a.aca")
        return [x for x in r.stderr.splitlines() if "encrypted embedded image" in x]

    camp("add", "-k", key, "--store", "--name", "stored.png", "plot.png", "-m", "stored")
    (line,) = warnings()
    assert re.fullmatch(rf"camp: warning: stored\.png/\d+x\d+: encrypted embedded image that ADIOS2 2\.12\.1 "
                        rf"readers see as zeros: it never asks camp connect for the key of an embedded image, and "
                        rf"no other replica in this archive makes it fetch key {key_id}", line), line
    camp("add", "-k", key, "--host", "hostB", "heat.bp", "-m", "heat on B")
    (line,) = warnings()
    assert line.endswith(f"readers on host hostB see as zeros (it fetches key {key_id} only for a replica on "
                         "another host; elsewhere it decrypts)"), line
    camp("add", "-k", key, "--host", "hostC", "heat.bp", "-m", "heat on C too")
    (line,) = warnings()
    assert "readers on hosts hostB, hostC see as zeros" in line, line
    camp("add", "-k", key, "--host", "hostD", "pressure.bp", "-m", "pressure on D")
    assert warnings() == []  # wherever the reader is, some replica on another host brings the key
