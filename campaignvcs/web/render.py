"""Rendering ``camp web`` pages: Jinja2 templates with automatic escaping, and the static files.

Every value a page shows goes through Jinja2's autoescape (names, paths, attribute values,
commit messages, text file contents), so a dataset named ``<img src=x onerror=alert(1)>``
is shown as text. Templates and the style sheet are package data, read once.
"""

from __future__ import annotations

import datetime
import functools
from importlib import resources
from typing import Any

import jinja2

from campaignvcs.formats import format_ns, format_size

STATIC_FILES = {"style.css": "text/css; charset=utf-8", "list.js": "text/javascript; charset=utf-8"}
"""The only files below ``static/``, with their content types."""

IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
               "webp": "image/webp", "bmp": "image/bmp"}
"""Embedded images shown on dataset pages, by suffix (never SVG: it can hold scripts)."""

CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
"""Content-Security-Policy of every page: no inline script or style, nothing from elsewhere."""


def format_commit_time(seconds: int, offset: int = 0) -> str:
    """A commit's time in its own time zone."""
    tz = datetime.timezone(datetime.timedelta(seconds=offset))
    return datetime.datetime.fromtimestamp(seconds, tz).strftime("%Y-%m-%d %H:%M:%S %z")


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment (autoescape on for every template)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("campaignvcs.web", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             auto_reload=False)
    env.filters["size"] = format_size
    env.filters["ns"] = format_ns
    env.filters["commit_time"] = format_commit_time
    return env


def render(template: str, context: dict[str, Any]) -> bytes:
    """A page as UTF-8 bytes."""
    return environment().get_template(template).render({"csp": CSP, **context}).encode("utf-8")


@functools.lru_cache(maxsize=None)
def static_file(name: str) -> bytes:
    """The bytes of ``static/<name>`` (only the names in :data:`STATIC_FILES`)."""
    if name not in STATIC_FILES:
        raise KeyError(name)
    return resources.files("campaignvcs.web").joinpath("static").joinpath(name).read_bytes()
