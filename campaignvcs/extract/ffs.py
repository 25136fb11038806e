"""FFS formats as BP5 metadata uses them: does a format match its ID, does a record stay inside itself?

BP5's mmd.0 holds the FFS formats a writer used; every block of md.0 is an FFS record of
one of them. ADIOS2 turns the offsets inside a record into pointers and follows them, so a
damaged offset or count is what makes it crash. This module knows FFS only — the layout
of a format representation, a record's header, its strings and variable arrays, and
BP5's rules for an array variable; :mod:`campaignvcs.extract.bpcheck` walks the BP files
and calls :func:`check_format` for each mmd.0 record and :meth:`Format.check` for each
md.0 block.

An FFS version-2 format ID is 12 bytes: version 2, the format's length / 4 (3 bytes),
and the two 32-bit halves of Bob Jenkins' lookup3 hash ("hashlittle2") of the format: a
checksum. Version-1 IDs (8 bytes, from a format server) carry neither.
"""

from __future__ import annotations

import struct
from math import prod
from operator import add, itemgetter, le

ID_LENGTHS = (12, 8)
"""FFS format ID lengths: version 2 (what ADIOS2 writes), version 1."""


class FormatError(Exception):
    """A format that does not match its ID or cannot be read; the message says how (``is 7 bytes``)."""


def check_format(format_id: bytes, rep: bytes) -> Format:
    """What records of this format look like, once its ID is shown to match it.

    A version-2 ID carries the format's length and hash, so any change to either is seen.
    Version-1 IDs (8 bytes, from a format server) carry neither; only the format's own
    length is checked.
    """
    if len(rep) < 8:
        raise FormatError(f"is {len(rep)} bytes")
    server_version = rep[3]
    rep_length = (rep[0] << 8 | rep[1]) + ((rep[6] << 24 | rep[7] << 16) if server_version > 0 else 0)
    if rep_length > len(rep) or rep_length < 8:
        raise FormatError(f"says it is {rep_length} bytes, it has {len(rep)}")
    if len(format_id) == 12:
        if format_id[0] != 2:
            raise FormatError(f"ID has version {format_id[0]}")
        id_length = (format_id[1] << 16 | format_id[2] << 8 | format_id[3]) << 2
        if id_length != rep_length or format_id[4:] != struct.pack(">II", *_lookup3(rep[:rep_length])):
            raise FormatError("does not match its ID (checksum)")
    elif format_id[0] != 1:
        raise FormatError(f"ID has version {format_id[0]}")
    # FFS record header: the ID, the record length (8 bytes from format version 2 on,
    # else 4 after padding to 4), padded to 8 bytes.
    length_at = len(format_id) + (0 if server_version >= 2 else -len(format_id) & 3)
    header = length_at + (8 if server_version >= 2 else 4)
    try:
        structs = _parse_rep(rep[:rep_length])
    except (struct.error, ValueError, IndexError):
        raise FormatError("cannot be parsed") from None
    return Format(header + (-header & 7), length_at, 8 if server_version >= 2 else 4, structs)


class Format:
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
        "layout",
        "layouts_ok",
        "records_ok",
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
        # What the array checks of the fast plan read: the pointer and count words.
        arrays = self.fast[0] if self.fast else []
        self.layout = itemgetter(*{a[0] for a in arrays} | {a[1] for a in arrays}) if arrays else None
        self.layouts_ok: set[tuple[int, object]] = set()
        """(record length, pointer and count words) whose arrays were found inside the record: a
        writer's variable blocks keep one layout from step to step and from dataset to dataset."""
        self.records_ok: set[bytes] | None = set() if self.data_size_at < 0 and self.plan else None
        """Whole records found well-formed, for formats without DataBlockSize (BP5's attribute
        blocks): a code writes the same attributes into every dataset; variable blocks carry
        min/max values and data offsets, which do not repeat."""

    def check(self, block: bytes, at: int, size: int) -> str:
        """What is wrong with the record in ``block[at:at + size]``; '' when nothing is.

        The answer depends on those bytes alone (DataBlockSize is read inside the record).
        """
        if self.header > size:
            return f"is {size} bytes, shorter than its header"
        if self.plan is None:
            return ""  # a format this check cannot read: its ID matched, nothing more is known
        memo = self.records_ok
        if memo is not None:
            record = block[at : at + size]
            if record in memo:
                return ""
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
            problem = _walk_fast(self, block, start, start + length, total)
        else:
            problem = _walk(self.plan, block, start, start, start + length, self.base, self.order, total)
        if memo is not None and not problem:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo.add(record)
        return problem


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


_MEMO_LIMIT = 1024
"""Entries each of a format's memos keeps (cleared when full): a few hundred KB at most."""


def _walk_fast(fmt: Format, block: bytes, start: int, limit: int, total: int) -> str:
    """:func:`_walk` for a plan made by :func:`_fast_plan`."""
    # Only called for a format that has a fast plan (words and fast are set).
    words = fmt.words.unpack_from(block, start)  # type: ignore[union-attr]
    base, length, order = fmt.base, limit - start, fmt.order
    arrays, rules, strings, nonzero, general = fmt.fast  # type: ignore[misc]
    if arrays:
        layout = (length, fmt.layout(words))  # type: ignore[misc]
        if layout not in fmt.layouts_ok:
            for pointer, counter, element, nullable, name in arrays:
                count = words[counter]
                if count:
                    offset = words[pointer]
                    if (offset < base or offset + count * element > length) and (offset or not nullable):
                        return (
                            f"has a broken array {name} ({count} elements at {offset} of a {length}-byte record)"
                        )
            if len(fmt.layouts_ok) >= _MEMO_LIMIT:
                fmt.layouts_ok.clear()
            fmt.layouts_ok.add(layout)
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
                if (
                    all(map(le, map(add, unpack(block, start + words[c[7]]), counts), shape))
                    and prod(shape) * c[8] < 1 << 63
                    and one[1](block, start + words[c[5]])[0] + prod(counts) * c[8] <= total
                ):
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
        for count_field in ("TotalElementSize", "ElementCount"):  # BP5 attributes have at least one value
            if count_field in fields and "Values" in fields:
                checks.append((3, fields[count_field][3], f"{st.name}.{count_field}"))
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
