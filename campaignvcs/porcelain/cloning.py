"""clone: a new campaign repository from a remote, and finding the campaign a clone URL means.

A clone URL is either a remote root (the campaign below it is found, or named with
``--name``) or the ``<archive name>.camp`` folder itself; an archive name may hold ``/``,
so a guess from the folder is corrected from the campaign's own name once fetched. The
fetch itself is :func:`campaignvcs.remote.sync.fetch`: a refused fetch leaves no folder.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field

from campaignvcs.config import load_user_config
from campaignvcs.errors import BadInput, CampError
from campaignvcs.porcelain.common import environ
from campaignvcs.porcelain.workspace import resolve_host_name
from campaignvcs.remote.config import DEFAULT_REMOTE, set_remote
from campaignvcs.remote.endpoint import Remote, find_campaigns
from campaignvcs.remote.layout import RemoteLayout, is_local, normalize_url, redact
from campaignvcs.remote.rclone import Rclone
from campaignvcs.remote.sync import Progress, fetch, finish_clone
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class CloneResult:
    """A new clone: where, of what, and what it received."""

    path: str
    name: str
    url: str
    head: str
    packs: int
    objects: int
    bytes_received: int
    archive: str | None = None
    warnings: list[str] = field(default_factory=list)


def clone(url: str, path: str | None = None, name: str | None = None, host: str | None = None,
          build: bool = True, cwd: str | None = None, env: Mapping[str, str] | None = None,
          progress: Progress | None = None) -> CloneResult:
    """Make a new campaign repository from a remote; its remote ``origin`` is the remote root.

    ``url`` is the remote root (as ``camp remote add`` takes it; the campaign below it is
    found, or named with ``name``) or the ``<archive name>.camp`` folder itself. ``path``
    defaults to the last component of the archive name.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    if host is not None:
        resolve_host_name(host)
    url = normalize_url(url, cwd)
    with Rclone(env) as rclone:
        root, archive, guessed = locate_campaign(rclone, url, name)
        target = os.path.abspath(os.path.join(cwd, path or archive.rsplit("/", 1)[-1]))
        if os.path.exists(target) and (not os.path.isdir(target) or os.listdir(target)):
            raise BadInput(f"destination {target} already exists and is not an empty folder")
        created = not os.path.exists(target)
        remote = Remote(DEFAULT_REMOTE, root, RemoteLayout(root, archive), rclone)
        if remote.read_ref() is None:
            raise CampError(f"no campaign {archive} at {redact(root)} (nothing was pushed there)")
        try:
            camp = CampaignRepo.create(target, host)
            try:
                got = fetch(camp, remote, progress)
                assert got.new is not None
                real = camp.campaign(got.new).name
                if real != archive:
                    root, archive = corrected_guess(url, archive, real, guessed)
                if is_local(root) and len(root) > 1:
                    root = root.rstrip("/")
                set_remote(camp, DEFAULT_REMOTE, root)
                finish_clone(camp, got.new)
            except BaseException:
                camp.close()
                raise
        except BaseException:
            if created:
                shutil.rmtree(target, ignore_errors=True)
            else:
                shutil.rmtree(os.path.join(target, ".git"), ignore_errors=True)
            raise
    # The clone is complete from here: a failed build only warns, and the new repository,
    # still open, is what the build reads.
    with camp:
        result = CloneResult(target, archive, redact(root), got.new.decode(), got.packs, got.objects,
                             got.bytes_received)
        return _rebuild_clone(result, camp, env) if build else result


def _rebuild_clone(result: CloneResult, camp: CampaignRepo, env: Mapping[str, str]) -> CloneResult:
    """Build the new clone's archive into the campaign store, beside another clone's if that one is there.

    Another repository's archive at the store's name (a first clone of the same campaign
    on this machine) is left alone: this clone's goes to ``<archive name>-<n>.aca``, and a
    warning says so.
    """
    if not load_user_config(env).campaign_store:
        return result
    try:
        from campaignvcs.porcelain.archive import build  # the build code loads only when there is a store

        built = build(repo=camp, cwd=camp.root, env=env, elsewhere_if_taken=True)
    except (ImportError, CampError) as exc:
        return dataclasses.replace(result, warnings=[f"archive not built: {exc}"])
    warnings = [*result.warnings, *built.warnings]
    if built.instead_of is not None:
        warnings.append(f"{built.instead_of} was built by another repository, so this clone's archive is "
                        f"{built.path} (camp build and camp pull keep it up to date)")
    return dataclasses.replace(result, archive=built.path, warnings=warnings)


# -- which campaign a URL means -----------------------------------------------------------------


def locate_campaign(rclone: Rclone, url: str, name: str | None) -> tuple[str, str, bool]:
    """(remote root, archive name, guessed) for a clone URL.

    For a ``.../<x>.camp`` URL the archive name may hold more components than ``x`` (it
    may contain '/'); the guess is corrected from the campaign's own name after fetching
    (:func:`corrected_guess`).
    """
    if name is not None:
        return url, name, False
    folder = url.rstrip("/")
    if folder.endswith(".camp"):
        sep = max(folder.rfind("/"), folder.rfind(":"))
        return folder[: sep + 1], folder[sep + 1: -len(".camp")], True
    found = find_campaigns(rclone, url)
    if not found:
        raise CampError(f"no campaign at {redact(url)} (no <archive name>.camp folder below it)")
    if len(found) > 1:
        raise BadInput(f"several campaigns at {redact(url)}: {', '.join(found)} (pick one with --name)")
    return url, found[0], False


def corrected_guess(url: str, archive: str, real: str, guessed: bool) -> tuple[str, str]:
    """(remote root, archive name) once the fetched campaign says its name is ``real``, not ``archive``.

    Only a guess from a ``.camp`` folder URL is corrected, and only when that folder is
    ``<real>.camp`` (its name then says where the remote root is); anything else is refused.
    """
    folder = url.rstrip("/")
    if not (guessed and folder.endswith(real + ".camp") and
            (len(folder) == len(real) + 5 or folder[-len(real) - 6] in "/:")):
        raise CampError(f"the campaign at {redact(url)} is named {real}, not {archive}")
    return folder[: len(folder) - len(real) - 5], real
