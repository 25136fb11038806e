"""File lists for ``camp add``: ``--files-from FILE`` (``-`` for stdin, ``-0`` NUL-separated) and ``--shard I/N``.

The lists come from ``lfs find``, mpiFileUtils ``dwalk``, GPFS policy runs or ``find``;
a batch array splits one list across its tasks with ``--shard $SLURM_ARRAY_TASK_ID/N``:
task I of N takes every path whose 0-based position modulo N is I-1, so the shares are
disjoint, cover the list, and stay the same however often a task is re-run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

from campaignvcs.errors import BadInput, UsageError


def read_path_list(source: str, nul: bool = False, cwd: str | None = None,
                   stdin: BinaryIO | None = None) -> list[str]:
    """The paths listed in file ``source`` (relative to ``cwd``; ``-``: ``stdin``), one a line or NUL-separated.

    Empty entries are skipped; with lines, a trailing carriage return is dropped. Paths
    in the list are relative to the folder camp runs in, as on the command line.
    """
    if source == "-":
        if stdin is None:
            raise BadInput("--files-from -: no standard input to read")
        data = stdin.read()
    else:
        try:
            with open(os.path.join(cwd or os.getcwd(), source), "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BadInput(f"cannot read the file list {source}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8", "surrogateescape")
    except UnicodeDecodeError:  # pragma: no cover - surrogateescape accepts any bytes
        raise BadInput(f"the file list {source} is not text") from None
    if nul:
        return [p for p in text.split("\0") if p]
    return [p.removesuffix("\r") for p in text.split("\n") if p.removesuffix("\r")]


def parse_share(spec: str) -> tuple[int, int]:
    """``I/N`` → (I, N) with 1 ≤ I ≤ N."""
    first, sep, second = spec.partition("/")
    if not sep or not first.strip().isdigit() or not second.strip().isdigit():
        raise UsageError(f"invalid --shard {spec!r}: give I/N, e.g. --shard 3/16 (task 3 of 16)")
    i, n = int(first), int(second)
    if n < 1 or not 1 <= i <= n:
        raise UsageError(f"invalid --shard {spec!r}: I must be between 1 and N (N at least 1)")
    return i, n


def take_share(paths: Sequence[str], spec: str) -> list[str]:
    """Task I of N's share of ``paths``: every path whose 0-based position modulo N is I-1."""
    i, n = parse_share(spec)
    return [p for k, p in enumerate(paths) if k % n == i - 1]


def parse_meta(items: Sequence[str]) -> dict[str, str]:
    """``camp add --meta KEY=VALUE`` items → provenance trailers (see :mod:`campaignvcs.provenance`)."""
    from campaignvcs.provenance import parse_meta as parse

    return parse(items)
