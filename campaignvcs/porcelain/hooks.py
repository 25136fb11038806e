"""hooks list / install / uninstall: manage the campaign's ``.git/camp/hooks``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from campaignvcs.errors import BadInput, CampError
from campaignvcs.hooks import (
    HOOK_NAMES,
    HookRun,
    check_name,
    declared_hook_point,
    hooks_dir,
    ready_hooks,
    run_hook,
)
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo
from campaignvcs.tempfiles import atomic_write

HOOK_MODE = 0o755


@dataclass(frozen=True)
class InstalledHook:
    """A hook file in the campaign: which hook point, and which ready hook it is a copy of."""

    name: str
    path: str
    executable: bool
    ready: str | None
    """Name of the ready hook whose content it has (None: a hook of the user's own)."""


@dataclass(frozen=True)
class ReadyHook:
    """A hook camp ships in ``hooks/``; ``hook`` is where it installs (None: a job-script helper)."""

    name: str
    hook: str | None
    path: str


@dataclass(frozen=True)
class HookList:
    """The campaign's hooks folder, what is installed there and what camp ships."""

    folder: str
    installed: list[InstalledHook] = field(default_factory=list)
    ready: list[ReadyHook] = field(default_factory=list)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _ready() -> list[ReadyHook]:
    return [ReadyHook(name, declared_hook_point(path), path) for name, path in ready_hooks().items()]


def hooks_list(repo: str | None = None, cwd: str | None = None, env: Mapping[str, str] | None = None) -> HookList:
    """The installed hooks (in the order camp runs them) and the ready-made ones."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        folder = hooks_dir(camp.camp_dir)
    ready = _ready()
    contents = {r.name: _read(r.path) for r in ready}
    installed = []
    for name in HOOK_NAMES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        data = _read(path)
        same = next((r for r, c in contents.items() if c is not None and c == data), None)
        installed.append(InstalledHook(name, path, os.access(path, os.X_OK), same))
    return HookList(folder, installed, ready)


@dataclass(frozen=True)
class HookInstalled:
    """What ``camp hooks install`` did."""

    name: str
    path: str
    source: str
    replaced: bool


def hooks_install(
    source: str,
    as_name: str | None = None,
    force: bool = False,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> HookInstalled:
    """Install a ready hook (by name) or a script (by path) as the hook ``as_name``.

    The hook is a copy (mode 0755), so a later camp upgrade never changes what a
    campaign runs behind the user's back. Without ``as_name`` a ready hook goes where
    its header says (``# camp-hook: post-commit``) and a file goes under its own name,
    which must then be a hook name. An installed hook is replaced only with ``force``.
    """
    env = environ(env)
    cwd = cwd or os.getcwd()
    if as_name is not None:
        check_name(as_name)
    ready = {r.name: r for r in _ready()}
    candidate = os.path.join(cwd, source)
    if source in ready and os.path.sep not in source and not os.path.exists(candidate):
        hook = ready[source]
        path = hook.path
        if as_name is None and hook.hook is None:
            raise BadInput(
                f"{source} is a job-script helper, not a repository hook: run {path} from the job script "
                "(see its header), or pass --as HOOKNAME"
            )
        name = as_name or hook.hook
    elif os.path.isfile(candidate):
        path = os.path.abspath(candidate)
        name = as_name or declared_hook_point(path) or os.path.basename(path)
        if name not in HOOK_NAMES:
            raise BadInput(f"{source}: say which hook it is with --as (one of {', '.join(HOOK_NAMES)})")
    else:
        known = ", ".join(sorted(ready)) or "none found"
        raise BadInput(f"no ready hook or file named {source!r} (ready hooks: {known})")
    data = _read(path)
    if data is None:
        raise BadInput(f"{path}: cannot read")
    assert name is not None
    with open_repo(repo, cwd, env) as camp:
        folder = hooks_dir(camp.camp_dir)
    target = os.path.join(folder, name)
    exists = os.path.lexists(target)
    if exists and not force:
        raise CampError(f"a {name} hook is already installed ({target}); pass --force to replace it")
    os.makedirs(folder, exist_ok=True)
    atomic_write(target, data, HOOK_MODE)
    return HookInstalled(name, target, path, exists)


def hooks_uninstall(name: str, repo: str | None = None, cwd: str | None = None,
                    env: Mapping[str, str] | None = None) -> str:
    """Remove the installed hook ``name`` (a hook name, or a ready hook's name); returns its path."""
    env = environ(env)
    listing = hooks_list(repo, cwd, env)
    matches = [h for h in listing.installed if h.name == name] or [h for h in listing.installed if h.ready == name]
    if not matches:
        if name not in HOOK_NAMES and name not in {r.name for r in listing.ready}:
            raise BadInput(f"unknown hook name: {name!r} (one of {', '.join(HOOK_NAMES)})")
        raise CampError(f"no {name} hook is installed")
    if len(matches) > 1:
        raise CampError(f"{name} is installed as {', '.join(h.name for h in matches)}: uninstall each by hook name")
    os.unlink(matches[0].path)
    return matches[0].path


def post_hook(camp: CampaignRepo, name: str, env: Mapping[str, str], commit: str | bytes | None = None,
              archive: str | None = None, extra: Mapping[str, str] | None = None) -> list[str]:
    """Run a post-hook after the operation (and its lock) is done; a failure only warns.

    Returns the warnings (none, or the one line saying how the hook failed), for the
    operation's result: porcelain reports warnings in results, never any other way.
    """
    run = run_hook(camp, name, env, commit=commit, archive=archive, extra=extra)
    return [run.warning] if run is not None and run.warning else []


def pre_add_hook(camp: CampaignRepo, env: Mapping[str, str], paths: list[str], host: str) -> HookRun | None:
    """``pre-add``: the absolute paths as arguments and in ``CAMP_PATHS`` (one per line)."""
    return run_hook(camp, "pre-add", env, extra={"CAMP_PATHS": "\n".join(paths), "CAMP_HOST": host}, args=paths)


def pre_commit_hook(camp: CampaignRepo, env: Mapping[str, str], message: str) -> HookRun | None:
    """``pre-commit``: the staged changes are on disk (``camp status``/``camp diff`` show them)."""
    head = camp.head()
    extra = {"CAMP_MESSAGE": message}
    if head is not None:
        extra["CAMP_HEAD"] = head.decode()
    return run_hook(camp, "pre-commit", env, extra=extra)
