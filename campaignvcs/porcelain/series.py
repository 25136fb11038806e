"""camp timeseries: which datasets ADIOS2 reads as the steps of one series.

A time series is a manifest of its own (``timeseries/<name>.json``) listing member
datasets in order; each dataset is in at most one series, so adding it to one takes it
out of another. Staged like every change; checked before anything is staged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from campaignvcs import layout
from campaignvcs.aca.schema import SERIES_KINDS
from campaignvcs.errors import BadInput, UsageError
from campaignvcs.model import DatasetName, TimeSeries
from campaignvcs.porcelain.common import environ, open_repo
from campaignvcs.porcelain.edits import check_name, live_dataset, stage_changes
from campaignvcs.repo import CampaignRepo


@dataclass(frozen=True)
class SeriesResult:
    """A time series after ``camp timeseries``: its members in order, and what moved.

    ``moved`` lists (dataset, series it left); ``emptied`` the series that lost their
    last member and were removed; ``removed`` is True when the series itself was deleted.
    """

    name: str
    datasets: list[str]
    added: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)
    emptied: list[str] = field(default_factory=list)
    removed: bool = False


def timeseries(
    name: str,
    datasets: Sequence[str] = (),
    replace: bool = False,
    remove: bool = False,
    repo: str | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> SeriesResult:
    """Append datasets to series ``name`` (``replace``: set its members; ``remove``: delete it).

    Members are live ADIOS or HDF5 datasets of one kind, each in at most one series:
    adding a dataset to this series takes it out of another. ADIOS2 reads the series as
    one dataset ``<name>/<variable>`` whose steps are the members in this order.
    """
    env = environ(env)
    check_name(name, "time-series name")
    if replace and remove:
        raise UsageError("--replace and --remove exclude each other")
    if remove and datasets:
        raise UsageError("--remove deletes the whole series; give no datasets")
    if not remove and not datasets:
        raise UsageError("give the datasets to put into the series")
    dupes = sorted({d for d in datasets if list(datasets).count(d) > 1})
    if dupes:
        raise BadInput(f"dataset {dupes[0]!r} is given twice")
    with open_repo(repo, cwd, env) as camp, camp.lock():
        all_series = {ts.name: ts for ts in camp.timeseries(camp.staged_tree())}
        mine = all_series.get(name)
        path = layout.timeseries_path(name)
        if remove:
            if mine is None:
                raise BadInput(f"no time series named {name!r}")
            stage_changes(camp, manifests={path: None})
            return SeriesResult(name, [], removed=True)
        members = _series_members(camp, datasets)
        kinds = {k for k in members.values()}
        current = [] if mine is None or replace else list(mine.datasets)
        if current:
            first = camp.dataset(current[0])
            if first is not None:
                kinds.add(first.kind)
        if len(kinds) > 1:
            raise BadInput(
                f"time series {name!r} would mix {' and '.join(sorted(kinds))} datasets (ADIOS2 reads "
                "one kind per series)"
            )
        new_order = current + [d for d in datasets if d not in current]
        manifests: dict[str, bytes | None] = {
            path: TimeSeries(name, tuple(DatasetName(d) for d in new_order)).dumps()
        }
        moved: list[tuple[str, str]] = []
        emptied: list[str] = []
        for other in all_series.values():
            if other.name == name:
                continue
            leaving = [d for d in other.datasets if d in members]
            if leaving:
                moved += [(d, other.name) for d in leaving]
                rest = tuple(d for d in other.datasets if d not in members)
                if rest:
                    manifests[layout.timeseries_path(other.name)] = TimeSeries(other.name, rest).dumps()
                else:
                    manifests[layout.timeseries_path(other.name)] = None
                    emptied.append(other.name)
        stage_changes(camp, manifests=manifests)
        added = [d for d in datasets if d not in current]
        return SeriesResult(name, new_order, added, moved, emptied)


def _series_members(camp: CampaignRepo, names: Sequence[str]) -> dict[str, str]:
    out = {}
    for n in names:
        ds = live_dataset(camp, n)
        if ds.kind not in SERIES_KINDS:
            raise BadInput(f"dataset {n!r} is {ds.kind}: a time series holds ADIOS or HDF5 datasets")
        out[n] = ds.kind
    return out
