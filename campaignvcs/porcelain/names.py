"""Names for shell completion: the datasets of the staged state, the remotes."""

from __future__ import annotations

from collections.abc import Mapping

from campaignvcs import layout
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.remote.config import remote_urls


def completion_names(which: str, repo: str | None = None, cwd: str | None = None,
                     env: Mapping[str, str] | None = None) -> list[str]:
    """``which`` is ``datasets`` (live or not, from tree paths only: no manifest is read) or ``remotes``."""
    with open_repo(repo, cwd, environ(env)) as camp:
        if which == "remotes":
            return sorted(remote_urls(camp))
        tree = camp.staged_tree()
        entry = camp.lookup(tree, layout.DATASETS)
        if entry is None:
            return []
        names = []
        for path, _mode, _oid in camp.iter_tree(entry[1], layout.DATASETS + "/"):
            if path.endswith("/" + layout.MANIFEST):
                name = layout.dataset_name_of(path)
                if name is not None:
                    names.append(name)
        return sorted(names)
