"""Parse a big JSON document with the bulky values of some keys cut out (COCO's annotation files).

COCO's keypoint files are ~75% polygon segmentations and keypoint lists. Parsed whole (``json``
or ``orjson``) they become tens of millions of Python numbers: ~1 GB of memory and most of the
time. :func:`load_cut` instead finds every ``"<key>": <value>`` of the named keys, puts a marker
string in the value's place, parses the rest with orjson, and

- ``numeric`` keys (flat lists of a known count of numbers, e.g. ``keypoints``): parses the cut
  values, in batches, straight into one ``float32`` array per key (rows in file order);
- ``discard`` keys (e.g. ``segmentation``): parses the cut values in batches (so the whole file is
  still checked to be JSON) and keeps nothing.

Soundness: a cut value is parsed on its own and must be exactly one JSON value (a cut that ends
too early or too late is not); the rest must parse with the markers in value position; and the
caller checks with :meth:`Cut.rows_of` that every marker landed where that key was expected
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
    """End of the value of ``key`` starting at ``start``, or -1 to leave it in place.

    The guess (the first closing bracket that can end it) is checked later by parsing the cut
    value alone: a wrong guess never parses as exactly one value.
    """
    opening = raw[start:start + 2]
    if key in numeric:
        if opening[:1] != b"[":
            return -1
        end = raw.find(b"]", start) + 1
        ok = end > 0 and _NUMERIC_LIST.fullmatch(raw, start, end) is not None
        return end if ok and raw.count(b",", start, end) == numeric[key] - 1 else -1
    if opening == b"[[":
        end = raw.find(b"]]", start)
        return end + 2 if end >= 0 else -2
    if opening[:1] == b"[":
        end = raw.find(b"]", start)
        return end + 1 if end >= 0 else -2
    if opening[:1] == b"{":
        end = raw.find(b"}", start)
        return end + 1 if end >= 0 else -2
    return -1


def _check_batch(raw: memoryview, starts: array, ends: array, lo: int, hi: int) -> list:
    """Parse cut values ``lo:hi`` as one JSON list; each must be exactly one value."""
    text = b"[" + b",".join(raw[starts[i]:ends[i]] for i in range(lo, hi)) + b"]"
    parsed = orjson.loads(text)
    if len(parsed) != hi - lo:
        raise ValueError("a cut value is not one JSON value")
    return parsed


def _numeric_rows(raw: memoryview, starts: array, ends: array, count: int) -> np.ndarray:
    out = np.empty((len(starts), count), np.float32)
    for lo in range(0, len(starts), BATCH):
        hi = min(lo + BATCH, len(starts))
        block = np.asarray(_check_batch(raw, starts, ends, lo, hi), np.float32)
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
                starts, ends = spans[key]
                for lo in range(0, len(starts), BATCH):
                    _check_batch(view, starts, ends, lo, min(lo + BATCH, len(starts)))
        del raw  # the file's bytes are not needed past here: free them before the parse
        document = orjson.loads(rest)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    return Cut(document, values, {key: len(spans[key][0]) for key in keys})
