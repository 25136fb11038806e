"""camp build --check: open an archive with the best installed ADIOS2 in a child process.

ADIOS2 reads a campaign archive inside the reader's process, and some archives make it
crash (SIGSEGV) rather than fail: a checker that opened the archive itself would die
with it. So the archive is opened by a separate Python (``sys.executable``, the one that
runs camp, so the same adios2), which lists every variable, reads a little of each, and
writes what happened, line by line, to a file the parent reads afterwards — a crash then
still says where it happened. The child inherits the caller's environment: ADIOS2 reads
``~/.config/hpc-campaign/config.yaml`` and ``hosts.yaml`` like any reader on this host.

Which ADIOS2: the most capable one :func:`campaignvcs.adios2env.find_adios2` finds
(``$ADIOS2_DIR`` pointing at a full build, else the ``adios2`` this Python imports), so
that with a full build HDF5 datasets and encrypted metadata are checked too. An image
ADIOS2 returns as all zeros counts as unreadable: that is what 2.12.1 returns for an
encrypted embedded image whose key it never asked for.

The report names every dataset ADIOS2 could not read, and the kinds this ADIOS2 build
cannot read at all (the PyPI wheel has no HDF5 engine: an archive listing any HDF5
dataset does not open), with the ``--exclude-kind`` that makes an archive it can.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from campaignvcs.aca.rules import ADIOS2_KINDS
from campaignvcs.adios2env import run_child, signal_name

TIMEOUT = 600.0
"""Seconds the child may take (remote reads that hang count as failures, not as a stuck build)."""

ENGINES = {"HDF5": "HDF5"}
"""Dataset kind → the ADIOS2 feature (``ADIOS2_HAVE_<name>`` in ADIOSConfig.h) needed to read it."""

_PROBE = r"""
import os, sys

def features(module):
    base = os.path.dirname(os.path.abspath(module.__file__))
    for folder in (os.path.join(base, "include"), os.path.join(base, "..", "..", "..", "..", "include")):
        try:
            with open(os.path.join(folder, "adios2", "common", "ADIOSConfig.h"), encoding="utf-8") as h:
                text = h.read()
        except OSError:
            continue
        return sorted(line.split()[1][len("ADIOS2_HAVE_"):] for line in text.splitlines()
                      if line.startswith("#define ADIOS2_HAVE_"))
    return None

try:
    import adios2
except Exception as exc:
    emit(adios2=None, error=str(exc))
    sys.exit(0)
emit(adios2=str(getattr(adios2, "__version__", "?")), location=os.path.dirname(adios2.__file__),
     features=features(adios2))
try:
    reader = adios2.FileReader(sys.argv[2])
except Exception as exc:
    emit(open=False, error=str(exc))
    sys.exit(0)
emit(open=True)
variables = reader.available_variables()
attributes = reader.available_attributes()
emit(variables=sorted(variables), attributes=sorted(attributes))
for name in sorted(variables):
    info = variables[name]
    emit(reading=name)
    try:
        steps = int(info.get("AvailableStepsCount") or 1)
        shape = [int(n) for n in str(info.get("Shape", "")).replace(" ", "").split(",") if n]
        # A text or image is copied whole into the caller's buffer whatever the selection:
        # a smaller selection overruns the buffer (heap corruption in 2.12.1). Read it whole.
        whole = name + "/__dataset_type__" in attributes
        if shape and not whole:
            reader.read(name, [0] * len(shape), [1] * len(shape), step_selection=[0, 1])
        elif steps > 1:
            reader.read(name, step_selection=[0, 1])
        else:
            data = reader.read(name)
            if whole and info.get("Type") == "uint8_t" and len(data) and not data.any():
                emit(read=name, ok=False, error="ADIOS2 returned an image of zeros (an encrypted embedded "
                     "image whose key ADIOS2 2.12.1 never asked for)")
                continue
        emit(read=name, ok=True)
    except Exception as exc:
        emit(read=name, ok=False, error=str(exc))
try:
    reader.close()
except Exception as exc:
    emit(closed=False, error=str(exc))
emit(done=True)
"""
"""The child: opens ``argv[1]``, reports to the file ``argv[2]`` (one JSON object per line)."""


@dataclass(frozen=True)
class Unreadable:
    """A dataset (or time series) the installed ADIOS2 could not read, and why."""

    dataset: str
    reason: str


@dataclass(frozen=True)
class CheckReport:
    """What the installed ADIOS2 made of an archive."""

    ok: bool
    """True when ADIOS2 opened the archive and read every dataset it lists."""
    adios2: str
    """``adios2 <version> (<location>)``, or why there is none."""
    opened: bool
    crashed: bool
    """ADIOS2 killed its process (the signal is in ``error``)."""
    error: str
    """Why the archive did not open (or the crash), as one line; empty when it opened."""
    datasets: int
    """Datasets and time series ADIOS2 should show."""
    variables: int
    unreadable: list[Unreadable] = field(default_factory=list)
    missing_kinds: list[str] = field(default_factory=list)
    """Kinds in this archive that this ADIOS2 build has no engine for (e.g. HDF5 in the PyPI wheel)."""
    advice: list[str] = field(default_factory=list)
    """What to do about it (``--exclude-kind``, hosts.yaml)."""


def check_archive(path: str, env: Mapping[str, str], timeout: float = TIMEOUT) -> CheckReport:
    """Open ``path`` with the installed ADIOS2 in a child process and report what it could not read."""
    units = _units(path)
    run = run_child(_PROBE, [os.path.abspath(path)], env, os.path.dirname(os.path.abspath(path)), timeout)
    report = _report(units, run.events, run.returncode, run.stderr, timeout)
    best = run.adios2
    if best is not None and best.source != "python":
        report = replace(report, adios2=f"{report.adios2} from {best.source}")
    if report.missing_kinds and (best is None or not best.has("HDF5")):
        report = replace(report, advice=[*report.advice, "a full ADIOS2 build reads HDF5 too: set ADIOS2_DIR to "
                                         "its install folder (docs/keys-and-connector.md)"])
    return report


@dataclass
class _Unit:
    """A name under which ADIOS2 shows things: a dataset, or a time series (its members vanish)."""

    name: str
    kinds: set[str] = field(default_factory=set)
    members: list[str] = field(default_factory=list)


def _units(path: str) -> dict[str, _Unit]:
    """What ADIOS2 2.12.1 lists of the archive: live datasets of the kinds it reads, series by name."""
    uri = "file:" + quote(os.path.abspath(path), safe="/") + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        rows = con.execute(
            "select d.name, d.fileformat, coalesce(t.name, '') from dataset d "
            "left join timeseries t on t.tsid = d.tsid and d.fileformat in ('ADIOS', 'HDF5') "
            "where (d.fileformat = 'ADIOS' or d.deltime = 0) and exists "
            "(select 1 from replica r where r.datasetid = d.rowid and (d.fileformat = 'ADIOS' or r.deltime = 0)) "
            "order by d.name"
        ).fetchall()
    finally:
        con.close()
    units: dict[str, _Unit] = {}
    for name, kind, series in rows:
        if kind not in ADIOS2_KINDS:
            continue
        unit = units.setdefault(series or name, _Unit(series or name))
        unit.kinds.add(kind)
        unit.members.append(name)
    return units


def _owner(units: Mapping[str, _Unit], variable: str) -> str | None:
    """The unit a variable or attribute belongs to: the longest name it equals or starts with + '/'."""
    name = variable
    while True:
        if name in units:
            return name
        cut = name.rfind("/")
        if cut < 0:
            return None
        name = name[:cut]


def _report(units: dict[str, _Unit], events: list[dict], returncode: int | None, stderr: str,
            timeout: float) -> CheckReport:
    first = events[0] if events else {}
    if first.get("adios2") is None:
        tail = stderr.strip().splitlines()
        if returncode is not None and returncode < 0:
            reason = f"the check process crashed ({signal_name(-returncode)}) before adios2 was loaded"
        elif returncode is None:
            reason = f"the check process did not finish within {timeout:.0f} s"
        else:
            reason = "cannot import adios2: " + _clean(first.get("error") or (tail[-1] if tail else "no answer"))
        return CheckReport(False, "adios2 not loaded", False, False, reason, len(units), 0)
    adios2 = f"adios2 {first['adios2']} ({first.get('location', '?')})"
    features = first.get("features")
    present = {k for u in units.values() for k in u.kinds}
    missing = sorted(k for k, feature in ENGINES.items()
                     if k in present and features is not None and feature not in features)
    advice = [
        f"this ADIOS2 has no {kind} engine: it cannot open an archive that lists any {kind} dataset "
        f"({_names(units, kind)}); camp build --exclude-kind {kind} writes one it can open"
        for kind in missing
    ]
    opened = any(e.get("open") is True for e in events)
    failed_open = next((e for e in events if e.get("open") is False), None)
    variables = next((e for e in events if "variables" in e), {})
    reading = [e["reading"] for e in events if "reading" in e]
    done = {e["read"]: e for e in events if "read" in e}
    crashed = returncode is not None and returncode < 0
    error = ""
    unreadable: dict[str, str] = {}
    if crashed or returncode is None:
        what = "crashed (" + signal_name(-returncode) + ")" if returncode is not None else \
            f"did not finish within {timeout:.0f} s"
        current = reading[-1] if reading and reading[-1] not in done else None
        if not opened:
            error = f"ADIOS2 {what} while opening the archive"
        elif current is not None:
            error = f"ADIOS2 {what} while reading {current}"
            unit = _owner(units, current)
            if unit is not None:
                unreadable[unit] = f"ADIOS2 {what} reading {current}"
        else:
            error = f"ADIOS2 {what} while closing the archive"
    elif failed_open is not None:
        error = "ADIOS2 cannot open the archive: " + _clean(failed_open.get("error", ""))
    elif not opened:
        error = "the check process ended without an answer" + (f": {_clean(stderr)}" if stderr.strip() else "")
    if opened:
        shown = set()
        for name in [*variables.get("variables", []), *variables.get("attributes", [])]:
            unit = _owner(units, name)
            if unit is not None:
                shown.add(unit)
        for name, e in done.items():
            unit = _owner(units, name)
            if unit is not None and not e.get("ok") and unit not in unreadable:
                unreadable[unit] = f"reading {name}: {_clean(e.get('error', ''))}"
        if not crashed and returncode is not None:
            for unit in units:
                if unit not in shown and unit not in unreadable:
                    unreadable[unit] = "ADIOS2 lists nothing of it"
    reasons = [error, *unreadable.values()]
    if any("No acceptable protocol" in r for r in reasons):
        advice.append("ADIOS2 reads a dataset on another host only through an ssh or xrootd entry for that "
                      "host in ~/.config/hpc-campaign/hosts.yaml")
    if any("libsodium" in r for r in reasons):
        advice.append("this ADIOS2 has no libsodium: it reads encrypted datasets only where a replica is on "
                      "this host")
    if any("port = 30000" in r for r in reasons):
        advice.append("ADIOS2 reaches other hosts through the connector on port 30000: run camp connect")
    ok = opened and not error and not unreadable
    return CheckReport(
        ok, adios2, opened, crashed, error, len(units), len(variables.get("variables", [])),
        [Unreadable(name, reason) for name, reason in sorted(unreadable.items())], missing, advice,
    )


def _names(units: Mapping[str, _Unit], kind: str, limit: int = 3) -> str:
    names = [m for u in units.values() for m in u.members if kind in u.kinds]
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PREFIX = re.compile(r"^\s*\[[^\]]*\]\s*\[ADIOS2 [A-Z]+\]\s*(<[^>]*>\s*)*:\s*")


def _clean(message: str) -> str:
    """One readable line of an ADIOS2 exception text (no colours, no time stamp, no ``iostream error``)."""
    text = _ANSI.sub("", message)
    text = _PREFIX.sub("", text.strip())
    text = " ".join(text.split())
    for tail in (": iostream error", ":iostream error"):
        if text.endswith(tail):
            text = text[: -len(tail)].rstrip()
    return text[:400] or "no message"


# -- encrypted embedded images: what ADIOS2 2.12.1 does with them ---------------------------------
#
# The campaign reader asks the connector for a key only while opening a replica that is on
# another host than the reader (its metadata or a text); an embedded image (a thumbnail, or an
# image stored with --store) is never such a replica. It reads an embedded image with the key
# only if the same open already fetched that key for another replica; otherwise it inflates the
# sealed bytes, fails, and hands back an image of zeros. An encrypted stored text or dataset
# metadata is fetched with its own replica, so it always decrypts.


def encrypted_image_warnings(path: str) -> list[str]:
    """One line per encrypted embedded image of the archive at ``path`` that some readers see as zeros."""
    uri = "file:" + quote(os.path.abspath(path), safe="/") + "?mode=ro"
    con = sqlite3.connect(uri, uri=True)
    try:
        # Most archives have no encrypted embedded image: one indexed probe, instead of every
        # replica row in memory (~300 MB at a million datasets).
        if con.execute(
            "select 1 from replica r join dataset d on d.rowid = r.datasetid where r.keyid != 0 and r.deltime = 0 "
            "and d.fileformat = 'IMAGE' and exists (select 1 from repfiles f where f.replicaid = r.rowid) limit 1"
        ).fetchone() is None:
            return []
        rows = con.execute(
            "select d.rowid, d.name, d.fileformat, h.hostname, coalesce(k.keyid, ''), res.x, res.y, "
            "exists (select 1 from repfiles f where f.replicaid = r.rowid) "
            "from replica r join dataset d on d.rowid = r.datasetid join host h on h.rowid = r.hostid "
            "left join key k on k.rowid = r.keyid left join resolution res on res.replicaid = r.rowid "
            "where r.deltime = 0 and d.deltime = 0 order by d.name, res.x, res.y"
        ).fetchall()
    finally:
        con.close()
    images = [(f"{name}/{x}x{y}", key) for _d, name, kind, _h, key, x, y, embedded in rows
              if kind == "IMAGE" and embedded and key]
    if not images:
        return []
    hosts_of: dict[int, set[str]] = {}
    for dsid, _name, _kind, host, *_rest in rows:
        hosts_of.setdefault(dsid, set()).add(host)
    # blind[key]: the reader hosts on which no replica makes ADIOS2 fetch the key (None: every host).
    blind: dict[str, set[str] | None] = {}
    for dsid, _name, kind, host, key, _x, _y, embedded in rows:
        if not key or (kind == "IMAGE" and embedded):
            continue
        # A dataset is opened from a replica on the reader's host when it has one (no key asked);
        # an image's replicas that are not embedded are each opened, those on other hosts with their key.
        fetches_not_on = {host} if kind == "IMAGE" else hosts_of[dsid]
        seen = blind.get(key)
        blind[key] = set(fetches_not_on) if seen is None else seen & fetches_not_on
    out = []
    for image, key in images:
        if key not in blind:
            out.append(f"{image}: encrypted embedded image that ADIOS2 2.12.1 readers see as zeros: it never "
                       f"asks camp connect for the key of an embedded image, and no other replica in this "
                       f"archive makes it fetch key {key}")
        elif blind[key]:
            where = ", ".join(sorted(blind[key] or ()))
            out.append(f"{image}: encrypted embedded image that ADIOS2 2.12.1 readers on host"
                       f"{'s' if len(blind[key] or ()) > 1 else ''} {where} see as "
                       f"zeros (it fetches key {key} only for a replica on another host; elsewhere it decrypts)")
    return out


def encrypted_add_warnings(added: list[tuple[str, str, str]], stored: bool, thumbnail: bool) -> list[str]:
    """``camp add -k``: what readers will not see of the images just added (name, kind, host each)."""
    out = []
    for name, kind, host in added:
        if kind != "IMAGE":
            continue
        if stored:
            out.append(f"{name}: the stored image is encrypted, and ADIOS2 2.12.1 never asks for the key of an "
                       "embedded image: readers see zeros unless the archive also holds a replica on another "
                       "host encrypted with this key (camp build says which images)")
        elif thumbnail:
            out.append(f"{name}: readers on host {host} will see zeros for its encrypted thumbnail (ADIOS2 2.12.1 "
                       "fetches the key only for a replica on another host; elsewhere it decrypts)")
    return out
