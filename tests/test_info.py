"""camp info: what ADIOS2 and h5py report of the original files, from the repository alone."""

from __future__ import annotations

import json
import shutil

import make_data
import numpy as np
import pytest
from helpers import assert_one_line_error, require_module

adios2 = require_module("adios2", "ADIOS2's Python API (pip install adios2)")
h5py = require_module("h5py", "h5py (pip install h5py)")

INTEGER = {"int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t", "char"}
FLOATING = {"float", "double", "long double"}


def write_bp(path, engine, steps=12):
    """Global and local arrays, several blocks per step, single values, strings, attributes (some on variables)."""
    ad = adios2.Adios()
    io = ad.declare_io(f"w-{engine}")
    io.set_engine(engine)
    w = io.open(str(path), adios2.bindings.Mode.Write)
    temp = io.define_variable("fields/T", np.zeros(4), [2, 8], [0, 0], [1, 4])
    local = io.define_variable("particles/id", np.zeros(3, dtype=np.int32), [], [], [3])
    counts = io.define_variable("counts", np.zeros(5, dtype=np.uint16), [5], [0], [5])
    single = io.define_variable("step", 0)
    dt = io.define_variable("dt", 0.5)
    label = io.define_variable("label", "x")
    io.define_attribute("units", "K", "fields/T")
    io.define_attribute("description", "temperature on the grid", "fields/T")
    io.define_attribute("title", "heat run")
    io.define_attribute("version", np.array([2, 12, 1], dtype=np.int32))
    io.define_attribute("pi", 3.14159)
    io.define_attribute("tags", ["hot", "cold"])
    for k in range(steps):
        w.begin_step()
        for row in range(2):
            for col in range(2):  # four blocks of the global array per step
                temp.set_selection([[row, col * 4], [1, 4]])
                w.put(temp, np.arange(4.0) * (row + 1) + col + k * 0.25, adios2.bindings.Mode.Sync)
        w.put(local, np.array([k, -k, 7], dtype=np.int32), adios2.bindings.Mode.Sync)
        w.put(local, np.array([100 + k, 1, 2], dtype=np.int32), adios2.bindings.Mode.Sync)
        w.put(counts, np.arange(5, dtype=np.uint16) * (k + 1), adios2.bindings.Mode.Sync)
        w.put(single, k * 10)
        w.put(dt, 0.5 / (k + 1))
        w.put(label, f"step {k}")
        w.end_step()
    w.close()
    return path


def plain(value):
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], list):
        return value[0]
    return value


def number(text, kind):
    return int(text) if kind in INTEGER else float(text) if kind in FLOATING else text


def adios2_report(path):
    """What ADIOS2 reports of the original dataset, in camp info's JSON shape."""
    variables, attributes = [], []
    with adios2.FileReader(str(path)) as f:
        found = f.available_variables()
        for name in sorted(found):
            info = found[name]
            steps = int(info["AvailableStepsCount"])
            value = None
            if info["SingleValue"] == "true":
                values = [plain(f.read(name, step_selection=[i, 1])) for i in range(steps)]
                value = values[0] if steps == 1 else values
            shape = info["Shape"].replace(" ", "")
            variables.append({
                "name": name, "type": info["Type"], "shape": [int(n) for n in shape.split(",")] if shape else None,
                "steps": steps,
                "min": number(info["Min"], info["Type"]) if "Min" in info else None,
                "max": number(info["Max"], info["Type"]) if "Max" in info else None,
                "single_value": info["SingleValue"] == "true", "value": value,
            })
        found = f.available_attributes()
        for name in sorted(found):
            attributes.append({"name": name, "type": found[name]["Type"], "value": plain(f.read_attribute(name))})
    return variables, attributes


@pytest.fixture
def recorded(camp, tmp_path):
    """A campaign holding a BP5 and a BP4 dataset, what ADIOS2 reported of them, and the data folder."""
    data = tmp_path / "data"
    data.mkdir()
    write_bp(data / "run.bp", "BP5")
    write_bp(data / "old.bp", "BP4", steps=3)
    expected = {name: adios2_report(data / name) for name in ("run.bp", "old.bp")}
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/info", "--host", "laptop")
    camp("--repo", root, "add", "-m", "runs", "run.bp", "old.bp", cwd=data)
    return root, data, expected


def info_json(camp, root, name, *extra):
    return json.loads(camp("--repo", root, "info", "--json", name, *extra, cwd=root.parent).stdout)


def test_bp5_and_bp4_equal_what_adios2_reports_field_by_field_also_after_the_data_is_gone(camp, recorded):
    root, data, expected = recorded
    before = {name: info_json(camp, root, name) for name in expected}
    shutil.rmtree(data)
    for name, (variables, attributes) in expected.items():
        got = info_json(camp, root, name)
        assert got == before[name]
        assert (got["name"], got["kind"], got["encrypted"], got["decrypted"]) == (name, "ADIOS", False, False)
        assert [v["name"] for v in got["variables"]] == [v["name"] for v in variables]
        for ours, theirs in zip(got["variables"], variables, strict=True):
            for key in ("type", "shape", "steps", "min", "max", "single_value", "value"):
                assert ours[key] == theirs[key], (name, ours["name"], key)
        assert got["attributes"] == attributes
        assert got["replicas"] == [{"host": "laptop", "path": str(data / name), "archive": None}]
        assert (got["groups"], got["image"], got["text"]) == (None, None, None)
    run = {v["name"]: v for v in before["run.bp"]["variables"]}
    # the things the data was written to exercise
    assert run["fields/T"]["shape"] == [2, 8] and run["fields/T"]["steps"] == 12
    assert run["particles/id"]["shape"] is None and run["particles/id"]["min"] == -11
    assert run["particles/id"]["max"] == 111
    assert run["step"]["single_value"] and run["step"]["value"] == [k * 10 for k in range(12)]
    assert run["label"]["type"] == "string" and run["label"]["value"][3] == "step 3"
    attrs = {a["name"]: a for a in before["run.bp"]["attributes"]}
    assert attrs["fields/T/units"]["value"] == "K" and attrs["tags"]["value"] == ["hot", "cold"]


def test_text_output_lists_variables_attributes_and_replicas(camp, recorded):
    root, data, _ = recorded
    out = camp("--repo", root, "info", "run.bp").output.splitlines()
    assert out[0] == "ADIOS run.bp"
    assert out[1] == f"  replica laptop:{data / 'run.bp'}"
    line = next(x for x in out if " fields/T " in x)
    assert line.split()[:2] == ["double", "fields/T"] and "12*{2, 8}" in line
    assert any(x.split()[:2] == ["string", "fields/T/units"] and x.endswith('attr = "K"') for x in out)


def test_hdf5_groups_dtypes_chunks_compression_and_attributes_equal_h5py(camp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    path = data / "mesh.h5"
    with h5py.File(path, "w") as f:
        f.attrs["title"] = "mesh"
        f.attrs["version"] = np.array([1, 2], dtype=np.int64)
        g = f.create_group("fields")
        g.attrs["step"] = 7
        t = g.create_dataset("T", data=np.random.default_rng(1).random((64, 32)), chunks=(16, 32),
                             compression="gzip", compression_opts=4)
        t.attrs["units"] = "K"
        f.create_dataset("fields/sub/ids", data=np.arange(300, dtype=np.int32))
        f.create_dataset("scalar", data=3.5)
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/h5", "--host", "laptop")
    camp("--repo", root, "add", "-m", "mesh", "mesh.h5", cwd=data)
    expected = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                expected["/" + name] = (str(obj.dtype), list(obj.shape), None if obj.chunks is None else
                                        list(obj.chunks), obj.compression, obj.compression_opts,
                                        {k: plain(v) for k, v in obj.attrs.items()})
        f.visititems(visit)
    path.unlink()
    got = info_json(camp, root, "mesh.h5")
    assert got["kind"] == "HDF5"
    found = {}

    def walk(node):
        for ds in node["datasets"]:
            found[ds["path"]] = (ds["dtype"], ds["shape"], ds["chunks"], ds["compression"], ds["compression_opts"],
                                 {a["name"]: a["value"] for a in ds["attributes"]})
        for sub in node["groups"]:
            walk(sub)

    walk(got["groups"])
    assert found == expected
    root_attrs = {a["name"]: a["value"] for a in got["groups"]["attributes"]}
    assert root_attrs == {"title": "mesh", "version": [1, 2]}
    assert [g["path"] for g in got["groups"]["groups"]] == ["/fields"]
    assert {v["name"]: (v["type"], v["shape"]) for v in got["variables"]} == {
        k: (v[0], v[1]) for k, v in expected.items()}
    assert {a["name"]: a["value"] for a in got["attributes"]}["/fields/T/units"] == "K"


def test_image_and_thumbnail_resolutions_and_text_head(camp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_data.make_png(str(data / "plot.png"), size=(320, 200), seed=3)
    (data / "notes.txt").write_text("first line\nsecond line é\n" + "".join(f"line {i}\n" for i in range(30)))
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/img", "--host", "laptop")
    camp("--repo", root, "add", "--thumbnail", "64", "64", "plot.png", cwd=data)
    camp("--repo", root, "add", "--store", "notes.txt", cwd=data)
    camp("--repo", root, "commit", "-m", "files")
    shutil.rmtree(data)
    image = info_json(camp, root, "plot.png")
    assert image["image"] == {"width": 320, "height": 200, "thumbnails": [{"width": 64, "height": 40}]}
    assert len(image["replicas"]) == 1 and image["variables"] == []
    text = info_json(camp, root, "notes.txt")
    assert text["text"]["encoding"] == "utf-8"
    assert text["text"]["head"][:3] == ["first line", "second line é", "line 0"] and len(text["text"]["head"]) == 10
    assert text["text"]["size"] == len(("first line\nsecond line é\n" + "".join(
        f"line {i}\n" for i in range(30))).encode())
    out = camp("--repo", root, "info", "plot.png", cwd=tmp_path).output
    assert "image 320x200" in out and "thumbnail 64x40" in out


def test_encrypted_metadata_shows_names_only_without_the_key_and_everything_with_it(camp, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_bp(data / "secret.bp", "BP5", steps=2)
    expected_vars, expected_attrs = adios2_report(data / "secret.bp")
    key = tmp_path / "run.key"
    camp("key", "generate", key)
    root = tmp_path / "campaign"
    camp("init", root, "--name", "proj/secret", "--host", "laptop")
    camp("--repo", root, "add", "-k", key, "-m", "secret", "secret.bp", cwd=data)
    sealed = info_json(camp, root, "secret.bp")
    assert (sealed["encrypted"], sealed["decrypted"], sealed["variables"], sealed["attributes"]) == (
        True, False, [], [])
    assert sealed["replicas"][0]["host"] == "laptop"
    out = camp("--repo", root, "info", "secret.bp").output
    assert "key not at hand: names only" in out
    opened = info_json(camp, root, "secret.bp", "-k", key)
    assert (opened["encrypted"], opened["decrypted"]) == (True, True)
    assert opened["variables"] == expected_vars and opened["attributes"] == expected_attrs


def test_python_api_has_the_documented_shape(recorded):
    from campaignvcs.porcelain.info import dataset_info

    root, _, _ = recorded
    info = dataset_info("run.bp", repo=str(root))
    doc = info.to_json()
    assert list(doc) == ["name", "kind", "encrypted", "decrypted", "replicas", "variables", "attributes",
                         "groups", "image", "text"]
    assert set(doc["variables"][0]) == {"name", "type", "shape", "steps", "min", "max", "single_value", "value"}
    assert json.loads(json.dumps(doc)) == doc


def test_rev_reads_an_older_commit(camp, recorded, tmp_path):
    root, data, _ = recorded
    write_bp(data / "run.bp", "BP5", steps=20)  # rewritten with more steps
    camp("--repo", root, "add", "-m", "longer", "run.bp", cwd=data)
    steps = {v["name"]: v["steps"] for v in info_json(camp, root, "run.bp")["variables"]}
    old = {v["name"]: v["steps"] for v in info_json(camp, root, "run.bp", "--rev", "HEAD~1")["variables"]}
    assert steps["fields/T"] == 20 and old["fields/T"] == 12


def test_unknown_dataset_is_a_one_line_error(camp, recorded):
    root, _, _ = recorded
    r = camp("--repo", root, "info", "nope.bp", ok=False)
    assert_one_line_error(r, "nope.bp")
    r = camp("--repo", root, "info", "run.bp", "--rev", "nosuchrev", ok=False)
    assert_one_line_error(r, "nosuchrev")
