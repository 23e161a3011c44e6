"""Parse a big JSON document with the bulky values of some keys cut out (COCO's annotation files).

COCO's keypoint files are ~75% polygon segmentations and keypoint lists. Parsed whole (``json``
or ``orjson``) they become tens of millions of Python numbers: ~1 GB of memory and most of the
time. :func:`load_cut` instead finds every ``"<key>": <value>`` of the named keys, puts a marker
string in the value's place, parses the rest with orjson, and

- ``numeric`` keys (flat lists of a known count of numbers, e.g. ``keypoints``): parses the cut
  values, in batches, straight into one ``float32`` array per key (rows in file order);
- ``discard`` keys (e.g. ``segmentation``): parses the cut values in batches (so the whole file is
  still checked to be JSON) and keeps nothing.

Soundness: a cut value must be exactly one JSON value (a cut that ends too early or too late is
not): numeric ones are read with JSON's number syntax (integers vectorised, others by orjson),
objects are parsed, and discarded polygons are checked to hold only numbers, commas and balanced
brackets (their numbers are not parsed: nothing reads them); the rest must parse with the markers
in value position; and the caller checks with :meth:`Cut.rows_of` that every marker landed where that key was expected
(one per cut, in file order). The markers contain U+0000, which a valid JSON text can only
spell ``\\u0000``; files containing that escape are not cut. Whenever anything does not hold,
:func:`load_cut` returns None and the caller parses the file in full, so odd files get exactly
the full parser's behaviour and messages.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

BATCH = 4096  # cut values parsed per orjson call (bounded memory)
_WS = rb"[ \t\r\n]*"
_NUMERIC_LIST = re.compile(rb"\[[0-9eE+\-. \t\r\n,]*\]")
_LIST_CHARS = b"0123456789eE+-. \t\r\n,[]"
_NON_INTEGER = np.zeros(256, bool)  # characters of numbers that are not integers
_NON_INTEGER[list(b".eE+")] = True


def marker(key: str) -> str:
    """The string a cut value of ``key`` is replaced by in the parsed document."""
    return f"\x00cut:{key}"


@dataclass
class Cut:
    """The parsed document, and per numeric key the cut values as ``[rows, count]`` float32."""

    document: Any
    values: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # values cut per key (numeric and discard)

    def rows_of(self, key: str, objects: list) -> np.ndarray | None:
        """For each object of ``objects``, the row of its cut ``key`` value (-1: not cut), or None
        when the markers of ``key`` are not exactly one per cut value, all in these objects."""
        mark = marker(key)
        rows = np.full(len(objects), -1, np.int64)
        found = 0
        for i, obj in enumerate(objects):
            if type(obj) is dict and obj.get(key) == mark:
                rows[i] = found
                found += 1
        return rows if found == self.counts.get(key, 0) else None


def _value_end(raw: bytes, start: int, key: str, numeric: dict[str, int]) -> int:
    """End of the value of ``key`` starting at ``start``, -1 to leave it in place, -2 when it has
    no end (then the file is not valid JSON).

    The end is a guess (the first closing bracket that can end it), checked afterwards: a wrong
    guess never passes the checks of :func:`_check_discarded` and :func:`_numeric_rows`.
    """
    first = raw[start]
    if key in numeric:
        if first != 91:  # [
            return -1
        end = raw.find(b"]", start) + 1
        ok = end > 0 and _NUMERIC_LIST.fullmatch(raw, start, end) is not None
        return end if ok and raw.count(b",", start, end) == numeric[key] - 1 else -1
    if first == 91:
        nested = raw[start + 1] == 91
        end = raw.find(b"]]" if nested else b"]", start)
        return end + 1 + nested if end >= 0 else -2
    if first == 123:  # {
        end = raw.find(b"}", start)
        return end + 1 if end >= 0 else -2
    return -1


def _check_batch(raw: memoryview, starts: array, ends: array, picked) -> list:
    """Parse the cut values ``picked`` (indices) as one JSON list; each must be one value."""
    text = b"[" + b",".join(raw[starts[i]:ends[i]] for i in picked) + b"]"
    parsed = orjson.loads(text)
    if len(parsed) != len(picked):
        raise ValueError("a cut value is not one JSON value")
    return parsed


def _check_discarded(raw: memoryview, starts: array, ends: array) -> None:
    """Discarded values: objects (RLE masks) are parsed; lists (polygons) must hold only numbers,
    commas and balanced brackets. Their numbers are not parsed (nothing reads them)."""
    lists, objects = [], []
    for i in range(len(starts)):
        (lists if raw[starts[i]] == 91 else objects).append(i)
    for lo in range(0, len(objects), BATCH):
        _check_batch(raw, starts, ends, objects[lo:lo + BATCH])
    for lo in range(0, len(lists), BATCH):
        text = b",".join(raw[starts[i]:ends[i]] for i in lists[lo:lo + BATCH])
        if text.translate(None, _LIST_CHARS) or text.count(b"[") != text.count(b"]"):
            raise ValueError("a polygon holds something other than numbers")


def _integer_rows(text: bytes, rows: int, count: int) -> np.ndarray | None:
    """``[rows, count]`` from ``text`` = ``[a, b, ...],[...],...`` (checked: only digits, '-',
    commas, brackets, whitespace; ``count - 1`` commas per list) when every number is an integer
    of at most 15 digits (exact in float64) without leading zeros; None otherwise."""
    c = np.frombuffer(text, np.uint8)
    if rows == 0 or _NON_INTEGER[c].any():
        return None
    digit = (c - 48).astype(np.uint8) < 10
    edge = np.diff(digit.astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    width = ends - starts
    if len(starts) != rows * count or width.max() > 15 or ((width > 1) & (c[starts] == 48)).any():
        return None
    negative = c[starts - 1] == 45
    if np.count_nonzero(c == 45) != np.count_nonzero(negative):
        return None  # a '-' not right before a number
    commas = np.cumsum(c == 44, dtype=np.int32)
    if not (commas[starts[1:] - 1] - commas[ends[:-1] - 1] == 1).all():  # one comma between numbers
        return None
    value = np.zeros(len(starts), np.int64)
    for k in range(int(width.max())):
        pos = ends - 1 - k
        value += np.where(pos >= starts, c[np.maximum(pos, starts)].astype(np.int64) - 48, 0) * 10**k
    value[negative] *= -1
    return value.astype(np.float64).reshape(rows, count)


def _numeric_rows(raw: memoryview, starts: array, ends: array, count: int) -> np.ndarray:
    """The cut values of a numeric key as ``[rows, count]`` float32 (each number read as JSON
    reads it, to float64, then rounded to float32 as ``np.asarray(values, np.float32)`` does)."""
    out = np.empty((len(starts), count), np.float32)
    for lo in range(0, len(starts), BATCH):
        hi = min(lo + BATCH, len(starts))
        block = _integer_rows(b",".join(raw[starts[i]:ends[i]] for i in range(lo, hi)), hi - lo, count)
        if block is None:
            block = np.asarray(_check_batch(raw, starts, ends, range(lo, hi)), np.float32)
        if block.shape != (hi - lo, count):
            raise ValueError("a cut value is not a flat list of numbers")
        out[lo:hi] = block
    return out


def _cut(raw: bytes, numeric: dict[str, int], keys: list[str]) -> tuple[bytearray, dict] | None:
    """The document with markers in place of the cut values, and each key's cut ``(starts, ends)``."""
    pattern = re.compile(rb'"(' + b"|".join(re.escape(k.encode()) for k in keys) + rb')"' + _WS + b":" + _WS)
    marks = {key: orjson.dumps(marker(key)) for key in keys}
    spans = {key: (array("q"), array("q")) for key in keys}
    rest = bytearray()
    pos = 0
    with memoryview(raw) as view:
        for match in pattern.finditer(raw):
            start = match.end()
            if match.start() < pos:
                continue
            key = match.group(1).decode()
            end = _value_end(raw, start, key, numeric)
            if end == -2:
                return None
            if end < 0:
                continue
            rest += view[pos:start]
            rest += marks[key]
            spans[key][0].append(start)
            spans[key][1].append(end)
            pos = end
        rest += view[pos:]
    return rest, spans


def load_cut(path: Path, numeric: dict[str, int], discard: tuple[str, ...] = ()) -> Cut | None:
    """Parse the JSON file ``path`` with the values of ``numeric`` and ``discard`` keys cut out.

    ``numeric[key]`` is the count of numbers in each value of ``key`` (values that are not a flat
    list of that many numbers are left in the document). Returns None when the cut parse cannot
    be trusted or the text is not valid JSON: parse the file in full then. Raises OSError when
    the file cannot be read. Peak memory: the file's bytes plus what is left after the cut.
    """
    raw = Path(path).read_bytes()
    keys = [*numeric, *discard]
    cut = None if b"\\u0000" in raw else _cut(raw, numeric, keys)
    if cut is None:
        return None
    rest, spans = cut
    try:
        with memoryview(raw) as view:
            values = {key: _numeric_rows(view, *spans[key], count) for key, count in numeric.items()}
            for key in discard:
                _check_discarded(view, *spans[key])
        del raw  # the file's bytes are not needed past here: free them before the parse
        document = orjson.loads(rest)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    return Cut(document, values, {key: len(spans[key][0]) for key in keys})
