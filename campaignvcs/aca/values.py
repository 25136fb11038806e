"""Cell values of an archive camp did not write: checked, converted, and refused naming the archive.

hpc-campaign, its S3 path and hand edits store what SQLite lets them: a time may be an
integer, a float or text, a name a number. :class:`Cells` turns each cell into the type the
campaign model needs or raises :class:`MalformedArchive` naming the archive, the row and
the column; :mod:`campaignvcs.aca.read` reads every table through it.

**Times**: integers are kept as they are (hpc-campaign writes integer ns). Anything else
(the S3 path of hpc-campaign stores float *seconds*) is converted to integer ns, guessing
the unit by magnitude with ADIOS2's ``timeToSec`` thresholds (above 1e17 ns, above 1e14 µs,
above 1e11 ms, else s), because ADIOS2 is the reader whose view counts. A NULL time is 0
(unknown / not deleted).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from campaignvcs.errors import BadInput


class MalformedArchive(BadInput):
    """An archive camp cannot import: not SQLite, an unknown version, or inconsistent tables."""


class Cells:
    """Checks and conversions of cell values; every refusal names the archive as ``shown``."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def bad(self, problem: str) -> MalformedArchive:
        """The error to raise for ``problem``, naming the archive."""
        return MalformedArchive(f"{self.shown}: {problem}")

    def text(self, value: Any, what: str, column: str) -> str:
        """Text; numbers as their decimal text; NULL and blobs refused (``what`` names the row)."""
        if value is None:
            raise self.bad(f"{what} has NULL {column}")
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return str(value)
        raise self.bad(f"{what} has a {column} that is not text")

    def integer(self, value: Any, what: str, column: str) -> int:
        """An integer, or a float with an integral value; anything else refused."""
        if value is None:
            raise self.bad(f"{what} has NULL {column}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise self.bad(f"{what} has a {column} that is not an integer ({value!r})")

    def time(self, value: Any, what: str, column: str) -> int:
        """Integer ns: ints as they are, NULL as 0, other numbers converted by magnitude."""
        if value is None:
            return 0
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.bad(f"{what} has a {column} that is not a time ({value!r})") from None
        if not isinstance(value, float) or not math.isfinite(value):
            raise self.bad(f"{what} has a {column} that is not a time ({value!r})")
        return to_ns(value)


def to_ns(value: float) -> int:
    """Integer nanoseconds from a time in s, ms, µs or ns, guessed by magnitude like ADIOS2."""
    magnitude = abs(value)
    if magnitude > 99_999_999_999_999_999:
        factor = 1
    elif magnitude > 99_999_999_999_999:
        factor = 1_000
    elif magnitude > 99_999_999_999:
        factor = 1_000_000
    else:
        factor = 1_000_000_000
    # Exact arithmetic: float(1661932050.25) * 1e9 would land 128 ns off.
    return round(Fraction(value) * factor)
