"""Loaded by every Python process the tests start (tests/conftest.py puts this folder on PYTHONPATH).

It does one thing: when the reference tool hpc-campaign is imported, the paths it hard-codes
in /tmp are moved to a private folder of that process. ``hpc_campaign manager`` (0.7.1) writes
``/tmp/md_<file name>`` (an HDF5 file's metadata copy, removed after use) and
``/tmp/<w>x<h><suffix>`` (a thumbnail, left behind) whatever TMPDIR says, so two runs at once
on one machine (pytest-xdist workers, another checkout's test run) overwrite or remove each
other's file. Nothing else is touched; camp itself never imports hpc_campaign.

``REFERENCE_TMP_LOG=<file>`` appends each moved path to that file (the suite checks the
move still happens: tests/test_suite_infrastructure.py).
"""

from __future__ import annotations

import os
import sys

TARGET = "hpc_campaign.manager_funcs"
_private: str | None = None


def _moved(path):
    """``path`` in the private folder if it is directly in /tmp; anything else unchanged."""
    global _private
    if not isinstance(path, str) or os.path.dirname(path) != "/tmp":
        return path
    if _private is None:
        import atexit
        import shutil
        import tempfile

        _private = tempfile.mkdtemp(prefix="hpc-campaign-tmp-")
        atexit.register(shutil.rmtree, _private, True)
    log = os.environ.get("REFERENCE_TMP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(path + "\n")
    return os.path.join(_private, os.path.basename(path))


def _patch(module) -> None:
    """Route the module's file functions (and PIL's Image.save) through :func:`_moved`."""
    for name in ("copy_hdf5_file_without_data", "add_file_to_archive", "remove", "stat"):
        real = getattr(module, name)

        def wrapper(*args, _real=real, **kwargs):
            return _real(*map(_moved, args), **kwargs)

        setattr(module, name, wrapper)
    image = module.Image.Image
    save = image.save
    image.save = lambda self, fp, *args, **kwargs: save(self, _moved(fp), *args, **kwargs)


class _Finder:
    """A meta path finder that patches :data:`TARGET` right after it is executed."""

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _patch(module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _Finder())
