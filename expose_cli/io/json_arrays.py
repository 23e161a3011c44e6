"""Read big JSON files of nested number lists straight into numpy, in bounded memory.

FreiHAND's ``training_verts.json`` is ~1.5 GB of text; ``json.loads`` turns it into ~100M Python
floats (several GB). These files hold nothing but ``[``, ``]``, ``,``, whitespace and numbers, so
they are read in chunks, the brackets counted, and the numbers parsed by numpy; peak memory is the
result array plus one chunk.

With ``pysimdjson`` installed (a dependency; simdjson's correctly rounded number parsing) a file
is read into one reused 1 MB buffer; each run of whole entries in it is made a JSON list in place
and parsed into a flat float64 buffer without Python objects (~500 MB/s per CPU second on
FreiHAND's verts, 3x the earlier copy-per-part reader, 11x numpy's text parser); the brackets are
counted alike. Any file it refuses is read by the chunked reader, whose messages name the
problem. The numbers are the same either way (both round the decimal text to the nearest
float64, as ``json.loads`` does; float32 results are those float64 rounded).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError

CHUNK_BYTES = 16 << 20  # numpy's text parser: bytes per part
#: simdjson: bytes per part. Parts that stay in the CPU caches parse fastest (measured on
#: FreiHAND's 204 MB evaluation_verts.json: 1 MB 0.36 s, 4 MB 0.39 s, 32 MB 0.78 s CPU).
SIMDJSON_CHUNK = 1 << 20
_SEPARATORS = b"[],\t\r\n"
_NUMBER_CHARS = b"0123456789+-.eE "
_INTEGER_MINUS_ZERO = re.compile(rb"-0(?![0-9.eE])")  # also "1e-0" -> "1e0": the same number


def _open_document(handle, view: memoryview) -> int:
    """Read the start of the document into ``view`` without its opening ``[`` (nor the whitespace
    before it); the bytes kept (from offset 1), or -1 when the document is not a list."""
    text = b""
    while not text:
        block = handle.read(len(view) - 1)
        if not block:
            return -1
        text = block.lstrip()
    if not text.startswith(b"["):
        return -1
    view[1:len(text)] = text[1:]
    return len(text) - 1


def _simdjson_numbers(path: Path, depth: int, dtype, chunk_bytes: int) -> tuple[np.ndarray, int, int] | None:
    """All numbers of the file (as ``dtype``, via float64, in order) and its counts of ``[`` and
    ``]``, parsed ~``chunk_bytes`` at a time; None when pysimdjson is not installed or refuses a part.

    One buffer is reused: each part (whole entries, cut after ``depth`` closing brackets and before
    a comma) is made a JSON list in place (``[`` before it, its final comma turned into ``]``) and
    parsed from a memoryview, so no text is copied but the few bytes carried to the next part.
    simdjson validates every part, so ``]`` count as many as ``[``.
    """
    try:
        import simdjson
    except ImportError:
        return None
    parser, parts, opened = simdjson.Parser(), [], 1  # 1: the document's own "["
    separator, buffer = b"]" * depth + b",", bytearray(chunk_bytes + 1)
    view = memoryview(buffer)
    try:
        with open(path, "rb") as handle:
            filled = _open_document(handle, view)
            if filled < 0:
                return None
            while True:
                if 2 * (1 + filled) > len(buffer):  # an entry longer than half the buffer: grow it
                    view.release()
                    buffer.extend(bytes(len(buffer)))
                    view = memoryview(buffer)
                got = handle.readinto(view[1 + filled:])
                end = 1 + filled + got
                cut = buffer.rfind(separator, 1, end) if got else -1
                if got and cut < 0:  # no whole entry yet: read on
                    filled = end - 1
                    continue
                stop = cut + depth + 1 if got else end  # the last part ends with the document's "]"
                opened += buffer.count(b"[", 1, stop)
                buffer[0] = ord("[")
                if got:
                    buffer[stop - 1] = ord("]")
                document = parser.parse(view[:stop])
                parts.append(np.frombuffer(document.as_buffer(of_type="d"), np.float64).astype(dtype))
                del document  # the parser is reused only once its document is gone
                if not got:
                    break
                filled = end - stop
                view[1:1 + filled] = bytes(view[stop:end])
    except (OSError, ValueError, TypeError, AttributeError, RuntimeError, BufferError):
        return None
    return (np.concatenate(parts) if parts else np.zeros(0, dtype)), opened, opened


def read_json_numbers(path: Path, tail_shape: tuple[int, ...], dtype=np.float64,
                      chunk_bytes: int | None = None) -> np.ndarray:
    """``[N, *tail_shape]`` from a JSON list of N entries, each a nested list of that shape.

    Raises ``ExposeError`` naming the file when it holds anything else (objects, strings, null,
    NaN), when its nesting does not match ``tail_shape``, or when it is missing. ``chunk_bytes``
    (tests): the part size of both readers (default: :data:`SIMDJSON_CHUNK`, :data:`CHUNK_BYTES`).
    """
    path = Path(path)
    fast = _simdjson_numbers(path, len(tail_shape), dtype, chunk_bytes or SIMDJSON_CHUNK)
    if fast is not None:
        return _shaped(path, *fast, tail_shape)
    numbers, opened, closed = _chunked_numbers(path, dtype, chunk_bytes or CHUNK_BYTES)
    return _shaped(path, numbers, opened, closed, tail_shape)


def _chunked_numbers(path: Path, dtype, chunk_bytes: int) -> tuple[np.ndarray, int, int]:
    """All numbers (in order) and the counts of ``[`` and ``]``, a chunk at a time."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise ExposeError("missing annotation file", path=path) from None
    spaces = bytes.maketrans(_SEPARATORS, b" " * len(_SEPARATORS))
    parts: list[np.ndarray] = []
    opened = closed = 0
    carry = b""
    with handle:
        while True:
            block = handle.read(chunk_bytes)
            data = carry + block
            if block:  # keep a possibly cut number for the next round
                cut = max(data.rfind(c) for c in (b",", b"]", b"[", b" ", b"\n"))
                data, carry = (data[: cut + 1], data[cut + 1:]) if cut >= 0 else (b"", data)
            else:
                carry = b""
            opened += data.count(b"[")
            closed += data.count(b"]")
            text = data.translate(spaces)
            if text.translate(None, _NUMBER_CHARS):
                bad = next(chr(c) for c in text if c not in _NUMBER_CHARS)
                raise ExposeError(f"malformed JSON: unexpected {bad!r}; expected only nested lists of numbers",
                                  path=path)
            if b"-0" in text:  # JSON's integer -0 is 0 (json.loads: int 0); numpy would give -0.0
                text = _INTEGER_MINUS_ZERO.sub(b"0", text)
            if text.strip():
                try:
                    parts.append(np.fromstring(text, dtype=dtype, sep=" "))
                except ValueError:
                    raise ExposeError("malformed JSON: a value is not a number", path=path) from None
            if not block:
                break
    return (np.concatenate(parts) if parts else np.zeros(0, dtype)), opened, closed


def _shaped(path: Path, numbers: np.ndarray, opened: int, closed: int, tail_shape: tuple[int, ...]) -> np.ndarray:
    """``numbers`` as ``[N, *tail_shape]``, or an error when the brackets do not nest that way."""
    per_entry = int(np.prod(tail_shape)) if tail_shape else 1
    brackets_per_entry = sum(int(np.prod(tail_shape[:k])) for k in range(len(tail_shape)))
    n, rest = divmod(numbers.size, per_entry)
    if opened != closed or rest or opened != 1 + n * brackets_per_entry:
        shape = ", ".join(map(str, ("N", *tail_shape)))
        raise ExposeError(f"malformed or unexpected JSON: {numbers.size} numbers in {opened} lists do not form "
                          f"an array of shape ({shape})", path=path)
    return numbers.reshape(n, *tail_shape)
