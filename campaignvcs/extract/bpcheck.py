"""Is a BP5/BP4 dataset's metadata whole? Structure checks on the bytes camp add reads anyway.

The archive camp builds embeds md.idx, md.0 and mmd.0 byte for byte, and a damaged one
makes ADIOS2 refuse, misread or crash on the whole campaign, so a damaged dataset is
refused at ``camp add`` (and reported by ``camp verify``) with one line naming the file.
No adios2: the layout below is read directly; what it can and cannot see is in
docs/verify.md. This module walks the files (md.idx records, md.0 steps and blocks, mmd.0
records, data.N extents); whether one FFS record or format is whole is
:mod:`campaignvcs.extract.ffs`'s to say.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable, Mapping

from campaignvcs.errors import UnreadableDataset
from campaignvcs.extract.ffs import ID_LENGTHS, Format, FormatError, check_format

INDEX_HEADER_SIZE = 64
VERSION_OFFSET = 37
MAGIC = b"ADIOS-BP"
#
# What ADIOS2 2.12 reads (BP5Reader::ParseMetadataIndex, InstallMetadataForTimestep,
# InstallMetaMetaData; BP4Deserializer::ParseMetadataIndex and the per-step index parsers):
#
# BP5 md.idx: a 64-byte header (byte 36 byte order, 37 BP version, 38 BP5 minor version, 39
#   writer active, 40 'y'/'n' column major, 41 flatten steps), then records of one type byte,
#   a u64 body length and the body. 'w' (writer map): writers, aggregators, subfiles, then
#   each writer's subfile. 's' (step): the step's offset and length in md.0, the flush
#   count F, then per writer F (offset, length) pairs and one offset into its data.N.
# BP5 md.0, per step: u64 length of the rest, each writer's variable-block length, each
#   writer's attribute-block length, then the blocks. Each non-empty block is an FFS record
#   that starts with the ID of its format.
# BP5 mmd.0: records of u64 ID length, u64 format length, the ID, the format (the IDs and
#   formats: extract/ffs.py).
# BP4 md.idx: a 64-byte header, then one 64-byte record per step: step, rank, offsets in
#   md.0 of the step's process-group, variable and attribute indexes and of its end, time.
# BP4 md.0: a 64-byte header, then per step: u64 count, u64 length, the process-group index;
#   u32 count, u64 length, the variable index; the same for attributes. Each index entry is
#   a u32 length and that many bytes.

_BP5_MINOR = 2
"""The only BP5 minor version ADIOS2 (2.8 to 2.12) reads."""
_WRITER_MAP, _STEP = 0x77, 0x73  # 'w', 's'
_FORMAT_CHECKED: dict[bytes, Format] = {}
"""mmd.0 records already verified (ID + format → what its records must look like): the
same formats recur in every dataset a code writes, and hashing one costs ~0.1 ms."""
_FORMAT_CACHE_LIMIT = 4096


class _Damaged(Exception):
    """One file of a BP dataset is damaged: ``name`` (md.idx, md.0, mmd.0, data.N) and why."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(why)
        self.name = name
        self.why = why


def data_sizes(top: Mapping[str, os.stat_result]) -> dict[int, int] | None:
    """Sizes of the folder's data.N files by N; None when it holds none (metadata fetched alone)."""
    sizes = {}
    for name, st in top.items():
        if name.startswith("data.") and name[5:].isdigit() and stat.S_ISREG(st.st_mode):
            sizes[int(name[5:])] = st.st_size
    return sizes or None


def check_bp5(path: str, index: bytes, md0: bytes, mmd0: bytes, data: Mapping[int, int] | None) -> None:
    """Refuse a BP5 dataset whose md.idx, md.0, mmd.0 (or data.N lengths) are inconsistent.

    ``data``: the sizes of data.N by N (None: not here, not checked). Raises
    UnreadableDataset naming the damaged file; see docs/verify.md for what is checked.
    """
    try:
        _check_bp5(index, md0, mmd0, data)
    except _Damaged as exc:
        raise UnreadableDataset(f"{path}: {exc.name} is damaged ({exc.why})") from None
    except (struct.error, IndexError, ValueError, OverflowError):  # a case the checks above missed
        raise UnreadableDataset(
            f"{path}: md.idx, md.0 or mmd.0 is damaged (lengths that lead outside the files)"
        ) from None


_U64 = {o: struct.Struct(o + "Q").unpack_from for o in "<>"}
_U64X2 = {o: struct.Struct(o + "QQ").unpack_from for o in "<>"}
_U64X3 = {o: struct.Struct(o + "QQQ").unpack_from for o in "<>"}


def _check_bp5(index: bytes, md0: bytes, mmd0: bytes, data: Mapping[int, int] | None) -> None:
    order_flag, minor, active, major_order, flatten = index[36], index[38], index[39], index[40], index[41]
    if order_flag > 1:
        raise _Damaged("md.idx", f"byte-order flag is {order_flag}, not 0 or 1")
    if minor != _BP5_MINOR:
        raise _Damaged("md.idx", f"BP5 minor version {minor}; ADIOS2 reads 5.{_BP5_MINOR} only")
    if active > 1 or flatten > 1 or major_order not in b"yn":
        raise _Damaged("md.idx", "header flags are not 0/1 and 'y'/'n'")
    order = "<" if order_flag == 0 else ">"
    u64, three = _U64[order], _U64X3[order]
    formats = _check_metametadata(mmd0, order)
    end, pos, record, step, md_end, md_size = len(index), INDEX_HEADER_SIZE, 0, 0, 0, len(md0)
    writers: tuple[int, ...] = ()
    beyond: list[tuple[int, int, int, int]] = []
    last: dict[int, int] = {}
    extents = data is not None and not active  # an active writer may still be writing data
    while pos < end:
        length = u64(index, pos + 1)[0] if pos + 9 <= end else end
        body = pos + 9
        if body + length > end:
            if active:
                break  # the writer is appending this record right now
            raise _Damaged("md.idx", f"record {record} at byte {pos} is cut off at byte {end}")
        kind = index[pos]
        if kind == _STEP and writers:
            mpos, msize, flushes = three(index, body) if length >= 24 else (0, 0, -(1 << 62))
            if length != 8 * (3 + len(writers) * (2 * flushes + 1)):
                raise _Damaged(
                    "md.idx",
                    f"record {record} (step {step}) is {length} bytes, which does not fit "
                    f"{len(writers)} writers and {flushes} flushes",
                )
            if mpos != md_end:
                raise _Damaged(
                    "md.idx", f"step {step}'s metadata starts at byte {mpos} of md.0, not {md_end}"
                )
            if mpos + msize > md_size:
                stated = u64(md0, mpos)[0] + 8 if mpos + 8 <= md_size else msize
                if mpos + stated <= md_size:  # md.0 holds a whole step there: md.idx's length is wrong
                    raise _Damaged(
                        "md.idx", f"step {step}'s metadata is {msize} bytes in md.idx, {stated} in md.0"
                    )
                raise _Damaged("md.0", f"step {step}'s metadata ends at byte {mpos + msize} of {md_size}")
            _check_step_metadata(md0, mpos, msize, len(writers), formats, order, step)
            if extents:
                _check_data_extents(index, body + 24, writers, flushes, data or {}, order, step, beyond, last)
            md_end = mpos + msize
            step += 1
        elif kind == _WRITER_MAP:
            count, aggregators, subfiles = three(index, body) if length >= 24 else (0, 0, 0)
            if length != 8 * (3 + count) or not 0 < aggregators <= count or not 0 < subfiles <= count:
                raise _Damaged(
                    "md.idx",
                    f"record {record} (writer map) is inconsistent: {length} bytes for "
                    f"{count} writers, {aggregators} aggregators, {subfiles} subfiles",
                )
            writers = _words(order, count)(index, body + 24)
            if max(writers) >= subfiles:
                raise _Damaged(
                    "md.idx", f"record {record} (writer map) names subfile {max(writers)} of {subfiles}"
                )
        elif kind == _STEP:
            raise _Damaged("md.idx", f"record {record} (step {step}) comes before any writer map")
        else:
            raise _Damaged("md.idx", f"record {record} at byte {pos} has unknown type {kind}")
        pos = body + length
        record += 1
    if beyond:
        raise _data_damage(beyond, last, data or {})


_WORDS: dict[tuple[str, int], Callable[[bytes, int], tuple[int, ...]]] = {}


def _words(order: str, count: int) -> Callable[[bytes, int], tuple[int, ...]]:
    """``unpack_from`` of ``count`` u64 words (compiled once per count: steps of a dataset share them)."""
    unpack = _WORDS.get((order, count))
    if unpack is None:
        if len(_WORDS) >= 256:
            _WORDS.clear()
        unpack = _WORDS[order, count] = struct.Struct(f"{order}{count}Q").unpack_from
    return unpack


def _check_step_metadata(
    md0: bytes, pos: int, size: int, writers: int, formats: Mapping[bytes, Format], order: str, step: int
) -> None:
    """One step's part of md.0: lengths that add up, blocks that are well-formed records of known formats."""
    head = 8 + 16 * writers
    if size < head:
        raise _Damaged(
            "md.idx", f"step {step}'s metadata is {size} bytes, less than the header of {writers} writers"
        )
    total, *lengths = _words(order, 1 + 2 * writers)(md0, pos)
    blocks = head - 8 + sum(lengths)
    if total != blocks:
        raise _Damaged("md.0", f"step {step}'s header says {total} bytes, its blocks add up to {blocks}")
    if total + 8 != size:
        raise _Damaged("md.idx", f"step {step}'s metadata is {size} bytes in md.idx, {total + 8} in md.0")
    at = pos + head
    for i, length in enumerate(lengths):
        if length:
            fmt = formats.get(md0[at : at + 12]) or formats.get(md0[at : at + 8])  # the ID_LENGTHS
            if fmt is None:
                what = "variable" if i < writers else "attribute"
                raise _Damaged(
                    "md.0",
                    f"step {step}, writer {i % writers}: the {what} block at byte {at} names "
                    "no format of mmd.0",
                )
            problem = fmt.check(md0, at, length)
            if problem:
                what = "variable" if i < writers else "attribute"
                raise _Damaged(
                    "md.0", f"step {step}, writer {i % writers}: the {what} block at byte {at} {problem}"
                )
        elif i < writers:
            raise _Damaged("md.0", f"step {step}, writer {i}: the variable block is empty")
        at += length


def _check_data_extents(
    index: bytes,
    pos: int,
    writers: tuple[int, ...],
    flushes: int,
    data: Mapping[int, int],
    order: str,
    step: int,
    beyond: list[tuple[int, int, int, int]],
    last: dict[int, int],
) -> None:
    """Each writer's data of one step lies inside its data.N file.

    A step reaching past the end of its file is noted in ``beyond`` as (step, rank, subfile,
    end): whether data.N was cut or md.idx has a wrong offset is decided after the last
    step (:func:`_data_damage`), from ``last``: where each subfile's last step ends, kept here.
    """
    per_writer = 2 * flushes + 1
    values = _words(order, len(writers) * per_writer)(index, pos)
    for rank, subfile in enumerate(writers):
        size = data.get(subfile)
        if size is None:
            raise _Damaged(
                f"data.{subfile}", f"missing, and md.idx says writer {rank} wrote step {step} to it"
            )
        first = rank * per_writer
        end = last[subfile] = values[first + per_writer - 1]
        if flushes == 1:
            end = max(end, values[first] + values[first + 1])
        else:
            for f in range(first, first + 2 * flushes, 2):
                end = max(end, values[f] + values[f + 1])
        if end > size:
            beyond.append((step, rank, subfile, end))


def _data_damage(
    beyond: list[tuple[int, int, int, int]], last: dict[int, int], data: Mapping[int, int]
) -> _Damaged:
    """Which file to blame for data that lies past the end of its data.N.

    A data.N cut short loses the end of the last steps written to it; an offset of md.idx
    damaged in one step leaves the later steps inside the file. ``last``: the end of each
    subfile's last step.
    """
    step, rank, subfile, end = beyond[0]
    size = data[subfile]
    if last.get(subfile, end) <= size:
        return _Damaged(
            "md.idx",
            f"step {step} of writer {rank} reaches byte {end} of data.{subfile}, which "
            f"has {size} bytes and holds the steps after it",
        )
    return _Damaged(
        f"data.{subfile}", f"md.idx says step {step} of writer {rank} reaches byte {end}, the file has {size}"
    )



def _check_metametadata(mmd0: bytes, order: str) -> dict[bytes, Format]:
    """Format ID → its :class:`~campaignvcs.extract.ffs.Format`, for every record of a well-formed mmd.0."""
    formats: dict[bytes, Format] = {}
    two = _U64X2[order]
    end, pos, record = len(mmd0), 0, 0
    while pos < end:
        if pos + 16 > end:
            raise _Damaged("mmd.0", f"record {record} at byte {pos} is cut off at byte {end}")
        id_length, format_length = two(mmd0, pos)
        stop = pos + 16 + id_length + format_length
        if id_length not in ID_LENGTHS or stop > end:
            raise _Damaged(
                "mmd.0",
                f"record {record} at byte {pos} ends at byte {stop} of {end}"
                if id_length in ID_LENGTHS
                else f"record {record} at byte {pos} has a {id_length}-byte format ID",
            )
        entry = mmd0[pos + 16 : stop]
        fmt = _FORMAT_CHECKED.get(entry)
        if fmt is None:
            try:
                fmt = check_format(entry[:id_length], entry[id_length:])
            except FormatError as exc:
                raise _Damaged("mmd.0", f"record {record}'s format {exc}") from None
            if len(_FORMAT_CHECKED) >= _FORMAT_CACHE_LIMIT:
                _FORMAT_CHECKED.clear()
            _FORMAT_CHECKED[entry] = fmt
        formats[entry[:id_length]] = fmt
        pos = stop
        record += 1
    return formats



_BP4_TYPES = frozenset({0, 1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 50, 51, 52, 54, 55})
"""BP4 element data types (BPBase::DataTypes)."""


def check_bp4(path: str, index: bytes, md0: bytes) -> None:
    """Refuse a BP4 dataset whose md.idx and md.0 are inconsistent (UnreadableDataset naming the file).

    BP4 keeps its data offsets inside each entry's characteristics, which are not read.
    """
    try:
        _check_bp4(index, md0)
    except _Damaged as exc:
        raise UnreadableDataset(f"{path}: {exc.name} is damaged ({exc.why})") from None
    except (struct.error, IndexError, ValueError, OverflowError):  # a case the checks above missed
        raise UnreadableDataset(
            f"{path}: md.idx or md.0 is damaged (lengths that lead outside the files)"
        ) from None


def _check_bp4(index: bytes, md0: bytes) -> None:
    order_flag, active = index[36], index[38]
    if order_flag > 1 or active > 1:
        raise _Damaged("md.idx", "header flags are not 0 or 1")
    order = "<" if order_flag == 0 else ">"
    records, rest = divmod(len(index) - INDEX_HEADER_SIZE, 64)
    if rest and not active:
        raise _Damaged(
            "md.idx",
            f"record {records} at byte {INDEX_HEADER_SIZE + 64 * records} is cut off at byte {len(index)}",
        )
    if records and (len(md0) < INDEX_HEADER_SIZE or not md0.startswith(MAGIC)):
        raise _Damaged("md.0", "it has no BP header")
    seven = struct.Struct(order + "7Q").unpack_from
    expected = INDEX_HEADER_SIZE
    for record in range(records):
        step, rank, pg, variables, attributes, end, _time = seven(index, INDEX_HEADER_SIZE + 64 * record)
        if step != record + 1 or rank:  # ADIOS2 files each record under its step and rank and reads rank 0
            raise _Damaged(
                "md.idx",
                f"record {record} is for step {step} of rank {rank}, not step {record + 1} of rank 0",
            )
        if pg != expected:
            raise _Damaged(
                "md.idx", f"record {record} (step {step}) starts at byte {pg} of md.0, not {expected}"
            )
        if end > len(md0) or not pg < variables < attributes < end:
            if end > len(md0) and pg < variables < attributes < end:
                raise _Damaged("md.0", f"step {step}'s metadata ends at byte {end} of {len(md0)}")
            raise _Damaged(
                "md.idx",
                f"record {record} (step {step}) has offsets {pg}, {variables}, {attributes}, "
                f"{end} into md.0, which are not in order",
            )
        chain = _bp4_step(md0, pg, end, order, step)
        if chain != (variables, attributes):
            raise _Damaged(
                "md.idx",
                f"record {record} (step {step}) places its indexes at bytes {variables} and "
                f"{attributes} of md.0, where md.0 has them at {chain[0]} and {chain[1]}",
            )
        expected = end


def _bp4_step(md0: bytes, pg: int, end: int, order: str, step: int) -> tuple[int, int]:
    """Walk one BP4 step in md.0; returns where its variable and attribute indexes start."""
    u32 = struct.Struct(order + "I").unpack_from
    count, length = struct.unpack_from(order + "QQ", md0, pg)
    at, stop = pg + 16, pg + 16 + length
    for _ in range(count):  # process-group index entries: u16 length, then that many bytes
        if at + 2 > stop:
            break
        at += 2 + struct.unpack_from(order + "H", md0, at)[0]
    if at != stop or stop > end:
        raise _Damaged("md.0", f"step {step}'s process-group index does not add up to its {length} bytes")
    starts = []
    for what in ("variable", "attribute"):
        starts.append(at)
        if at + 12 > end:
            raise _Damaged("md.0", f"step {step}'s {what} index at byte {at} is cut off")
        count = u32(md0, at)[0]
        length = struct.unpack_from(order + "Q", md0, at + 4)[0]
        at, stop = at + 12, at + 12 + length
        if stop > end:
            raise _Damaged(
                "md.0", f"step {step}'s {what} index ends at byte {stop}, after the step's end {end}"
            )
        seen = 0
        while at < stop:
            size = u32(md0, at)[0] if at + 4 <= stop else stop
            if at + 4 + size > stop:
                break
            _bp4_element(md0, at + 4, at + 4 + size, order, step, what)
            at += 4 + size
            seen += 1
        if at != stop or seen != count:
            raise _Damaged(
                "md.0",
                f"step {step}'s {what} index does not hold the {count} entries of {length} bytes "
                "it announces",
            )
    if at != end:
        raise _Damaged("md.0", f"step {step}'s indexes end at byte {at}, md.idx says {end}")
    return starts[0], starts[1]


def _bp4_element(md0: bytes, at: int, stop: int, order: str, step: int, what: str) -> None:
    """One BP4 index entry: member ID, group and name strings, type, characteristic sets that fill it."""
    h = struct.Struct(order + "H").unpack_from
    start = at
    at += 4  # member ID
    for _ in range(2):  # group name, element name
        if at + 2 > stop:
            break
        at += 2 + h(md0, at)[0]
    if at + 11 > stop or md0[at + 2] not in _BP4_TYPES:
        raise _Damaged("md.0", f"step {step}: the {what} entry at byte {start - 4} is malformed")
    sets = struct.unpack_from(order + "Q", md0, at + 3)[0]
    at += 11
    for _ in range(min(sets, stop - at)):
        if at + 5 > stop:
            break
        at += 5 + struct.unpack_from(order + "I", md0, at + 1)[0]
    if at != stop:
        raise _Damaged(
            "md.0",
            f"step {step}: the {what} entry at byte {start - 4} does not hold the {sets} "
            "characteristic sets it announces",
        )
