"""Read big JSON files of nested number lists straight into numpy, in bounded memory.

FreiHAND's ``training_verts.json`` is ~1.5 GB of text; ``json.loads`` turns it into ~100M Python
floats (several GB). These files hold nothing but ``[``, ``]``, ``,``, whitespace and numbers, so
they are read in chunks, the brackets counted, and the numbers parsed by numpy; peak memory is the
result array plus one chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError

CHUNK_BYTES = 16 << 20
_SEPARATORS = b"[],\t\r\n"
_NUMBER_CHARS = b"0123456789+-.eE "


def read_json_numbers(path: Path, tail_shape: tuple[int, ...], dtype=np.float64,
                      chunk_bytes: int = CHUNK_BYTES) -> np.ndarray:
    """``[N, *tail_shape]`` from a JSON list of N entries, each a nested list of that shape.

    Raises ``ExposeError`` naming the file when it holds anything else (objects, strings, null,
    NaN), when its nesting does not match ``tail_shape``, or when it is missing.
    """
    path = Path(path)
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
    numbers = np.concatenate(parts) if parts else np.zeros(0, dtype)
    per_entry = int(np.prod(tail_shape)) if tail_shape else 1
    brackets_per_entry = sum(int(np.prod(tail_shape[:k])) for k in range(len(tail_shape)))
    n, rest = divmod(numbers.size, per_entry)
    if opened != closed or rest or opened != 1 + n * brackets_per_entry:
        shape = ", ".join(map(str, ("N", *tail_shape)))
        raise ExposeError(f"malformed or unexpected JSON: {numbers.size} numbers in {opened} lists do not form "
                          f"an array of shape ({shape})", path=path)
    return numbers.reshape(n, *tail_shape)
