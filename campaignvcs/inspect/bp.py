"""What ADIOS2 reports of a BP4/BP5 dataset, from its embedded metadata alone.

The ``metadata`` object camp (and hpc-campaign) embed is md.0, mmd.0 and md.idx
concatenated (see :mod:`campaignvcs.extract.bp5`). ADIOS2 opens a folder holding just
those files and reports every variable and attribute exactly as for the original
dataset (``available_variables()``, ``available_attributes()``; single values and
attributes are in the metadata too), so each object is written back into a private
temporary folder and opened there by the most capable ADIOS2 here (``$ADIOS2_DIR`` or
the installed one) in a child Python (:func:`campaignvcs.adios2env.run_child`, as
``camp build --check`` does), because some damaged metadata makes ADIOS2 crash rather
than fail. One child reads a whole batch (about a millisecond per dataset); a crash costs
only the dataset it happened on, and the child is started again for the rest.

Why not our own FFS decoder (:mod:`campaignvcs.extract.ffs` checks the records)? The
answer must equal ADIOS2's to the last character (its Min/Max formatting, its step
counting, BP4's characteristics), and what a metadata object holds never changes, so the
search index asks ADIOS2 once per distinct object.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from campaignvcs.adios2env import run_child, signal_name

TIMEOUT_BASE = 60.0
TIMEOUT_PER_DATASET = 2.0
MAX_VALUE_STEPS = 1000
"""Single values are read step by step up to this many steps; beyond, ``value`` is None."""

_CHILD = r"""
import json, sys


def plain(v):
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, list) and len(v) == 1 and not isinstance(v[0], list):
        return v[0]
    return v

try:
    import adios2
except Exception as exc:
    emit(fatal="cannot import adios2: " + (str(exc).splitlines()[0] if str(exc) else repr(exc)))
    sys.exit(0)
limit = int(sys.argv[3])
with open(sys.argv[2], encoding="utf-8") as jobs:
    for line in jobs:
        key, folder = json.loads(line)
        emit(start=key)
        try:
            with adios2.FileReader(folder) as f:
                found = f.available_variables()
                variables = []
                for name in sorted(found):
                    info = {k: str(v) for k, v in found[name].items()}
                    value = None
                    if info.get("SingleValue") == "true":
                        steps = int(info.get("AvailableStepsCount") or 1)
                        if steps <= limit:
                            values = [plain(f.read(name, step_selection=[i, 1])) for i in range(steps)]
                            value = values[0] if steps == 1 else values
                    variables.append([name, info, value])
                found = f.available_attributes()
                attributes = [[name, {k: str(v) for k, v in found[name].items()}, plain(f.read_attribute(name))]
                              for name in sorted(found)]
            emit(key=key, variables=variables, attributes=attributes)
        except Exception as exc:
            emit(key=key, error=" ".join(str(exc).split())[:300] or type(exc).__name__)
"""
"""The child: reads ``key, folder`` lines from ``argv[1]``, reports to ``argv[2]`` (JSON lines)."""

INTEGER_TYPES = frozenset(
    ("int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "char")
)
FLOAT_TYPES = frozenset(("float", "double", "long double"))


@dataclass(frozen=True)
class Variable:
    """One variable as ADIOS2 reports it (``available_variables()``), in JSON-friendly values."""

    name: str
    type: str
    shape: list[int] | None
    """Global dimensions; None for local arrays and single values (ADIOS2's empty ``Shape``)."""
    steps: int
    min: Any
    """ADIOS2's ``Min`` as a number (int for integer types, float for floating point); None if it gives none."""
    max: Any
    single_value: bool
    value: Any = None
    """A single value's value; with several steps, the list of one value per step."""


@dataclass(frozen=True)
class Attribute:
    """One attribute: ADIOS2's ``Type`` and the value ``read_attribute`` returns (lists for arrays)."""

    name: str
    type: str
    value: Any


@dataclass
class BPContents:
    """What ADIOS2 reported of one metadata object, or why it could not."""

    variables: list[Variable] = field(default_factory=list)
    attributes: list[Attribute] = field(default_factory=list)
    error: str = ""


class MetadataError(Exception):
    """An embedded BP metadata object that is not what ADIOS2's ``get_metadata()`` returns."""


def split_metadata(data: bytes) -> dict[str, bytes]:
    """The files of a ``metadata`` object: md.0, mmd.0 (BP5) and md.idx."""
    names: tuple[str, ...]
    if data[:8] == b"BP5     " and len(data) >= 32:
        names, sizes = ("md.0", "mmd.0", "md.idx"), struct.unpack_from("<QQQ", data, 8)
        at = 32
    elif data[:8] == b"BP4     " and len(data) >= 24:
        names, sizes = ("md.0", "md.idx"), struct.unpack_from("<QQ", data, 8)
        at = 24
    else:
        raise MetadataError("the metadata object has no BP4/BP5 header")
    if at + sum(sizes) != len(data):
        raise MetadataError(f"the metadata object is {len(data)} bytes, its header says {at + sum(sizes)}")
    files = {}
    for name, size in zip(names, sizes, strict=True):
        files[name] = data[at : at + size]
        at += size
    return files


def number(text: str, kind: str) -> Any:
    """ADIOS2's Min/Max text as a number of its type (the text itself if it is not one)."""
    try:
        if kind in INTEGER_TYPES:
            return int(text)
        if kind in FLOAT_TYPES:
            return float(text)
    except ValueError:
        pass
    return text


def variable_of(name: str, info: Mapping[str, str], value: Any) -> Variable:
    """A :class:`Variable` from ADIOS2's dictionary for it."""
    kind = info.get("Type", "")
    shape_text = info.get("Shape", "").replace(" ", "")
    shape = [int(n) for n in shape_text.split(",")] if shape_text else None
    low, high = info.get("Min"), info.get("Max")
    return Variable(
        name=name,
        type=kind,
        shape=shape,
        steps=int(info.get("AvailableStepsCount") or 1),
        min=None if low is None else number(low, kind),
        max=None if high is None else number(high, kind),
        single_value=info.get("SingleValue") == "true",
        value=value,
    )


def describe(objects: Mapping[str, Mapping[str, bytes]], env: Mapping[str, str]) -> dict[str, BPContents]:
    """What ADIOS2 reports of each dataset: ``objects`` maps a key to its metadata files (md.0, md.idx …).

    Every key gets an answer; one ADIOS2 could not read (or crashed on) has ``error`` set.
    """
    results: dict[str, BPContents] = {}
    if not objects:
        return results
    shm = "/dev/shm"  # memory-backed where there is one: the files live a few milliseconds
    top = tempfile.mkdtemp(prefix="camp-info-", dir=shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None)
    try:
        jobs: list[tuple[str, str]] = []
        for number_, (key, files) in enumerate(objects.items()):
            folder = os.path.join(top, str(number_))
            os.mkdir(folder)
            for name, data in files.items():
                with open(os.path.join(folder, name), "wb") as f:
                    f.write(data)
            jobs.append((key, folder))
        while jobs:
            done, crashed_on, fatal = _run(jobs, top, env)
            results.update(done)
            if fatal:
                for key, _ in jobs:
                    results.setdefault(key, BPContents(error=fatal))
                break
            if crashed_on is not None:
                results[crashed_on[0]] = BPContents(error=f"ADIOS2 crashed reading it ({crashed_on[1]})")
            jobs = [(k, f) for k, f in jobs if k not in results]
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return results


def _run(jobs: list[tuple[str, str]], top: str, env: Mapping[str, str]
         ) -> tuple[dict[str, BPContents], tuple[str, str] | None, str]:
    """One child over ``jobs``: (answers, (key, how) of a crash, a fatal reason such as no adios2).

    The child runs with the most capable ADIOS2 (:func:`campaignvcs.adios2env.run_child`).
    """
    listing = os.path.join(top, "jobs.jsonl")
    with open(listing, "w", encoding="utf-8") as f:
        for key, folder in jobs:
            f.write(json.dumps([key, folder]) + "\n")
    timeout = TIMEOUT_BASE + TIMEOUT_PER_DATASET * len(jobs)
    run = run_child(_CHILD, [listing, str(MAX_VALUE_STEPS)], env, top, timeout, log_dir=top)
    returncode, stderr = run.returncode, run.stderr.strip()
    answers: dict[str, BPContents] = {}
    started: str | None = None
    for event in run.events:
        if "fatal" in event:
            return answers, None, str(event["fatal"])
        if "start" in event:
            started = event["start"]
        elif "key" in event:
            started = None
            answers[event["key"]] = _contents(event)
    if started is not None or (returncode not in (0, None) and len(answers) < len(jobs)):
        if returncode is None:
            how = f"no answer within {timeout:.0f} s"
        elif returncode < 0:
            how = signal_name(-returncode)
        else:
            how = (stderr.splitlines() or [f"exit status {returncode}"])[-1][:200]
        victim = started if started is not None else next(k for k, _ in jobs if k not in answers)
        return answers, (victim, how), ""
    return answers, None, ""


def _contents(event: dict[str, Any]) -> BPContents:
    if "error" in event:
        return BPContents(error=str(event["error"]))
    return BPContents(
        variables=[variable_of(name, info, value) for name, info, value in event.get("variables", [])],
        attributes=[Attribute(name, info.get("Type", ""), value) for name, info, value in event.get("attributes", [])],
    )
