"""campaignvcs.extract.hdf5: the metadata-only copy of an HDF5 file."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import random
import subprocess
import sys
import time
import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py import h5a, h5t
from helpers import require_module, requires

from campaignvcs.errors import BadInput, UnreadableDataset
from campaignvcs.extract import hdf5

# --- helpers ----------------------------------------------------------------------------


def open_copy(path) -> h5py.File:
    return h5py.File(io.BytesIO(hdf5.metadata_copy(str(path))), "r")


def make_sample(path, with_null_dataset=True) -> None:
    """A small file like a simulation output: groups, attributes, small and large datasets."""
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "run 42"
        f.attrs["steps"] = np.int64(1000)
        f.attrs["origin"] = np.array([0.0, 0.5, 1.0])
        mesh = f.create_group("mesh")
        mesh.attrs["kind"] = "structured"
        mesh.create_dataset("dims", data=np.array([64, 64, 32], dtype="i4"))
        coords = mesh.create_dataset("coords", data=np.random.default_rng(1).random((200, 3)))
        coords.attrs["units"] = "m"
        fields = f.create_group("fields/step0")  # intermediate group "fields"
        fields.attrs["time"] = 0.25
        fields.create_dataset(
            "pressure",
            data=np.random.default_rng(2).random((100, 50)).astype("f4"),
            chunks=(10, 50),
            compression="gzip",
            compression_opts=4,
            shuffle=True,
            maxshape=(None, 50),
            fillvalue=-1.0,
        )
        fields.create_dataset("empty_big", shape=(300,), dtype="u2", chunks=(30,), fillvalue=7)
        fields.create_dataset("names", data=["a", "bb", "ccc"], dtype=h5py.string_dtype())
        fields.create_dataset("scalar", data=3.5)
        if with_null_dataset:  # the reference tool crashes on these
            fields.create_dataset("nothing", data=h5py.Empty("f8"))


# --- structure, values, creation properties ----------------------------------------------


def test_copy_keeps_tree_attributes_small_values_and_drops_large_data(tmp_path):
    make_sample(tmp_path / "s.h5")
    # the source is also open here, with h5py's default settings: the copy must still work
    with h5py.File(tmp_path / "s.h5", "r") as src, open_copy(tmp_path / "s.h5") as out:
        names = []
        src.visit(names.append)
        copied = []
        out.visit(copied.append)
        assert copied == names
        assert dict(out["mesh"].attrs) == {"kind": "structured"}
        assert out["fields/step0"].attrs["time"] == 0.25
        assert out["mesh/coords"].attrs["units"] == "m"
        np.testing.assert_array_equal(out["mesh/dims"][()], [64, 64, 32])
        assert [s.decode() for s in out["fields/step0/names"][()]] == ["a", "bb", "ccc"]
        assert out["fields/step0/scalar"][()] == 3.5
        assert out["fields/step0/nothing"].shape is None
        for name in ("mesh/coords", "fields/step0/pressure", "fields/step0/empty_big"):
            assert out[name].id.get_storage_size() == 0, name
            assert out[name].shape == src[name].shape
            assert out[name].dtype == src[name].dtype
        pressure = out["fields/step0/pressure"]
        assert pressure.chunks == (10, 50)
        assert pressure.compression == "gzip"
        assert pressure.compression_opts == 4
        assert pressure.shuffle
        assert pressure.maxshape == (None, 50)
        assert pressure.fillvalue == -1.0
        assert out["fields/step0/empty_big"].fillvalue == 7
        assert (out["fields/step0/empty_big"][()] == 7).all()  # reads back as fill value


def test_root_group_attributes_are_kept(tmp_path):
    make_sample(tmp_path / "s.h5")
    with open_copy(tmp_path / "s.h5") as out:
        assert out.attrs["title"] == "run 42"
        assert out.attrs["steps"] == 1000
        np.testing.assert_array_equal(out.attrs["origin"], [0.0, 0.5, 1.0])


def test_dataset_with_128_elements_keeps_values_129_does_not(tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f["at"] = np.arange(hdf5.SMALL_DATASET)
        f["over"] = np.arange(hdf5.SMALL_DATASET + 1)
    with open_copy(tmp_path / "n.h5") as out:
        np.testing.assert_array_equal(out["at"][()], np.arange(hdf5.SMALL_DATASET))
        assert out["over"].id.get_storage_size() == 0


def test_early_allocated_large_dataset_gets_no_storage(tmp_path):
    with h5py.File(tmp_path / "e.h5", "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        space = h5py.h5s.create_simple((10_000,))
        h5py.h5d.create(f.id, b"early", h5t.NATIVE_DOUBLE, space, dcpl=dcpl)
        f["early"][:10] = 1.0
    with open_copy(tmp_path / "e.h5") as out:
        assert out["early"].shape == (10_000,)
        assert out["early"].id.get_storage_size() == 0


def test_attribute_types_survive(tmp_path):
    compound = np.dtype([("id", "i4"), ("label", "S3"), ("xy", "f4", (2,))])
    vlen_compound = np.dtype([("id", "i4"), ("name", h5py.string_dtype())])
    sequences = np.empty(2, dtype=h5py.vlen_dtype("i4"))
    sequences[0], sequences[1] = np.arange(3, dtype="i4"), np.arange(1, dtype="i4")
    with h5py.File(tmp_path / "a.h5", "w") as f:
        g = f.create_group("g")
        g.attrs["big_endian"] = np.array([1, 2], dtype=">i8")
        g.attrs["fixed"] = np.bytes_("fixed")
        g.attrs.create("utf8_fixed", "héllo".encode(), dtype=h5py.string_dtype("utf-8", 6))
        g.attrs["strings"] = ["x", "yz"]
        g.attrs["compound"] = np.array([(1, b"abc", (1.0, 2.0))], dtype=compound)
        g.attrs["vlen_compound"] = np.array([(7, "seven")], dtype=vlen_compound)
        g.attrs.create("sequences", sequences)
        g.attrs.create("enum", 2, dtype=h5py.enum_dtype({"RED": 1, "BLUE": 2}, basetype="i1"))
        g.attrs["flag"] = np.bool_(True)
        g.attrs["empty"] = h5py.Empty("i4")
        g.attrs["ref"] = f["g"].ref
        f["committed_t"] = np.dtype("<f4")
        g.attrs.create("uses_named_type", 1.5, dtype=f["committed_t"])
    with open_copy(tmp_path / "a.h5") as out:
        a = out["g"].attrs
        np.testing.assert_array_equal(a["big_endian"], [1, 2])
        assert a["big_endian"].dtype == np.dtype(">i8")
        assert a["fixed"] == b"fixed"
        assert h5a.open(out["g"].id, b"utf8_fixed").get_type().get_cset() == h5t.CSET_UTF8
        assert a["utf8_fixed"] == "héllo".encode()
        assert list(a["strings"]) == ["x", "yz"]
        assert a["compound"].dtype == compound
        assert a["compound"][0]["label"] == b"abc"
        assert a["vlen_compound"][0]["name"] == b"seven"
        assert [list(s) for s in a["sequences"]] == [[0, 1, 2], [0]]
        assert a["enum"] == 2
        enum = h5a.open(out["g"].id, b"enum").get_type()
        assert enum.get_class() == h5t.ENUM and enum.enum_nameof(2) == b"BLUE"
        assert a["flag"]
        assert isinstance(a["empty"], h5py.Empty)
        assert out[a["ref"]].name == "/g"  # the reference points at the copy of its target
        assert a["uses_named_type"] == 1.5
        assert isinstance(out["committed_t"], h5py.Datatype)


def test_attribute_h5py_cannot_read_is_copied_raw(tmp_path):
    # a time-typed attribute has no numpy form: h5py cannot read it, the copy keeps its bytes
    with h5py.File(tmp_path / "t.h5", "w") as f:
        g = f.create_group("g")
        g.create_dataset("big", data=np.zeros(1000))
        aid = h5a.create(g.id, b"when", h5t.UNIX_D32LE, h5py.h5s.create(h5py.h5s.SCALAR))
        aid.write(np.array([1_700_000_000], dtype="<u4").view(np.uint8), h5t.UNIX_D32LE)
    with open_copy(tmp_path / "t.h5") as out:
        aid = h5a.open(out["g"].id, b"when")
        raw = np.empty(4, dtype=np.uint8)
        aid.read(raw, aid.get_type())
        assert raw.view("<u4")[0] == 1_700_000_000
        assert out["g/big"].id.get_storage_size() == 0  # the group was not copied whole


def test_creation_order_is_kept(tmp_path):
    with h5py.File(tmp_path / "o.h5", "w", track_order=True) as f:
        for name in ("zeta", "alpha", "mid"):
            f.attrs[name] = 1
            f.create_group(name, track_order=True).attrs[name] = 2
        f["zeta"].attrs["beta"] = 3
        f["zeta"].create_dataset("z", data=1)
        f["zeta"].create_dataset("a", data=2)
    with open_copy(tmp_path / "o.h5") as out:
        assert list(out.attrs) == ["zeta", "alpha", "mid"]
        assert list(out) == ["zeta", "alpha", "mid"]
        assert list(out["zeta"].attrs) == ["zeta", "beta"]
        assert list(out["zeta"]) == ["z", "a"]
        assert list(out["alpha"]) == []


# --- links ------------------------------------------------------------------------------


def test_links_stay_links(tmp_path):
    with h5py.File(tmp_path / "l.h5", "w") as f:
        f["data/values"] = np.arange(500.0)
        f["alias"] = h5py.SoftLink("/data/values")
        f["dangling"] = h5py.SoftLink("/nowhere")
        f["outside"] = h5py.ExternalLink("missing-file.h5", "/x")
        f["data/again"] = f["data/values"]  # a second hard link to the same dataset
    with open_copy(tmp_path / "l.h5") as out:
        alias = out.get("alias", getlink=True)
        assert isinstance(alias, h5py.SoftLink) and alias.path == "/data/values"
        assert out.get("dangling", getlink=True).path == "/nowhere"
        outside = out.get("outside", getlink=True)
        assert isinstance(outside, h5py.ExternalLink)
        assert (outside.filename, outside.path) == ("missing-file.h5", "/x")
        assert out["data/again"] == out["data/values"]  # one object, two names
        assert out["alias"].shape == (500,)


def test_hard_link_cycle_does_not_recurse(tmp_path):
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_group("a/b")
        f["a/b/up"] = f["a"]
    with open_copy(tmp_path / "c.h5") as out:
        assert out["a/b/up"] == out["a"]


def test_external_and_virtual_datasets_are_copied_without_touching_their_files(tmp_path, monkeypatch):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.arange(1000, dtype="f8").tobytes())
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(1000.0)
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f.create_dataset("ext", shape=(1000,), dtype="f8", external=[("raw.bin", 0, 8000)], fillvalue=3)
        layout = h5py.VirtualLayout(shape=(1000,), dtype="f8")
        layout[:] = h5py.VirtualSource("other.h5", "x", shape=(1000,))
        f.create_virtual_dataset("vds", layout, fillvalue=-1)

    def files():
        return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in tmp_path.glob("*.*")}

    before = files()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with open_copy(tmp_path / "v.h5") as out:
        assert out["ext"].external == [("raw.bin", 0, 8000)]
        assert out["vds"].is_virtual
    assert list(work.iterdir()) == []
    assert files() == before


# --- reproducibility, no files written ---------------------------------------------------

_CHILD = """
import sys
from campaignvcs.extract import hdf5
sys.stdout.buffer.write(hdf5.metadata_copy(sys.argv[1]))
# the copy goes through HDF5's C functions: h5py and numpy (~80 ms to import) stay out
assert "h5py" not in sys.modules and "numpy" not in sys.modules, sorted(sys.modules)
"""


def test_same_file_gives_same_bytes_in_two_processes_without_importing_h5py(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:  # groups track times by default
        make_sample_groups(f)
    project = Path(hdf5.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-c", _CHILD, str(tmp_path / "r.h5")]
    first = subprocess.run(command, capture_output=True, env=env)
    time.sleep(1.1)  # HDF5 times have one-second resolution
    second = subprocess.run(command, capture_output=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout and first.stdout == second.stdout
    assert hdf5.metadata_copy(str(tmp_path / "r.h5")) == first.stdout


_THREADS_CHILD = """
import sys
from concurrent.futures import ThreadPoolExecutor
from campaignvcs.extract import hdf5
with ThreadPoolExecutor(4) as pool:
    copies = list(pool.map(hdf5.metadata_copy, [sys.argv[1]] * 16))
assert "h5py" not in sys.modules
sys.stdout.write(str(len(set(copies))))
"""


def test_copies_made_in_threads_without_h5py_are_serialised(tmp_path):
    # HDF5 is not thread-safe: without h5py's lock to share, the extractor has its own
    make_sample(tmp_path / "s.h5")
    project = Path(hdf5.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _THREADS_CHILD, str(tmp_path / "s.h5")], capture_output=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"1"


def make_sample_groups(f) -> None:
    f.attrs["a"] = 1
    for i in range(3):
        g = f.create_group(f"g{i}")
        g.attrs["i"] = i
        g.create_dataset("small", data=np.arange(5), track_times=True)
        g.create_dataset("big", data=np.arange(1000), chunks=(100,), compression="gzip", track_times=True)
    f["t"] = np.dtype("i2")


def test_nothing_is_written_to_disk(tmp_path, monkeypatch):
    make_sample(tmp_path / "s.h5")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("TMPDIR", str(scratch))
    hdf5.extract(str(tmp_path / "s.h5"))
    assert list(scratch.iterdir()) == []


# --- extract() ---------------------------------------------------------------------------


def test_extract_describes_the_file_by_its_copy(tmp_path):
    make_sample(tmp_path / "s.h5")
    path = str(tmp_path / "s.h5")
    st = os.stat(path)
    got = hdf5.extract(path)
    assert got.kind == "HDF5" and got.modtime == st.st_mtime_ns
    (replica,) = got.replicas
    assert (replica.size, replica.mtime, replica.role) == (st.st_size, st.st_mtime_ns, "main")
    (payload,) = replica.payloads
    copy = zlib.decompress(payload.data)
    assert copy == hdf5.metadata_copy(path)
    assert replica.checksum == payload.checksum == hashlib.sha1(copy).hexdigest()
    assert (payload.name, payload.compression, payload.lenorig, payload.modtime) == (
        "s.h5",
        1,
        len(copy),
        st.st_mtime_ns,
    )
    assert len(copy) < st.st_size


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="cannot read"):
        hdf5.extract(str(tmp_path / "gone.h5"))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_unreadable_file_is_one_line_error_naming_it(tmp_path, damage):
    make_sample(tmp_path / "s.h5")
    whole = (tmp_path / "s.h5").read_bytes()
    bad = tmp_path / "bad.h5"
    garbage = random.Random(damage).randbytes(2000)
    bad.write_bytes(whole[:600] if damage == "truncated" else whole[:8] + garbage)
    with pytest.raises(UnreadableDataset) as info:
        hdf5.extract(str(bad))
    message = str(info.value)
    assert message.startswith(f"{bad}: cannot read HDF5 file")
    assert "\n" not in message
    assert info.value.__cause__ is None


def test_same_as_reference_tool_except_where_it_is_wrong(tmp_path):
    reference = require_module("hpc_campaign.hdf5_metadata", "the reference tool hpc-campaign "
                               "(pip install .[test])")
    make_sample(tmp_path / "s.h5", with_null_dataset=False)
    reference.copy_hdf5_file_without_data(str(tmp_path / "s.h5"), str(tmp_path / "ref.h5"))

    def describe(f):
        out = {}

        def visit(name, obj):
            attrs = {k: repr(v) for k, v in obj.attrs.items()}
            if isinstance(obj, h5py.Dataset):
                values = repr(obj[()]) if obj.size <= hdf5.SMALL_DATASET else None
                out[name] = (obj.shape, obj.dtype, obj.chunks, obj.compression, attrs, values)
            else:
                out[name] = attrs

        f.visititems(visit)
        return out

    with h5py.File(tmp_path / "ref.h5", "r") as ref, open_copy(tmp_path / "s.h5") as out:
        assert describe(out) == describe(ref)
        assert dict(ref.attrs) == {}  # the reference drops the root attributes


# --- dimension scales and netCDF-4 ------------------------------------------------------


def make_netcdf_like(path) -> None:
    """netCDF-4's layout made with h5py: dimension scales attached to small and large variables."""
    with h5py.File(path, "w") as f:
        time_ = f.create_dataset("time", data=np.arange(5.0))
        time_.make_scale("time")
        lon = f.create_dataset("lon", data=np.arange(300.0))  # large: recreated, not H5Ocopy'd
        lon.make_scale("lon")
        lat = f.create_dataset("lat", data=np.arange(3.0))
        lat.make_scale("lat")
        temp = f.create_dataset("group/temp", data=np.zeros((5, 3, 300), dtype="f4"))
        flag = f.create_dataset("flag", data=np.zeros((5, 3), dtype="i1"))
        for dset, scales in ((temp, (time_, lat, lon)), (flag, (time_, lat))):
            for i, scale in enumerate(scales):
                dset.dims[i].attach_scale(scale)
        temp.attrs["units"] = "K"


def test_dimension_scales_stay_attached_in_the_copy(tmp_path):
    make_netcdf_like(tmp_path / "nc.h5")
    with open_copy(tmp_path / "nc.h5") as out:
        temp, flag = out["group/temp"], out["flag"]
        assert [[s.name for s in temp.dims[i].values()] for i in range(3)] == [["/time"], ["/lat"], ["/lon"]]
        assert [[s.name for s in flag.dims[i].values()] for i in range(2)] == [["/time"], ["/lat"]]
        assert temp.dims[2].label == "" and out["lon"].is_scale
        # REFERENCE_LIST on each scale names the copied variables and their dimension index
        refs = {
            n: sorted((out[r].name, int(k)) for r, k in out[n].attrs["REFERENCE_LIST"])
            for n in ("time", "lat", "lon")
        }
        assert refs == {
            "time": [("/flag", 0), ("/group/temp", 0)],
            "lat": [("/flag", 1), ("/group/temp", 1)],
            "lon": [("/group/temp", 2)],
        }
        assert h5py.h5ds.is_attached(temp.id, out["lon"].id, 2)
        assert out["group/temp"].attrs["units"] == "K"


def test_references_on_the_root_in_arrays_and_to_wholly_copied_objects(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as f:
        g = f.create_group("g")
        d = f.create_dataset("d", data=np.arange(3))  # small: copied whole by H5Ocopy
        f.attrs["to_g"] = g.ref
        f.attrs["list"] = np.array([g.ref, d.ref], dtype=h5py.ref_dtype)
        d.attrs["self"] = d.ref
        d.attrs["region"] = d.regionref[0:2]
    with open_copy(tmp_path / "r.h5") as out:
        assert out[out.attrs["to_g"]].name == "/g"
        assert [out[r].name for r in out.attrs["list"]] == ["/g", "/d"]
        assert out[out["d"].attrs["self"]].name == "/d"
        assert not out["d"].attrs["region"]  # a region selection points into the source's data: null


def test_copy_is_still_reproducible_with_references(tmp_path):
    make_netcdf_like(tmp_path / "nc.h5")
    assert hdf5.metadata_copy(str(tmp_path / "nc.h5")) == hdf5.metadata_copy(str(tmp_path / "nc.h5"))


NETCDF_WRITE = """
import sys
import numpy as np
import netCDF4
with netCDF4.Dataset(sys.argv[1], "w") as ds:
    ds.createDimension("time", None)
    ds.createDimension("lat", 4)
    ds.createDimension("lon", 200)
    ds.createVariable("time", "f8", ("time",))[0:3] = [0.0, 1.0, 2.0]
    ds.createVariable("lat", "f4", ("lat",))[:] = np.arange(4)
    ds.createVariable("lon", "f4", ("lon",))[:] = np.arange(200)
    temp = ds.createVariable("temp", "f4", ("time", "lat", "lon"))
    temp.units = "K"
    temp[0:3] = np.ones((3, 4, 200))
    ds.createVariable("flag", "i1", ("time", "lat"))[0:3] = np.ones((3, 4))
"""

NETCDF_READ = """
import json, sys
import netCDF4
with netCDF4.Dataset(sys.argv[1]) as ds:
    print(json.dumps({"variables": {k: [list(v.dimensions), list(v.shape)] for k, v in ds.variables.items()},
                      "dimensions": {k: len(d) for k, d in ds.dimensions.items()},
                      "units": ds["temp"].units}))
"""


@requires(importlib.util.find_spec("netCDF4") is not None, "netCDF4 (pip install .[test])")
def test_real_netcdf4_file_reads_back_with_its_dimensions(tmp_path):
    """netCDF4 (with its own HDF5 library, so in child processes) reads the copy like the original."""
    source, copy = tmp_path / "real.nc", tmp_path / "copy.nc"
    subprocess.run([sys.executable, "-c", NETCDF_WRITE, str(source)], check=True)
    copy.write_bytes(hdf5.metadata_copy(str(source)))

    def read(path):
        done = subprocess.run([sys.executable, "-c", NETCDF_READ, str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-500:]
        return json.loads(done.stdout)

    original, copied = read(source), read(copy)
    assert copied == original
    assert copied["variables"]["temp"] == [["time", "lat", "lon"], [3, 4, 200]]
