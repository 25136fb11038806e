"""Is a BP5/BP4 dataset's metadata whole? Structure checks on the bytes camp add reads anyway.

The archive camp builds embeds md.idx, md.0 and mmd.0 byte for byte, and a damaged one
makes ADIOS2 refuse, misread or crash on the whole campaign, so a damaged dataset is
refused at ``camp add`` (and reported by ``camp verify``) with one line naming the file.
No adios2: the layout below is read directly; what it can and cannot see is in
docs/verify.md.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Mapping

from campaignvcs.errors import UnreadableDataset

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
# BP5 mmd.0: records of u64 ID length, u64 format length, the ID, the format. An FFS
#   version-2 ID is 12 bytes: version 2, the format's length / 4 (3 bytes), and the two
#   32-bit halves of Bob Jenkins' lookup3 hash ("hashlittle2") of the format: a checksum.
# BP4 md.idx: a 64-byte header, then one 64-byte record per step: step, rank, offsets in
#   md.0 of the step's process-group, variable and attribute indexes and of its end, time.
# BP4 md.0: a 64-byte header, then per step: u64 count, u64 length, the process-group index;
#   u32 count, u64 length, the variable index; the same for attributes. Each index entry is
#   a u32 length and that many bytes.

_BP5_MINOR = 2
"""The only BP5 minor version ADIOS2 (2.8 to 2.12) reads."""
_WRITER_MAP, _STEP = 0x77, 0x73  # 'w', 's'
_FORMAT_CHECKED: dict[bytes, _Format] = {}
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


def _check_bp5(index: bytes, md0: bytes, mmd0: bytes, data: Mapping[int, int] | None) -> None:
    order_flag, minor, active, major_order, flatten = index[36], index[38], index[39], index[40], index[41]
    if order_flag > 1:
        raise _Damaged("md.idx", f"byte-order flag is {order_flag}, not 0 or 1")
    if minor != _BP5_MINOR:
        raise _Damaged("md.idx", f"BP5 minor version {minor}; ADIOS2 reads 5.{_BP5_MINOR} only")
    if active > 1 or flatten > 1 or major_order not in b"yn":
        raise _Damaged("md.idx", "header flags are not 0/1 and 'y'/'n'")
    order = "<" if order_flag == 0 else ">"
    u64 = struct.Struct(order + "Q").unpack_from
    three = struct.Struct(order + "QQQ").unpack_from
    formats = _check_metametadata(mmd0, order)
    end, pos, record, step, md_end = len(index), INDEX_HEADER_SIZE, 0, 0, 0
    writers: tuple[int, ...] = ()
    beyond: list[tuple[int, int, int, int]] = []
    last: dict[int, int] = {}
    while pos < end:
        length = u64(index, pos + 1)[0] if pos + 9 <= end else end
        body = pos + 9
        if body + length > end:
            if active:
                break  # the writer is appending this record right now
            raise _Damaged("md.idx", f"record {record} at byte {pos} is cut off at byte {end}")
        kind = index[pos]
        if kind == _WRITER_MAP:
            count, aggregators, subfiles = three(index, body) if length >= 24 else (0, 0, 0)
            if length != 8 * (3 + count) or not 0 < aggregators <= count or not 0 < subfiles <= count:
                raise _Damaged(
                    "md.idx",
                    f"record {record} (writer map) is inconsistent: {length} bytes for "
                    f"{count} writers, {aggregators} aggregators, {subfiles} subfiles",
                )
            writers = struct.unpack_from(f"{order}{count}Q", index, body + 24)
            if max(writers) >= subfiles:
                raise _Damaged(
                    "md.idx", f"record {record} (writer map) names subfile {max(writers)} of {subfiles}"
                )
        elif kind == _STEP:
            if not writers:
                raise _Damaged("md.idx", f"record {record} (step {step}) comes before any writer map")
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
            if mpos + msize > len(md0):
                stated = u64(md0, mpos)[0] + 8 if mpos + 8 <= len(md0) else msize
                if mpos + stated <= len(md0):  # md.0 holds a whole step there: md.idx's length is wrong
                    raise _Damaged(
                        "md.idx", f"step {step}'s metadata is {msize} bytes in md.idx, {stated} in md.0"
                    )
                raise _Damaged("md.0", f"step {step}'s metadata ends at byte {mpos + msize} of {len(md0)}")
            _check_step_metadata(md0, mpos, msize, len(writers), formats, order, step)
            if data is not None and not active:  # an active writer may still be writing data
                _check_data_extents(index, body + 24, writers, flushes, data, order, step, beyond)
                for rank, subfile in enumerate(writers):  # where each subfile's last step ends
                    last[subfile] = u64(index, body + 24 + 8 * ((rank + 1) * (2 * flushes + 1) - 1))[0]
            md_end = mpos + msize
            step += 1
        else:
            raise _Damaged("md.idx", f"record {record} at byte {pos} has unknown type {kind}")
        pos = body + length
        record += 1
    if beyond:
        raise _data_damage(beyond, last, data or {})


def _check_step_metadata(
    md0: bytes, pos: int, size: int, writers: int, formats: Mapping[bytes, _Format], order: str, step: int
) -> None:
    """One step's part of md.0: lengths that add up, blocks that are well-formed records of known formats."""
    head = 8 + 16 * writers
    if size < head:
        raise _Damaged(
            "md.idx", f"step {step}'s metadata is {size} bytes, less than the header of {writers} writers"
        )
    total = struct.unpack_from(order + "Q", md0, pos)[0]
    lengths = struct.unpack_from(f"{order}{2 * writers}Q", md0, pos + 8)
    if total != head - 8 + sum(lengths):
        raise _Damaged(
            "md.0", f"step {step}'s header says {total} bytes, its blocks add up to {head - 8 + sum(lengths)}"
        )
    if total + 8 != size:
        raise _Damaged("md.idx", f"step {step}'s metadata is {size} bytes in md.idx, {total + 8} in md.0")
    at = pos + head
    for i, length in enumerate(lengths):
        if length:
            fmt = None
            for id_length in _ID_LENGTHS:
                fmt = formats.get(md0[at : at + id_length])
                if fmt is not None:
                    break
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
) -> None:
    """Each writer's data of one step lies inside its data.N file.

    A step reaching past the end of its file is noted in ``beyond`` as (step, rank, subfile,
    end): whether data.N was cut or md.idx has a wrong offset is decided after the last
    step (:func:`_data_damage`).
    """
    values = struct.unpack_from(f"{order}{len(writers) * (2 * flushes + 1)}Q", index, pos)
    per_writer = 2 * flushes + 1
    for rank, subfile in enumerate(writers):
        size = data.get(subfile)
        if size is None:
            raise _Damaged(
                f"data.{subfile}", f"missing, and md.idx says writer {rank} wrote step {step} to it"
            )
        first = rank * per_writer
        end = values[first + per_writer - 1]
        for f in range(flushes):
            end = max(end, values[first + 2 * f] + values[first + 2 * f + 1])
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


_ID_LENGTHS = (12, 8)
"""FFS format ID lengths: version 2 (what ADIOS2 writes), version 1."""


def _check_metametadata(mmd0: bytes, order: str) -> dict[bytes, _Format]:
    """Format ID → its :class:`_Format`, for every record of a well-formed mmd.0."""
    formats: dict[bytes, _Format] = {}
    two = struct.Struct(order + "QQ").unpack_from
    end, pos, record = len(mmd0), 0, 0
    while pos < end:
        if pos + 16 > end:
            raise _Damaged("mmd.0", f"record {record} at byte {pos} is cut off at byte {end}")
        id_length, format_length = two(mmd0, pos)
        stop = pos + 16 + id_length + format_length
        if id_length not in _ID_LENGTHS or stop > end:
            raise _Damaged(
                "mmd.0",
                f"record {record} at byte {pos} ends at byte {stop} of {end}"
                if id_length in _ID_LENGTHS
                else f"record {record} at byte {pos} has a {id_length}-byte format ID",
            )
        entry = mmd0[pos + 16 : stop]
        fmt = _FORMAT_CHECKED.get(entry)
        if fmt is None:
            fmt = _check_format(entry[:id_length], entry[id_length:], record)
            if len(_FORMAT_CHECKED) >= _FORMAT_CACHE_LIMIT:
                _FORMAT_CHECKED.clear()
            _FORMAT_CHECKED[entry] = fmt
        formats[entry[:id_length]] = fmt
        pos = stop
        record += 1
    return formats


def _check_format(format_id: bytes, rep: bytes, record: int) -> _Format:
    """What records of this format look like, once its ID is shown to match it.

    A version-2 ID carries the format's length and hash, so any change to either is seen.
    Version-1 IDs (8 bytes, from a format server) carry neither; only the format's own
    length is checked.
    """
    if len(rep) < 8:
        raise _Damaged("mmd.0", f"record {record}'s format is {len(rep)} bytes")
    server_version = rep[3]
    rep_length = (rep[0] << 8 | rep[1]) + ((rep[6] << 24 | rep[7] << 16) if server_version > 0 else 0)
    if rep_length > len(rep) or rep_length < 8:
        raise _Damaged("mmd.0", f"record {record}'s format says it is {rep_length} bytes, it has {len(rep)}")
    if len(format_id) == 12:
        if format_id[0] != 2:
            raise _Damaged("mmd.0", f"record {record}'s format ID has version {format_id[0]}")
        id_length = (format_id[1] << 16 | format_id[2] << 8 | format_id[3]) << 2
        if id_length != rep_length or format_id[4:] != struct.pack(">II", *_lookup3(rep[:rep_length])):
            raise _Damaged("mmd.0", f"record {record}'s format does not match its ID (checksum)")
    elif format_id[0] != 1:
        raise _Damaged("mmd.0", f"record {record}'s format ID has version {format_id[0]}")
    # FFS record header: the ID, the record length (8 bytes from format version 2 on,
    # else 4 after padding to 4), padded to 8 bytes.
    length_at = len(format_id) + (0 if server_version >= 2 else -len(format_id) & 3)
    header = length_at + (8 if server_version >= 2 else 4)
    try:
        structs = _parse_rep(rep[:rep_length])
    except (struct.error, ValueError, IndexError):
        raise _Damaged("mmd.0", f"record {record}'s format cannot be parsed") from None
    return _Format(header + (-header & 7), length_at, 8 if server_version >= 2 else 4, structs)


class _Format:
    """An FFS format as far as checking its records needs: header layout and where pointers are.

    An FFS record is the format ID, for formats with strings or variable arrays the record
    length, padding to 8 bytes, the fixed part (``base`` bytes) and the variable part. A
    string or variable array is stored in the fixed part as its offset from the record's
    start; ADIOS2 turns these offsets into pointers and follows them, so an offset or an
    element count that leads outside the record is what makes it crash.
    """

    __slots__ = (
        "header",
        "length_at",
        "length_code",
        "order",
        "base",
        "plan",
        "data_size_at",
        "words",
        "fast",
    )

    def __init__(self, header: int, length_at: int, length_size: int, structs: list[_Struct] | None) -> None:
        self.plan = _compile(structs) if structs else None
        top = {f[0]: f for f in structs[0].fields} if structs else {}
        # BP5's "DataBlockSize": this writer's data bytes in this step, which every block lies in
        size_field = top.get("DataBlockSize")
        self.data_size_at = (
            size_field[3] if size_field and size_field[1] == "integer" and size_field[2] == 8 else -1
        )
        variant = self.plan is None or any(c[0] != 2 for c in self.plan)
        self.order = structs[0].order if structs else "<"
        self.base = structs[0].size if structs else 0
        self.length_code = self.order + ("Q" if length_size == 8 else "I") if variant else ""
        self.length_at = length_at
        self.header = header if variant else length_at + (-length_at & 7)
        self.words, self.fast = _fast_plan(self.plan, self.base, self.order)

    def check(self, block: bytes, at: int, size: int) -> str:
        """What is wrong with the record in ``block[at:at + size]``; '' when nothing is."""
        if self.header > size:
            return f"is {size} bytes, shorter than its header"
        if self.plan is None:
            return ""  # a format this check cannot read: its ID matched, nothing more is known
        start = at + self.header
        length = (
            struct.unpack_from(self.length_code, block, at + self.length_at)[0]
            if self.length_code
            else self.base
        )
        if length < self.base or self.header + length > size:
            return f"is {size} bytes and says it holds a record of {length}"
        total = (
            struct.unpack_from(self.order + "Q", block, start + self.data_size_at)[0]
            if self.data_size_at >= 0
            else -1
        )
        if self.fast is not None:
            return _walk_fast(self, block, start, start + length, total)
        return _walk(self.plan, block, start, start, start + length, self.base, self.order, total)


def _fast_plan(plan: list[tuple] | None, base: int, order: str) -> tuple[struct.Struct | None, tuple | None]:
    """The checks of ``plan`` on a fixed part read with one ``unpack`` as 8-byte words.

    Most of the check's time is spent on BP5's variable blocks, one per writer and step,
    whose fixed part is all 8-byte counts and offsets: reading it at once, indexing the
    words and grouping the checks by kind (arrays before the rules that read them) halves
    the cost. Checks on nested structs (attribute arrays) keep the general path. Returns
    (words, (arrays, rules, strings, non-zero counts, general checks)).
    """
    if plan is None or base % 8 or not base:
        return None, None
    arrays: list[tuple] = []
    rules: list[tuple] = []
    strings: list[tuple] = []
    nonzero: list[tuple] = []
    general: list[tuple] = []
    for c in plan:
        offsets = (c[1], c[2]) if c[0] == 1 else c[1:8] if c[0] == 2 else (c[1],)
        if any(o >= 0 and (o % 8 or o >= base) for o in offsets) or (
            c[0] == 1 and (c[3][1] != "Q" or c[5] or c[6])
        ):
            general.append(c)
        elif c[0] == 1:
            arrays.append((c[1] // 8, c[2] // 8, c[4], c[8], c[7]))
        elif c[0] == 2:
            rules.append((2, *(o // 8 if o >= 0 else -1 for o in c[1:8]), c[8], c[9]))
        else:
            (strings if c[0] == 0 else nonzero).append((c[1] // 8, c[2]))
    return struct.Struct(f"{order}{base // 8}Q"), (arrays, rules, strings, nonzero, general)


def _walk_fast(fmt: _Format, block: bytes, start: int, limit: int, total: int) -> str:
    """:func:`_walk` for a plan made by :func:`_fast_plan`."""
    words = fmt.words.unpack_from(block, start)
    base, length, order = fmt.base, limit - start, fmt.order
    arrays, rules, strings, nonzero, general = fmt.fast
    for pointer, counter, element, nullable, name in arrays:
        count = words[counter]
        if count:
            offset = words[pointer]
            if (offset < base or offset + count * element > length) and (offset or not nullable):
                return f"has a broken array {name} ({count} elements at {offset} of a {length}-byte record)"
    one = _WORDS_BY_COUNT[order]
    for c in rules:
        dims = words[c[1]]
        if (
            words[c[2]] == 1
            and dims == words[c[3]]
            and 0 < dims < 9
            and c[6] >= 0
            and c[7] >= 0
            and total >= 0
        ):
            shape_at = words[c[6]]
            if shape_at:
                # the usual global array written as one block: _check_array_words's rules, inline
                unpack = one[dims]
                counts = unpack(block, start + words[c[4]])
                shape = unpack(block, start + shape_at)
                offsets = unpack(block, start + words[c[7]])
                size = volume = c[8]
                for i in range(dims):
                    if offsets[i] + counts[i] > shape[i]:
                        break
                    size *= counts[i]
                    volume *= shape[i]
                else:
                    if volume < 1 << 63 and one[1](block, start + words[c[5]])[0] + size <= total:
                        continue
        problem = _check_array_words(c, words, block, start, order, total)
        if problem:
            return problem
    for at, name in strings:
        if not _string_ok(block, words[at], start, limit, base):
            return f"has a broken string {name}"
    for at, name in nonzero:
        if not words[at]:
            return f"has an empty {name}"
    return _walk(general, block, start, start, limit, base, order, total) if general else ""


_WORDS_BY_COUNT = {o: [struct.Struct(f"{o}{n}Q").unpack_from for n in range(9)] for o in "<>"}


def _check_array_words(
    c: tuple, words: tuple[int, ...], block: bytes, start: int, order: str, total: int
) -> str:
    """BP5's rules for one array variable, its counts and offsets read into ``words``.

    Dims x BlockCount = DBCount; the blocks lie inside the global shape, which stays below
    2**63 bytes, and inside the data the writer wrote this step (the arrays themselves were
    checked to lie inside the record before).
    """
    dims, blocks, both = words[c[1]], words[c[2]], words[c[3]]
    if dims * blocks != both:
        return f"has {c[9]} with {dims} dimensions x {blocks} blocks != {both}"
    if not blocks:
        return ""
    counts = struct.unpack_from(f"{order}{both}Q", block, start + words[c[4]]) if both else ()
    shape_at = words[c[6]] if c[6] >= 0 else 0
    if shape_at and both and c[7] >= 0:
        shape = struct.unpack_from(f"{order}{dims}Q", block, start + shape_at)
        volume = max(c[8], 1)
        for n in shape:
            volume *= n
        if volume >= 1 << 63:
            return f"has a global array of {volume} bytes, more than 64-bit offsets reach"
        offsets = struct.unpack_from(f"{order}{both}Q", block, start + words[c[7]])
        for i in range(both):
            if offsets[i] + counts[i] > shape[i % dims]:
                return (
                    f"has block {i // dims} of a global array reaching {offsets[i] + counts[i]} in a "
                    f"dimension of {shape[i % dims]}"
                )
    if total >= 0:
        places = struct.unpack_from(f"{order}{blocks}Q", block, start + words[c[5]])
        element = c[8]
        if dims == 1:
            sizes = [element * n for n in counts] if both else [element] * blocks
        else:
            sizes = []
            for b in range(blocks):
                size = element
                for n in counts[b * dims : (b + 1) * dims]:
                    size *= n
                sizes.append(size)
        for b in range(blocks):
            if places[b] + sizes[b] > total:
                return (
                    f"places block {b} of an array at bytes {places[b]}-{places[b] + sizes[b]} of the "
                    f"{total} written"
                )
    return ""


class _Struct:
    """One (sub)format of an FFS format: name, fixed size, fields (name, type, size, offset)."""

    __slots__ = ("name", "size", "fields", "order")

    def __init__(self, name: str, size: int, fields: list[tuple[str, str, int, int]], order: str) -> None:
        self.name, self.size, self.fields, self.order = name, size, fields, order


def _parse_rep(rep: bytes) -> list[_Struct] | None:
    """The structs of an FFS format representation (the top one first); None for the old version 0."""

    def text(buf: bytes, at: int) -> str:
        return buf[at : buf.index(b"\0", at)].decode("utf-8", "replace")

    structs = []
    at = 8
    for _ in range(rep[4] + 1):
        version = rep[at + 2]
        if version == 0:
            return None
        length = (rep[at] << 8 | rep[at + 1]) + (rep[at + 24] << 24 | rep[at + 25] << 16)
        order = ">" if rep[at + 3] & 1 else "<"
        name_at, count, size = struct.unpack_from(order + "IIi", rep, at + 4)
        sub = rep[at : at + length]
        fields_at = rep[at + 17]
        fields = []
        for i in range(count):
            name, kind, field_size, offset = struct.unpack_from(order + "IIii", sub, fields_at + 16 * i)
            fields.append((text(sub, name), text(sub, kind), field_size, offset))
        structs.append(_Struct(text(sub, name_at), size, fields, order))
        if length < 28:
            raise ValueError("short subformat")
        at += length
    return structs


_COUNT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _compile(structs: list[_Struct]) -> list[tuple] | None:
    """Checks for records of ``structs[0]``; None when a field has a type this check does not know.

    (0, offset, name): a string. (1, offset, count offset, count code, element size, element
    checks, elements are strings, name, may be NULL): a variable array. (2, offsets of Dims,
    BlockCount, DBCount, Count, DataBlockLocation, Shape, Offset, element size, name): BP5's
    rules for an array variable. (3, offset, name): a count that must not be 0.
    """
    by_name = {s.name: s for s in structs}

    def shifted(plan: list[tuple], delta: int, element: int) -> list[tuple]:
        out = []
        for c in plan:
            if c[0] == 0:
                out.append((0, c[1] + delta, c[2]))
            elif c[0] == 1:
                out.append((1, c[1] + delta, c[2] + delta, *c[3:]))
            elif c[0] == 2:
                out.append((2, *(x + delta if x >= 0 else x for x in c[1:8]), element, c[9]))
            else:
                out.append((3, c[1] + delta, c[2]))
        return out

    def plan_of(st: _Struct, depth: int) -> list[tuple]:
        if depth > 8:
            raise ValueError("formats nest too deep")
        fields = {f[0]: f for f in st.fields}
        checks: list[tuple] = []
        for name, kind, size, offset in st.fields:
            base, _, rest = kind.partition("[")
            base = base.strip()
            dims = [d.strip() for d in ("[" + rest).split("[")[1:]] if rest else []
            dims = [d.rstrip("]").strip() for d in dims]
            if "*" in base or "(" in base:
                raise ValueError("pointer field")
            variable = [d for d in dims if not d.isdigit()]
            repeat = 1
            for d in dims:
                if d.isdigit():
                    repeat *= int(d)
            sub = by_name.get(base)
            if variable:
                counter = fields.get(variable[0])
                if len(variable) > 1 or counter is None or counter[2] not in _COUNT_CODES:
                    raise ValueError("unsupported variable array")
                inner = plan_of(sub, depth + 1) if sub is not None else None
                if inner is not None and repeat != 1:
                    raise ValueError("unsupported array of structs")
                # BP5 leaves Shape and Offset NULL for local arrays
                checks.append(
                    (
                        1,
                        offset,
                        counter[3],
                        st.order + _COUNT_CODES[counter[2]],
                        size * repeat,
                        inner or None,
                        base == "string",
                        name,
                        name in ("Shape", "Offset", "Offsets"),
                    )
                )
            elif base == "string":
                checks.extend((0, offset + k * size, name) for k in range(repeat))
            elif sub is not None:
                inner = plan_of(sub, depth + 1)
                # BP5 names an array's field BP<shape>_<element size>_<type>_<name>; compressed
                # arrays (MetaArrayOp...) store other sizes than count x element size
                parts = name.split("_", 2)
                element = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() and "Op" not in base else 0
                for k in range(repeat):
                    checks.extend(shifted(inner, offset + k * size, element))
        names = ("Dims", "BlockCount", "DBCount", "Count", "DataBlockLocation", "Shape", "Offset")
        if set(names[:5]) <= fields.keys():
            checks.append((2, *(fields[n][3] if n in fields else -1 for n in names), 0, st.name))
        for counter in ("TotalElementSize", "ElementCount"):  # BP5 attributes have at least one value
            if counter in fields and "Values" in fields:
                checks.append((3, fields[counter][3], f"{st.name}.{counter}"))
        return checks

    try:
        return plan_of(structs[0], 0)
    except (ValueError, KeyError):
        return None


def _walk(
    plan: list[tuple], block: bytes, at: int, start: int, limit: int, base: int, order: str, total: int
) -> str:
    """Run ``plan`` on the struct at ``block[at:]`` of the record ``block[start:limit]``.

    ``total``: the writer's data bytes in this step (BP5's DataBlockSize), -1 if unknown.
    """
    u64 = order + "Q"
    for c in plan:
        kind = c[0]
        if kind == 1:
            count = struct.unpack_from(c[3], block, at + c[2])[0]
            if not count:
                continue
            offset = struct.unpack_from(u64, block, at + c[1])[0]
            if not offset and c[8]:
                continue
            if offset < base or start + offset + count * c[4] > limit:
                size = limit - start
                return f"has a broken array {c[7]} ({count} elements at {offset} of a {size}-byte record)"
            first = start + offset
            if c[5] is not None:
                for k in range(count):
                    problem = _walk(c[5], block, first + k * c[4], start, limit, base, order, total)
                    if problem:
                        return problem
            elif c[6]:
                for k in range(count):
                    if not _string_ok(
                        block, struct.unpack_from(u64, block, first + 8 * k)[0], start, limit, base
                    ):
                        return f"has a broken string in {c[7]}"
        elif kind == 0:
            if not _string_ok(block, struct.unpack_from(u64, block, at + c[1])[0], start, limit, base):
                return f"has a broken string {c[2]}"
        elif kind == 2:
            problem = _check_array(c, block, at, start, order, total)
            if problem:
                return problem
        elif not struct.unpack_from(u64, block, at + c[1])[0]:
            return f"has an empty {c[2]}"
    return ""


def _check_array(c: tuple, block: bytes, at: int, start: int, order: str, total: int) -> str:
    """BP5's rules for the array variable whose struct is at ``block[at:]``: :func:`_check_array_words`."""
    u64 = order + "Q"
    words = tuple(struct.unpack_from(u64, block, at + o)[0] if o >= 0 else 0 for o in c[1:8])
    where = (2, 0, 1, 2, 3, 4, 5 if c[6] >= 0 else -1, 6 if c[7] >= 0 else -1, c[8], c[9])
    return _check_array_words(where, words, block, start, order, total)


def _string_ok(block: bytes, offset: int, start: int, limit: int, base: int) -> bool:
    """A string inside the record, NUL-terminated and UTF-8 (ADIOS2's Python API decodes every name)."""
    if offset < base or start + offset >= limit:
        return False
    end = block.find(b"\0", start + offset, limit)
    if end < 0:
        return False
    try:
        block[start + offset : end].decode()
    except UnicodeDecodeError:
        return False
    return True


_M32 = 0xFFFFFFFF
_WORDS = struct.Struct("<3I").unpack_from


def _lookup3(data: bytes) -> tuple[int, int]:
    """Bob Jenkins' lookup3 ``hashlittle2`` of ``data`` with zero seeds: (primary, secondary)."""
    m = _M32
    a = b = c = (0xDEADBEEF + len(data)) & m
    full = len(data) - 12
    i = 0
    while i < full:
        x, y, z = _WORDS(data, i)
        b = (b + y) & m
        c = (c + z) & m
        a = (a + x - c) & m
        a ^= ((c << 4) | (c >> 28)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 6) | (a >> 26)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 8) | (b >> 24)) & m
        b = (b + a) & m
        a = (a - c) & m
        a ^= ((c << 16) | (c >> 16)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 19) | (a >> 13)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 4) | (b >> 28)) & m
        b = (b + a) & m
        i += 12
    if i == len(data):
        return c, b
    x, y, z = _WORDS(data[i:].ljust(12, b"\0"))
    a, b, c = (a + x) & m, (b + y) & m, (c + z) & m
    c = ((c ^ b) - (((b << 14) | (b >> 18)) & m)) & m
    a = ((a ^ c) - (((c << 11) | (c >> 21)) & m)) & m
    b = ((b ^ a) - (((a << 25) | (a >> 7)) & m)) & m
    c = ((c ^ b) - (((b << 16) | (b >> 16)) & m)) & m
    a = ((a ^ c) - (((c << 4) | (c >> 28)) & m)) & m
    b = ((b ^ a) - (((a << 14) | (a >> 18)) & m)) & m
    c = ((c ^ b) - (((b << 24) | (b >> 8)) & m)) & m
    return c, b


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
