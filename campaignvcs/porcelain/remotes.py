"""remote add / list / remove: the remotes this clone knows by name.

Where and how they are stored (``.git/config`` without secrets, the 0600 credentials
file) is :mod:`campaignvcs.remote.config`'s business; what camp learnt about a remote
(``refs/remotes/<name>/main``, ``.git/camp/remotes/<name>/``) is
:mod:`campaignvcs.remote.tracking`'s, and ``remote remove`` clears it too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import astuple, dataclass

from campaignvcs.errors import BadInput
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.remote.config import RemoteOptions, remote_options, remote_urls, remove_remote, set_remote
from campaignvcs.remote.layout import normalize_url, redact, validate_remote_name
from campaignvcs.remote.tracking import remote_state_dir, tracking_ref
from campaignvcs.repo import CampaignRepo
from campaignvcs.selection import Selection


@dataclass(frozen=True)
class RemoteInfo:
    """A configured remote (URL shown with credentials redacted)."""

    name: str
    url: str
    archive: bool = True
    """False: a history-only remote (push sends no archive)."""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def remote_add(name: str, url: str, repo: str | CampaignRepo | None = None, cwd: str | None = None,
               env: Mapping[str, str] | None = None, archive: bool = True, include: tuple[str, ...] = (),
               exclude: tuple[str, ...] = ()) -> RemoteInfo:
    """Add remote ``name`` at ``url`` (any rclone path; a relative folder is made absolute).

    ``archive`` false makes it history-only: pushes send the commits, and readers with camp
    rebuild the archive themselves. ``include``/``exclude`` (dataset-name globs) make the
    archive pushed there a sub-archive.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    validate_remote_name(name)
    url = normalize_url(url, cwd)
    options = RemoteOptions(archive, tuple(include), tuple(exclude))
    Selection(options.include, options.exclude)  # refuses a glob git's config cannot hold
    if not archive and (include or exclude):
        raise BadInput("--include/--exclude choose the datasets of the archive a push sends; "
                       "a --no-archive remote gets none")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        if name in remote_urls(camp):
            raise BadInput(f"remote {name} already exists (camp remote remove {name} first)")
        set_remote(camp, name, url, options)
    return RemoteInfo(name, redact(url), *astuple(options))


def remote_list(repo: str | CampaignRepo | None = None, cwd: str | None = None,
                env: Mapping[str, str] | None = None) -> list[RemoteInfo]:
    """The configured remotes, by name."""
    with open_repo(repo, cwd, environ(env)) as camp:
        return [RemoteInfo(n, redact(u), *astuple(remote_options(camp, n)))
                for n, u in sorted(remote_urls(camp).items())]


def remote_remove(name: str, repo: str | CampaignRepo | None = None, cwd: str | None = None,
                  env: Mapping[str, str] | None = None) -> RemoteInfo:
    """Forget remote ``name`` here (nothing on the remote is touched)."""
    with open_repo(repo, cwd, environ(env)) as camp, camp.lock():
        url = remote_urls(camp).get(name)
        if url is None:
            raise BadInput(f"no such remote: {name}")
        remove_remote(camp, name)
        camp.refs.remove_if_equals(tracking_ref(name), None)
        shutil.rmtree(remote_state_dir(camp, name), ignore_errors=True)
    return RemoteInfo(name, redact(url))
