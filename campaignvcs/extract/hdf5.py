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

Speed: every call goes straight to HDF5's C functions (:mod:`.hdf5lib`, ctypes on the
library h5py links), so neither h5py nor numpy is imported (~80 ms, a third of adding one
file) and no call pays for h5py's identifier objects. Objects that can be copied whole
(small datasets, datasets never written, named datatypes) go through one ``H5Ocopy``;
only groups and large datasets are rebuilt call by call.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
from collections.abc import Callable
from typing import Any

from campaignvcs.errors import BadInput, UnreadableDataset
from campaignvcs.extract.base import Extracted, ExtractedReplica, compressed_payload, probe_of
from campaignvcs.extract.hdf5lib import (
    ATTRIBUTE_ITERATE,
    LINK_ITERATE,
    PLIST_FILE_ACCESS,
    PLIST_LINK_CREATE,
    ObjectInfo,
    h5,
    lock,
    ok,
)
from campaignvcs.extract.hdf5lib import CONSTANTS as K

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
    name = os.fsencode(path)
    with lock():
        h5.H5Eset_auto2(0, None, None)  # failures are return values (per thread in thread-safe builds)
        src = h5.H5Fopen(name, K["ACC_RDONLY"], _SOURCE_FAPL)
        if src < 0:  # already open in this process with other settings: HDF5 wants the same
            src = h5.H5Fopen(name, K["ACC_RDONLY"], 0)
            if src < 0:
                raise UnreadableDataset(bad)
        try:
            return _copy_file(src)
        except _ObjectError as exc:
            raise UnreadableDataset(f"{bad} at {exc.where}") from None
        except _H5_ERRORS:
            raise UnreadableDataset(bad) from None
        finally:
            h5.H5Fclose(src)


class _Open:
    """An HDF5 identifier (checked by :func:`ok`) that the ``with`` block closes."""

    __slots__ = ("close", "ident")

    def __init__(self, ident: int, close: Callable[[int], int]) -> None:
        self.ident = ok(ident)
        self.close = close

    def __enter__(self) -> int:
        return self.ident

    def __exit__(self, *exc: object) -> None:
        self.close(self.ident)


def _copy_file(src: int) -> bytes:
    with (
        _Open(h5.H5Gopen2(src, b"/", 0), h5.H5Gclose) as src_root,
        _Open(h5.H5Gget_create_plist(src_root), h5.H5Pclose) as gcpl,
        _Open(h5.H5Fget_create_plist(src), h5.H5Pclose) as fcpl,
    ):
        # the root group is made from the fcpl, which does not report its orders itself
        ok(h5.H5Pset_obj_track_times(fcpl, False))
        ok(h5.H5Pset_link_creation_order(fcpl, _flags(h5.H5Pget_link_creation_order, gcpl)))
        ok(h5.H5Pset_attr_creation_order(fcpl, _flags(h5.H5Pget_attr_creation_order, gcpl)))
        # the name only tells in-memory files apart: nothing is opened or written on disk
        name = f"campaignvcs-hdf5-{os.getpid()}-{next(_names)}".encode()
        with _Open(h5.H5Fcreate(name, K["ACC_TRUNC"], fcpl, _MEMORY_FAPL), h5.H5Fclose) as dst:
            with _Open(h5.H5Gopen2(dst, b"/", 0), h5.H5Gclose) as dst_root:
                copier = _Copier(dst)
                copier.seen[_address(src_root)] = b"/"
                copier.attributes(src_root, dst_root, gcpl, b"/")
                copier.members(src_root, dst_root, gcpl, b"/")
                copier.references(src_root, dst_root)
                ok(h5.H5Fflush(dst, K["SCOPE_LOCAL"]))
                size = ok(h5.H5Fget_file_image(dst, None, 0))
                image = ctypes.create_string_buffer(size)
                ok(h5.H5Fget_file_image(dst, image, size))
                return image.raw


class _ObjectError(Exception):
    """HDF5 failed on one object; ``where`` is its path in the source file."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def _plist(cls: int, *settings: tuple[Callable[..., int], tuple[Any, ...]]) -> int:
    plist = ok(h5.H5Pcreate(cls))
    for function, args in settings:
        ok(function(plist, *args))
    return plist


# made once: property lists are only read by the calls they are passed to
_SOURCE_FAPL = _plist(PLIST_FILE_ACCESS, (h5.H5Pset_file_locking, (False, True)))
"""Source files: no file locking; the default close degree (HDF5 refuses a second open
of a file with a different one)."""
_MEMORY_FAPL = _plist(
    PLIST_FILE_ACCESS, (h5.H5Pset_fapl_core, (_CORE_BLOCK, False)), (h5.H5Pset_fclose_degree, (K["CLOSE_STRONG"],))
)
_LCPLS = {
    cset: _plist(PLIST_LINK_CREATE, (h5.H5Pset_char_encoding, (cset,))) for cset in (K["CSET_ASCII"], K["CSET_UTF8"])
}


def _flags(getter: Callable[[int, Any], int], plist: int) -> int:
    """An ``unsigned`` a property-list getter reports (creation-order flags)."""
    value = ctypes.c_uint()
    ok(getter(plist, ctypes.byref(value)))
    return value.value


def _index(tracked: int) -> int:
    return K["INDEX_CRT_ORDER"] if tracked & K["CRT_ORDER_TRACKED"] else K["INDEX_NAME"]


def _address(obj: int) -> int:
    """The address of an open object in its file (what object references hold)."""
    info = ObjectInfo()
    ok(h5.H5Oget_info3(obj, ctypes.byref(info), 1))  # H5O_INFO_BASIC
    address = ctypes.c_uint64()
    ok(h5.H5VLnative_token_to_addr(obj, info.token, ctypes.byref(address)))
    return address.value


def _text(path: bytes) -> str:
    return path.decode("utf-8", "replace").replace("\n", "\\n")


def _join(where: bytes, name: bytes) -> bytes:
    return where + name if where.endswith(b"/") else where + b"/" + name


def _own_type(tid: int) -> int:
    """``tid``, or a copy of it when it is a named datatype of the source (unusable in the copy)."""
    ok(tid)
    if h5.H5Tcommitted(tid) > 0:
        committed = tid
        try:
            tid = ok(h5.H5Tcopy(committed))
        finally:
            h5.H5Tclose(committed)
    return tid


class _Copier:
    """Walks the source tree once, writing its metadata into the in-memory file."""

    def __init__(self, dst: int) -> None:
        self.dst = dst
        self.seen: dict[int, bytes] = {}  # object address in the source -> path in the copy
        # objects whose attributes hold object references: (path, attribute names)
        self.referring: list[tuple[bytes, tuple[bytes, ...]]] = []
        self.found: list[tuple[bytes, int, int, int]] = []
        self.visit = LINK_ITERATE(self.collect)  # one ctypes callback for every group

    def collect(self, group: int, name: bytes, info: Any, data: Any) -> int:
        """``H5Literate1``'s callback: note the link, go on."""
        link = info.contents
        self.found.append((name, link.type, link.cset, link.u))
        return 0

    def links(self, group: int, index: int) -> list[tuple[bytes, int, int, int]] | None:
        """(name, type, character set, address or value size) of every link, or None: HDF5 failed."""
        self.found = []
        if h5.H5Literate1(group, index, K["ITER_INC"], None, self.visit, None) < 0:
            return None
        return self.found

    def members(self, src: int, dst: int, gcpl: int, where: bytes) -> None:
        """Copy every link of group ``src`` into ``dst``, in creation or name order."""
        index = _index(_flags(h5.H5Pget_link_creation_order, gcpl))
        links = self.links(src, index)
        if links is None and index != K["INDEX_NAME"]:  # creation order tracked but not indexed
            links = self.links(src, K["INDEX_NAME"])
        if links is None:
            raise _ObjectError(_text(where))
        for name, kind, cset, address in links:
            path = _join(where, name)
            lcpl = _LCPLS.get(cset, _LCPLS[K["CSET_ASCII"]])
            try:
                if kind == K["LINK_HARD"]:
                    if address in self.seen:  # another name for an object already copied
                        ok(h5.H5Lcreate_hard(self.dst, self.seen[address], dst, name, lcpl, 0))
                    else:
                        self.seen[address] = path
                        self.member(src, dst, name, path, lcpl)
                elif kind == K["LINK_SOFT"]:
                    ok(h5.H5Lcreate_soft(_link_value(src, name, address).value, dst, name, lcpl, 0))
                elif kind == K["LINK_EXTERNAL"]:
                    value = _link_value(src, name, address)
                    flags, filename, target = ctypes.c_uint(), ctypes.c_char_p(), ctypes.c_char_p()
                    ok(h5.H5Lunpack_elink_val(value, address, flags, filename, target))
                    ok(h5.H5Lcreate_external(filename.value, target.value, dst, name, lcpl, 0))
                # user-defined link types mean nothing without their handler: left out
            except _ObjectError:
                raise
            except _H5_ERRORS:
                raise _ObjectError(_text(path)) from None

    def member(self, src: int, dst: int, name: bytes, path: bytes, lcpl: int) -> None:
        """Copy the object behind hard link ``name`` of ``src``."""
        with _Open(h5.H5Oopen(src, name, 0), h5.H5Oclose) as obj:
            kind = h5.H5Iget_type(obj)
            if kind == K["ID_GROUP"]:
                with _Open(h5.H5Gget_create_plist(obj), h5.H5Pclose) as gcpl:
                    ok(h5.H5Pset_obj_track_times(gcpl, False))
                    with _Open(h5.H5Gcreate2(dst, name, lcpl, gcpl, 0), h5.H5Gclose) as group:
                        self.attributes(obj, group, gcpl, path)
                        self.members(obj, group, gcpl, path)
            elif kind == K["ID_DATASET"]:
                self.dataset(obj, src, dst, name, path, lcpl)
            else:  # a named datatype: nothing but metadata
                ok(h5.H5Ocopy(src, name, dst, name, 0, lcpl))
                self.copied_whole(obj, path)

    def dataset(self, obj: int, src: int, dst: int, name: bytes, path: bytes, lcpl: int) -> None:
        """Copy a dataset whole when that copies little; else recreate it without data.

        ``H5Ocopy`` takes the values of small datasets along, costs nothing more for
        datasets never written, and copies external-file and virtual datasets as their
        mappings only (it neither reads nor writes the files they point to).
        """
        with _Open(h5.H5Dget_space(obj), h5.H5Sclose) as space:
            if ok(h5.H5Sget_simple_extent_npoints(space)) <= SMALL_DATASET or h5.H5Dget_storage_size(obj) == 0:
                # failing, e.g. for a filter plugin missing here: recreated without values
                if h5.H5Ocopy(src, name, dst, name, 0, lcpl) >= 0:
                    self.copied_whole(obj, path)
                    return
            with _Open(h5.H5Dget_create_plist(obj), h5.H5Pclose) as dcpl:
                layout = ok(h5.H5Pget_layout(dcpl))
                if layout == K["VIRTUAL"] or (layout == K["CONTIGUOUS"] and ok(h5.H5Pget_external_count(dcpl)) > 0):
                    ok(h5.H5Ocopy(src, name, dst, name, 0, lcpl))
                    self.copied_whole(obj, path)
                    return
                with _Open(_own_type(h5.H5Dget_type(obj)), h5.H5Tclose) as tid:
                    ok(h5.H5Pset_obj_track_times(dcpl, False))
                    alloc = ctypes.c_int()
                    ok(h5.H5Pget_alloc_time(dcpl, ctypes.byref(alloc)))
                    if alloc.value == K["ALLOC_EARLY"] and layout != K["COMPACT"]:
                        # storage for data left out would be bytes in the copy: allocate on write
                        late = K["ALLOC_LATE"] if layout == K["CONTIGUOUS"] else K["ALLOC_INCR"]
                        ok(h5.H5Pset_alloc_time(dcpl, late))
                    out = h5.H5Dcreate2(dst, name, tid, space, lcpl, dcpl, 0)
                    if out < 0:
                        if h5.H5Pall_filters_avail(dcpl) != 0:
                            raise OSError("HDF5 call failed")
                        _drop_missing_filters(dcpl)  # keep the dataset, without those filters
                        out = h5.H5Dcreate2(dst, name, tid, space, lcpl, dcpl, 0)
                    with _Open(out, h5.H5Dclose) as made:
                        self.attributes(obj, made, dcpl, path)

    def attributes(self, src: int, dst: int, ocpl: int, where: bytes) -> None:
        """Copy every attribute of ``src`` to ``dst``, in creation or name order."""
        count = ok(h5.H5Aget_num_attrs(src))
        if not count:
            return
        index = _index(_flags(h5.H5Pget_attr_creation_order, ocpl))
        try:
            referring = _copy_attributes(src, dst, index)
        except _H5_ERRORS:
            if index == K["INDEX_NAME"] or h5.H5Aget_num_attrs(dst):
                raise _ObjectError(_text(where)) from None
            try:  # creation order tracked but not indexed
                referring = _copy_attributes(src, dst, K["INDEX_NAME"])
            except _H5_ERRORS:
                raise _ObjectError(_text(where)) from None
        if referring:
            self.referring.append((where, tuple(referring)))

    def copied_whole(self, obj: int, path: bytes) -> None:
        """``H5Ocopy`` nulls the object references in attributes: note those to rewrite.

        The attributes are looked at now, while the source object is open: most hold no
        references, and the object is then never opened again.
        """
        if ok(h5.H5Aget_num_attrs(obj)):
            names = _referring_attributes(obj)
            if names:
                self.referring.append((path, tuple(names)))

    def references(self, src_root: int, dst_root: int) -> None:
        """Point the object references in attributes at the copies of their targets.

        netCDF-4 ties each variable to its dimensions this way (``DIMENSION_LIST`` on the
        variable, ``REFERENCE_LIST`` on the dimension scale): a copy with null references
        has lost its dimensions. A reference to an object that was not copied stays null;
        region references are left null (their selections point into the source's data), and
        so are all of an attribute's references when HDF5 fails to rewrite them (the copy is
        still made: as before this pass existed).
        """
        targets: dict[int, int] = {0: 0}

        def target(address: int) -> int:
            if address not in targets:
                path = self.seen.get(address)
                if path is None:
                    targets[address] = 0
                else:
                    with _Open(h5.H5Oopen(dst_root, path, 0), h5.H5Oclose) as copied:
                        targets[address] = _address(copied)
            return targets[address]

        for where, names in self.referring:
            with (
                contextlib.suppress(*_H5_ERRORS),
                _Open(h5.H5Oopen(src_root, where, 0), h5.H5Oclose) as src,
                _Open(h5.H5Oopen(dst_root, where, 0), h5.H5Oclose) as dst,
            ):
                for name in names:
                    with contextlib.suppress(*_H5_ERRORS):
                        _rewrite_references(src, dst, name, target)


def _link_value(group: int, name: bytes, size: int) -> ctypes.Array[ctypes.c_char]:
    """The value of soft or external link ``name`` (``size`` bytes, from its link info)."""
    value = ctypes.create_string_buffer(size)
    ok(h5.H5Lget_val(group, name, value, size, 0))
    return value


def _drop_missing_filters(dcpl: int) -> None:
    """Remove from ``dcpl`` the filters not available here (plugins missing)."""
    flags, count = ctypes.c_uint(), ctypes.c_size_t(0)
    for i in reversed(range(ok(h5.H5Pget_nfilters(dcpl)))):
        code = ok(h5.H5Pget_filter2(dcpl, i, flags, count, None, 0, None, None))
        if not ok(h5.H5Zfilter_avail(code)):
            ok(h5.H5Premove_filter(dcpl, code))


# --- attributes --------------------------------------------------------------------------


class _AttributeNames:
    """Names of an object's attributes in index order, from one ``H5Aiterate2``.

    ``H5Aopen_by_idx`` decodes and sorts all of an object's attributes to open one (n² for
    n attributes); the iteration sorts them once, and each is then opened by name.
    """

    def __init__(self) -> None:
        self.found: list[bytes] = []
        self.visit = ATTRIBUTE_ITERATE(self.collect)  # one ctypes callback for every object

    def collect(self, obj: int, name: bytes, info: Any, data: Any) -> int:
        """``H5Aiterate2``'s callback: note the name, go on."""
        self.found.append(name)
        return 0

    def __call__(self, obj: int, index: int) -> list[bytes]:
        """The names of ``obj``'s attributes in ``index`` order (OSError when HDF5 fails)."""
        self.found = []
        ok(h5.H5Aiterate2(obj, index, K["ITER_INC"], None, self.visit, None))
        return self.found


_attribute_names = _AttributeNames()


def _copy_attributes(src: int, dst: int, index: int) -> list[bytes]:
    """Attributes copied in their own type: any type, values unconverted.

    Values are read and written in the attribute's own type (variable-length data is
    reclaimed after the write); references and empty attributes are not written (the
    copy holds zeros: null references, until :meth:`_Copier.references` points them at
    the copied objects); returns the names of attributes that hold references.
    """
    referring = []
    for name in _attribute_names(src, index):
        aid = ok(h5.H5Aopen(src, name, 0))
        tid = sid = out = -1
        try:
            tid = _own_type(h5.H5Aget_type(aid))
            sid = ok(h5.H5Aget_space(aid))
            npoints = ok(h5.H5Sget_simple_extent_npoints(sid))
            kind = ok(h5.H5Tget_class(tid))
            if kind in (K["COMPOUND"], K["ARRAY"], K["VLEN"]):
                references = bool(ok(h5.H5Tdetect_class(tid, K["REFERENCE"])))
            else:
                references = kind == K["REFERENCE"]
            # values H5Treclaim must free (it leaves fixed-size parts alone)
            variable = kind in (K["STRING"], K["COMPOUND"], K["ARRAY"], K["VLEN"])
            data = None
            if npoints and references:
                referring.append(name)
            if npoints and not references:
                size = h5.H5Tget_size(tid)
                if not size:
                    raise OSError("HDF5 call failed")
                data = ctypes.create_string_buffer(npoints * size)
                ok(h5.H5Aread(aid, tid, data))
            try:
                out = ok(h5.H5Acreate2(dst, name, tid, sid, 0, 0))
                if data is not None:
                    ok(h5.H5Awrite(out, tid, data))
            finally:
                if variable and data is not None:
                    h5.H5Treclaim(tid, sid, 0, data)
        finally:
            for close, ident in (h5.H5Aclose, out), (h5.H5Sclose, sid), (h5.H5Tclose, tid), (h5.H5Aclose, aid):
                if ident >= 0:
                    close(ident)
    return referring


# --- object references in attributes -----------------------------------------------------


class _VariableLength(ctypes.Structure):
    """HDF5's ``hvl_t``: a variable-length sequence in memory."""

    _fields_ = [("len", ctypes.c_size_t), ("p", ctypes.c_void_p)]


def _referring_attributes(obj: int) -> list[bytes]:
    """Names of ``obj``'s attributes whose type holds references (and that hold values)."""
    names = []
    for name in _attribute_names(obj, K["INDEX_NAME"]):
        with _Open(h5.H5Aopen(obj, name, 0), h5.H5Aclose) as aid, _Open(h5.H5Aget_type(aid), h5.H5Tclose) as tid:
            if ok(h5.H5Tdetect_class(tid, K["REFERENCE"])):
                with _Open(h5.H5Aget_space(aid), h5.H5Sclose) as sid:
                    if ok(h5.H5Sget_simple_extent_npoints(sid)):
                        names.append(name)
    return names


def _rewrite_references(src: int, dst: int, name: bytes, target: Callable[[int], int]) -> None:
    """Write attribute ``name`` of ``src`` to that of ``dst`` with its object references translated."""
    with (
        _Open(h5.H5Aopen(src, name, 0), h5.H5Aclose) as aid,
        _Open(_own_type(h5.H5Aget_type(aid)), h5.H5Tclose) as tid,
        _Open(h5.H5Aget_space(aid), h5.H5Sclose) as space,
    ):
        if not _translatable(tid):
            return  # new-style (HDF5 1.12) references: opaque, left null
        count = ok(h5.H5Sget_simple_extent_npoints(space))
        data = ctypes.create_string_buffer(count * h5.H5Tget_size(tid))
        ok(h5.H5Aread(aid, tid, data))
        try:
            _translate(ctypes.addressof(data), tid, count, target)
            with _Open(h5.H5Aopen(dst, name, 0), h5.H5Aclose) as out:
                ok(h5.H5Awrite(out, tid, data))
        finally:
            if h5.H5Tget_class(tid) in (K["COMPOUND"], K["ARRAY"], K["VLEN"]):
                h5.H5Treclaim(tid, space, 0, data)


def _translatable(tid: int) -> bool:
    """Whether every reference in the type is an object (8 bytes) or region (12 bytes) reference."""
    kind = ok(h5.H5Tget_class(tid))
    if kind == K["REFERENCE"]:
        return h5.H5Tget_size(tid) in (8, 12)
    if kind in (K["VLEN"], K["ARRAY"]):
        with _Open(h5.H5Tget_super(tid), h5.H5Tclose) as base:
            return _translatable(base)
    if kind == K["COMPOUND"]:
        for m in range(ok(h5.H5Tget_nmembers(tid))):
            with _Open(h5.H5Tget_member_type(tid, m), h5.H5Tclose) as member:
                if not _translatable(member):
                    return False
    return True


def _translate(address: int, tid: int, count: int, target: Callable[[int], int]) -> None:
    """Rewrite, in memory at ``address``, ``count`` values of type ``tid``.

    Each object reference (a source address) becomes ``target(address)``; region references
    become null.
    """
    kind = ok(h5.H5Tget_class(tid))
    size = h5.H5Tget_size(tid)
    if kind == K["REFERENCE"]:
        if size == 8:
            values = (ctypes.c_uint64 * count).from_address(address)
            for i in range(count):
                values[i] = target(values[i])
        else:
            ctypes.memset(address, 0, count * size)
    elif kind == K["VLEN"]:
        with _Open(h5.H5Tget_super(tid), h5.H5Tclose) as base:
            for i in range(count):
                seq = _VariableLength.from_address(address + i * size)
                if seq.len and seq.p:
                    _translate(seq.p, base, seq.len, target)
    elif kind == K["ARRAY"]:
        dims = (ctypes.c_uint64 * ok(h5.H5Tget_array_ndims(tid)))()
        ok(h5.H5Tget_array_dims2(tid, dims))
        per = 1
        for n in dims:
            per *= n
        with _Open(h5.H5Tget_super(tid), h5.H5Tclose) as base:
            _translate(address, base, count * per, target)
    elif kind == K["COMPOUND"]:
        for m in range(ok(h5.H5Tget_nmembers(tid))):
            with _Open(h5.H5Tget_member_type(tid, m), h5.H5Tclose) as member:
                if ok(h5.H5Tdetect_class(member, K["REFERENCE"])):
                    offset = h5.H5Tget_member_offset(tid, m)
                    for i in range(count):
                        _translate(address + i * size + offset, member, 1, target)
