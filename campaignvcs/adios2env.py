"""Which ADIOS2 to read archives with: the most capable one this machine has.

ADIOS2 builds differ in what they can read of a campaign archive. The PyPI wheel has
the campaign reader but no HDF5 engine (an archive listing an HDF5 dataset does not
open), no libsodium (no encrypted metadata) and no SST (no ``adios2_remote_server``:
no remote data). A full build (``cmake -DADIOS2_USE_HDF5=ON -DADIOS2_USE_Sodium=ON
-DADIOS2_USE_SST=ON -DADIOS2_USE_Campaign=ON``) reads all of it.

:func:`find_adios2` looks at the candidates, without importing any of them into this
process (a second adios2 in one process is trouble):

1. ``$ADIOS2_DIR``: an install prefix (what ``adios2-env.sh`` of a relocatable build
   sets), whose ``lib/pythonX.Y/site-packages/adios2`` matches this Python;
2. the ``adios2`` this Python imports (``PYTHONPATH`` of ``env`` first, then its own path).

and returns the one with the most features (HDF5, libsodium, SST), the first on a tie.
:func:`run_child` runs a script in a child Python with that ADIOS2 first on
``PYTHONPATH`` (:meth:`Adios2.child_env`; never ``LD_LIBRARY_PATH``: a relocatable build
finds its libraries through RUNPATH), so a crash in ADIOS2 is a result, not a lost
process. ``camp build --check`` (aca/check.py) and ``camp info`` / ``camp search``
(inspect/bp.py) both read archives and metadata this way.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

CAPABILITIES = ("HDF5", "SODIUM", "SST")
"""``ADIOS2_HAVE_<name>`` features that decide what a build reads of an archive, most important first."""

_VERSION = re.compile(r'^#define ADIOS2_VERSION_STR\s+"([^"]+)"', re.M)


@dataclass(frozen=True)
class Adios2:
    """One ADIOS2 build with Python bindings for this Python."""

    package: str
    """The ``adios2`` package folder (holding ``__init__.py``)."""
    source: str
    """Where it was found: ``$ADIOS2_DIR`` or ``python``."""
    version: str = ""
    prefix: str = ""
    """The install prefix, when known (``bin/adios2_remote_server`` lives there)."""
    features: frozenset[str] | None = None
    """``ADIOS2_HAVE_*`` names from its ADIOSConfig.h; None when that header is not found."""
    notes: list[str] = field(default_factory=list)
    """Why other candidates were passed over."""

    @property
    def remote_server(self) -> str:
        """Path of ``adios2_remote_server`` in this build, or ''."""
        path = os.path.join(self.prefix, "bin", "adios2_remote_server") if self.prefix else ""
        return path if path and os.access(path, os.X_OK) else ""

    def has(self, feature: str) -> bool:
        """True if the build has ``ADIOS2_HAVE_<feature>`` (False when unknown)."""
        return self.features is not None and feature in self.features

    @property
    def score(self) -> int:
        """More capabilities, higher score (HDF5 counts most)."""
        return sum(1 << (len(CAPABILITIES) - i) for i, f in enumerate(CAPABILITIES) if self.has(f))

    def child_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` for a child Python that imports this build: its site-packages first on PYTHONPATH."""
        out = dict(env)
        site = os.path.dirname(self.package)
        rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != site]
        out["PYTHONPATH"] = os.pathsep.join([site, *rest])
        return out

    def describe(self) -> str:
        """``adios2 <version> (<folder>, <source>: <capabilities>)``, one line."""
        caps = "features unknown" if self.features is None else \
            (", ".join(f for f in CAPABILITIES if self.has(f)) or "no HDF5, no libsodium, no SST")
        where = self.prefix or os.path.dirname(self.package)
        return f"adios2 {self.version or '?'} ({where}, {self.source}: {caps})"


def find_adios2(env: Mapping[str, str]) -> Adios2 | None:
    """The most capable ADIOS2 for this Python (see the module docstring), or None if there is none."""
    candidates: list[Adios2] = []
    notes: list[str] = []
    prefix = env.get("ADIOS2_DIR", "")
    if prefix:
        found = _from_prefix(prefix)
        if isinstance(found, str):
            notes.append(found)
        else:
            candidates.append(found)
    package = _importable(env)
    if package is not None:
        candidates.append(_describe(package, "python", _prefix_of(package)))
    if not candidates:
        return None
    best = max(candidates, key=lambda c: c.score)  # max keeps the first of equals: $ADIOS2_DIR
    others = [f"{c.describe()} has fewer features" for c in candidates if c is not best]
    return Adios2(best.package, best.source, best.version, best.prefix, best.features, notes + others)


def python_dir(prefix: str) -> str:
    """``<prefix>/lib/pythonX.Y/site-packages`` for this Python."""
    return os.path.join(prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages")


def _from_prefix(prefix: str) -> Adios2 | str:
    package = os.path.join(python_dir(prefix), "adios2")
    if not os.path.isfile(os.path.join(package, "__init__.py")):
        return (f"$ADIOS2_DIR={prefix} has no Python bindings for Python "
                f"{sys.version_info[0]}.{sys.version_info[1]} ({package})")
    return _describe(package, "$ADIOS2_DIR", prefix)


def _importable(env: Mapping[str, str]) -> str | None:
    """The ``adios2`` package folder the child Python would import, without importing it."""
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] + [p for p in sys.path if p]
    for folder in paths:
        package = os.path.join(folder, "adios2")
        if os.path.isfile(os.path.join(package, "__init__.py")):
            return package
    return None


def _prefix_of(package: str) -> str:
    """The install prefix of a package at ``<prefix>/lib/pythonX.Y/site-packages/adios2``, or ''."""
    prefix = os.path.normpath(os.path.join(package, "..", "..", "..", ".."))
    return prefix if os.path.isfile(_header(prefix)) else ""


def _header(base: str) -> str:
    return os.path.join(base, "include", "adios2", "common", "ADIOSConfig.h")


def _describe(package: str, source: str, prefix: str) -> Adios2:
    # The wheel keeps its headers inside the package; an install has them under <prefix>/include.
    for header in (_header(package), _header(prefix) if prefix else ""):
        try:
            with open(header, encoding="utf-8") as h:
                text = h.read()
        except OSError:
            continue
        features = frozenset(line.split()[1][len("ADIOS2_HAVE_"):] for line in text.splitlines()
                             if line.startswith("#define ADIOS2_HAVE_"))
        match = _VERSION.search(text)
        return Adios2(package, source, match.group(1) if match else "", prefix, features)
    return Adios2(package, source, "", prefix, None)


@dataclass(frozen=True)
class ChildRun:
    """What a child Python running an ADIOS2 script left: its exit, its stderr, the events it wrote."""

    returncode: int | None
    """None: killed after the timeout."""
    stderr: str
    events: list[dict]
    """The JSON objects it wrote, one per line, in order (a line a crash cut short is skipped)."""
    adios2: Adios2 | None
    """The ADIOS2 it ran with (None: none was found; the child's own import then says why)."""


_EMIT = r"""
import json as _json, sys as _sys
_log = open(_sys.argv[1], "a", encoding="utf-8")

def emit(**kv):
    _log.write(_json.dumps(kv) + "\n")
    _log.flush()
"""
"""The writing side of :func:`run_child`'s event log, put before every child script."""


def run_child(script: str, args: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float,
              log_dir: str | None = None) -> ChildRun:
    """Run ``script`` in a child Python with the most capable ADIOS2 (:func:`find_adios2`).

    The script gets an event log as ``sys.argv[1]`` (then ``args``) and calls ``emit(**fields)``
    (defined for it, :data:`_EMIT`) to append one JSON object per line to it, flushed each
    time: what it wrote before a crash or a hang survives. The log lives in ``log_dir``
    (default: a temporary file) and is removed afterwards.
    """
    import subprocess

    best = find_adios2(env)
    fd, log = tempfile.mkstemp(prefix="camp-adios2-", suffix=".jsonl", dir=log_dir)
    os.close(fd)
    try:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _EMIT + script, log, *args],
                env=best.child_env(env) if best is not None else dict(env), cwd=cwd,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout,
            )
            returncode: int | None = proc.returncode
            stderr = proc.stderr.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            returncode, stderr = None, ""
        with open(log, encoding="utf-8", errors="replace") as f:
            events = [e for e in map(_event, f) if e is not None]
    finally:
        os.unlink(log)
    return ChildRun(returncode, stderr, events, best)


def _event(line: str) -> dict | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None  # a line the crash cut short
    return value if isinstance(value, dict) else None


def signal_name(number: int) -> str:
    """``SIGSEGV`` for 11: how a child's death by a signal is named in messages."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
