"""The lease a push holds on a remote while it publishes, and the sweep of killed pushes' temporaries.

Object stores have no compare-and-swap, so the lease is a lock file with a random token
written and read back (best effort; see docs/remotes.md). Under it a push removes the
``tmp-*`` uploads of pushes that are gone (:func:`sweep_remote`); a push that found
nothing to send still breaks a lease a killed push left (:func:`tidy_remote`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from datetime import datetime

from campaignvcs.remote.endpoint import Remote
from campaignvcs.remote.layout import LEGACY_TMP_RE, TMP_RE, redact, tmp_writer
from campaignvcs.remote.rclone import RemoteError, transfer_timeout
from campaignvcs.tempfiles import hostname, process_start, writer_alive

LEASE_SECONDS = 600
"""A remote lock older than this is abandoned (its pusher died on another host)."""
LOCK_WAIT_SECONDS = 30.0
LOCK_SETTLE_SECONDS = 0.3
"""Time between writing the lock and reading it back: a concurrent writer shows up by then."""
TMP_GRACE_SECONDS = 2 * LEASE_SECONDS
"""Added to a push's upload time limit to give the expiry of its temporaries: the renames
and the lease wait that follow the upload, and clocks that disagree between hosts."""


class RemoteLocked(RemoteError):
    """Another push holds the remote's lease."""


class RemoteLease:
    """A lock file on a store without compare-and-swap: write a unique token, read it back.

    Best effort by design (see docs/remotes.md): two pushers that both find the lock
    absent, write within the settle time and read back in an unlucky order could both
    believe they hold it; the ref is therefore also re-read under the lease and checked
    after it is written. A lease expires after :data:`LEASE_SECONDS`; one left by a dead
    process on this host is broken at once.
    """

    def __init__(self, remote: Remote, wait: float = LOCK_WAIT_SECONDS) -> None:
        self.remote = remote
        self.wait = wait
        self.token = secrets.token_hex(16)
        self.held = False

    def _content(self) -> bytes:
        return json.dumps({"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                           "expires": int(time.time()) + LEASE_SECONDS}, sort_keys=True).encode() + b"\n"

    def acquire(self) -> None:
        """Take the lease, waiting up to ``wait`` seconds for another pusher to finish."""
        rclone, lay = self.remote.rclone, self.remote.layout
        path = lay.lock
        deadline = time.monotonic() + self.wait
        while True:
            current = rclone.cat(lay.url, lay.lock_rel)
            if current is not None:
                holder = _parse_lease(current)
                if holder is None or _lease_abandoned(holder):
                    rclone.deletefile(lay.url, lay.lock_rel)
                    continue
                if time.monotonic() >= deadline:
                    raise RemoteLocked(
                        f"remote {self.remote.name} is locked by a push from {holder.get('host')} "
                        f"(pid {holder.get('pid')}); try again later, "
                        f"or delete {redact(path)} if no push is running"
                    )
                time.sleep(0.5)
                continue
            mine = self._content()
            rclone.rcat(lay.url, lay.lock_rel, mine)
            time.sleep(LOCK_SETTLE_SECONDS)
            if rclone.cat(lay.url, lay.lock_rel) == mine:
                self.held = True
                return

    def release(self) -> None:
        """Drop the lease."""
        if not self.held:
            return
        self.held = False
        # Not read back first: the lease outlives any push's final renames by minutes, so
        # the file is ours (one call saved on every push).
        with contextlib.suppress(RemoteError):
            self.remote.rclone.deletefile(self.remote.layout.url, self.remote.layout.lock_rel)


def _parse_lease(data: bytes) -> dict[str, object] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) and "token" in value else None


def _lease_abandoned(holder: dict[str, object]) -> bool:
    expires = holder.get("expires")
    if not isinstance(expires, int) or expires < time.time():
        return True
    pid = holder.get("pid")
    if holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


# -- temporaries on the remote ---------------------------------------------------------------------


def new_tmp_token(total: int) -> str:
    """The writer part of this push's temporary names (see :func:`campaignvcs.remote.layout.tmp_writer`).

    They expire once the upload of ``total`` bytes has certainly ended (rclone is stopped
    at :func:`transfer_timeout`), plus :data:`TMP_GRACE_SECONDS` for what follows it.
    """
    pid = os.getpid()
    expires = int(time.time() + transfer_timeout(total) + TMP_GRACE_SECONDS)
    return tmp_writer(hostname(), pid, process_start(pid), expires, secrets.token_hex(4))


def _mod_time(entry: dict[str, object]) -> float | None:
    try:
        return datetime.fromisoformat(str(entry.get("ModTime"))).timestamp()
    except ValueError:
        return None


def stale_tmps(remote: Remote, own: str = "", now: float | None = None) -> list[str]:
    """This campaign's ``tmp-*`` files on the remote whose writers are gone (paths relative to the root).

    A temporary is stale when it is not this push's (``own``) and either its writer ran on
    this host and no longer runs (pid and process start), or its expiry has passed: by
    then the writer's upload was stopped and the lease it waited for was given up, so it
    never uses the file again (at worst a push frozen for that long fails its rename;
    the remote ref is written last, from the writer's own temporary, so it is never
    left pointing at something missing). A temporary of camp before 0.2 names no writer:
    it is stale once its modification time is older than the longest upload of its
    push's files plus the same grace. Only names a push of this campaign makes are
    considered (the archive's folder may be shared with other campaigns and files).
    """
    rc, lay = remote.rclone, remote.layout
    now = time.time() if now is None else now
    found: list[tuple[str, dict[str, str], dict[str, object]]] = []
    legacy_sizes: dict[str, int] = {}
    for folder in lay.tmp_folders():
        try:
            entries = rc.lsjson(lay.url, folder)
        except RemoteError:
            continue
        for entry in entries:
            name = str(entry.get("Name", ""))
            m = TMP_RE.match(name) or LEGACY_TMP_RE.match(name)
            if m is None or not lay.owns_tmp(folder, m.group("rest")):
                continue
            found.append((f"{folder}/{name}" if folder else name, m.groupdict(), entry))
            if "token" in m.groupdict():
                token = m.group("token")
                legacy_sizes[token] = legacy_sizes.get(token, 0) + int(str(entry.get("Size") or 0))
    stale = []
    for rel, g, entry in found:
        if "token" in g:  # camp before 0.2: no writer, no expiry
            written = _mod_time(entry)
            limit = transfer_timeout(legacy_sizes[g["token"]]) + TMP_GRACE_SECONDS
            if written is not None and now > written + limit:
                stale.append(rel)
            continue
        writer = f"{g['host']}~{g['pid']}~{g['start']}~{g['expires']}~{g['rand']}"
        if writer == own:
            continue
        if now > int(g["expires"]) or writer_alive(g["host"], g["pid"], g["start"]) is False:
            stale.append(rel)
    return sorted(stale)


def sweep_remote(remote: Remote, own: str = "", now: float | None = None) -> list[str]:
    """Delete :func:`stale_tmps` (the caller holds the lease); returns what was deleted.

    Housekeeping never fails a push: a file that cannot be deleted is left for the next one.
    """
    removed = []
    for rel in stale_tmps(remote, own, now):
        with contextlib.suppress(RemoteError):
            remote.rclone.deletefile(remote.layout.url, rel)
            removed.append(rel)
    return removed


def tidy_remote(remote: Remote) -> list[str]:
    """After a push found nothing to send: break a lease a killed push left, and sweep under it.

    One read when there is no lease (the usual case); never fails.
    """
    rc, lay = remote.rclone, remote.layout
    try:
        current = rc.cat(lay.url, lay.lock_rel)
        if current is None:
            return []
        holder = _parse_lease(current)
        if holder is not None and not _lease_abandoned(holder):
            return []  # a live push: it sweeps itself
        lease = RemoteLease(remote, wait=0.0)
        lease.acquire()
    except RemoteError:
        return []
    try:
        return sweep_remote(remote)
    finally:
        lease.release()
