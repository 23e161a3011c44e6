"""Parse a big JSON document with the bulky values of some keys cut out (COCO's annotation files).

COCO's keypoint files are ~75% polygon segmentations and keypoint lists. Parsed whole (``json``
or ``orjson``) they become tens of millions of Python numbers: ~1 GB of memory and most of the
time. :func:`load_cut` instead replaces every ``"<key>": <value>`` of the named keys by a marker
string (``re.sub`` with a literal replacement: C speed), parses the rest with orjson, and

- ``numeric`` keys (flat lists of a known count of numbers, e.g. ``keypoints``): reads the cut
  values, in batches, straight into one ``float32`` array per key (rows in file order);
- ``discard`` keys (e.g. ``segmentation``): keeps nothing.

Soundness: every cut value is exactly one JSON value: numeric lists are matched as ``[`` number
characters and commas ``]`` and read with JSON's number syntax (integers vectorised, others by
orjson); polygons are matched as lists of such lists (their numbers are not parsed: nothing reads
them); RLE objects are parsed. The rest must parse with the markers in value position, and the
caller checks with :meth:`Cut.rows_of` that every marker landed where that key was expected (one
per cut, in file order). The markers contain U+0000, which a valid JSON text can only
spell ``\\u0000``; files containing that escape are not cut. Whenever anything does not hold,
:func:`load_cut` returns None and the caller parses the file in full, so odd files get exactly
the full parser's behaviour and messages.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

BATCH = 4096  # cut values parsed per orjson call (bounded memory)
_WS = rb"[ \t\r\n]*"
_LIST = rb"\[[0-9eE+\-. \t\r\n,]*\]"  # a flat list of number characters and commas
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
        try:  # in C: objects[i].get(key) == marker, for every object
            flags = np.fromiter(map(operator.eq, map(dict.get, objects, repeat(key)), repeat(marker(key))), bool, len(objects))
        except TypeError:  # an object that is not a dict
            return None
        found = int(flags.sum())
        rows = np.where(flags, np.cumsum(flags) - 1, -1)
        return rows if found == self.counts.get(key, 0) else None


def _check_objects(values: list) -> None:
    """Parse cut values (bytes-like) in batches; each must be exactly one JSON value."""
    for lo in range(0, len(values), BATCH):
        picked = values[lo:lo + BATCH]
        if len(orjson.loads(b"[" + b",".join(picked) + b"]")) != len(picked):
            raise ValueError("a cut value is not one JSON value")


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


def _numeric_rows(values: list[bytes], count: int) -> np.ndarray:
    """Cut values of a numeric key (``[...]`` texts) as ``[rows, count]`` float32: each number read
    as JSON reads it, to float64, then rounded as ``np.asarray(values, np.float32)`` does.
    ValueError when one is not a list of ``count`` numbers."""
    out = np.empty((len(values), count), np.float32)
    for lo in range(0, len(values), BATCH):
        picked = values[lo:lo + BATCH]
        block = _integer_rows(b",".join(picked), len(picked), count)
        if block is None:
            block = np.asarray(orjson.loads(b"[" + b",".join(picked) + b"]"), np.float32)
        if block.shape != (len(picked), count):
            raise ValueError("a cut value is not a flat list of numbers")
        out[lo:lo + len(picked)] = block
    return out


def _cut_discarded(raw: bytes, key: str) -> tuple[bytes, int]:
    """``raw`` with the values of ``key`` that are lists of lists of numbers (polygons) or flat
    objects (RLE masks) replaced by the key's marker, and how many. The polygon pattern admits
    only number characters and commas inside the inner lists (their numbers are not parsed:
    nothing reads them); objects are parsed. Values of other forms stay (parsed with the rest)."""
    head = b'"' + key.encode() + b'"'
    lead = re.escape(head) + _WS + b":" + _WS
    polygons = re.compile(lead + rb"\[" + _WS + _LIST + rb"(?:" + _WS + b"," + _WS + _LIST + rb")*" + _WS + rb"\]")
    objects = re.compile(lead + rb"(\{[^{}]*\})")
    replacement = head + b": " + orjson.dumps(marker(key)).replace(b"\\", b"\\\\")  # literal: re.sub stays in C
    rest, lists = polygons.subn(replacement, raw)
    _check_objects(objects.findall(rest))
    rest, found = objects.subn(replacement, rest)
    return rest, lists + found


def _cut_numeric(text: bytes | bytearray, key: str) -> tuple[bytes, list[bytes]]:
    """``text`` with every flat list of numbers under ``key`` replaced by the key's marker, and
    those lists' texts (in file order)."""
    head = b'"' + key.encode() + b'"'
    pattern = re.compile(re.escape(head) + _WS + b":" + _WS + rb"(\[[0-9eE+\-. \t\r\n,]*\])")
    values = pattern.findall(text)
    # A literal replacement (no group reference) keeps re.sub in C: '"key": "<marker>"'.
    replacement = head + b": " + orjson.dumps(marker(key)).replace(b"\\", b"\\\\")
    return pattern.sub(replacement, text), values


def load_cut(path: Path, numeric: dict[str, int], discard: tuple[str, ...] = ()) -> Cut | None:
    """Parse the JSON file ``path`` with the values of ``numeric`` and ``discard`` keys cut out.

    ``numeric[key]`` is the count of numbers in each value of ``key`` (flat lists of numbers are
    cut; one of another count makes the cut parse decline). Returns None when the cut parse cannot
    be trusted or the text is not valid JSON: parse the file in full then. Raises OSError when
    the file cannot be read. Peak memory: the file's bytes plus what is left after the cut.
    """
    raw = Path(path).read_bytes()
    if b"\\u0000" in raw:
        return None
    counts: dict[str, int] = {}
    try:
        rest: bytes | bytearray = raw
        del raw  # freed with the first cut (the file's bytes are not needed past it)
        for key in discard:
            rest, counts[key] = _cut_discarded(rest, key)
        values = {}
        for key, count in numeric.items():
            rest, texts = _cut_numeric(rest, key)
            values[key], counts[key] = _numeric_rows(texts, count), len(texts)
            del texts
        document = orjson.loads(rest)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    return Cut(document, values, counts)
