"""Atomic file output: write to a temporary name beside the target, rename when complete.

An interrupted command never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temp_path_for(final: Path) -> Path:
    """A unique temporary path in the same folder as ``final`` (same filesystem, so rename is atomic).

    It keeps ``final``'s extension (``.SMPLX_NEUTRAL.x1y2.tmp.npz``) so format-sniffing writers and
    readers treat it like the final file.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}", dir=final.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``final``, on any error delete it.

    >>> with atomic_path("out.json") as tmp:   # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    final = Path(final)
    tmp = temp_path_for(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: str | Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final: str | Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(final: str | Path, obj: Any, indent: int = 2) -> None:
    """Write ``obj`` as JSON (numpy scalars and arrays are converted) atomically."""
    write_text_atomic(final, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
