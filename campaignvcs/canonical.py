"""The canonical text of a manifest: ``json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False)``.

Written here because ``json`` drops to its pure-Python encoder whenever ``indent`` is set,
which is three times slower at 100,000 manifests. :func:`write_value` is the generic writer;
:meth:`campaignvcs.model.Dataset.dumps` writes the commonest manifest without building a dict
first and hands it the rare values (TAR rows, resolutions, accuracies).
"""

from __future__ import annotations

import json
from typing import Any

encode_str = json.encoder.encode_basestring
"""A JSON string literal, non-ASCII kept (C); TypeError for anything but a str."""


def dumps(obj: dict[str, Any]) -> bytes:
    """Canonical bytes of a manifest-like dict: sorted keys, one value per line, a final newline."""
    out: list[str] = []
    write_value(obj, 0, out)
    out.append("\n")
    return "".join(out).encode("utf-8")


def write_value(value: Any, depth: int, out: list[str]) -> None:
    """Append the text of ``value`` (nested ``depth`` levels deep) to ``out``."""
    if isinstance(value, str):
        out.append(encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        pad = "\n" + " " * (depth + 1)
        sep = "{"
        for key in sorted(value):
            out.append(sep + pad + encode_str(key) + ": ")
            write_value(value[key], depth + 1, out)
            sep = ","
        out.append("\n" + " " * depth + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        pad = "\n" + " " * (depth + 1)
        sep = "["
        for item in value:
            out.append(sep + pad)
            write_value(item, depth + 1, out)
            sep = ","
        out.append("\n" + " " * depth + "]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} into a manifest")


def integer(value: Any) -> str:
    """The text of an int that is not a bool (what the fast writers need); TypeError otherwise."""
    if type(value) is int:
        return int.__repr__(value)
    raise TypeError(f"not a plain int: {type(value).__name__}")
