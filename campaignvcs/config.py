"""User configuration shared with hpc-campaign and ADIOS2.

``~/.config/hpc-campaign/config.yaml``::

    Campaign:
      hostname: frontier          # short name of this host (ADIOS2: replicas here are local)
      campaignstorepath: ~/campaigns   # where built .aca files go and ADIOS2 looks
      cachepath: /tmp/campaign        # ADIOS2's cache

``~/.config/hpc-campaign/hosts.yaml`` describes how to reach remote hosts (connector).
The home folder comes from the ``env`` mapping callers pass in, so tests and library
users control it without touching ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaignvcs.errors import CampError


@dataclass(frozen=True)
class UserConfig:
    """The ``Campaign:`` section of config.yaml."""

    hostname: str = ""
    campaign_store: str = ""
    cache_path: str = ""
    path: str = ""


def config_dir(env: Mapping[str, str]) -> str:
    """``~/.config/hpc-campaign`` for the home folder in ``env``."""
    home = env.get("HOME") or os.path.expanduser("~")
    return os.path.join(home, ".config", "hpc-campaign")


def expand_user(path: str, env: Mapping[str, str]) -> str:
    """``~`` expanded with the home folder in ``env``."""
    if path == "~" or path.startswith("~/"):
        home = env.get("HOME") or os.path.expanduser("~")
        return home + path[1:]
    return path


def _load_yaml(path: str) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        return None
    except (OSError, yaml.YAMLError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CampError(f"{path}: cannot read configuration ({reason})") from None


def load_user_config(env: Mapping[str, str]) -> UserConfig:
    """Read config.yaml (missing file → empty config)."""
    path = os.path.join(config_dir(env), "config.yaml")
    if not os.path.exists(path):
        return UserConfig(path=path)
    doc = _load_yaml(path)
    section = doc.get("Campaign") if isinstance(doc, dict) else None
    if not isinstance(section, dict):
        return UserConfig(path=path)
    store = section.get("campaignstorepath") or ""
    return UserConfig(
        hostname=str(section.get("hostname") or ""),
        campaign_store=expand_user(str(store), env) if store else "",
        cache_path=str(section.get("cachepath") or ""),
        path=path,
    )


def load_hosts_config(env: Mapping[str, str], path: str | None = None) -> dict[str, Any]:
    """Read hosts.yaml (missing file → empty dict)."""
    path = path or os.path.join(config_dir(env), "hosts.yaml")
    doc = _load_yaml(expand_user(path, env))
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise CampError(f"{path}: expected a mapping of host names")
    return doc
