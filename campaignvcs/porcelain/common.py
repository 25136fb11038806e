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


IDENTITY_HELP = ("set CAMP_AUTHOR_NAME and CAMP_AUTHOR_EMAIL, or git config --global user.name 'Your Name' "
                 "and git config --global user.email you@example.org")


def identity(repo: CampaignRepo | None, env: Mapping[str, str]) -> bytes:
    """``Name <email>`` for commits, each part chosen as git chooses it.

    Name: ``CAMP_AUTHOR_NAME``, ``GIT_AUTHOR_NAME``, git config ``user.name`` (the
    repository's, then the user's and the system's), then the login's full name or login
    name. Email: ``CAMP_AUTHOR_EMAIL``, ``GIT_AUTHOR_EMAIL``, ``user.email``, ``EMAIL``,
    then ``login@host`` when the host name has a domain. Nothing sensible (no login name,
    a host without a domain): :class:`BadInput` saying what to set (git refuses too).
    """
    config_name, config_email = _configured_identity(repo)
    name = env.get("CAMP_AUTHOR_NAME") or env.get("GIT_AUTHOR_NAME") or config_name
    email = env.get("CAMP_AUTHOR_EMAIL") or env.get("GIT_AUTHOR_EMAIL") or config_email or env.get("EMAIL")
    login = env.get("USER") or env.get("LOGNAME") or _login_name()
    if not name:
        name = _full_name() or login
    if not email and login:
        import socket  # here, not at the top: most commands never get this far

        fqdn = socket.getfqdn()
        if "." in fqdn and not fqdn.startswith("localhost") and not fqdn.endswith((".localdomain", ".(none)")):
            email = f"{login}@{fqdn}"
    if not name or not email or "<" in name + email or ">" in name + email:
        what = "name" if not name else "email address" if not email else "name and email address"
        raise BadInput(f"cannot tell who you are (no sensible author {what}): {IDENTITY_HELP}")
    return f"{name.strip()} <{email.strip()}>".encode()


def _configured_identity(repo: CampaignRepo | None) -> tuple[str, str]:
    """``user.name`` and ``user.email`` from git config ('' where unset)."""
    from dulwich.config import StackedConfig

    stack = (StackedConfig([repo.config_file(), *StackedConfig.default_backends()]) if repo is not None
             else StackedConfig.default())
    values = []
    for key in (b"name", b"email"):
        try:
            values.append(stack.get(b"user", key).decode("utf-8", "replace").strip())
        except KeyError:
            values.append("")
    return values[0], values[1]


def _login_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return ""


def _full_name() -> str:
    """The GECOS full name of the login (as git takes it), or ''."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0].strip()
    except KeyError:
        return ""


def long_host_name() -> str:
    """This machine's FQDN without a leading ``loginN.``/``batchN.`` (as hpc-campaign records it)."""
    import socket

    fqdn = socket.getfqdn()
    first, _, rest = fqdn.partition(".")
    if rest and (first.startswith("login") or first.startswith("batch")) and first[5:].isdigit():
        return rest
    return fqdn
