"""Read big JSON files of nested number lists straight into numpy, in bounded memory.

FreiHAND's ``training_verts.json`` is ~1.5 GB of text; ``json.loads`` turns it into ~100M Python
floats (several GB). These files hold nothing but ``[``, ``]``, ``,``, whitespace and numbers, so
they are read in chunks, the brackets counted, and the numbers parsed by numpy; peak memory is the
result array plus one chunk.

With ``pysimdjson`` installed (a dependency; simdjson's correctly rounded number parsing, ~4x the
speed of numpy's text parsing) a file is parsed ~32 MB at a time (cut between entries) into flat
buffers of float64 without Python objects, and the brackets counted alike; any file it refuses is read by the chunked reader, whose
messages name the problem. The numbers are the same either way (both round the decimal text to
the nearest float64; float32 results are those float64 rounded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError

CHUNK_BYTES = 16 << 20
_SEPARATORS = b"[],\t\r\n"
_NUMBER_CHARS = b"0123456789+-.eE "


def _simdjson_numbers(path: Path, depth: int, dtype, chunk_bytes: int) -> tuple[np.ndarray, int, int] | None:
    """All numbers of the file (as ``dtype``, via float64, in order) and its counts of ``[`` and
    ``]``, parsed ~``chunk_bytes`` at a time (cut between entries: after ``depth`` closing
    brackets and before a comma); None when pysimdjson is not installed or refuses the file."""
    try:
        import simdjson
    except ImportError:
        return None
    parser, parts, opened, closed, carry, first = simdjson.Parser(), [], 0, 0, b"", True
    separator = b"]" * depth + b","
    try:
        with open(path, "rb") as handle:
            while True:
                block = handle.read(chunk_bytes)
                data = carry + block
                cut = data.rfind(separator) if block else len(data)
                if cut < 0:
                    carry = data
                    continue
                piece, carry = data[:cut + depth], data[cut + len(separator):]
                opened, closed = opened + piece.count(b"["), closed + piece.count(b"]")
                text = piece.strip()
                if first:  # the document's opening bracket
                    if not text.startswith(b"["):
                        return None
                    text, first = text[1:], False
                if not block:  # and its closing one
                    if not text.endswith(b"]"):
                        return None
                    text = text[:-1]
                document = parser.parse(b"[" + text + b"]")
                parts.append(np.frombuffer(document.as_buffer(of_type="d"), np.float64).astype(dtype))
                del document  # the parser is reused only once its document is gone
                if not block:
                    break
    except (OSError, ValueError, TypeError, AttributeError, RuntimeError):
        return None
    return (np.concatenate(parts) if parts else np.zeros(0, dtype)), opened, closed


def read_json_numbers(path: Path, tail_shape: tuple[int, ...], dtype=np.float64,
                      chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """``[N, *tail_shape]`` from a JSON list of N entries, each a nested list of that shape.

    Raises ``ExposeError`` naming the file when it holds anything else (objects, strings, null,
    NaN), when its nesting does not match ``tail_shape``, or when it is missing.
    """
    path = Path(path)
    fast = _simdjson_numbers(path, len(tail_shape), dtype, 2 * chunk_bytes)
    if fast is not None:
        return _shaped(path, *fast, tail_shape)
    numbers, opened, closed = _chunked_numbers(path, dtype, chunk_bytes)
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
