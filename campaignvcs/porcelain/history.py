"""log and show: reading the history of a campaign."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dulwich.objects import Commit

from campaignvcs import layout
from campaignvcs.errors import BadInput
from campaignvcs.model import Dataset
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class LogEntry:
    """One commit as ``camp log`` shows it."""

    id: str
    author: str
    time: int
    timezone: int
    message: str
    parents: list[str]
    datasets: list[str] = field(default_factory=list)


def _entry(commit: Commit, datasets: list[str] | None = None) -> LogEntry:
    return LogEntry(
        id=commit.id.decode(),
        author=commit.author.decode("utf-8", "replace"),
        time=commit.author_time,
        timezone=commit.author_timezone,
        message=commit.message.decode("utf-8", "replace"),
        parents=[p.decode() for p in commit.parents],
        datasets=datasets or [],
    )


def log(
    name: str | None = None,
    rev: str | None = None,
    max_count: int | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[LogEntry]:
    """Commits reachable from ``rev`` (default HEAD), newest first; with ``name``, only those changing it."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        start = camp.resolve(rev)
        out: list[LogEntry] = []
        for commit in _touching(camp, start, name):
            out.append(_entry(commit))
            if max_count is not None and len(out) >= max_count:
                break
        if name is not None and not out:
            raise BadInput(f"no dataset named {name!r} in the history of {rev or 'HEAD'}")
        return out


def _touching(camp: CampaignRepo, start: bytes, name: str | None) -> Iterator[Commit]:
    if name is None:
        yield from camp.walk(start)
        return
    path = layout.dataset_dir(name)
    for commit in camp.walk(start):
        mine = camp.lookup(commit.tree, path)
        parents = [camp.lookup(camp.tree_of(p), path) for p in commit.parents] or [None]
        if all(mine != p for p in parents):
            yield commit


@dataclass(frozen=True)
class Shown:
    """A commit and the datasets it holds."""

    commit: LogEntry
    campaign: str
    datasets: list[Dataset]


def show(
    rev: str | None = None,
    names: list[str] | None = None,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Shown:
    """The datasets and replicas of a commit (all, or only ``names``)."""
    env = environ(env)
    with open_repo(repo, cwd, env) as camp:
        oid = camp.resolve(rev)
        commit = camp.read_commit(oid)
        if names:
            datasets = []
            for n in names:
                ds = camp.dataset(n, oid)
                if ds is None:
                    raise BadInput(f"no dataset named {n!r} in {rev or 'HEAD'}")
                datasets.append(ds)
        else:
            datasets = sorted(camp.datasets(commit.tree), key=lambda d: d.name)
        return Shown(_entry(commit), camp.campaign(oid).name, datasets)
