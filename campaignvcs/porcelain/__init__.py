"""The Python API: one function per user operation.

Each function takes plain values (paths, names, ``repo=``/``cwd=``/``env=`` like
dulwich's porcelain), returns data, and raises :class:`campaignvcs.errors.CampError`
subclasses; none prints. The click commands in :mod:`campaignvcs.cli` are thin wrappers.

Functions are imported on first use (PEP 562), so a command loads only the porcelain
module it calls: ``camp status`` never pays for the code behind ``camp build``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "init": "workspace",
    "add": "workspace",
    "start_reading": "reading",
    "status": "workspace",
    "commit": "workspace",
    "log": "history",
    "show": "history",
    "build": "archive",
    "import_aca": "migrate",
    "key_generate": "keys",
    "key_verify": "keys",
    "key_info": "keys",
    "encryptor": "keys",
    "cat": "keys",
    "connect": "connect",
    "diff": "history",
    "whereis": "history",
    "rm": "replicas",
    "restore_staged": "restore",
    "completion_names": "names",
    "merge_state": "changes",
    "config_get": "userconfig",
    "config_set": "userconfig",
    "config_list": "userconfig",
    "mv": "replicas",
    "replica_add": "replicas",
    "archive_add": "archival",
    "archive_replica": "archival",
    "archive_list": "archival",
    "remote_add": "remotes",
    "remote_list": "remotes",
    "remote_remove": "remotes",
    "push": "sync",
    "fetch": "sync",
    "pull": "sync",
    "clone": "cloning",
    "resolve": "merging",
    "abort_merge": "merging",
    "timeseries": "series",
    "tar_index": "archival",
    "hooks_list": "hooks",
    "hooks_install": "hooks",
    "hooks_uninstall": "hooks",
    "verify": "integrity",
    "fsck": "integrity",
    "add_from": "remote_datasets",
    "store_ls": "store",
    "store_match": "store",
    "store_rm": "store",
    "store_pull": "store",
    "read_path_list": "pathlists",
    "take_share": "pathlists",
    "parse_meta": "pathlists",
    "dataset_info": "info",
    "search_index_update": "search",
    "web_serve": "web",
    "web_export": "web",
}
"""Public function → porcelain module that defines it. Add one line per new verb."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'campaignvcs.porcelain' has no attribute {name!r}")
    return getattr(importlib.import_module(f"campaignvcs.porcelain.{module}"), name)
