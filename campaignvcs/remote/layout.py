"""Where a campaign lives on a remote, what a remote URL may be, and how one is shown.

::

    <url>/<archive name>.aca                     the built archive (ADIOS2-only users fetch this)
    <url>/<archive name>.camp/objects/pack/pack-<sha>.pack   git objects, one pack per push
    <url>/<archive name>.camp/objects/pack/pack-<sha>.idx    its index (appears after the pack)
    <url>/<archive name>.camp/refs/heads/main    40 hex digits + newline: the pushed commit
    <url>/<archive name>.camp/lock               short-lived lease held while a push finishes

The archive name (``campaign.json`` ``name``, e.g. ``proj/run_001``) may contain ``/``.
Files are uploaded under ``tmp-*`` names and renamed into place; readers ignore those.
A temporary name says who wrote it and until when it may still be in use
(``tmp-<host>~<pid>~<start>~<expires>~<random>-<name>``, see :func:`tmp_writer`), so the
next push can remove a killed push's leftovers without touching a live one's.

Pure path and text rules: nothing here runs rclone, so :mod:`~campaignvcs.remote.rclone`
builds on this module and ``camp status`` can show remote URLs (:func:`redact`) without
loading the transfer code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from campaignvcs.errors import BadInput

PACK_RE = re.compile(r"^pack-([0-9a-f]{40})\.(pack|idx)$")
"""A finished pack or index on the remote; anything else in the folder is ignored."""
REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TMP_RE = re.compile(
    r"^tmp-(?P<host>[A-Za-z0-9._-]+)~(?P<pid>[0-9]+)~(?P<start>[0-9]+)~(?P<expires>[0-9]+)~(?P<rand>[0-9a-f]+)"
    r"-(?P<rest>.+)$"
)
"""A temporary upload: its writer (host, pid, process start), the time after which that
writer no longer uses it (Unix seconds), and the name it becomes (``rest``)."""
LEGACY_TMP_RE = re.compile(r"^tmp-(?P<token>[0-9a-f]{16})-(?P<rest>.+)$")
"""A temporary upload of camp before 0.2: a random token only, no writer and no expiry."""
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_RCLONE_REMOTE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_. -]*:")
"""``name:`` prefix of a configured rclone remote (rclone's own rule for remote names)."""
_SECRET_NAME = r"[A-Za-z0-9_]*(?:pass|secret|token|key|sas|credential|auth|bearer|cookie)[A-Za-z0-9_]*"
_SECRET_PARAM = re.compile(
    r"(?i)(?P<name>(?<![A-Za-z0-9_])" + _SECRET_NAME + r")(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^,:\s'\"\]}]*)"
)
_SECRET_FLAG = re.compile(
    r"(?i)(?P<name>--[A-Za-z0-9-]*(?:pass|secret|token|key)[A-Za-z0-9-]*)(?P<eq>[ =])(?P<value>\S+)"
)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")


def redact(text: str) -> str:
    """``text`` with the values of credential-like parameters replaced by ``***``.

    Covers rclone connection strings (``:sftp,host=h,pass=XYZ:path``), ``--*-pass VALUE``
    flags and ``scheme://user:password@host`` URLs.
    """
    text = _SECRET_PARAM.sub(lambda m: m.group("name") + m.group("eq") + "***", text)
    text = _SECRET_FLAG.sub(lambda m: m.group("name") + m.group("eq") + "***", text)
    return _URL_USERINFO.sub(lambda m: m.group("scheme") + m.group("user") + ":***@", text)


def join(base: str, *parts: str) -> str:
    """An rclone path below ``base`` (``remote:``, ``remote:dir``, ``:backend,opt=v:dir`` or a folder)."""
    out = base
    for part in parts:
        if not part:
            continue
        if out.endswith((":", "/")):
            out = out + part
        else:
            out = out + "/" + part
    return out


def is_local(url: str) -> bool:
    """True when rclone would read ``url`` as a path on this machine."""
    if url.startswith(":") or url.startswith("/"):
        return url.startswith("/")
    return _RCLONE_REMOTE.match(url) is None


def normalize_url(url: str, cwd: str) -> str:
    """Check a remote URL; a relative local folder becomes absolute (the clone may move)."""
    if not url or url != url.strip() or "\0" in url or "\n" in url:
        raise BadInput(f"invalid remote URL: {url!r}")
    if url.startswith("-"):
        raise BadInput(f"invalid remote URL: {url!r} (it would be read as an rclone option)")
    if is_local(url):
        url = os.path.abspath(os.path.join(cwd, os.path.expanduser(url)))
    return url


def validate_remote_name(name: str) -> str:
    """A remote name as git allows branch-like names: letters, digits, ``._-``."""
    if not REMOTE_NAME.match(name) or ".." in name or name.endswith((".lock", ".")):
        raise BadInput(f"invalid remote name: {name!r} (use letters, digits, '.', '_' or '-')")
    return name


@dataclass(frozen=True)
class RemoteLayout:
    """The paths of one campaign (archive ``name``) on the remote at ``url``.

    Paths are built from parts relative to the campaign, never by splitting a full rclone
    path: a connection string's own options may contain ``/`` and ``:``.
    """

    url: str
    name: str

    def path(self, rel: str) -> str:
        """The full rclone path of ``rel`` (relative to the remote root)."""
        return join(self.url, rel)

    def tmp_rel(self, rel: str, token: str) -> str:
        """The temporary name ``rel`` is uploaded under before it is moved into place."""
        head, _, last = rel.rpartition("/")
        return f"{head}/tmp-{token}-{last}" if head else f"tmp-{token}-{last}"

    def tmp_folders(self) -> dict[str, str]:
        """Folder (relative to the remote root) → the one final name a push uploads there under ``tmp-*``.

        The pack folder's final names vary (``pack-<sha>.pack|idx``): its value is ``""``.
        The archive's folder may be shared with other campaigns and other people's files:
        only this campaign's archive temporaries are ever considered there.
        """
        aca_dir, _, aca_name = self.aca_rel.rpartition("/")
        ref_dir, _, ref_name = self.ref_rel.rpartition("/")
        return {aca_dir: aca_name, self.pack_rel: "", ref_dir: ref_name}

    def owns_tmp(self, folder: str, rest: str) -> bool:
        """Whether a temporary named ``tmp-…-<rest>`` in ``folder`` is one this campaign's pushes upload.

        ``rest`` is the final name, or rclone's own partial upload of it
        (``<name>.<hex>.partial``, left when rclone itself is killed).
        """
        wanted = self.tmp_folders().get(folder)
        if wanted is None:
            return False
        m = re.match(r"^(?P<name>.+?)(?:\.[0-9a-f]+)?\.partial$", rest)
        name = m.group("name") if m else rest
        return PACK_RE.match(name) is not None if wanted == "" else name == wanted

    def tmp(self, rel: str, token: str) -> str:
        """The full rclone path of :meth:`tmp_rel`."""
        return join(self.url, self.tmp_rel(rel, token))

    @property
    def aca_rel(self) -> str:
        """The built archive, relative to the remote root."""
        return self.name + ".aca"

    @property
    def camp_rel(self) -> str:
        """The folder of history (objects and refs), relative to the remote root."""
        return self.name + ".camp"

    @property
    def pack_rel(self) -> str:
        """Packs and their indexes, relative to the remote root."""
        return self.camp_rel + "/objects/pack"

    @property
    def ref_rel(self) -> str:
        """The branch (the pushed commit's hex id), relative to the remote root."""
        return self.camp_rel + "/refs/heads/main"

    @property
    def lock_rel(self) -> str:
        """The lease a pusher holds while it moves the archive and the ref into place."""
        return self.camp_rel + "/lock"

    @property
    def aca(self) -> str:
        """The built archive."""
        return self.path(self.aca_rel)

    @property
    def pack_dir(self) -> str:
        """The pack folder."""
        return self.path(self.pack_rel)

    @property
    def ref(self) -> str:
        """The branch file."""
        return self.path(self.ref_rel)

    @property
    def lock(self) -> str:
        """The lease file."""
        return self.path(self.lock_rel)


def tmp_writer(host: str, pid: int, start: str, expires: int, rand: str) -> str:
    """The writer part of a temporary name: ``<host>~<pid>~<start>~<expires>~<rand>``.

    ``host`` is reduced to characters every backend keeps (a changed host name only means
    the writer cannot be checked from here: then ``expires`` decides).
    """
    return f"{_HOST_UNSAFE.sub('_', host) or '_'}~{pid}~{start if start.isdigit() else '0'}~{int(expires)}~{rand}"
