"""What an HDF5 file holds, read with h5py from its metadata-only copy (in memory).

The copy (:mod:`campaignvcs.extract.hdf5`) keeps every group, dataset, type, creation
property and attribute, without the bulk data, so h5py reports the same tree, dtypes,
shapes, chunks, filters and attribute values as for the original file.
"""

from __future__ import annotations

import io
from typing import Any

from campaignvcs.inspect.bp import Attribute, Variable


class HDF5Error(Exception):
    """A metadata copy h5py cannot read; the message says why (one line)."""


def jsonable(value: Any) -> Any:
    """An attribute value as JSON: numbers, strings (bytes decoded), lists; references as their text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def _dtype(dtype: Any) -> str:
    """numpy's name of an HDF5 type; ``string`` for h5py's variable-length strings (numpy's ``object``)."""
    import h5py

    if dtype.kind == "O" and h5py.check_string_dtype(dtype) is not None:
        return "string"
    return str(dtype)


def _attributes(obj: Any) -> list[dict[str, Any]]:
    out = []
    for name in sorted(obj.attrs):
        try:
            value = jsonable(obj.attrs[name])
        except (OSError, TypeError, ValueError) as exc:
            value = f"<unreadable: {exc}>"
        out.append({"name": name, "dtype": _dtype(obj.attrs.get_id(name).dtype), "value": value})
    return out


def _dataset(ds: Any) -> dict[str, Any]:
    filters = ds.id.get_create_plist()
    compression = ds.compression
    return {
        "name": ds.name.rsplit("/", 1)[-1],
        "path": ds.name,
        "dtype": _dtype(ds.dtype),
        "shape": None if ds.shape is None else list(ds.shape),
        "maxshape": None if ds.maxshape is None else list(ds.maxshape),
        "chunks": None if ds.chunks is None else list(ds.chunks),
        "compression": compression,
        "compression_opts": jsonable(ds.compression_opts),
        "filters": filters.get_nfilters(),
        "attributes": _attributes(ds),
    }


def _group(group: Any, h5py: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"name": group.name.rsplit("/", 1)[-1] or "/", "path": group.name,
                            "attributes": _attributes(group), "groups": [], "datasets": [], "links": []}
    for name in sorted(group):
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink):
            node["links"].append({"name": name, "target": link.path})
            continue
        if isinstance(link, h5py.ExternalLink):
            node["links"].append({"name": name, "target": f"{link.filename}:{link.path}"})
            continue
        obj = group.get(name)
        if isinstance(obj, h5py.Group):
            node["groups"].append(_group(obj, h5py))
        elif isinstance(obj, h5py.Dataset):
            node["datasets"].append(_dataset(obj))
    return node


def describe(data: bytes) -> tuple[dict[str, Any], list[Variable], list[Attribute]]:
    """(the group tree, every dataset as a variable, every attribute) of the HDF5 file ``data``.

    Variables are named by their full path (``/fields/T``); attributes by the path of
    their object and their name (``/fields/T/units``; the root group's ``/title``).
    """
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            tree = _group(f, h5py)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise HDF5Error(f"h5py cannot read the metadata copy ({' '.join(str(exc).split()) or type(exc).__name__})"
                        ) from None
    variables: list[Variable] = []
    attributes: list[Attribute] = []

    def walk(node: dict[str, Any]) -> None:
        base = "" if node["path"] == "/" else node["path"]
        attributes.extend(Attribute(f"{base}/{a['name']}", a["dtype"], a["value"]) for a in node["attributes"])
        for ds in node["datasets"]:
            variables.append(Variable(ds["path"], ds["dtype"], ds["shape"], 1, None, None, False))
            attributes.extend(Attribute(f"{ds['path']}/{a['name']}", a["dtype"], a["value"]) for a in ds["attributes"])
        for sub in node["groups"]:
            walk(sub)

    walk(tree)
    variables.sort(key=lambda v: v.name)
    attributes.sort(key=lambda a: a.name)
    return tree, variables, attributes
