"""``camp add`` into a shard: the writer side of many writers recording one campaign at once.

``porcelain.workspace.add`` hands over here when the add goes to a shard (``--shard-staging``,
or inside a Slurm job): the datasets are staged into a private staging area and written as
one shard file (:mod:`campaignvcs.shards`), without the repository lock, so no writer waits
for or refuses another. With ``-m`` the writer then commits: it waits for the lock (at most
``CAMP_SHARD_COMMIT_WAIT`` seconds, default 60), and stops waiting as soon as another
writer's commit has gathered its shard.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from campaignvcs import provenance
from campaignvcs.errors import BadInput, NothingToCommit, RepoLocked
from campaignvcs.repo import CampaignRepo
from campaignvcs.shards import save_shard, shard_transaction
from campaignvcs.tempfiles import hostname
from campaignvcs.transaction import Transaction

R = TypeVar("R")
C = TypeVar("C")

SHARD_COMMIT_WAIT = 60.0
"""Seconds ``camp add -m`` into a shard waits for the lock before it leaves the commit to the next ``camp commit``."""


@dataclass
class ShardAdd(Generic[R, C]):
    """What an add into a shard did: per-path results, the shard, the commit (with ``-m``)."""

    results: list[R]
    path: str | None
    committed: C | None = None
    gathered: bool = False
    """Another writer's commit gathered the shard first."""
    warnings: list[str] = field(default_factory=list)


def add_to_shard(camp: CampaignRepo, env: Mapping[str, str], meta: Mapping[str, str],
                 stage: Callable[[Transaction], list[R]], message: str | None,
                 commit: Callable[[Transaction], C]) -> ShardAdd[R, C]:
    """Stage with ``stage`` into a new shard; with ``message``, then ``commit`` (it gathers every shard)."""
    node = hostname()
    prov = provenance.from_environment(env, node, meta) or provenance.writer(env, node)
    with shard_transaction(camp) as tx:
        results = stage(tx)
        path = save_shard(tx, prov, node, provenance.slurm_job(env))
    if message is None or path is None:
        return ShardAdd(results, path)
    raw = env.get("CAMP_SHARD_COMMIT_WAIT", "").strip()
    try:
        wait = float(raw) if raw else SHARD_COMMIT_WAIT
    except ValueError:
        raise BadInput(f"invalid CAMP_SHARD_COMMIT_WAIT: {raw!r} (seconds)") from None
    deadline = time.monotonic() + wait
    while os.path.exists(path):
        try:
            with camp.transaction(wait=min(1.0, wait)) as tx:
                if not os.path.exists(path):
                    break
                return ShardAdd(results, path, commit(tx))
        except NothingToCommit:
            break  # what the shard records was committed already (another writer recorded the same)
        except RepoLocked:
            if time.monotonic() >= deadline:
                return ShardAdd(results, path, warnings=[
                    f"the repository lock stayed busy for {wait:.0f} s: the datasets wait in shard {path}; "
                    "the next 'camp commit' gathers them"])
    return ShardAdd(results, path, gathered=True)
