"""camp info: what is inside a dataset, from what the repository holds (no data files needed).

The answer comes from the embedded metadata objects alone, so it works for a dataset on
another cluster, in S3 or only on tape: ADIOS2 itself reports a BP dataset's variables and
attributes (:mod:`campaignvcs.inspect.bp`), h5py the HDF5 metadata copy's tree, the
manifests the resolutions and sizes. :meth:`DatasetInfo.to_json` is the stable schema
documented in docs/inspect.md (the web catalog builds on it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from campaignvcs import keys as sealing
from campaignvcs.config import config_dir
from campaignvcs.errors import BadInput
from campaignvcs.inspect.bp import Attribute, Variable
from campaignvcs.inspect.describe import Contents, Recorded, RecordedReplica, StoredFile, describe_all
from campaignvcs.model import Dataset
from campaignvcs.porcelain.common import environ, open_repo

CONNECT_PORT = 30000
"""Where ADIOS2 (and so ``camp connect``) asks for keys: ``/get_key?id=<key id>`` on 127.0.0.1."""
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ReplicaLine:
    """Where one replica lives: host, full path on it, archive (None unless archived; '' = the folder is one)."""

    host: str
    path: str
    archive: str | None


@dataclass(frozen=True)
class DatasetInfo:
    """What ``camp info`` shows of one dataset."""

    name: str
    kind: str
    encrypted: bool
    decrypted: bool
    replicas: list[ReplicaLine]
    variables: list[Variable]
    attributes: list[Attribute]
    groups: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    note: str = ""
    """Why something is not shown (e.g. the key is not at hand); not part of :meth:`to_json`."""
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (docs/inspect.md, "JSON schema")."""
        return {
            "name": self.name,
            "kind": self.kind,
            "encrypted": self.encrypted,
            "decrypted": self.decrypted,
            "replicas": [asdict(r) for r in self.replicas],
            "variables": [asdict(v) for v in self.variables],
            "attributes": [asdict(a) for a in self.attributes],
            "groups": self.groups,
            "image": self.image,
            "text": self.text,
        }


def recorded(ds: Dataset, read_blob: Callable[[bytes], bytes]) -> Recorded:
    """A repository dataset as :mod:`campaignvcs.inspect.describe` takes it."""

    def reader(blob: str) -> Callable[[], bytes]:
        return lambda: read_blob(blob.encode())

    return Recorded(ds.name, ds.kind, tuple(
        RecordedReplica(
            host=r.host, dir=r.dir, path=r.path, archive=r.archive, key=r.key, size=r.size,
            resolution=r.resolution, live=r.live,
            files=tuple(StoredFile(f.name, f.checksum, f.compression, reader(f.blob)) for f in r.files),
        )
        for r in ds.replicas
    ))


def replica_lines(rec: Recorded) -> list[ReplicaLine]:
    """One line per live replica (all replicas of a deleted dataset); thumbnails are in ``image``."""
    reps = [r for r in rec.live_replicas or rec.replicas if not r.thumbnail]
    return [ReplicaLine(r.host, r.path if not r.dir else f"{r.dir.rstrip('/')}/{r.path}", r.archive) for r in reps]


def keys_at_hand(needed: Iterable[str], keyfile: str | None, cwd: str | None, env: Mapping[str, str]
                 ) -> dict[str, bytes]:
    """Raw keys for the key ids in ``needed``: ``keyfile``, the key folder camp connect serves, the connector.

    Password-protected key files open with ``CAMP_KEY_PASSWORD``; others are skipped. The
    connector (``camp connect`` or hpc-campaign's) is asked on 127.0.0.1 for what is left.
    """
    wanted = {k for k in needed if k}
    found: dict[str, bytes] = {}
    if not wanted:
        return found
    if keyfile is not None:
        path = os.path.join(cwd or os.getcwd(), os.path.expanduser(keyfile))
        kf = sealing.read_keyfile(path)
        if kf.protected:
            password = env.get("CAMP_KEY_PASSWORD")
            if not password:
                raise BadInput(f"key file {keyfile} is password-protected: set CAMP_KEY_PASSWORD")
            found[kf.id] = sealing.unlock(kf, password, where=keyfile)
        else:
            found[kf.id] = kf.key
    if wanted - found.keys():
        from campaignvcs.porcelain.connect import load_keys

        served, _ = load_keys(os.path.join(config_dir(env), "keys"), None, env, lambda _line: None)
        found.update({k: v for k, v in served.items() if k in wanted and k not in found})
    for key_id in sorted(wanted - found.keys()):
        raw = _connector_key(key_id, env)
        if raw is None:
            break  # no connector, or it does not know the key: do not ask again for each
        found[key_id] = raw
    return found


def _connector_key(key_id: str, env: Mapping[str, str]) -> bytes | None:
    port = int(env.get("CAMP_CONNECT_PORT") or CONNECT_PORT)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(f"/get_key?id={key_id}".encode())
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
    except OSError:
        return None
    fields = dict(part.split(":", 1) for part in reply.decode("ascii", "replace").split(",") if ":" in part)
    try:
        raw = bytes.fromhex(fields.get("key", ""))
    except ValueError:
        return None
    return raw if len(raw) == 32 else None


def info_of(rec: Recorded, contents: Contents) -> DatasetInfo:
    """The :class:`DatasetInfo` of a recorded dataset and what its metadata says."""
    return DatasetInfo(
        name=rec.name, kind=rec.kind, encrypted=contents.encrypted, decrypted=contents.decrypted,
        replicas=replica_lines(rec), variables=contents.variables, attributes=contents.attributes,
        groups=contents.groups, image=contents.image, text=contents.text, note=contents.note,
    )


def dataset_info(
    name: str,
    rev: str | None = None,
    repo: Any = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    keyfile: str | None = None,
) -> DatasetInfo:
    """What is inside dataset ``name`` at ``rev`` (default: what the next commit would hold, else HEAD).

    Only what the repository holds is read: the data folder may be gone. Encrypted
    metadata is opened in memory when its key is at hand (``keyfile``, the key folder,
    the connector); otherwise ``encrypted`` is true, ``decrypted`` false, and only names
    and replicas are shown.
    """
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        ds = camp.dataset(name, camp.resolve(rev) if rev is not None else None)
        if ds is None:
            raise BadInput(f"no dataset named {name!r} in {rev or 'the staging area or HEAD'}")
        rec = recorded(ds, camp.read_blob)
        needed = {r.key for r in rec.replicas if r.key}
        keys = keys_at_hand(needed, keyfile, cwd, env) if needed else {}
        (contents,) = describe_all([rec], keys, env)
    return info_of(rec, contents)
