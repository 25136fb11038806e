"""Damaged BP5/BP4 datasets: what ADIOS2 does with them (in a child process) and what camp does.

Datasets are written by the real adios2, then damaged on purpose (truncated, bytes flipped,
8-byte blocks zeroed). ADIOS2 opens each damaged copy in a child process, reading every
attribute and every written block of every variable at every step; a segfault kills the
child, not pytest. Every damage that makes ADIOS2 fail, crash or hang must be refused by
``camp add`` with one line naming the dataset and the damaged file, exit 1, nothing staged;
``camp verify`` reports the same damage of a recorded dataset. Undamaged datasets of many
shapes are accepted.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time

import make_data
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaignvcs.errors import UnreadableDataset
from campaignvcs.extract import bp5

PROBE = r"""
import os, select, sys, time
import adios2

def read(path):
    ad = adios2.Adios()
    io = ad.declare_io("r")
    io.set_parameter("OpenTimeoutSecs", "0")
    with adios2.FileReader(io, path) as f:
        for name in f.available_attributes():
            f.read_attribute(name)
        for name, info in f.available_variables().items():
            steps = int(info["AvailableStepsCount"])
            for step, blocks in enumerate(f.all_blocks_info(name)[:steps]):
                for b in blocks:
                    if b["IsValue"] == "True" or not info.get("Shape"):
                        f.read(name, block_id=int(b["BlockID"]), step_selection=[step, 1])
                    else:
                        start = [int(x) for x in b["Start"].split(",")]
                        count = [int(x) for x in b["Count"].split(",")]
                        f.read(name, start, count, step_selection=[step, 1])

timeout = float(sys.argv[1])
for line in sys.stdin:
    path = line.strip()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # adios2 is imported once; each dataset is read in a fork that may crash
        os.close(r)
        try:
            read(path)
            msg = "ok"
        except Exception as exc:
            msg = "error " + str(exc).replace("\n", " ")[-200:]
        os.write(w, msg.encode() + b"\n")
        os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], timeout)
    got = os.read(r, 4096).decode(errors="replace").strip() if ready else ""
    if not ready:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(r)
    if not ready:
        got = "hang"
    elif not got:
        got = f"crash (exit {-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)})"
    print(got, flush=True)
"""


def adios2_outcomes(paths: list[str], item_timeout: float = 1.0) -> dict[str, str]:
    """path -> 'ok', 'error ...', 'crash (exit N)' (the reader died) or 'hang' (killed after item_timeout).

    One child imports adios2 once and reads each path in a fork of itself, so a segfault
    or a hang (ADIOS2 spins for seconds on an md.0 shorter than md.idx says) costs one
    fork, not a new interpreter.
    """
    child = subprocess.run([sys.executable, "-c", PROBE, str(item_timeout)], input="".join(p + "\n" for p in paths),
                           capture_output=True, text=True, errors="replace", timeout=60 + item_timeout * len(paths))
    lines = child.stdout.splitlines()
    assert child.returncode == 0 and len(lines) == len(paths), child.stderr[-2000:]
    return dict(zip(paths, lines, strict=True))


def damage(src: str, dst: str, name: str, how: str, offset: int, arg: int = 0) -> str:
    """A copy of dataset ``src`` at ``dst`` with file ``name`` truncated / flipped / zeroed."""
    shutil.copytree(src, dst)
    path = os.path.join(dst, name)
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if how == "truncate":
        data = data[:offset]
    elif how == "flip":
        data[offset] ^= arg
    else:
        data[offset : offset + arg] = bytes(len(data[offset : offset + arg]))
    with open(path, "wb") as f:
        f.write(data)
    return dst


def make_rich_bp5(path: str, steps: int = 3, engine: str = "BP5") -> str:
    """Global and local arrays, 2-D, scalars of several types, a string, attributes of all kinds."""
    import adios2
    import numpy as np

    ad = adios2.Adios()
    io = ad.declare_io("rich")
    io.set_engine(engine)
    with adios2.Stream(io, path, "w") as s:
        for i, _ in enumerate(s.steps(steps)):
            s.write("T", np.arange(12, dtype=np.float64) * (i + 1), [12], [0], [12])
            s.write("grid", np.arange(6, dtype=np.int32).reshape(2, 3) + i, [2, 3], [0, 0], [2, 3])
            s.write("local", np.arange(4, dtype=np.float32) + i, [], [], [4])
            s.write("step", i)
            s.write("dt", 0.5 * i)
            s.write("label", f"step-{i}")
            if i == 0:
                s.write_attribute("unit", "K")
                s.write_attribute("seed", 7)
                s.write_attribute("weights", np.array([1.0, 2.0, 3.0]))
                s.write_attribute("names", ["a", "bb", "ccc"])
    return path


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("originals")
    return {
        "bp5": make_rich_bp5(str(root / "rich.bp")),
        "simple": make_data.make_bp5(str(root / "simple.bp"), steps=3),
        "bp4": make_rich_bp5(str(root / "rich4.bp"), engine="BP4"),
    }


def damages(originals: dict[str, str], out: str) -> list[tuple[str, str]]:
    """(damaged copy, file damaged): header bytes, sampled bytes of each file, truncations, zeroed blocks."""
    rnd = random.Random(13)
    made = []

    def add(key, name, how, offset, arg=0):
        dst = os.path.join(out, f"{key}-{name}-{how}-{offset}-{arg}.bp")
        if not os.path.exists(dst):
            made.append((damage(originals[key], dst, name, how, offset, arg), name))

    for key in ("bp5", "bp4"):
        # BP4's md.0 entries hold their dimensions and offsets as typed "characteristics",
        # which the check does not read: only its md.idx and md.0's framing are damaged here
        files = ("md.idx", "md.0", "mmd.0") if key == "bp5" else ("md.idx",)
        if key == "bp4":
            size = os.path.getsize(os.path.join(originals[key], "md.0"))
            for offset in (size // 2, size - 1, 70):
                add(key, "md.0", "truncate", offset)
            add(key, "md.0", "flip", 0x48, 0xFF)  # first step's process-group index length
        for name in files:
            size = os.path.getsize(os.path.join(originals[key], name))
            header = range(36, 42) if name == "md.idx" else range(0)
            for offset in list(header) + rnd.sample(range(size), min(size, 24)):
                add(key, name, "flip", offset, 0xFF)
            for offset in rnd.sample(range(size), 4):
                add(key, name, "flip", offset, 1 << rnd.randrange(8))
            for offset in rnd.sample(range(0, size, 8), min(size // 8, 6)):
                add(key, name, "zero", offset, 8)
            # ADIOS2 spins ~10 s on an md.0 shorter than md.idx says: two truncations of it only
            cuts = [size // 2, size - 1] if name == "md.0" else rnd.sample(range(size), 3) + [0, size - 1]
            for offset in cuts:
                add(key, name, "truncate", offset)
    return made


def test_every_damage_adios2_cannot_read_is_refused(originals, tmp_path, campaign, camp):
    made = damages(originals, str(tmp_path / "damaged"))
    # A hang spins a CPU until it is killed: told after a short look, and looked at again,
    # for as long as it takes, only if camp accepts that dataset (a slow machine may read it).
    outcomes = adios2_outcomes([p for p, _ in made], item_timeout=0.25)
    # the originals themselves read fine
    assert set(adios2_outcomes(list(originals.values())).values()) == {"ok"}
    staging = campaign / ".git" / "camp" / "index.json"
    failed = refused = 0
    for path, _name in made:
        rel = os.path.relpath(path, tmp_path)
        before = staging.read_bytes()
        result = camp("--repo", campaign, "add", rel, cwd=tmp_path, ok=None)
        if result.exit_code == 0 and outcomes[path] == "hang":
            outcomes.update(adios2_outcomes([path], item_timeout=30.0))
        adios_ok = outcomes[path] == "ok"
        failed += not adios_ok
        if result.exit_code == 0:
            assert adios_ok, f"camp accepted {rel}, which ADIOS2 cannot read: {outcomes[path]}"
            continue
        refused += 1
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("camp: error: "), result.stderr
        assert f"{os.path.basename(rel)}: " in lines[0], lines[0]
        assert " is damaged (" in lines[0] or "no BP index header" in lines[0], lines[0]
        assert any(f in lines[0] for f in ("md.idx", "md.0", "mmd.0", "data.")), lines[0]
        assert staging.read_bytes() == before  # nothing staged
    assert failed > 60 and refused >= failed  # the sample does hit ADIOS2 hard
    status = json.dumps(json.loads(camp("--repo", campaign, "status", "--json").output))
    assert all(os.path.basename(p) not in status for p, _ in made if outcomes[p] != "ok")


def test_truncated_and_zeroed_files_are_named(originals, tmp_path):
    src = originals["simple"]
    cases = {
        ("md.0", "truncate", 500, 0): "md.0",
        ("mmd.0", "truncate", 1000, 0): "mmd.0",
        ("md.idx", "truncate", 100, 0): "md.idx",
        ("mmd.0", "zero", 16, 8): "mmd.0",
    }
    for (name, how, offset, arg), shown in cases.items():
        path = damage(src, str(tmp_path / f"{name}-{how}.bp"), name, how, offset, arg)
        with pytest.raises(UnreadableDataset) as info:
            bp5.extract(path)
        assert str(info.value).startswith(f"{path}: {shown} is damaged ("), str(info.value)
    assert "step 1's metadata ends at byte 624 of 500" in str(
        pytest.raises(UnreadableDataset, bp5.extract, str(tmp_path / "md.0-truncate.bp")).value
    )


def test_verify_reports_damage_of_a_recorded_dataset(originals, tmp_path, campaign, camp):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(originals["simple"], data / "x.bp")
    camp("--repo", campaign, "add", "x.bp", cwd=data)
    camp("--repo", campaign, "commit", "-m", "x")
    assert camp("--repo", campaign, "verify").exit_code == 0
    md0 = data / "x.bp" / "md.0"
    raw = bytearray(md0.read_bytes())
    raw[0x20] ^= 0xFF  # inside the first step's variable block: BitField's offset
    md0.write_bytes(bytes(raw))
    r = camp("--repo", campaign, "verify", ok=False)
    assert r.exit_code == 1
    line = next(x for x in r.output.splitlines() if x.startswith("unreadable: x.bp"))
    assert "x.bp: md.0 is damaged (step 0, writer 0: the variable block at byte 24" in line
    report = json.loads(camp("--repo", campaign, "verify", "--json", ok=False).output)
    (check,) = report["replicas"]
    assert check["state"] == "unreadable" and "md.0 is damaged" in check["problems"][0]
    # and camp add of the same folder says the same
    r = camp("--repo", campaign, "add", "x.bp", cwd=data, ok=False)
    assert r.exit_code == 1 and "md.0 is damaged (step 0, writer 0" in r.stderr


# -- undamaged datasets of many shapes are accepted ----------------------------------------------


def write_dataset(path, engine, steps, variables, dims, attributes, strings):
    import adios2
    import numpy as np

    ad = adios2.Adios()
    io = ad.declare_io("shape")
    io.set_engine(engine)
    with adios2.Stream(io, path, "w") as s:
        for i, _ in enumerate(s.steps(steps)):
            for v in range(variables):
                shape = [3 + v] * dims
                data = np.full(shape or [1], v + i, dtype=[np.float64, np.int32, np.uint8, np.float32][v % 4])
                if dims:
                    s.write(f"v{v}", data, shape, [0] * dims, shape)
                else:
                    s.write(f"v{v}", data[0].item())
            if strings:
                s.write("text", "é-" * i)
            if i == 0:
                for a in range(attributes):
                    s.write_attribute(f"a{a}", [a, a + 1] if a % 2 else f"value {a}")
    return path


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    engine=st.sampled_from(["BP5", "BP4"]),
    steps=st.integers(1, 12),
    variables=st.integers(0, 6),
    dims=st.integers(0, 3),
    attributes=st.integers(0, 4),
    strings=st.booleans(),
)
def test_undamaged_datasets_of_any_shape_are_accepted(
    tmp_path_factory, engine, steps, variables, dims, attributes, strings
):
    path = str(tmp_path_factory.mktemp("shape") / "x.bp")
    write_dataset(path, engine, steps, variables, dims, attributes, strings)
    extracted = bp5.extract(path)
    assert extracted.replicas[0].payloads[0].name == "metadata"


def test_many_steps_many_variables_attributes_only_and_appends_are_accepted(tmp_path):
    import adios2
    import numpy as np

    big = write_dataset(str(tmp_path / "big.bp"), "BP5", 200, 40, 1, 10, True)
    attrs = write_dataset(str(tmp_path / "attrs.bp"), "BP5", 1, 0, 0, 6, False)
    for path in (big, attrs):
        bp5.extract(path)
    appended = make_data.make_bp5(str(tmp_path / "grow.bp"), steps=2)
    before = bp5.extract(appended).replicas[0].checksum
    with adios2.Stream(appended, "a") as s:  # closed after the appended steps
        for i, _ in enumerate(s.steps(3)):
            s.write("T", np.arange(10, dtype=np.float64) * (10 + i), [10], [0], [10])
            s.write("step", 10 + i)
    assert bp5.extract(appended).replicas[0].checksum != before
    # while a writer still appends (its md.idx says "active"), each finished step is readable
    ad = adios2.Adios()
    io = ad.declare_io("open")
    with adios2.Stream(io, appended, "a") as s:
        for i in range(3):
            s.begin_step()
            s.write("T", np.arange(10, dtype=np.float64) * (20 + i), [10], [0], [10])
            s.write("step", 20 + i)
            s.end_step()
            assert bp5.extract(appended).replicas[0].payloads[0].lenorig > 0
    # datasets ADIOS2 reads: a generous per-item bound (a loaded machine is slow, not a hang)
    assert set(adios2_outcomes([appended, big, attrs], item_timeout=30.0).values()) == {"ok"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_check_never_fails_with_an_internal_error(originals, tmp_path_factory, data):
    """Whatever bytes the metadata files hold, the check ends in accept or UnreadableDataset."""
    key = data.draw(st.sampled_from(["bp5", "bp4"]))
    name = data.draw(st.sampled_from(["md.idx", "md.0", "mmd.0"] if key == "bp5" else ["md.idx", "md.0"]))
    size = os.path.getsize(os.path.join(originals[key], name))
    how = data.draw(st.sampled_from(["flip", "zero", "truncate"]))
    offset = data.draw(st.integers(0, size - 1))
    arg = data.draw(st.integers(1, 255)) if how == "flip" else data.draw(st.sampled_from([1, 8, 64, 4096]))
    path = damage(originals[key], str(tmp_path_factory.mktemp("fuzz") / "x.bp"), name, how, offset, arg)
    try:
        extracted = bp5.extract(path)
    except UnreadableDataset as exc:
        assert str(exc).startswith(path + ": ") and "\n" not in str(exc)
    else:  # accepted: recorded like any dataset, its metadata whole
        (replica,) = extracted.replicas
        metadata = replica.payloads[0]
        assert extracted.kind == "ADIOS" and metadata.name == "metadata" and metadata.lenorig > 0
        assert replica.size > 0 and replica.checksum


def test_the_check_is_cheap(originals):
    """The structural check is a small part of extracting a dataset (the 15 % budget is measured
    on the benchmark; this guards against an accidental quadratic walk)."""
    path = originals["bp5"]
    bp5.extract(path)  # formats cached
    start = time.process_time()  # CPU time: the work done, whatever else the machine runs
    for _ in range(200):
        bp5.extract(path)
    per_dataset = (time.process_time() - start) / 200
    assert per_dataset < 0.005
