"""config get / set / list: the ``Campaign:`` section of the shared hpc-campaign configuration.

``~/.config/hpc-campaign/config.yaml`` is read by camp, hpc-campaign and ADIOS2 (see
:mod:`campaignvcs.config`). Setting a value changes only its own line where the file
already has one (comments and everything else stay as they were), else adds it to the
``Campaign:`` section (creating the file or the section); the result is always checked to
read back as YAML with the new value before it replaces the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from campaignvcs.config import config_dir
from campaignvcs.errors import BadInput, CampError
from campaignvcs.porcelain.common import environ
from campaignvcs.tempfiles import atomic_write

KEYS = {
    "hostname": "the short name of this machine: replicas recorded here are local to ADIOS2",
    "campaignstorepath": "where camp build writes archives and ADIOS2 opens them from",
    "cachepath": "where ADIOS2 caches what it fetches from other hosts",
}
"""The settings of the ``Campaign:`` section camp knows, and what each is for."""

SECTION = "Campaign"


@dataclass(frozen=True)
class UserSettings:
    """The configuration file and the values it sets (only those present)."""

    path: str
    values: dict[str, str] = field(default_factory=dict)


def config_path(env: Mapping[str, str]) -> str:
    """``~/.config/hpc-campaign/config.yaml`` for the home folder in ``env``."""
    return os.path.join(config_dir(env), "config.yaml")


def _check_key(key: str) -> str:
    if key not in KEYS:
        raise BadInput(f"unknown setting {key!r} (one of {', '.join(KEYS)})")
    return key


def _read(path: str) -> tuple[str, dict[str, Any]]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return "", {}
    except OSError as exc:
        raise CampError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CampError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}): fix it by hand first") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict) or not isinstance(doc.get(SECTION, {}) or {}, dict):
        raise CampError(f"{path}: expected a '{SECTION}:' mapping at the top: fix it by hand first")
    return text, doc


def config_list(env: Mapping[str, str] | None = None) -> UserSettings:
    """Every known setting the file has."""
    env = environ(env)
    path = config_path(env)
    _, doc = _read(path)
    section = doc.get(SECTION) or {}
    return UserSettings(path, {k: str(section[k]) for k in KEYS if section.get(k) not in (None, "")})


def config_get(key: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of ``key``, or None when the file does not set it."""
    return config_list(env).values.get(_check_key(key))


def config_set(key: str, value: str, env: Mapping[str, str] | None = None) -> UserSettings:
    """Set ``key`` to ``value`` in the file (created if missing); returns the settings after."""
    env = environ(env)
    _check_key(key)
    if not value.strip() or "\n" in value or value != value.strip():
        raise BadInput(f"invalid value for {key}: {value!r} (one line, no surrounding blanks)")
    if key == "hostname" and ("/" in value or " " in value):
        raise BadInput(f"invalid host name: {value!r}")
    path = config_path(env)
    text, doc = _read(path)
    new_text = _edit(text, key, value)
    import yaml

    check = yaml.safe_load(new_text) or {}
    if str((check.get(SECTION) or {}).get(key)) != value:  # the line edit could not be trusted: rewrite it all
        doc.setdefault(SECTION, {})
        if doc[SECTION] is None:
            doc[SECTION] = {}
        doc[SECTION][key] = value
        new_text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, allow_unicode=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, new_text.encode("utf-8"), 0o644)
    return config_list(env)


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar that reads back as the same string."""
    import yaml

    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 20)
    return dumped.removesuffix("\n...\n").removesuffix("\n")


def _edit(text: str, key: str, value: str) -> str:
    """``text`` with ``key`` set under ``Campaign:`` by changing or adding one line."""
    lines = text.splitlines()
    section = next((i for i, line in enumerate(lines) if re.match(rf"{SECTION}:\s*(#.*)?$", line)), None)
    if section is None:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return prefix + f"{SECTION}:\n  {key}: {_scalar(value)}\n"
    indent = "  "
    end = len(lines)
    for i in range(section + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line.startswith((" ", "\t")) and not line.lstrip().startswith("#"):
            end = i
            break
        found = re.match(r"(\s+)([A-Za-z_]+):(\s*)([^#]*?)(\s+#.*)?$", line)
        if found:
            indent = found.group(1)
            if found.group(2) == key:
                lines[i] = f"{indent}{key}: {_scalar(value)}{found.group(5) or ''}"
                return "\n".join(lines) + "\n"
    lines.insert(end, f"{indent}{key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"
