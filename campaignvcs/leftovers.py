"""What a killed process may leave in a repository, and sweeping it.

Half-written packs and objects, atomic-write temporaries, fetch/push folders, packs
without their index, locks. None of them is ever read as data: the next writer sweeps
those whose writer is gone (under the repository lock), and ``camp status`` / ``camp fsck``
name them so nobody has to guess whether a file in ``.git`` matters.
"""

from __future__ import annotations

import contextlib
import os
import time

from campaignvcs.lockfile import leftover_locks
from campaignvcs.objectstore import LOOSE_TEMPORARY, sweep_legacy_packs
from campaignvcs.packwrite import TEMPORARY_PREFIXES
from campaignvcs.tempfiles import sweep, writer_running

ORPHAN_PACK_AGE = 600.0
"""Seconds after which a ``.pack`` without its ``.idx`` is a leftover (a live writer renames the idx next)."""
REMOTE_TEMPORARIES = ("tmp-fetch-", "tmp-push-")
"""Folders a fetch or push works in, inside ``.git/camp``."""


def _temporaries(git_dir: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(folder, name prefixes, suffix) of every temporary camp writes in the repository."""
    objects = os.path.join(git_dir, "objects")
    camp_dir = os.path.join(git_dir, "camp")
    return [(os.path.join(objects, "pack"), TEMPORARY_PREFIXES, ""),  # packwrite
            (objects, (LOOSE_TEMPORARY,), ""),                        # loose objects
            (camp_dir, (".",), ".tmp"),                               # atomic_write
            (os.path.join(camp_dir, "shards"), (".",), ".tmp"),       # a shard (campaignvcs.shards)
            (camp_dir, REMOTE_TEMPORARIES, "")]                       # remote sync


def orphan_packs(git_dir: str) -> list[str]:
    """``.pack`` files without their ``.idx``: a writer killed between its two renames (never read)."""
    pack_dir = os.path.join(git_dir, "objects", "pack")
    try:
        names = set(os.listdir(pack_dir))
    except OSError:
        return []
    return sorted(os.path.join(pack_dir, n) for n in names
                  if n.endswith(".pack") and not n.startswith("tmp_") and n[:-5] + ".idx" not in names)


def sweep_repository(git_dir: str) -> list[str]:
    """Remove temporaries of writers that are gone; returns their paths. The caller holds the lock."""
    removed = [path for folder, prefixes, suffix in _temporaries(git_dir)
               for path in sweep(folder, prefixes, suffix)]
    now = time.time()
    for path in orphan_packs(git_dir):
        with contextlib.suppress(OSError):
            if now - os.stat(path).st_mtime > ORPHAN_PACK_AGE:
                os.unlink(path)
                removed.append(path)
    return removed + sweep_legacy_packs(git_dir)


def describe_leftovers(git_dir: str, lock_path: str) -> list[tuple[str, str]]:
    """(path, what it is and what clears it) of every lock and temporary a killed process may have left."""
    found = []
    for holder in leftover_locks(git_dir):
        if holder.path == lock_path:
            clears = ("the next camp command that writes removes it" if holder.state == "gone"
                      else f"if no camp process runs on {holder.host}, remove it: rm {holder.path}")
            found.append((holder.path, f"repository lock held by {holder.describe()}; {clears}"))
        else:
            found.append((holder.path, f"git ref lock left by a killed process ({holder.age:.0f} s old); the next "
                                       f"camp command that moves it removes it, or: rm {holder.path}"))
    for folder, prefixes, suffix in _temporaries(git_dir):
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(folder)):
                if name.startswith(prefixes) and name.endswith(suffix) and not writer_running(name):
                    found.append((os.path.join(folder, name), "temporary file of an interrupted write; the next "
                                  "camp command that writes removes it"))
    for path in orphan_packs(git_dir):
        found.append((path, "pack without its index (an interrupted write, never read); the next camp command "
                            "that writes removes it once it is ten minutes old"))
    return found
