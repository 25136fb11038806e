"""key generate / verify / info, loading a key for ``camp add -k``, and ``cat`` (decrypting reader).

Passwords never come from arguments: ``CAMP_KEY_PASSWORD`` in ``env`` (for scripts), else
the ``ask_password(prompt, confirm)`` callback the command line passes in (a hidden
terminal prompt). With neither, a protected key is refused with a message saying so.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from campaignvcs import keys
from campaignvcs.errors import BadInput, CampError
from campaignvcs.model import Dataset, EmbeddedFile, Replica
from campaignvcs.porcelain.common import environ, open_repo

AskPassword = Callable[[str, bool], str]
"""``(prompt, confirm) -> password``: asks on a terminal; ``confirm`` asks twice (new passwords)."""

PASSWORD_VAR = "CAMP_KEY_PASSWORD"


@dataclass(frozen=True)
class KeyInfo:
    """What a key file says about itself (never the key)."""

    path: str
    id: str
    note: str
    date: str
    protected: bool
    mode: str
    verified: bool = False

    @property
    def private(self) -> bool:
        """True if neither group nor others may read the file."""
        return not int(self.mode, 8) & 0o077


def _path(path: str, cwd: str | None, env: Mapping[str, str]) -> str:
    if not path or "\0" in path:
        raise BadInput(f"invalid key file path: {path!r}")
    from campaignvcs.config import expand_user

    return os.path.join(cwd or os.getcwd(), expand_user(path, env))


def _info(path: str, kf: keys.KeyFile, verified: bool = False) -> KeyInfo:
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0
    return KeyInfo(path, kf.id, kf.note, kf.date, kf.protected, f"{mode:04o}", verified)


def _password(path: str, env: Mapping[str, str], ask: AskPassword | None, confirm: bool = False) -> str:
    given = env.get(PASSWORD_VAR)
    if given:
        return given
    if ask is None:
        raise BadInput(f"key file {path} is password-protected: run on a terminal or set {PASSWORD_VAR}")
    prompt = f"New password for {path}" if confirm else f"Password for key file {path}"
    answer = ask(prompt, confirm)
    if not answer:
        raise BadInput(f"empty password for key file {path}")
    return answer


def key_generate(
    path: str,
    protect: bool = False,
    note: str = "",
    force: bool = False,
    ask_password: AskPassword | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> KeyInfo:
    """Write a new key file (mode 0600) at ``path``; ``protect`` seals it with a password.

    An existing file is never replaced unless ``force``: archives encrypted with that key
    would become unreadable.
    """
    env = environ(env)
    full = _path(path, cwd, env)
    if os.path.isdir(full):
        raise BadInput(f"key file {path}: is a directory")
    if not force and os.path.lexists(full):
        raise BadInput(f"key file {path} already exists (archives may depend on it): "
                       "pass --force to replace it")
    password = _password(path, env, ask_password, confirm=True) if protect else None
    kf = keys.generate(note, password)
    keys.write_keyfile(full, kf, force=force)
    return _info(full, kf, verified=True)


def key_info(path: str, cwd: str | None = None, env: Mapping[str, str] | None = None) -> KeyInfo:
    """What the key file at ``path`` says about itself (no password needed)."""
    env = environ(env)
    full = _path(path, cwd, env)
    return _info(full, keys.read_keyfile(full))


def key_verify(
    path: str,
    ask_password: AskPassword | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> KeyInfo:
    """Check the key file is well formed and, if protected, that the password opens it."""
    env = environ(env)
    full = _path(path, cwd, env)
    kf = keys.read_keyfile(full)
    _unlock(path, kf, ask_password, env)
    return _info(full, kf, verified=True)


def _unlock(path: str, kf: keys.KeyFile, ask: AskPassword | None, env: Mapping[str, str]) -> bytes:
    if not kf.protected:
        return kf.key
    return keys.unlock(kf, _password(path, env, ask), where=path)


def encryptor(
    path: str,
    ask_password: AskPassword | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> keys.Encryptor:
    """The ``encrypt`` callable (with its ``key_id``) for ``add(..., encrypt=, key_id=)``."""
    env = environ(env)
    full = _path(path, cwd, env)
    kf = keys.read_keyfile(full)
    return keys.Encryptor(kf.id, _unlock(path, kf, ask_password, env))


@dataclass(frozen=True)
class Content:
    """An embedded object as its original bytes, and where it came from."""

    dataset: str
    replica: str
    file: EmbeddedFile
    data: bytes
    key: str
    where: str = ""
    """``host:dir/path`` of the replica read."""
    differing: list[str] = field(default_factory=list)
    """Other replicas (``id host:dir/path``) embedding a different version of the file."""


def cat(
    name: str,
    filename: str,
    rev: str | None = None,
    replica: str | None = None,
    keyfile: str | None = None,
    ask_password: AskPassword | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Content:
    """The original bytes of embedded file ``filename`` of dataset ``name`` (decompressed, decrypted).

    Reads commit ``rev``, or by default what the next commit would hold (staged, else
    HEAD). A keyed replica needs ``keyfile`` with the key id the replica records. ``replica``
    (an id from ``camp show --json``, or a host name) picks one replica when several embed
    that file; without it the first live one is read and ``differing`` names the others
    whose version of the file differs.
    """
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        ds = camp.dataset(name, camp.resolve(rev) if rev is not None else None)
        if ds is None:
            raise BadInput(f"no dataset named {name!r} in {rev or 'the staging area or HEAD'}")
        rep, f = _pick(ds, filename, replica)
        differing = [] if replica is not None else [
            f"{r.id} {r.host}:{os.path.join(r.dir, r.path)}" for r in ds.replicas if r.id != rep.id and r.live
            for other in r.files if other.name == filename and other.checksum != f.checksum]
        blob = camp.read_blob(f.blob.encode())
    data = blob
    what = f"{name}: {filename}"
    if rep.key:
        if keyfile is None:
            raise CampError(f"{what} is encrypted with key {rep.key}: pass -k KEYFILE")
        full = _path(keyfile, cwd, env)
        kf = keys.read_keyfile(full)
        if kf.id != rep.key:
            raise CampError(f"{what} is encrypted with key {rep.key}, "
                            f"but key file {keyfile} holds key {kf.id}")
        data = keys.open_sealed(_unlock(keyfile, kf, ask_password, env), blob, what)
    if f.compression:
        try:
            data = zlib.decompress(data)
        except zlib.error:
            raise CampError(f"{what}: stored object is not a valid zlib stream") from None
    return Content(name, rep.id, f, data, rep.key, f"{rep.host}:{os.path.join(rep.dir, rep.path)}", differing)


def _pick(ds: Dataset, filename: str, replica: str | None) -> tuple[Replica, EmbeddedFile]:
    candidates = [
        (r, f)
        for r in sorted(ds.replicas, key=lambda r: (not r.live, r.location))
        if replica is None or replica in (r.id, r.host)
        for f in r.files
        if f.name == filename
    ]
    if not candidates:
        if replica is not None and not any(replica in (r.id, r.host) for r in ds.replicas):
            raise BadInput(f"dataset {ds.name} has no replica {replica} (an id or a host: camp whereis {ds.name})")
        names = sorted({f.name for r in ds.replicas for f in r.files})
        listed = ", ".join(names) if names else "none"
        raise BadInput(f"dataset {ds.name} embeds no file named {filename!r} (embedded: {listed})")
    return candidates[0]
