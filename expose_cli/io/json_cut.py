"""Parse a big JSON document with the bulky values of some keys cut out (COCO's annotation files).

COCO's keypoint files are ~75% polygon segmentations and keypoint lists. Parsed whole (``json``
or ``orjson``) they become tens of millions of Python numbers: ~1 GB of memory and most of the
time. :func:`load_cut` instead replaces every ``"<key>": <value>`` of the named keys by a marker
string (one ``re.split`` pass per key and a ``join``: C speed), parses the rest with orjson (the
cyclic garbage collector paused: :func:`gc_paused`), and

- ``numeric`` keys (flat lists of a known count of numbers, e.g. ``keypoints``): reads the cut
  values, 32,768 at a time, into one ``float32`` array per key (rows in file order) through
  pysimdjson (no Python numbers), or orjson where simdjson declines;
- ``discard`` keys (e.g. ``segmentation``): keeps nothing.

Soundness: every cut value is exactly one JSON value: numeric lists are matched as ``[`` number
characters and commas ``]``, hold ``count - 1`` commas each and are read with JSON's number
syntax (simdjson validates; numbers are correctly rounded to float64 as ``json`` rounds); polygons are matched as lists of such lists (their numbers are not parsed: nothing reads
them); RLE objects are parsed. The rest must parse with the markers in value position, and the
caller checks with :meth:`Cut.rows_of` that every marker landed where that key was expected (one
per cut, in file order). The markers contain U+0000, which a valid JSON text can only
spell ``\\u0000``; files containing that escape are not cut. Whenever anything does not hold,
:func:`load_cut` returns None and the caller parses the file in full, so odd files get exactly
the full parser's behaviour and messages.
"""

from __future__ import annotations

import gc
import operator
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import orjson

BATCH = 4096  # cut values parsed per orjson call (bounded memory)
SIMD_BATCH = 32768  # cut values parsed per simdjson call (~7 MB of COCO keypoint text)
_WS = rb"[ \t\r\n]*"
_LIST = rb"\[[0-9eE+\-. \t\r\n,]*\]"  # a flat list of number characters and commas


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside (as it was, after). Parsing a big document
    makes millions of dicts and lists, none in a cycle, and each collection meanwhile walks all
    made so far: COCO's cut document parses in 0.25 s without collections, 0.49 s with them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


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


def _simd_rows(parser, values: list[bytes], count: int) -> np.ndarray | None:
    """``[len(values), count]`` float64 from flat-list texts, parsed together by simdjson's
    ``parser`` (no Python numbers; each number correctly rounded to float64, integers too, as
    ``float(json.loads(...))``), when every text holds ``count - 1`` commas (each is then one list
    of ``count`` numbers: simdjson checks the syntax); None otherwise (then orjson reads them)."""
    commas = np.fromiter(map(bytes.count, values, repeat(b",")), np.int64, len(values))
    if parser is None or not values or (commas != count - 1).any():
        return None
    try:
        document = parser.parse(b"[" + b",".join(values) + b"]")
        numbers = np.frombuffer(document.as_buffer(of_type="d"), np.float64).copy()
        del document  # the parser is reused only once its document is gone
    except (ValueError, TypeError, RuntimeError):  # e.g. an integer beyond 64 bits
        return None
    return numbers.reshape(len(values), count) if numbers.size == len(values) * count else None


def _simdjson_parser():
    """A reusable simdjson parser (its buffers are allocated once), or None without pysimdjson."""
    try:
        import simdjson
    except ImportError:
        return None
    return simdjson.Parser()


def _numeric_rows(values: list[bytes], count: int) -> np.ndarray:
    """Cut values of a numeric key (``[...]`` texts) as ``[rows, count]`` float32: each number read
    as JSON reads it, to float64, then rounded as ``np.asarray(values, np.float32)`` does
    (simdjson, or orjson where :func:`_simd_rows` declines). ValueError when one is not a list of
    ``count`` numbers."""
    out, parser = np.empty((len(values), count), np.float32), _simdjson_parser()
    for lo in range(0, len(values), SIMD_BATCH):
        picked = values[lo:lo + SIMD_BATCH]
        block = _simd_rows(parser, picked, count)
        for k in range(0, len(picked), BATCH) if block is None else ():
            rows = np.asarray(orjson.loads(b"[" + b",".join(picked[k:k + BATCH]) + b"]"), np.float32)
            if rows.shape != (len(picked[k:k + BATCH]), count):
                raise ValueError("a cut value is not a flat list of numbers")
            out[lo + k:lo + k + len(rows)] = rows
        if block is not None:
            out[lo:lo + len(picked)] = block
    return out


def _split_cut(pattern: re.Pattern, text: bytes, key: str) -> tuple[bytes, list]:
    """One pass of ``pattern`` (its one group: the part of a match to keep, or None) over
    ``text``: the text with every match replaced by ``"<key>": <marker>``, and the kept parts."""
    parts = pattern.split(text)
    replacement = b'"' + key.encode() + b'": ' + orjson.dumps(marker(key))
    return replacement.join(parts[0::2]), parts[1::2]


def _cut_discarded(raw: bytes, key: str) -> tuple[bytes, int]:
    """``raw`` with the values of ``key`` that are lists of lists of numbers (polygons) or flat
    objects (RLE masks) replaced by the key's marker, and how many. The polygon pattern admits
    only number characters and commas inside the inner lists (their numbers are not parsed:
    nothing reads them); objects are parsed. Values of other forms stay (parsed with the rest)."""
    lead = re.escape(b'"' + key.encode() + b'"') + _WS + b":" + _WS
    polygon = rb"\[" + _WS + _LIST + rb"(?:" + _WS + b"," + _WS + _LIST + rb")*" + _WS + rb"\]"
    rest, kept = _split_cut(re.compile(lead + rb"(?:" + polygon + rb"|(\{[^{}]*\}))"), raw, key)
    _check_objects([value for value in kept if value is not None])
    return rest, len(kept)


def _cut_numeric(text: bytes | bytearray, key: str) -> tuple[bytes, list[bytes]]:
    """``text`` with every flat list of numbers under ``key`` replaced by the key's marker, and
    those lists' texts (in file order)."""
    lead = re.escape(b'"' + key.encode() + b'"') + _WS + b":" + _WS
    return _split_cut(re.compile(lead + rb"(\[[0-9eE+\-. \t\r\n,]*\])"), text, key)


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
        with gc_paused():
            document = orjson.loads(rest)
    except (orjson.JSONDecodeError, ValueError, TypeError):
        return None
    return Cut(document, values, counts)
