"""Who recorded what: batch-job provenance as git trailers in commit messages.

A writer's provenance is an ordered mapping of trailer keys to values, taken from the
batch scheduler's environment (``Slurm-Job: 4242_7``, ``Slurm-Cluster``, ``Slurm-Nodes``,
``Slurm-User``) plus ``camp add --meta KEY=VALUE``. A commit writes one block of trailers
per writer (its *group*); when one commit holds the work of several writers (a commit
that gathered shards), each block ends with ``Datasets: [...]`` (a JSON list) naming the
datasets that writer recorded, so ``git log`` shows, and camp reads back, which job
recorded which dataset. Every block starts with ``Slurm-Job`` or, outside Slurm,
``Recorded-By: user@host``.

Pure functions: the caller hands in the environment as a mapping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from campaignvcs.errors import UsageError

LEADS = ("Slurm-Job", "Recorded-By")
"""Keys that start a block of trailers (one writer)."""
DATASETS = "Datasets"
"""The trailer naming the datasets of a block, when a commit holds several writers' work."""
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_TRAILER = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): (.*)$")

Provenance = dict[str, str]
Group = tuple[Provenance, list[str]]


def slurm_job(env: Mapping[str, str]) -> str:
    """``<array job>_<task>`` for an array task, else the job id; "" outside Slurm."""
    array, task = env.get("SLURM_ARRAY_JOB_ID", ""), env.get("SLURM_ARRAY_TASK_ID", "")
    if array and task:
        return f"{array}_{task}"
    return env.get("SLURM_JOB_ID", "")


def from_environment(env: Mapping[str, str], host: str, meta: Mapping[str, str] | None = None) -> Provenance:
    """This writer's provenance: Slurm's variables when present, then ``meta``; {} when neither.

    Outside Slurm, a writer with ``meta`` is named ``Recorded-By: user@host``.
    """
    user = env.get("SLURM_JOB_USER") or env.get("USER") or env.get("LOGNAME") or ""
    out: Provenance = {}
    job = slurm_job(env)
    if job:
        out["Slurm-Job"] = job
        for key, var in (("Slurm-Cluster", "SLURM_CLUSTER_NAME"), ("Slurm-Nodes", "SLURM_JOB_NODELIST")):
            if env.get(var):
                out[key] = env[var]
        if user:
            out["Slurm-User"] = user
    if meta:
        if not out:
            out["Recorded-By"] = f"{user}@{host}" if user else host
        out.update(meta)
    return out


def writer(env: Mapping[str, str], host: str) -> Provenance:
    """The provenance of a shard writer: :func:`from_environment`, at least ``Recorded-By``."""
    found = from_environment(env, host)
    if not found:
        user = env.get("USER") or env.get("LOGNAME") or ""
        found = {"Recorded-By": f"{user}@{host}" if user else host}
    return found


def parse_meta(items: Iterable[str]) -> Provenance:
    """``KEY=VALUE`` items → trailers; a key is letters, digits and dashes, a value one line."""
    out: Provenance = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not _KEY.match(key) or not value or "\n" in value or "\r" in value:
            raise UsageError(f"invalid --meta {item!r}: give KEY=VALUE (KEY of letters, digits and '-', "
                             "VALUE one non-empty line)")
        if key in LEADS or key == DATASETS or key.startswith("Slurm-"):
            raise UsageError(f"invalid --meta {item!r}: {key} is set by camp")
        out[key] = value
    return out


def merge_groups(groups: Iterable[Group]) -> list[Group]:
    """Groups with equal provenance joined (in first-seen order), empty ones dropped, names sorted."""
    joined: dict[tuple[tuple[str, str], ...], Group] = {}
    for prov, names in groups:
        if not names or not prov:
            continue
        key = tuple(prov.items())
        if key in joined:
            joined[key][1].extend(names)
        else:
            joined[key] = (dict(prov), list(names))
    return [(prov, sorted(set(names))) for prov, names in joined.values()]


def with_trailers(message: str, groups: Sequence[Group], changed: Iterable[str]) -> str:
    """``message`` followed by one block of trailers per group.

    ``Datasets`` is written in each block unless one group recorded every ``changed`` dataset.
    """
    groups = merge_groups(groups)
    if not groups:
        return message
    listed = not (len(groups) == 1 and set(groups[0][1]) >= set(changed))
    lines = []
    for prov, names in groups:
        lines += [f"{k}: {v}" for k, v in sorted(prov.items(), key=lambda kv: kv[0] not in LEADS)]
        if listed:
            lines.append(f"{DATASETS}: {json.dumps(names, ensure_ascii=False)}")
    return message.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"


def parse_blocks(message: str) -> list[tuple[Provenance, list[str] | None]]:
    """The trailer blocks of a commit message: (provenance, dataset names or None for "all")."""
    paragraphs = message.strip("\n").split("\n\n")
    if len(paragraphs) < 2:
        return []
    lines = paragraphs[-1].splitlines()
    if not lines or not all(_TRAILER.match(line) for line in lines):
        return []
    blocks: list[tuple[Provenance, list[str] | None]] = []
    for line in lines:
        m = _TRAILER.match(line)
        assert m is not None
        key, value = m.group(1), m.group(2)
        if key in LEADS or not blocks or key in blocks[-1][0] or (key == DATASETS and blocks[-1][1] is not None):
            blocks.append(({}, None))
        prov, _names = blocks[-1]
        if key == DATASETS:
            try:
                names = json.loads(value)
            except ValueError:
                names = []
            blocks[-1] = (prov, [str(n) for n in names] if isinstance(names, list) else [])
        else:
            prov[key] = value
    return [(p, n) for p, n in blocks if any(k in p for k in LEADS)]


def recorded_by(message: str, name: str) -> list[Provenance]:
    """The writers a commit message names for dataset ``name`` (several when jobs added replicas of it)."""
    blocks = parse_blocks(message)
    if len(blocks) == 1 and blocks[0][1] is None:
        return [blocks[0][0]]
    return [prov for prov, names in blocks if names is not None and name in names]


def describe(prov: Mapping[str, str]) -> str:
    """One phrase for a listing: ``Slurm-Job 4242_7 (Slurm-Cluster ci, ...)``."""
    items = list(prov.items())
    if not items:
        return ""
    (k, v), rest = items[0], items[1:]
    return f"{k} {v}" + (" (" + ", ".join(f"{a} {b}" for a, b in rest) + ")" if rest else "")
