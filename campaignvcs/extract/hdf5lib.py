"""HDF5's C library, bound with ctypes, without importing h5py.

``import h5py`` costs ~80 ms (it imports numpy and all its own extension modules): a third
of a ``camp add`` of one HDF5 file, for an extractor that needs a few dozen C functions.
This module finds the library h5py links without importing h5py: ``dlopen`` of one of
h5py's extension modules (found by ``importlib``, not run) gives a handle whose symbol
lookup covers the libhdf5 it links, so this is the very library (and state) h5py uses when
it is imported too (~4 ms). Calls go straight to C, each a fraction of h5py's cost, which
wraps every identifier in a Python object with a weak-reference registry.

Only what :mod:`campaignvcs.extract.hdf5` calls is declared. HDF5 1.12 or later is needed
(``H5Oget_info3``, ``H5Treclaim``); h5py 3.9's wheels carry 1.14.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.machinery
import importlib.util
import os
import sys
import threading
from typing import Any

__all__ = [
    "ATTRIBUTE_ITERATE", "CONSTANTS", "LINK_ITERATE", "PLIST_FILE_ACCESS", "PLIST_LINK_CREATE", "LinkInfo",
    "ObjectInfo", "h5", "load", "lock", "ok",
]

_hid, _herr, _size, _ssize = ctypes.c_int64, ctypes.c_int, ctypes.c_size_t, ctypes.c_ssize_t
_ptr, _text, _enum, _uint = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint
_hsize, _bool = ctypes.c_uint64, ctypes.c_bool


class LinkInfo(ctypes.Structure):
    """``H5L_info1_t``: a link's type, character set and (hard links) object address."""

    _fields_ = [
        ("type", _enum),
        ("corder_valid", _uint),  # hbool_t (1 or 4 bytes): padding before corder either way
        ("corder", ctypes.c_int64),
        ("cset", _enum),
        ("u", ctypes.c_uint64),  # haddr_t address, or size_t val_size
    ]


class _Token(ctypes.Structure):
    """``H5O_token_t``: an object's identity in its file (the native VOL: its address)."""

    _fields_ = [("data", ctypes.c_uint8 * 16)]


class ObjectInfo(ctypes.Structure):
    """The head of ``H5O_info2_t`` (what ``H5O_INFO_BASIC`` fills), padded to its full size."""

    _fields_ = [("fileno", ctypes.c_ulong), ("token", _Token), ("type", _enum), ("rc", _uint),
                ("rest", ctypes.c_uint8 * 64)]


LINK_ITERATE = ctypes.CFUNCTYPE(_herr, _hid, _text, ctypes.POINTER(LinkInfo), _ptr)
"""``H5L_iterate1_t``: the callback of ``H5Literate1``."""
ATTRIBUTE_ITERATE = ctypes.CFUNCTYPE(_herr, _hid, _text, _ptr, _ptr)
"""``H5A_operator2_t``: the callback of ``H5Aiterate2`` (the ``H5A_info_t`` is not read)."""

_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {  # hid_t is 64-bit since HDF5 1.10
    "H5open": (_herr, []),
    "H5Eset_auto2": (_herr, [_hid, _ptr, _ptr]),
    "H5Iget_type": (_enum, [_hid]),
    "H5Pcreate": (_hid, [_hid]),
    "H5Pclose": (_herr, [_hid]),
    "H5Pset_file_locking": (_herr, [_hid, _bool, _bool]),
    "H5Pset_fapl_core": (_herr, [_hid, _size, _bool]),
    "H5Pset_fclose_degree": (_herr, [_hid, _enum]),
    "H5Pset_obj_track_times": (_herr, [_hid, _bool]),
    "H5Pget_link_creation_order": (_herr, [_hid, ctypes.POINTER(_uint)]),
    "H5Pset_link_creation_order": (_herr, [_hid, _uint]),
    "H5Pget_attr_creation_order": (_herr, [_hid, ctypes.POINTER(_uint)]),
    "H5Pset_attr_creation_order": (_herr, [_hid, _uint]),
    "H5Pset_char_encoding": (_herr, [_hid, _enum]),
    "H5Pget_layout": (_enum, [_hid]),
    "H5Pget_external_count": (_enum, [_hid]),
    "H5Pget_alloc_time": (_herr, [_hid, ctypes.POINTER(_enum)]),
    "H5Pset_alloc_time": (_herr, [_hid, _enum]),
    "H5Pall_filters_avail": (_herr, [_hid]),
    "H5Pget_nfilters": (_enum, [_hid]),
    "H5Pget_filter2": (_enum, [_hid, _uint, ctypes.POINTER(_uint), ctypes.POINTER(_size), _ptr, _size, _ptr, _ptr]),
    "H5Premove_filter": (_herr, [_hid, _enum]),
    "H5Zfilter_avail": (_herr, [_enum]),
    "H5Fopen": (_hid, [_text, _uint, _hid]),
    "H5Fcreate": (_hid, [_text, _uint, _hid, _hid]),
    "H5Fget_create_plist": (_hid, [_hid]),
    "H5Fflush": (_herr, [_hid, _enum]),
    "H5Fget_file_image": (_ssize, [_hid, _ptr, _size]),
    "H5Fclose": (_herr, [_hid]),
    "H5Gopen2": (_hid, [_hid, _text, _hid]),
    "H5Gcreate2": (_hid, [_hid, _text, _hid, _hid, _hid]),
    "H5Gget_create_plist": (_hid, [_hid]),
    "H5Gclose": (_herr, [_hid]),
    "H5Literate1": (_herr, [_hid, _enum, _enum, ctypes.POINTER(_hsize), LINK_ITERATE, _ptr]),
    "H5Lget_info1": (_herr, [_hid, _text, ctypes.POINTER(LinkInfo), _hid]),
    "H5Lget_val": (_herr, [_hid, _text, _ptr, _size, _hid]),
    "H5Lunpack_elink_val": (_herr, [_ptr, _size, ctypes.POINTER(_uint), ctypes.POINTER(_text),
                                    ctypes.POINTER(_text)]),
    "H5Lcreate_hard": (_herr, [_hid, _text, _hid, _text, _hid, _hid]),
    "H5Lcreate_soft": (_herr, [_text, _hid, _text, _hid, _hid]),
    "H5Lcreate_external": (_herr, [_text, _text, _hid, _text, _hid, _hid]),
    "H5Oopen": (_hid, [_hid, _text, _hid]),
    "H5Oclose": (_herr, [_hid]),
    "H5Ocopy": (_herr, [_hid, _text, _hid, _text, _hid, _hid]),
    "H5Oget_info3": (_herr, [_hid, ctypes.POINTER(ObjectInfo), _uint]),
    "H5VLnative_token_to_addr": (_herr, [_hid, _Token, ctypes.POINTER(ctypes.c_uint64)]),
    "H5Dget_space": (_hid, [_hid]),
    "H5Dget_type": (_hid, [_hid]),
    "H5Dget_create_plist": (_hid, [_hid]),
    "H5Dget_storage_size": (_hsize, [_hid]),
    "H5Dcreate2": (_hid, [_hid, _text, _hid, _hid, _hid, _hid, _hid]),
    "H5Dclose": (_herr, [_hid]),
    "H5Sget_simple_extent_npoints": (_ssize, [_hid]),
    "H5Sclose": (_herr, [_hid]),
    "H5Tcommitted": (_herr, [_hid]),
    "H5Tcopy": (_hid, [_hid]),
    "H5Tget_size": (_size, [_hid]),
    "H5Tget_class": (_herr, [_hid]),
    "H5Tdetect_class": (_herr, [_hid, _enum]),
    "H5Tget_super": (_hid, [_hid]),
    "H5Tget_nmembers": (_herr, [_hid]),
    "H5Tget_member_type": (_hid, [_hid, _uint]),
    "H5Tget_member_offset": (_size, [_hid, _uint]),
    "H5Tget_array_ndims": (_herr, [_hid]),
    "H5Tget_array_dims2": (_herr, [_hid, ctypes.POINTER(_hsize)]),
    "H5Treclaim": (_herr, [_hid, _hid, _hid, _ptr]),
    "H5Tclose": (_herr, [_hid]),
    "H5Aget_num_attrs": (_enum, [_hid]),
    "H5Aopen": (_hid, [_hid, _text, _hid]),
    "H5Aiterate2": (_herr, [_hid, _enum, _enum, ctypes.POINTER(_hsize), ATTRIBUTE_ITERATE, _ptr]),
    "H5Aget_name": (_ssize, [_hid, _size, _ptr]),
    "H5Aget_type": (_hid, [_hid]),
    "H5Aget_space": (_hid, [_hid]),
    "H5Aread": (_herr, [_hid, _hid, _ptr]),
    "H5Acreate2": (_hid, [_hid, _text, _hid, _hid, _hid, _hid]),
    "H5Awrite": (_herr, [_hid, _hid, _ptr]),
    "H5Aclose": (_herr, [_hid]),
}

CONSTANTS = {
    # H5_index_t, H5_iter_order_t
    "INDEX_NAME": 0, "INDEX_CRT_ORDER": 1, "ITER_INC": 0,
    # H5P_CRT_ORDER_*, H5F_ACC_*, H5F_close_degree_t, H5F_scope_t
    "CRT_ORDER_TRACKED": 1, "ACC_RDONLY": 0, "ACC_TRUNC": 2, "CLOSE_STRONG": 3, "SCOPE_LOCAL": 0,
    # H5L_type_t, H5I_type_t
    "LINK_HARD": 0, "LINK_SOFT": 1, "LINK_EXTERNAL": 64, "ID_GROUP": 2, "ID_DATASET": 5,
    # H5D_layout_t, H5D_alloc_time_t
    "COMPACT": 0, "CONTIGUOUS": 1, "VIRTUAL": 3, "ALLOC_EARLY": 1, "ALLOC_LATE": 2, "ALLOC_INCR": 3,
    # H5T_class_t, H5T_cset_t
    "STRING": 3, "COMPOUND": 6, "REFERENCE": 7, "VLEN": 9, "ARRAY": 10, "CSET_ASCII": 0, "CSET_UTF8": 1,
}
"""The values of HDF5's enumerations used here (fixed by its ABI since 1.8)."""


def _library_handle() -> ctypes.CDLL:
    spec = importlib.util.find_spec("h5py")  # finds the package without running it
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(folder, "h5a" + suffix)
            if os.path.isfile(candidate):
                return ctypes.CDLL(candidate)
    raise ImportError("HDF5 files need h5py: its HDF5 library was not found")


def load() -> Any:
    """The library with every function of :data:`_SIGNATURES` typed, initialised, errors silent.

    Raises:
        ImportError: h5py is not installed, or its HDF5 is older than 1.12.
    """
    lib = _library_handle()
    try:
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
    except AttributeError as exc:
        raise ImportError(f"HDF5 files need HDF5 1.12 or later under h5py ({exc})") from None
    lib.H5open()
    lib.H5Eset_auto2(0, None, None)  # failures are return values here, not printed stacks
    return lib


h5: Any = load()
"""The loaded library (its functions are set by name from HDF5's symbol table)."""
PLIST_FILE_ACCESS = _hid.in_dll(h5, "H5P_CLS_FILE_ACCESS_ID_g").value
PLIST_LINK_CREATE = _hid.in_dll(h5, "H5P_CLS_LINK_CREATE_ID_g").value


def ok(value: int) -> int:
    """``value``, or OSError when HDF5 returned its failure value (negative)."""
    if value < 0:
        raise OSError("HDF5 call failed")
    return value


_LOCK = threading.RLock()


def lock() -> contextlib.AbstractContextManager[Any]:
    """The lock HDF5 calls from threads must take (the library is not thread-safe).

    h5py's own lock when h5py is imported, so our calls and h5py's never overlap; else
    this module's.
    """
    objects = sys.modules.get("h5py._objects")
    phil = getattr(objects, "phil", None)
    return phil if phil is not None else _LOCK
