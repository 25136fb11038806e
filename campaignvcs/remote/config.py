"""The remotes a clone knows by name: ``[camp-remote "NAME"]`` in ``.git/config`` and their credentials.

The one module that reads and writes remote configuration. ``.git/config`` holds each URL
with its credentials shown as ``***`` (not git's ``[remote]``, so stock git is not
confused by URLs it cannot use); the whole URL, when it holds credentials, lives in
``.git/camp/credentials`` (JSON, mode 0600), so no world-readable file holds a secret
whatever git or dulwich do to ``.git/config``. Only text rules are needed
(:func:`~campaignvcs.remote.layout.redact`), so ``camp status`` reads remotes without
loading rclone.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from dulwich.config import ConfigFile

from campaignvcs.errors import BadInput, CampError, RepoLocked
from campaignvcs.remote.layout import redact
from campaignvcs.repo import CampaignRepo
from campaignvcs.tempfiles import atomic_write

SECTION = b"camp-remote"
CREDENTIALS = "credentials"
"""``.git/camp/credentials``: remote name → URL with credentials (JSON, mode 0600)."""
DEFAULT_REMOTE = "origin"


def credentials_path(git_dir: str) -> str:
    """Where the URLs with credentials are kept."""
    return os.path.join(git_dir, "camp", CREDENTIALS)


def remote_urls(camp: CampaignRepo) -> dict[str, str]:
    """Remote name → URL with credentials (shown form where the credentials are missing)."""
    return load_remotes(camp)[0]


def load_remotes(camp: CampaignRepo) -> tuple[dict[str, str], list[str]]:
    """(name → URL with credentials, names whose credentials are missing), migrating old configs.

    A URL in ``.git/config`` that still holds credentials (camp before 0.2 kept them there)
    is moved to the credentials file on first use, under the repository lock; when
    another camp process holds the lock, it is used as it is and moved next time.
    """
    cfg = camp.config_file()
    shown: dict[str, str] = {}
    for section in cfg.sections():
        if len(section) == 2 and section[0] == SECTION:
            try:
                shown[section[1].decode()] = cfg.get(section, b"url").decode()
            except KeyError:
                try:
                    shown[section[1].decode()] = base64.b64decode(cfg.get(section, b"url64")).decode()
                except (KeyError, ValueError):
                    continue
    if not shown:
        return {}, []
    exposed = {n: u for n, u in shown.items() if redact(u) != u}
    if exposed:
        _move_credentials(camp, exposed)
    creds = _read_credentials(camp.git_dir) if any(_redacted(u) for u in shown.values()) else {}
    out, missing = {}, []
    for name, url in shown.items():
        full = creds.get(name)
        if full is not None and redact(full) == url:
            out[name] = full
        else:
            out[name] = url
            if _redacted(url):
                missing.append(name)
    return out, missing


def pick_remote(camp: CampaignRepo, name: str | None, use: bool = True) -> tuple[str, str]:
    """(name, URL with credentials) of remote ``name``, else origin, else the only one.

    With ``use``, a remote whose credentials are missing is refused here rather than
    handed to rclone with ``***`` in place of a password.
    """
    remotes, missing = load_remotes(camp)
    if name is None:
        if DEFAULT_REMOTE in remotes:
            name = DEFAULT_REMOTE
        elif len(remotes) == 1:
            name = next(iter(remotes))
        else:
            raise BadInput("no remote given and none named origin (camp remote add origin URL)")
    url = remotes.get(name)
    if url is None:
        raise BadInput(f"no such remote: {name} (camp remote list shows the remotes)")
    if use and name in missing:
        where = credentials_path(camp.git_dir)
        raise CampError(f"the credentials of remote {name} are missing from {where}: "
                        f"'camp remote remove {name}', then 'camp remote add {name} URL' again")
    return name, url


@dataclass(frozen=True)
class RemoteOptions:
    """What a push sends to a remote besides history: the archive or not, and of which datasets.

    ``archive`` false makes a history-only remote (readers with camp rebuild locally);
    ``include``/``exclude`` are the globs of the sub-archive it gets (:mod:`campaignvcs.selection`).
    """

    archive: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def remote_options(camp: CampaignRepo, name: str) -> RemoteOptions:
    """The push options of remote ``name`` (defaults for a remote recorded without any)."""
    cfg = camp.config_file()
    section = (SECTION, name.encode())
    try:
        archive = cfg.get(section, b"archive").decode().lower() not in ("false", "no", "off", "0")
    except KeyError:
        archive = True

    def globs(key: bytes) -> tuple[str, ...]:
        try:
            return tuple(v.decode() for v in cfg.get_multivar(section, key))
        except KeyError:
            return ()

    return RemoteOptions(archive, globs(b"include"), globs(b"exclude"))


def set_remote(camp: CampaignRepo, name: str, url: str, options: RemoteOptions | None = None) -> None:
    """Record remote ``name`` at ``url`` (added or replaced; the caller holds the lock or owns the clone)."""
    cfg = camp.config_file()
    _set_url(camp.git_dir, cfg, name, url)
    if options is not None:
        section = (SECTION, name.encode())
        for key in (b"archive", b"include", b"exclude"):
            with contextlib.suppress(KeyError):
                del cfg[section][key]
        if not options.archive:
            cfg.set(section, b"archive", b"false")
        for key, values in ((b"include", options.include), (b"exclude", options.exclude)):
            for glob in values:
                cfg.add(section, key, glob.encode())
    cfg.write_to_path()


def remove_remote(camp: CampaignRepo, name: str) -> None:
    """Forget remote ``name``'s URL and credentials (the caller holds the lock)."""
    cfg = camp.config_file()
    del cfg[(SECTION, name.encode())]
    cfg.write_to_path()
    creds = _read_credentials(camp.git_dir)
    if creds.pop(name, None) is not None:
        _write_credentials(camp.git_dir, creds)


def _read_credentials(git_dir: str) -> dict[str, str]:
    path = credentials_path(git_dir)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CampError(f"cannot read the remote credentials {path} ({exc})") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_credentials(git_dir: str, creds: Mapping[str, str]) -> None:
    """Write the credentials file, 0600 whatever the umask (atomically: a reader never sees half)."""
    path = credentials_path(git_dir)
    if not creds:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    atomic_write(path, json.dumps(dict(creds), sort_keys=True, indent=1).encode() + b"\n", mode=0o600)


def _redacted(url: str) -> bool:
    """Whether ``url`` is a shown form whose credentials were replaced by ``***``."""
    return "=***" in url or ":***@" in url


def _move_credentials(camp: CampaignRepo, exposed: Mapping[str, str]) -> bool:
    """Move credentials from ``.git/config`` to the 0600 file; False while the lock is busy (next time)."""
    try:
        with camp.lock(wait=0.0):
            cfg = camp.config_file()
            for name, url in exposed.items():
                _set_url(camp.git_dir, cfg, name, url)
            cfg.write_to_path()
    except RepoLocked:
        with contextlib.suppress(OSError):  # meanwhile, at least nobody else reads them
            os.chmod(os.path.join(camp.git_dir, "config"), 0o600)
        return False
    return True


def _set_url(git_dir: str, cfg: ConfigFile, name: str, url: str) -> None:
    """Store a remote's URL, its credentials apart.

    ``.git/config`` gets the URL with credentials shown as ``***``, and
    ``.git/camp/credentials`` (0600) the whole URL when it holds any.
    The credentials file is written first: a process killed in between leaves an unused
    entry, never a URL that lost its password. One URL with ';' goes base64-encoded as
    ``url64``: dulwich writes a value holding ';' unquoted, and git config reads ';' as
    the start of a comment, so such a URL would come back cut short (an rclone connection
    string or a folder name may contain ';').
    """
    shown = redact(url)
    creds = _read_credentials(git_dir)
    wanted = dict(creds)
    if shown != url:
        wanted[name] = url
    else:
        wanted.pop(name, None)
    if wanted != creds:
        _write_credentials(git_dir, wanted)
    section = (SECTION, name.encode())
    for key in (b"url", b"url64"):
        with contextlib.suppress(KeyError):
            del cfg[section][key]
    if ";" in shown:
        cfg.set(section, b"url64", base64.b64encode(shown.encode()))
    else:
        cfg.set(section, b"url", shown.encode())
