"""3-way merge of manifests (campaignvcs.merge): unions, tombstones, named conflicts (hypothesis)."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from campaignvcs.merge import merge_campaign, merge_dataset, merge_host, merge_replica, merge_timeseries
from campaignvcs.model import Archive, Campaign, Dataset, DatasetName, Host, HostName, Replica, TimeSeries

LOCATIONS = [(h, p) for h in ("laptop", "frontier") for p in ("run/a.bp", "run/b.bp", "run/c.bp")]
OPS = ("keep", "drop", "tombstone", "modify", "add")


def replica(host: str, path: str, size: int = 100, mtime: int = 1_000, deltime: int = 0) -> Replica:
    return Replica(HostName(host), "/data", path, size, mtime, checksum=f"{size:x}", deltime=deltime)


def dataset(*reps: Replica, deltime: int = 0, uuid: str = "u1", modtime: int = 5) -> Dataset:
    return Dataset(DatasetName("run/a.bp"), uuid, "ADIOS", modtime, deltime,
                   tuple(sorted(reps, key=lambda r: r.location)))


@st.composite
def base_and_sides(draw):
    """A base dataset and two sides, each made by editing the base replica by replica."""
    base_reps = {}
    for host, path in LOCATIONS:
        if draw(st.booleans()):
            base_reps[(host, path)] = replica(host, path, draw(st.integers(1, 3)), draw(st.integers(1, 3)),
                                              draw(st.sampled_from([0, 0, 7])))
    base = dataset(*base_reps.values())

    def side():
        reps = []
        for loc in LOCATIONS:
            op = draw(st.sampled_from(OPS))
            r = base_reps.get(loc)
            if r is None:
                if op in ("add", "modify"):
                    reps.append(replica(*loc, draw(st.integers(1, 3)), draw(st.integers(1, 3))))
                elif op == "tombstone":
                    reps.append(replica(*loc, deltime=draw(st.integers(10, 12))))
                continue
            if op == "drop":
                continue
            if op == "tombstone" and r.live:
                r = dataclasses.replace(r, deltime=draw(st.integers(10, 12)))
            elif op == "modify":
                r = dataclasses.replace(r, size=r.size + draw(st.integers(1, 2)))
            reps.append(r)
        return dataset(*reps, modtime=draw(st.integers(5, 7)))

    return base, side(), side()


def by_location(ds):
    return {} if ds is None else {r.location: r for r in ds.replicas}


@given(base_and_sides())
@settings(max_examples=300, deadline=None)
def test_merge_is_commutative(case):
    base, ours, theirs = case
    one, two = merge_dataset(base, ours, theirs), merge_dataset(base, theirs, ours)
    assert one.ours == two.theirs and one.theirs == two.ours
    assert sorted(one.conflicts) == sorted(two.conflicts)


@given(base_and_sides())
@settings(max_examples=300, deadline=None)
def test_replica_sets_merge_as_unions_and_nothing_changed_is_lost(case):
    """Every replica a side added or changed is in the result as that side has it, or is named in a conflict."""
    base, ours, theirs = case
    merged = merge_dataset(base, ours, theirs)
    if merged.conflicts and any(c.startswith(("deleted on one side", "removed on one side")) for c in merged.conflicts):
        assert (merged.ours, merged.theirs) == (ours, theirs)  # whole-dataset conflict: the sides themselves
        return
    b = by_location(base)
    for side, candidate in ((ours, merged.ours), (theirs, merged.theirs)):
        other = theirs if side is ours else ours
        result = by_location(candidate)
        for loc, rep in by_location(side).items():
            if rep == b.get(loc):
                continue  # unchanged on this side: the other side decides
            named = any(rep.path in c and rep.host in c for c in merged.conflicts)
            other_rep = by_location(other).get(loc)
            both_deleted = not rep.live and other_rep is not None and not other_rep.live
            assert result.get(loc) == rep or named or both_deleted, (loc, rep, result.get(loc), merged.conflicts)


@given(base_and_sides())
@settings(max_examples=300, deadline=None)
def test_tombstones_are_never_resurrected_by_a_stale_side(case):
    base, ours, theirs = case
    merged = merge_dataset(base, ours, theirs)
    b = by_location(base)
    for deleter, stale in ((ours, theirs), (theirs, ours)):
        for loc, rep in by_location(deleter).items():
            if rep.live or b.get(loc) is None or by_location(stale).get(loc) != b[loc]:
                continue
            # Deleted on one side, untouched since the base on the other: deleted in every result.
            for result in (merged.ours, merged.theirs):
                got = by_location(result).get(loc)
                assert got is not None and not got.live, (loc, got)


def test_replicas_added_on_both_sides_are_unioned():
    base = dataset(replica("laptop", "run/a.bp"))
    ours = dataset(replica("laptop", "run/a.bp"), replica("frontier", "run/a.bp"))
    theirs = dataset(replica("laptop", "run/a.bp"), replica("laptop", "run/b.bp"))
    merged = merge_dataset(base, ours, theirs)
    assert merged.clean
    assert {(r.host, r.path) for r in merged.value.replicas} == {
        ("laptop", "run/a.bp"), ("frontier", "run/a.bp"), ("laptop", "run/b.bp")}


def test_deleted_replica_stays_deleted_against_a_stale_copy():
    live = replica("laptop", "run/a.bp")
    gone = dataclasses.replace(live, deltime=99)
    merged = merge_dataset(dataset(live), dataset(gone), dataset(live, replica("frontier", "run/a.bp")))
    assert merged.clean
    assert by_location(merged.value)[live.location].deltime == 99
    assert len(merged.value.replicas) == 2


def test_deleted_on_one_side_and_changed_on_the_other_is_a_conflict():
    live = replica("laptop", "run/a.bp")
    merged = merge_dataset(dataset(live), dataset(dataclasses.replace(live, deltime=99)),
                           dataset(dataclasses.replace(live, size=200)))
    assert merged.conflicts == ("replica laptop:/data/run/a.bp: deleted on one side, changed on the other",)
    assert by_location(merged.ours)[live.location].deltime == 99
    assert by_location(merged.theirs)[live.location].size == 200


def test_same_replica_changed_differently_is_a_conflict_named_by_location():
    r = replica("laptop", "run/a.bp")
    merged = merge_dataset(dataset(r), dataset(dataclasses.replace(r, size=1)), dataset(dataclasses.replace(r, size=2)))
    assert not merged.clean
    assert merged.conflicts[0].startswith("replica laptop:/data/run/a.bp: changed differently on both sides")
    assert by_location(merged.ours)[r.location].size == 1 and by_location(merged.theirs)[r.location].size == 2


def test_both_deleting_keeps_the_earlier_tombstone():
    r = replica("laptop", "run/a.bp")
    o, t, c = merge_replica(r, dataclasses.replace(r, deltime=50), dataclasses.replace(r, deltime=40))
    assert c is None and o == t and o.deltime == 40


def test_dataset_deleted_on_one_side_and_changed_on_the_other_conflicts():
    r = replica("laptop", "run/a.bp")
    base = dataset(r)
    deleted = dataset(dataclasses.replace(r, deltime=9), deltime=9)
    changed = dataset(r, replica("frontier", "run/a.bp"))
    merged = merge_dataset(base, deleted, changed)
    assert merged.conflicts == ("deleted on one side, changed on the other",)
    assert merged.ours == deleted and merged.theirs == changed
    # ... but a deletion against an unchanged copy simply wins.
    assert merge_dataset(base, deleted, base).value == deleted


def test_independently_created_datasets_merge_and_keep_one_uuid():
    a = dataset(replica("laptop", "run/a.bp"), uuid="bbbb")
    b = dataset(replica("frontier", "run/a.bp"), uuid="aaaa")
    merged = merge_dataset(None, a, b)
    assert merged.clean and merged.value.uuid == "aaaa" and len(merged.value.replicas) == 2
    assert merge_dataset(None, b, a).value == merged.value


def test_kind_changed_differently_conflicts():
    base = dataset(replica("laptop", "run/a.bp"))
    ours = dataclasses.replace(base, kind="HDF5")
    theirs = dataclasses.replace(base, kind="TEXT")
    assert merge_dataset(base, ours, theirs).conflicts == ("kind differs",)


def test_hosts_merge_archives_as_a_union():
    base = Host(HostName("hpc"), "hpc.example.org", "", 1)
    ours = dataclasses.replace(base, archives=(Archive("/tape/a", "", "HPSS"),), modtime=2)
    theirs = dataclasses.replace(base, archives=(Archive("/tape/b", "t.tar", "Kronos"),), modtime=3)
    merged = merge_host(base, ours, theirs)
    assert merged.clean
    assert {a.dir for a in merged.value.archives} == {"/tape/a", "/tape/b"} and merged.value.modtime == 3
    clash = dataclasses.replace(theirs, archives=(Archive("/tape/a", "", "Kronos"),))
    assert merge_host(base, ours, clash).conflicts == ("archive /tape/a: changed differently on both sides",)


def test_timeseries_changed_differently_conflicts_and_same_change_merges():
    base = TimeSeries("heat", (DatasetName("a"),))
    one = TimeSeries("heat", (DatasetName("a"), DatasetName("b")))
    two = TimeSeries("heat", (DatasetName("a"), DatasetName("c")))
    assert merge_timeseries(base, one, two).conflicts == ("changed differently on both sides",)
    assert merge_timeseries(base, one, one).value == one
    assert merge_timeseries(base, base, two).value == two


def test_campaign_json_merges_field_by_field():
    base = Campaign("proj/run", "u", 1, "")
    described = dataclasses.replace(base, description="heat runs")
    renamed = dataclasses.replace(base, name="proj/run2")
    merged = merge_campaign(base, described, renamed)
    assert merged.clean and merged.value == Campaign("proj/run2", "u", 1, "heat runs")
    assert merge_campaign(base, described, dataclasses.replace(base, description="x")).conflicts == (
        "description differs",)
