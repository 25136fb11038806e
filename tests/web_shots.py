"""scripts/web_screenshots.py loaded as a module: the catalog both web test modules build and photograph."""

from __future__ import annotations

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
    path = os.path.join(ROOT, "scripts", "web_screenshots.py")
    spec = importlib.util.spec_from_file_location("web_screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shots = _load()
