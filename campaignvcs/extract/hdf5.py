"""HDF5 files: embed a metadata-only copy of the file.

The copy keeps the whole object tree (groups, datasets, named datatypes, attributes,
soft and external links) but none of the bulk data, so a campaign can show what a file
holds without carrying its arrays: datasets of at most :data:`SMALL_DATASET` elements
keep their values, larger ones are recreated with the same shape, type and creation
properties (chunks, filters, fill value, max shape) and no storage. Object references in
attributes point at the copied objects (netCDF-4's dimensions are such references).

The copy is built in memory (HDF5 ``core`` driver, no temporary file) and is
reproducible: the same input gives the same bytes in any process, because no object
modification time is recorded and objects are visited in a fixed order (creation order
where the source tracks it, else name order). This replaces hpc-campaign's
``hdf5_metadata.copy_hdf5_file_without_data``, which records times, drops the root
group's attributes, turns soft links into empty datasets and opens external links.

Speed: h5py's low-level calls cost a few microseconds each whatever they move, so
objects that can be copied whole (small datasets, datasets never written, named
datatypes) go through one ``H5Ocopy``, and attributes are copied through HDF5's C
functions directly (ctypes, on the library h5py loaded) when they can be found; only
groups and large datasets are rebuilt call by call.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from h5py import h5, h5a, h5d, h5f, h5g, h5l, h5o, h5p, h5t, h5z

from campaignvcs.errors import BadInput, UnreadableDataset
from campaignvcs.extract.base import Extracted, ExtractedReplica, compressed_payload, probe_of

__all__ = ["SMALL_DATASET", "extract", "metadata_copy"]

SMALL_DATASET = 128
"""Datasets with at most this many elements keep their values in the copy."""

_H5_ERRORS = (OSError, ValueError, KeyError, RuntimeError, TypeError)
_CORE_BLOCK = 64 * 1024
_names = itertools.count()


def extract(path: str) -> Extracted:
    """Describe an HDF5 file by its metadata-only copy.

    Args:
        path: An HDF5 file (``detect`` found the HDF5 signature).

    Returns:
        One main replica whose checksum is the SHA-1 of the copy, with the copy as its
        only payload, named after the file, so the campaign archive can show the file's
        structure without its data.

    Raises:
        BadInput: ``path`` cannot be stat'ed.
        UnreadableDataset: ``path`` is not a readable HDF5 file (truncated, corrupt).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    copy = metadata_copy(path)
    payload = compressed_payload(os.path.basename(path), copy, st.st_mtime_ns)
    replica = ExtractedReplica(
        size=st.st_size, mtime=st.st_mtime_ns, checksum=payload.checksum, payloads=(payload,), probe=(probe_of(st),)
    )
    return Extracted(kind="HDF5", modtime=st.st_mtime_ns, replicas=(replica,))


def metadata_copy(path: str) -> bytes:
    """The bytes of a metadata-only copy of an HDF5 file, built in memory.

    Args:
        path: The HDF5 file to copy. It is opened read-only and without file locking
            (which parallel file systems often refuse); external links are copied as
            links, never opened.

    Returns:
        A complete HDF5 file image, byte-identical for the same input.

    Raises:
        UnreadableDataset: One line starting with ``path`` when HDF5 cannot read it.
    """
    bad = f"{path}: cannot read HDF5 file (truncated or corrupt)"
    with _PHIL:
        try:
            src = h5f.open(os.fsencode(path), h5f.ACC_RDONLY, _source_fapl())
        except _H5_ERRORS:
            try:  # already open in this process with other settings: HDF5 wants the same
                src = h5f.open(os.fsencode(path), h5f.ACC_RDONLY)
            except _H5_ERRORS:
                raise UnreadableDataset(bad) from None
        try:
            return _copy_file(src)
        except _ObjectError as exc:
            raise UnreadableDataset(f"{bad} at {exc.where}") from None
        except _H5_ERRORS:
            raise UnreadableDataset(bad) from None
        finally:
            src.close()


def _copy_file(src: h5f.FileID) -> bytes:
    src_root = h5g.open(src, b"/")
    gcpl = src_root.get_create_plist()
    # the root group is made from the fcpl, which does not report its orders itself
    fcpl = src.get_create_plist()
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(gcpl.get_link_creation_order())
    fcpl.set_attr_creation_order(gcpl.get_attr_creation_order())
    # the name only tells in-memory files apart: nothing is opened or written on disk
    name = f"campaignvcs-hdf5-{os.getpid()}-{next(_names)}".encode()
    dst = h5f.create(name, h5f.ACC_TRUNC, fcpl, _memory_fapl())
    try:
        dst_root = h5g.open(dst, b"/")
        copier = _Copier(dst)
        copier.seen[h5o.get_info(src_root).addr] = b"/"
        copier.attributes(src_root, dst_root, gcpl, b"/")
        copier.members(src_root, dst_root, gcpl, b"/")
        copier.references(src_root, dst_root)
        h5f.flush(dst)
        return dst.get_file_image()
    finally:
        dst.close()


class _ObjectError(Exception):
    """HDF5 failed on one object; ``where`` is its path in the source file."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def _source_fapl() -> h5p.PropFAID:
    # default close degree: HDF5 refuses a second open of a file with a different one
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_file_locking(False, True)
    return fapl


def _memory_fapl() -> h5p.PropFAID:
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_fapl_core(_CORE_BLOCK, False)
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    return fapl


def _lcpl(cset: int) -> h5p.PropLCID:
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_char_encoding(cset)
    return lcpl


def _index(tracked: int) -> int:
    return h5.INDEX_CRT_ORDER if tracked & h5p.CRT_ORDER_TRACKED else h5.INDEX_NAME


def _text(path: bytes) -> str:
    return path.decode("utf-8", "replace").replace("\n", "\\n")


def _join(where: bytes, name: bytes) -> bytes:
    return where + name if where.endswith(b"/") else where + b"/" + name


class _Copier:
    """Walks the source tree once, writing its metadata into the in-memory file."""

    def __init__(self, dst: h5f.FileID) -> None:
        self.dst = dst
        self.seen: dict[int, bytes] = {}  # object address in the source -> path in the copy
        # objects whose attributes hold object references: (path, attribute names or None: look)
        self.referring: list[tuple[bytes, tuple[bytes, ...] | None]] = []
        self.lcpls = {h5t.CSET_ASCII: _lcpl(h5t.CSET_ASCII), h5t.CSET_UTF8: _lcpl(h5t.CSET_UTF8)}

    def members(self, src: h5g.GroupID, dst: h5g.GroupID, gcpl: h5p.PropGCID, where: bytes) -> None:
        """Copy every link of group ``src`` into ``dst``, in creation or name order."""
        links: list[tuple[bytes, int, int, int]] = []

        def visit(name: bytes, info: h5l.LinkInfo) -> None:
            links.append((name, info.type, info.cset, info.u))

        index = _index(gcpl.get_link_creation_order())
        try:
            src.links.iterate(visit, idx_type=index, order=h5.ITER_INC, info=True)
        except _H5_ERRORS:
            if index == h5.INDEX_NAME:
                raise _ObjectError(_text(where)) from None
            links.clear()  # creation order tracked but not indexed
            try:
                src.links.iterate(visit, idx_type=h5.INDEX_NAME, order=h5.ITER_INC, info=True)
            except _H5_ERRORS:
                raise _ObjectError(_text(where)) from None
        for name, kind, cset, address in links:
            path = _join(where, name)
            lcpl = self.lcpls.get(cset, self.lcpls[h5t.CSET_ASCII])
            try:
                if kind == h5l.TYPE_HARD:
                    if address in self.seen:  # another name for an object already copied
                        dst.links.create_hard(name, self.dst, self.seen[address], lcpl)
                    else:
                        self.seen[address] = path
                        self.member(src, dst, name, path, lcpl)
                elif kind == h5l.TYPE_SOFT:
                    dst.links.create_soft(name, src.links.get_val(name), lcpl)
                elif kind == h5l.TYPE_EXTERNAL:
                    filename, target = src.links.get_val(name)
                    dst.links.create_external(name, filename, target, lcpl)
                # user-defined link types mean nothing without their handler: left out
            except _ObjectError:
                raise
            except _H5_ERRORS:
                raise _ObjectError(_text(path)) from None

    def member(
        self, src: h5g.GroupID, dst: h5g.GroupID, name: bytes, path: bytes, lcpl: h5p.PropLCID
    ) -> None:
        """Copy the object behind hard link ``name`` of ``src``."""
        obj = h5o.open(src, name)
        if isinstance(obj, h5g.GroupID):
            gcpl = obj.get_create_plist()
            gcpl.set_obj_track_times(False)
            group = h5g.create(dst, name, lcpl, gcpl)
            self.attributes(obj, group, gcpl, path)
            self.members(obj, group, gcpl, path)
        elif isinstance(obj, h5d.DatasetID):
            self.dataset(obj, src, dst, name, path, lcpl)
        else:  # a named datatype: nothing but metadata
            h5o.copy(src, name, dst, name, None, lcpl)
            self.copied_whole(obj, path)

    def dataset(
        self,
        obj: h5d.DatasetID,
        src: h5g.GroupID,
        dst: h5g.GroupID,
        name: bytes,
        path: bytes,
        lcpl: h5p.PropLCID,
    ) -> None:
        """Copy a dataset whole when that copies little; else recreate it without data.

        ``H5Ocopy`` takes the values of small datasets along, costs nothing more for
        datasets never written, and copies external-file and virtual datasets as their
        mappings only (it neither reads nor writes the files they point to).
        """
        if obj.get_space().get_simple_extent_npoints() <= SMALL_DATASET or obj.get_storage_size() == 0:
            try:
                h5o.copy(src, name, dst, name, None, lcpl)
                self.copied_whole(obj, path)
                return
            except _H5_ERRORS:
                pass  # e.g. a filter plugin missing here: recreate it without values
        dcpl = obj.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5d.VIRTUAL or (layout == h5d.CONTIGUOUS and dcpl.get_external_count() > 0):
            h5o.copy(src, name, dst, name, None, lcpl)
            self.copied_whole(obj, path)
            return
        tid = obj.get_type()
        if tid.committed():
            tid = tid.copy()  # a named datatype of the source cannot be used in the copy
        dcpl.set_obj_track_times(False)
        if dcpl.get_alloc_time() == h5d.ALLOC_TIME_EARLY and layout != h5d.COMPACT:
            # storage for data left out would be bytes in the copy: allocate on write
            dcpl.set_alloc_time(h5d.ALLOC_TIME_LATE if layout == h5d.CONTIGUOUS else h5d.ALLOC_TIME_INCR)
        space = obj.get_space()
        try:
            out = h5d.create(dst, name, tid, space, dcpl=dcpl, lcpl=lcpl)
        except _H5_ERRORS:
            if dcpl.all_filters_avail():
                raise
            # a filter plugin missing here: keep the dataset, without that filter
            for i in reversed(range(dcpl.get_nfilters())):
                code = dcpl.get_filter(i)[0]
                if not h5z.filter_avail(code):
                    dcpl.remove_filter(code)
            out = h5d.create(dst, name, tid, space, dcpl=dcpl, lcpl=lcpl)
        self.attributes(obj, out, dcpl, path)

    def attributes(self, src: h5o.ObjectID, dst: h5o.ObjectID, ocpl: h5p.PropOCID, where: bytes) -> None:
        """Copy every attribute of ``src`` to ``dst``, in creation or name order."""
        count = h5a.get_num_attrs(src)
        if not count:
            return
        index = _index(ocpl.get_attr_creation_order())
        copy = _copy_attributes_c if _CAPI is not None else _copy_attributes_h5py
        try:
            referring = copy(src, dst, count, index)
        except _H5_ERRORS:
            if index == h5.INDEX_NAME or h5a.get_num_attrs(dst):
                raise _ObjectError(_text(where)) from None
            try:  # creation order tracked but not indexed
                referring = copy(src, dst, count, h5.INDEX_NAME)
            except _H5_ERRORS:
                raise _ObjectError(_text(where)) from None
        if referring:
            self.referring.append((where, tuple(referring)))

    def copied_whole(self, obj: h5o.ObjectID, path: bytes) -> None:
        """``H5Ocopy`` nulls the object references in attributes: look at them afterwards."""
        if h5a.get_num_attrs(obj):
            self.referring.append((path, None))

    def references(self, src_root: h5g.GroupID, dst_root: h5g.GroupID) -> None:
        """Point the object references in attributes at the copies of their targets.

        netCDF-4 ties each variable to its dimensions this way (``DIMENSION_LIST`` on the
        variable, ``REFERENCE_LIST`` on the dimension scale): a copy with null references
        has lost its dimensions. A reference to an object that was not copied stays null;
        region references are left null (their selections point into the source's data), and
        so are all of an attribute's references when HDF5 fails to rewrite them (the copy is
        still made: as before this pass existed).
        """
        if not self.referring or _CAPI is None:
            return
        targets: dict[int, int] = {0: 0}

        def target(address: int) -> int:
            if address not in targets:
                path = self.seen.get(address)
                targets[address] = h5o.get_info(h5o.open(dst_root, path)).addr if path is not None else 0
            return targets[address]

        for where, names in self.referring:
            with contextlib.suppress(*_H5_ERRORS):
                src = h5o.open(src_root, where)
                dst = h5o.open(dst_root, where)
                for name in names if names is not None else _referring_attributes(src):
                    with contextlib.suppress(*_H5_ERRORS):
                        _rewrite_references(src, dst, name, target)


# --- attributes through h5py -----------------------------------------------------------


def _copy_attributes_h5py(src: h5o.ObjectID, dst: h5o.ObjectID, count: int, index: int) -> list[bytes]:
    """Attributes copied with h5py's low-level API (when the C functions are not found).

    Fixed-size values are copied as raw bytes in their own type; variable-length ones
    go through numpy (and are left empty when numpy cannot hold them); references and
    empty attributes are not written (the copy holds zeros: null references, until
    :meth:`_Copier.references` points them at the copied objects); returns the names of
    attributes that hold references.
    """
    read = [h5a.open(src, index=i, index_type=index, order=h5.ITER_INC) for i in range(count)]
    referring = []
    for aid in read:
        tid = aid.get_type()
        if tid.committed():
            tid = tid.copy()
        space = aid.get_space()
        npoints = space.get_simple_extent_npoints()
        data = raw = None
        if npoints and not tid.detect_class(h5t.REFERENCE):
            if not (tid.detect_class(h5t.VLEN) or (tid.get_class() == h5t.STRING and tid.is_variable_str())):
                data, raw = np.empty(npoints * tid.get_size(), dtype=np.uint8), tid
                aid.read(data, tid)
            else:
                with contextlib.suppress(TypeError, ValueError):
                    data = np.empty(space.shape, dtype=tid.dtype)
                if data is not None:
                    aid.read(data)
        out = h5a.create(dst, aid.name, tid, space)
        if data is not None:
            out.write(data, raw)
        elif npoints and tid.detect_class(h5t.REFERENCE):
            referring.append(aid.name)
    return referring


# --- attributes through HDF5's C functions ----------------------------------------------


class _CFunctions:
    """HDF5's attribute functions, from the library h5py itself loaded.

    ``dlopen`` of one of h5py's extension modules gives a handle whose symbol lookup
    covers the libhdf5 it links, so this is the very library (and state) h5py uses.
    """

    def __init__(self) -> None:
        lib = ctypes.CDLL(h5a.__file__)
        hid, herr, size, ssize = ctypes.c_int64, ctypes.c_int, ctypes.c_size_t, ctypes.c_ssize_t
        ptr, text, enum = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        signatures = {  # hid_t is 64-bit since HDF5 1.10, which h5py 3 requires
            "H5Aopen_by_idx": (hid, [hid, text, enum, enum, ctypes.c_uint64, hid, hid]),
            "H5Aget_name": (ssize, [hid, size, ptr]),
            "H5Aget_type": (hid, [hid]),
            "H5Aget_space": (hid, [hid]),
            "H5Aread": (herr, [hid, hid, ptr]),
            "H5Acreate2": (hid, [hid, text, hid, hid, hid, hid]),
            "H5Awrite": (herr, [hid, hid, ptr]),
            "H5Aclose": (herr, [hid]),
            "H5Sget_simple_extent_npoints": (ssize, [hid]),
            "H5Sclose": (herr, [hid]),
            "H5Tcommitted": (herr, [hid]),
            "H5Tcopy": (hid, [hid]),
            "H5Tget_size": (size, [hid]),
            "H5Tget_class": (herr, [hid]),
            "H5Tdetect_class": (herr, [hid, enum]),
            "H5Treclaim": (herr, [hid, hid, hid, ptr]),
            "H5Tclose": (herr, [hid]),
        }
        for name, (restype, argtypes) in signatures.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
            setattr(self, name, function)


def _load_c_functions() -> _CFunctions | None:
    try:
        return _CFunctions()
    except (OSError, AttributeError):
        return None


_CAPI = _load_c_functions()
try:  # h5py serialises HDF5 calls with this lock; our own calls must take it too
    from h5py._objects import phil as _PHIL
except ImportError:  # pragma: no cover - h5py internals moved
    _PHIL = contextlib.nullcontext()


def _ok(value: int) -> int:
    if value < 0:
        raise OSError("HDF5 call failed")
    return value


def _copy_attributes_c(src: h5o.ObjectID, dst: h5o.ObjectID, count: int, index: int) -> list[bytes]:
    """Attributes copied with HDF5's C functions: any type, values unconverted.

    Values are read and written in the attribute's own type (variable-length data is
    reclaimed after the write); references and empty attributes are not written (the
    copy holds zeros: null references, until :meth:`_Copier.references` points them at
    the copied objects); returns the names of attributes that hold references.
    """
    c: Any = _CAPI  # its functions are set by name from HDF5's symbol table
    name = ctypes.create_string_buffer(256)
    referring = []
    for i in range(count):
        aid = _ok(c.H5Aopen_by_idx(src.id, b".", index, h5.ITER_INC, i, 0, 0))
        tid = sid = out = -1
        try:
            length = _ok(c.H5Aget_name(aid, len(name), name))
            if length >= len(name):
                name = ctypes.create_string_buffer(length + 1)
                _ok(c.H5Aget_name(aid, len(name), name))
            tid = _ok(c.H5Aget_type(aid))
            if _ok(c.H5Tcommitted(tid)):  # a named datatype of the source: use a copy
                committed, tid = tid, -1
                try:
                    tid = _ok(c.H5Tcopy(committed))
                finally:
                    c.H5Tclose(committed)
            sid = _ok(c.H5Aget_space(aid))
            npoints = _ok(c.H5Sget_simple_extent_npoints(sid))
            kind = _ok(c.H5Tget_class(tid))
            if kind in (h5t.COMPOUND, h5t.ARRAY, h5t.VLEN):
                references = bool(_ok(c.H5Tdetect_class(tid, h5t.REFERENCE)))
            else:
                references = kind == h5t.REFERENCE
            # values H5Treclaim must free (it leaves fixed-size parts alone)
            variable = kind in (h5t.STRING, h5t.COMPOUND, h5t.ARRAY, h5t.VLEN)
            data = None
            if npoints and references:
                referring.append(name.value)
            if npoints and not references:
                size = c.H5Tget_size(tid)
                if not size:
                    raise OSError("HDF5 call failed")
                data = ctypes.create_string_buffer(npoints * size)
                _ok(c.H5Aread(aid, tid, data))
            try:
                out = _ok(c.H5Acreate2(dst.id, name.value, tid, sid, 0, 0))
                if data is not None:
                    _ok(c.H5Awrite(out, tid, data))
            finally:
                if variable and data is not None:
                    c.H5Treclaim(tid, sid, 0, data)
        finally:
            for close, ident in (c.H5Aclose, out), (c.H5Sclose, sid), (c.H5Tclose, tid), (c.H5Aclose, aid):
                if ident >= 0:
                    close(ident)
    return referring


# --- object references in attributes -----------------------------------------------------


class _VariableLength(ctypes.Structure):
    """HDF5's ``hvl_t``: a variable-length sequence in memory."""

    _fields_ = [("len", ctypes.c_size_t), ("p", ctypes.c_void_p)]


def _referring_attributes(obj: h5o.ObjectID) -> list[bytes]:
    """Names of ``obj``'s attributes whose type holds references."""
    names = []
    for i in range(h5a.get_num_attrs(obj)):
        aid = h5a.open(obj, index=i)
        if aid.get_type().detect_class(h5t.REFERENCE) and aid.get_space().get_simple_extent_npoints():
            names.append(aid.name)
    return names


def _rewrite_references(
    src: h5o.ObjectID, dst: h5o.ObjectID, name: bytes, target: Callable[[int], int]
) -> None:
    """Write attribute ``name`` of ``src`` to that of ``dst`` with its object references translated."""
    c: Any = _CAPI  # its functions are set by name from HDF5's symbol table
    aid = h5a.open(src, name)
    tid = aid.get_type()
    if tid.committed():
        tid = tid.copy()
    if not _translatable(tid):
        return  # new-style (HDF5 1.12) references: opaque, left null
    space = aid.get_space()
    count = space.get_simple_extent_npoints()
    data = ctypes.create_string_buffer(count * tid.get_size())
    _ok(c.H5Aread(aid.id, tid.id, data))
    try:
        _translate(ctypes.addressof(data), tid, count, target)
        out = h5a.open(dst, name)  # kept in a name: h5py closes the id with its object
        _ok(c.H5Awrite(out.id, tid.id, data))
    finally:
        if tid.get_class() in (h5t.COMPOUND, h5t.ARRAY, h5t.VLEN):
            c.H5Treclaim(tid.id, space.id, 0, data)


def _translatable(tid: h5t.TypeID) -> bool:
    """Whether every reference in the type is an object (8 bytes) or region (12 bytes) reference."""
    kind = tid.get_class()
    if kind == h5t.REFERENCE:
        return tid.get_size() in (8, 12)
    if kind in (h5t.VLEN, h5t.ARRAY):
        return _translatable(tid.get_super())
    if kind == h5t.COMPOUND:
        return all(_translatable(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    return True


def _translate(address: int, tid: h5t.TypeID, count: int, target: Callable[[int], int]) -> None:
    """Rewrite, in memory at ``address``, ``count`` values of type ``tid``.

    Each object reference (a source address) becomes ``target(address)``; region references
    become null.
    """
    kind = tid.get_class()
    size = tid.get_size()
    if kind == h5t.REFERENCE:
        if size == 8:
            values = (ctypes.c_uint64 * count).from_address(address)
            for i in range(count):
                values[i] = target(values[i])
        else:
            ctypes.memset(address, 0, count * size)
    elif kind == h5t.VLEN:
        base = tid.get_super()
        for i in range(count):
            seq = _VariableLength.from_address(address + i * size)
            if seq.len and seq.p:
                _translate(seq.p, base, seq.len, target)
    elif kind == h5t.ARRAY:
        per = 1
        for n in tid.get_array_dims():
            per *= n
        _translate(address, tid.get_super(), count * per, target)
    elif kind == h5t.COMPOUND:
        for m in range(tid.get_nmembers()):
            member = tid.get_member_type(m)
            if member.detect_class(h5t.REFERENCE):
                offset = tid.get_member_offset(m)
                for i in range(count):
                    _translate(address + i * size + offset, member, 1, target)
