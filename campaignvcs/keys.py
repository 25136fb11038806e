"""Key files and the encryption of embedded metadata (PyNaCl).

A key file is the YAML document ``hpc_campaign genkey`` writes, field for field, so the
two tools read each other's keys::

    note: <free text>
    id: <uuid4 hex>                 # stored in clear in every archive (key.keyid)
    key: <hex>                      # 32 raw bytes, or nonce24 ‖ MAC16 ‖ sealed key32
    salt: <hex>                     # 16 bytes; only for password-protected keys
    date: '<ISO 8601, UTC>'

A password-protected key is sealed with ``SecretBox(argon2i(password, salt))`` using
libsodium's SENSITIVE limits (8 passes, 512 MiB: about 4 s per derivation, on purpose).

Embedded objects of a keyed replica are stored as ``nonce(24) ‖ MAC(16) ‖ ciphertext``
of the (compressed) payload, exactly what ADIOS2 opens with ``crypto_secretbox_open_easy``.
Unlike hpc-campaign, whose ``file.checksum`` is the SHA-1 of the plaintext (so equal
content is visible across encrypted blobs), the checksum of a sealed object is the SHA-1
of the stored ciphertext: ADIOS2 only needs a non-NULL value, anyone can check the blob
is intact, and nothing about the plaintext leaks. A fresh random nonce per object means
the same content sealed twice, or with two keys, gives unrelated blobs and checksums.

Secrets (raw keys, passwords) never leave this module in a printable form: the classes
below keep them out of ``repr`` and no function here logs.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from campaignvcs.errors import BadInput, CampError

if TYPE_CHECKING:
    from campaignvcs.extract.base import Payload

KEY_SIZE = 32
NONCE_SIZE = 24
MAC_SIZE = 16
SALT_SIZE = 16
OVERHEAD = NONCE_SIZE + MAC_SIZE
"""Bytes a sealed object has more than its payload (``length(data) = lencompressed + 40``)."""

SEALED_KEY_SIZE = NONCE_SIZE + MAC_SIZE + KEY_SIZE

_KEY_ID = re.compile(r"[0-9A-Za-z_.-]{1,128}")
"""What a key id may look like: it travels in ``/get_key?id=...`` requests unquoted."""


class KeyFileError(BadInput):
    """A key file that is missing, unreadable or not a key file."""


class WrongPassword(CampError):
    """The password does not open a password-protected key."""


@dataclass(frozen=True)
class KeyFile:
    """The content of a key file. ``key`` is the raw key, or the sealed key when ``salt`` is set."""

    id: str
    key: bytes = field(repr=False)
    note: str = ""
    salt: bytes = b""
    date: str = ""

    @property
    def protected(self) -> bool:
        """True when the key is sealed with a password."""
        return bool(self.salt)

    def dumps(self) -> bytes:
        """The YAML text ``hpc_campaign genkey`` writes (same fields, same order)."""
        import yaml

        doc: dict[str, str] = {"note": self.note, "id": self.id, "key": self.key.hex()}
        if self.salt:
            doc["salt"] = self.salt.hex()
        doc["date"] = self.date
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode("utf-8")


def generate(note: str = "", password: str | None = None) -> KeyFile:
    """A new random key with a fresh id, sealed with ``password`` when one is given."""
    raw = secrets.token_bytes(KEY_SIZE)
    date = datetime.datetime.now(datetime.timezone.utc).isoformat()
    key_id = uuid.uuid4().hex
    if not password:
        return KeyFile(key_id, raw, note, b"", date)
    from nacl.secret import SecretBox

    salt = secrets.token_bytes(SALT_SIZE)
    sealed = bytes(SecretBox(derive(password, salt)).encrypt(raw))
    return KeyFile(key_id, sealed, note, salt, date)


def derive(password: str, salt: bytes) -> bytes:
    """The key that seals a data key: Argon2i v1.3, SENSITIVE limits, as hpc-campaign derives it."""
    from nacl.pwhash import argon2i

    return bytes(
        argon2i.kdf(
            KEY_SIZE,
            password.encode("utf-8"),
            salt,
            opslimit=argon2i.OPSLIMIT_SENSITIVE,
            memlimit=argon2i.MEMLIMIT_SENSITIVE,
        )
    )


def unlock(keyfile: KeyFile, password: str | None = None, where: str = "") -> bytes:
    """The raw 32-byte data key; a protected key needs ``password`` (WrongPassword otherwise)."""
    if not keyfile.protected:
        return keyfile.key
    what = f"key file {where}" if where else f"key {keyfile.id}"
    if not password:
        raise WrongPassword(f"{what} is password-protected: no password given")
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    try:
        raw = bytes(SecretBox(derive(password, keyfile.salt)).decrypt(keyfile.key))
    except CryptoError:
        raise WrongPassword(f"wrong password for {what}") from None
    if len(raw) != KEY_SIZE:
        raise KeyFileError(f"{what}: the sealed key is not {KEY_SIZE} bytes long")
    return raw


def parse(text: bytes, where: str) -> KeyFile:
    """A key file from its bytes; ``where`` names it in errors."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KeyFileError(f"{where}: not a key file (not YAML)") from None
    if not isinstance(doc, dict) or "id" not in doc or "key" not in doc:
        raise KeyFileError(f"{where}: not a key file (needs 'id' and 'key')")
    key_id = str(doc["id"])
    if not _KEY_ID.fullmatch(key_id):
        raise KeyFileError(f"{where}: not a key file (invalid id {key_id!r})")
    try:
        key = bytes.fromhex(str(doc["key"]))
        salt = bytes.fromhex(str(doc["salt"])) if doc.get("salt") else b""
    except ValueError:
        raise KeyFileError(f"{where}: not a key file (key or salt is not hex)") from None
    if salt and (len(salt) != SALT_SIZE or len(key) != SEALED_KEY_SIZE):
        raise KeyFileError(f"{where}: not a key file (a password-protected key has a 16-byte salt "
                           f"and a {SEALED_KEY_SIZE}-byte sealed key)")
    if not salt and len(key) != KEY_SIZE:
        raise KeyFileError(f"{where}: not a key file (the key must be {KEY_SIZE} bytes, found {len(key)})")
    note = doc.get("note")
    date = doc.get("date")
    return KeyFile(key_id, key, "" if note is None else str(note), salt,
                   date.isoformat() if isinstance(date, datetime.datetime) else str(date or ""))


def read_keyfile(path: str) -> KeyFile:
    """Read and check a key file."""
    try:
        with open(path, "rb") as f:
            text = f.read(1 << 16)
    except FileNotFoundError:
        raise KeyFileError(f"key file {path}: no such file") from None
    except IsADirectoryError:
        raise KeyFileError(f"key file {path}: is a directory") from None
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot read ({exc.strerror})") from None
    return parse(text, f"key file {path}")


def write_keyfile(path: str, keyfile: KeyFile, force: bool = False) -> None:
    """Write ``keyfile`` at ``path`` with mode 0600, atomically, never over a file unless ``force``.

    The bytes go to a temporary name in the same folder created with ``O_CREAT | O_EXCL``
    and mode 0600 (never readable by others, not even for a moment), are synced, then
    take the final name: by ``os.link`` (fails if the name exists, so two racing writers
    cannot both win) or, with ``force``, by ``os.replace``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise KeyFileError(f"key file {path}: is a directory")
    if not force and os.path.lexists(path):
        raise KeyFileError(f"key file {path} already exists (archives may depend on it): "
                           "pass --force to replace it")
    try:
        make_private_dirs(folder)
    except OSError as exc:
        where = exc.filename or folder
        raise KeyFileError(f"key file {path}: cannot create folder {where} ({exc.strerror})") from None
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot write in {folder} ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(keyfile.dumps())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyFileError(f"key file {path} already exists (archives may depend on it): "
                                   "pass --force to replace it") from None
            except OSError:
                # File systems without hard links: the exists check above has to do.
                os.rename(tmp, path)
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot write ({exc.strerror})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    _sync_dir(folder)


def make_private_dirs(folder: str) -> None:
    """Create ``folder`` and any missing parents with mode 0700, whatever the umask.

    ``os.makedirs(mode=0o700)`` gives that mode to the last folder only (parents get
    0777 minus the umask: 0777 under umask 000), and the umask may narrow even the last
    one. Folders that exist already are left as they are.
    """
    missing = []
    current = os.path.abspath(folder)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for each in reversed(missing):
        try:
            os.mkdir(each, 0o700)
        except FileExistsError:
            if not os.path.isdir(each):
                raise
            continue  # made meanwhile by someone else: theirs to set
        os.chmod(each, 0o700)


def _sync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def open_sealed(key: bytes, blob: bytes, what: str = "object") -> bytes:
    """The payload of a sealed object; CampError if the key does not open it."""
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox

    if len(blob) < OVERHEAD:
        raise CampError(f"{what}: too short to be an encrypted object")
    try:
        return bytes(SecretBox(key).decrypt(blob))
    except CryptoError:
        raise CampError(f"{what}: cannot decrypt (wrong key or damaged data)") from None


class Encryptor:
    """Seals payloads of keyed replicas: the ``encrypt`` callable ``camp add -k`` hands to ``add``.

    Calling it with a :class:`~campaignvcs.extract.base.Payload` returns the stored bytes and
    their checksum (SHA-1 of the ciphertext, see the module docstring).
    """

    def __init__(self, key_id: str, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError("a data key is 32 bytes")
        from nacl.secret import SecretBox

        self.key_id = key_id
        self._box = SecretBox(key)

    def __call__(self, payload: Payload) -> tuple[bytes, str]:
        """(stored bytes, checksum) of a payload: sealed, and the SHA-1 of what is stored."""
        blob = bytes(self._box.encrypt(payload.data))
        return blob, hashlib.sha1(blob).hexdigest()

    def __repr__(self) -> str:
        return f"Encryptor(key_id={self.key_id!r})"
