"""Manifests and tree names: canonical, reversible, and stable (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from campaignvcs import layout
from campaignvcs.model import (
    Archive,
    BlobId,
    Dataset,
    DatasetName,
    EmbeddedFile,
    Host,
    HostName,
    Replica,
    TarMember,
    dumps,
)

text = st.text(min_size=1, max_size=30)
ns = st.integers(min_value=0, max_value=2**63 - 1)
hexid = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)

files = st.builds(EmbeddedFile, name=text, blob=hexid.map(BlobId), compression=st.sampled_from([0, 1]),
                  lenorig=ns, lencompressed=ns, modtime=ns, checksum=text)
replicas = st.builds(
    Replica, host=text.map(HostName), dir=text, path=text, size=ns, mtime=ns, checksum=text,
    archive=st.none() | st.text(max_size=10), deltime=ns, key=st.text(max_size=32),
    resolution=st.none() | st.tuples(st.integers(1, 9999), st.integers(1, 9999)),
    accuracy=st.none() | st.tuples(st.floats(allow_nan=False, allow_infinity=False),
                                   st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 1)),
    files=st.lists(files, max_size=3).map(tuple),
    tarindex=st.lists(st.builds(TarMember, text, ns, ns, ns), max_size=3).map(tuple))
datasets = st.builds(Dataset, name=text.map(DatasetName), uuid=hexid, kind=st.sampled_from(["ADIOS", "HDF5"]),
                     modtime=ns, deltime=ns,
                     replicas=st.lists(replicas, max_size=4, unique_by=lambda r: r.location).map(tuple))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@given(datasets)
@settings(max_examples=60, deadline=None)
def test_dataset_manifest_round_trips_and_is_canonical(ds):
    data = ds.dumps()
    back = Dataset.loads(data)
    assert back.dumps() == data
    assert back.name == ds.name and back.uuid == ds.uuid and len(back.replicas) == len(ds.replicas)
    assert {r.location for r in back.replicas} == {r.location for r in ds.replicas}


@given(datasets)
@settings(max_examples=40, deadline=None)
def test_replica_order_does_not_change_the_bytes(ds):
    reordered = Dataset(ds.name, ds.uuid, ds.kind, ds.modtime, ds.deltime, tuple(reversed(ds.replicas)))
    assert reordered.dumps() == ds.dumps()


@given(st.dictionaries(st.text(), json_values, max_size=6))
@settings(max_examples=150)
def test_canonical_writer_equals_json_indent_1_sorted(obj):
    assert dumps(obj) == (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


# Dataset.dumps writes its manifest without the generic writer: the bytes must stay json's.
# Names with quotes, backslashes, control characters and non-ASCII; any int, however big or
# negative; empty and full lists.
tricky = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from('"\\\n\t\x00\x1f\u2028é✓😀'), max_size=12)
anyint = st.integers() | st.sampled_from([0, -1, 2**63, 2**64 + 1, -(2**70)])
tricky_files = st.builds(EmbeddedFile, name=tricky, blob=tricky.map(BlobId), compression=anyint, lenorig=anyint,
                         lencompressed=anyint, modtime=anyint, checksum=tricky)
tricky_replicas = st.builds(
    Replica, host=tricky.map(HostName), dir=tricky, path=tricky, size=anyint, mtime=anyint, checksum=tricky,
    archive=st.none() | tricky, deltime=anyint, key=tricky,
    resolution=st.none() | st.just(()) | st.tuples(anyint, anyint),
    accuracy=st.none() | st.tuples(st.floats(allow_nan=False, allow_infinity=False), st.floats(allow_nan=False,
                                   allow_infinity=False), anyint),
    files=st.lists(tricky_files, max_size=3).map(tuple),
    tarindex=st.lists(st.builds(TarMember, tricky, anyint, anyint, anyint), max_size=2).map(tuple))
tricky_datasets = st.builds(Dataset, name=tricky.map(DatasetName), uuid=tricky, kind=tricky, modtime=anyint,
                            deltime=anyint, replicas=st.lists(tricky_replicas, max_size=3).map(tuple))


@given(tricky_datasets)
@settings(max_examples=300, deadline=None)
def test_dataset_manifest_is_json_indent_1_sorted(ds):
    assert ds.dumps() == (json.dumps(ds.to_dict(), sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def test_dataset_fields_of_other_types_are_written_as_json_writes_them():
    rep = Replica(HostName("h"), "/d", "p", True, 1.5, archive="", resolution=(1, 2),  # type: ignore[arg-type]
                  files=(EmbeddedFile("f", BlobId("b"), False, 1, 1, 1, "c"),))  # type: ignore[arg-type]
    ds = Dataset(DatasetName("x"), "u", "ADIOS", 2**80, 0, (rep,))
    assert ds.dumps() == (json.dumps(ds.to_dict(), sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


@given(st.text(min_size=0, max_size=60))
@settings(max_examples=200)
def test_tree_names_are_safe_and_reversible(name):
    enc = layout.encode_component(name)
    assert enc and "/" not in enc and "\0" not in enc and not enc.startswith(".")
    assert layout.decode_component(enc) == name
    if name:
        assert layout.dataset_name_of(layout.dataset_dir(name) + "/dataset.json") == name


@given(st.text(alphabet="abcXYZ019._-/~% é", min_size=0, max_size=30))
@settings(max_examples=300)
def test_tree_names_keep_their_encoding(name):
    """The fast path for plain names gives exactly what percent-encoding gives (stored trees depend on it)."""
    from urllib.parse import quote

    expected = quote(name, safe="").replace("~", "%7E")
    expected = ("%2E" + expected[1:] if expected.startswith(".") else expected) or "%"
    assert layout.encode_component(name) == expected


def test_host_manifest_round_trip():
    host = Host(HostName("tape"), None, "https", 5, (Archive("/arch", "a.tar", "https", BlobId("ab" * 20)),
                                                     Archive("/arch", "", "fs")))
    assert Host.loads(host.dumps()) == Host(host.name, None, "https", 5, tuple(sorted(
        host.archives, key=lambda a: (a.dir, a.tarname))))


def test_two_replicas_at_one_location_are_refused():
    import pytest

    from campaignvcs.errors import CampError

    rep = Replica(HostName("h"), "/d", "p", 1, 1).to_dict()
    data = json.dumps({"name": "x", "uuid": "u", "kind": "TEXT", "modtime": 0, "replicas": [rep, rep]}).encode()
    with pytest.raises(CampError, match="two replicas at h:/d/p"):
        Dataset.loads(data, "x")
