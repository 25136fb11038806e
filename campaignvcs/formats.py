"""How sizes and times read for people: the same in the terminal (``cli/output``) and in the web catalog."""

from __future__ import annotations

import datetime


def format_size(n: int | None) -> str:
    """Bytes in a short human form (``11.9 KiB``; ``-`` for none)."""
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_ns(ns: int | None) -> str:
    """Nanoseconds since the epoch as UTC ISO time (``-`` for 0 or none)."""
    if not ns:
        return "-"
    return datetime.datetime.fromtimestamp(ns / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
