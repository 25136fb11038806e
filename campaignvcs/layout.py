"""Where things live in a campaign commit's tree.

::

    campaign.json                          name, uuid, created
    hosts/<host>.json                      long host name, protocol, archival locations
    datasets/<aa>/<bb>/<name>/dataset.json the dataset manifest (replicas, embedded files)
    datasets/<aa>/<bb>/<name>/<file>       embedded metadata objects (git blobs)
    timeseries/<series>.json               ordered dataset names
    extras/<table>.json                    a table of an imported archive camp does not model

``<aa>/<bb>`` are the first four hex digits of SHA-1 of the dataset name, so no git tree
grows past a few hundred entries at 100,000 datasets and a one-dataset change rewrites
only five small trees. ``<name>`` is the representation name percent-encoded into one
path component, so ``git log --stat`` still shows which dataset changed.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from campaignvcs.model import Dataset

CAMPAIGN = "campaign.json"
DATASETS = "datasets"
HOSTS = "hosts"
TIMESERIES = "timeseries"
MANIFEST = "dataset.json"
EXTRAS = "extras"

_PLAIN = re.compile(r"[A-Za-z0-9_/-][A-Za-z0-9._/-]*")
"""A name :func:`encode_component` encodes by its slashes alone (safe characters, no leading dot)."""


def encode_component(name: str) -> str:
    """One safe git tree entry name for any string (reversible with :func:`decode_component`).

    Everything outside ``[A-Za-z0-9._-]`` is percent-encoded, and so is a leading dot, so
    no entry can be ``.``, ``..`` or ``.git`` and none contains ``/``.
    """
    if _PLAIN.fullmatch(name):  # most names (run_01/out.bp): quote() would cost ~10 µs a call
        return name.replace("/", "%2F")
    enc = quote(name, safe="").replace("~", "%7E")
    if enc.startswith("."):
        enc = "%2E" + enc[1:]
    return enc or "%"  # a lone "%" never comes out of quote(): the empty name


def decode_component(entry: str) -> str:
    """Inverse of :func:`encode_component`."""
    return "" if entry == "%" else unquote(entry)


def dataset_dir(name: str) -> str:
    """Tree path of a dataset's folder."""
    h = hashlib.sha1(name.encode("utf-8")).hexdigest()
    return f"{DATASETS}/{h[:2]}/{h[2:4]}/{encode_component(name)}"


def dataset_name_of(path: str) -> str | None:
    """The dataset name for a tree path inside ``datasets/``, or None for other paths."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[0] == DATASETS:
        return decode_component(parts[3])
    return None


def host_path(host: str) -> str:
    """Tree path of a host manifest."""
    return f"{HOSTS}/{encode_component(host)}.json"


def timeseries_path(name: str) -> str:
    """Tree path of a time-series manifest."""
    return f"{TIMESERIES}/{encode_component(name)}.json"


def extras_path(table: str) -> str:
    """Tree path of an extra table's manifest (``camp import`` keeps it, ``camp build`` writes it back)."""
    return f"{EXTRAS}/{encode_component(table)}.json"


def extras_table_of(path: str) -> str | None:
    """The table name for a tree path ``extras/<table>.json``, or None for other paths."""
    folder, _, entry = path.partition("/")
    if folder != EXTRAS or "/" in entry or not entry.endswith(".json"):
        return None
    return decode_component(entry[: -len(".json")])


def embedded_entries(dataset: Dataset) -> dict[str, str]:
    """Tree entry name → blob id for every embedded object of a dataset.

    An object is stored under its own file name; where replicas hold different objects
    of the same name, each is stored as ``<name>@<first 12 hex of its id>``.
    """
    by_name: dict[str, set[str]] = {}
    for replica in dataset.replicas:
        for f in replica.files:
            by_name.setdefault(f.name, set()).add(f.blob)
    out: dict[str, str] = {}
    for name, blobs in by_name.items():
        safe = encode_component(name)
        if safe == MANIFEST:
            safe = "%64ataset.json"
        if len(blobs) == 1:
            out[safe] = next(iter(blobs))
        else:
            for blob in blobs:
                out[f"{safe}@{blob[:12]}"] = blob
    return out
