"""What every porcelain function needs: opening the repository, the host, the author."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import ContextManager

from campaignvcs.config import load_user_config
from campaignvcs.errors import BadInput, NotACampaign
from campaignvcs.repo import CampaignRepo


def environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """``env`` or the process environment."""
    return os.environ if env is None else env


def open_repo(repo: str | CampaignRepo | None = None, cwd: str | None = None,
              env: Mapping[str, str] | None = None) -> ContextManager[CampaignRepo]:
    """The campaign selected like git selects a repository, for a ``with`` block.

    ``repo`` (``--repo``) names the campaign folder exactly; else ``CAMP_REPO``; else the
    current directory and its parents. An open :class:`CampaignRepo` is used as it is and
    left open (as dulwich's ``open_repo_closing``): one porcelain function calling another
    hands it the repository instead of opening it again.
    """
    if isinstance(repo, CampaignRepo):
        return contextlib.nullcontext(repo)
    env = environ(env)
    explicit = repo or env.get("CAMP_REPO")
    if explicit:
        path = os.path.join(cwd or os.getcwd(), os.path.expanduser(explicit))
        if not os.path.isdir(path):
            raise NotACampaign(f"not a campaign repository: {path} (no such directory)")
        opened = CampaignRepo.open(path)
    else:
        opened = CampaignRepo.discover(cwd or os.getcwd())
    opened.fault = env.get("CAMP_FAULT")  # crash tests: see campaignvcs/faults.py
    return opened


def resolve_host(repo: CampaignRepo, host: str | None, env: Mapping[str, str]) -> str:
    """The host for new replicas: ``--host``, the repository default, or config.yaml."""
    chosen = host or repo.config_get("camp", "host") or load_user_config(env).hostname
    if not chosen:
        raise BadInput(
            "no host name: pass --host, set a default with 'camp init --host', "
            "or set Campaign.hostname in ~/.config/hpc-campaign/config.yaml"
        )
    if "/" in chosen or chosen.strip() != chosen or "\0" in chosen:
        raise BadInput(f"invalid host name: {chosen!r}")
    return chosen


def local_host(repo: CampaignRepo, env: Mapping[str, str]) -> str | None:
    """This machine's short host name as the campaign knows it, or None."""
    return repo.config_get("camp", "host") or load_user_config(env).hostname or None


def identity(repo: CampaignRepo | None, env: Mapping[str, str]) -> bytes:
    """``Name <email>`` for commits: CAMP_AUTHOR_*, GIT_AUTHOR_*, git config, then user@host."""
    for prefix in ("CAMP_AUTHOR", "GIT_AUTHOR"):
        name, email = env.get(prefix + "_NAME"), env.get(prefix + "_EMAIL")
        if name and email:
            return f"{name} <{email}>".encode()
    configured = repo.identity_from_config() if repo is not None else user_identity_from_git_config()
    if configured:
        return configured
    import socket  # here, not at the top: most commands never get this far

    user = env.get("USER") or env.get("LOGNAME") or "camp"
    return f"{user} <{user}@{socket.gethostname()}>".encode()


def long_host_name() -> str:
    """This machine's FQDN without a leading ``loginN.``/``batchN.`` (as hpc-campaign records it)."""
    import socket

    fqdn = socket.getfqdn()
    first, _, rest = fqdn.partition(".")
    if rest and (first.startswith("login") or first.startswith("batch")) and first[5:].isdigit():
        return rest
    return fqdn


def user_identity_from_git_config() -> bytes | None:
    """``Name <email>`` from the user's and system git config (before a repository exists)."""
    from dulwich.config import StackedConfig

    stack = StackedConfig.default()
    try:
        return stack.get(b"user", b"name") + b" <" + stack.get(b"user", b"email") + b">"
    except KeyError:
        return None
