"""Atomic file output: write to a temporary name beside the target, rename when complete.

An interrupted command never leaves a half-written file under a final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def writer_tag() -> str:
    """``PID-HOST`` of this process (HOST: 6 hex digits of the host name's hash), put in the name of
    each temporary file so a later run can tell whether its writer is gone (:mod:`.stale`)."""
    host = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:6]
    return f"{os.getpid()}-{host}"


def temp_path_for(final: Path) -> Path:
    """A unique temporary path in the same folder as ``final`` (same filesystem, so rename is atomic).

    It keeps ``final``'s extension (``.SMPLX_NEUTRAL.4242-a1b2c3.x1y2z3w4.tmp.npz``: stem, the
    writer's :func:`writer_tag`, random letters) so format-sniffing writers and readers treat it
    like the final file. The pattern is :data:`expose_cli.utils.stale.TEMP_NAME`.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.{writer_tag()}.", suffix=f".tmp{final.suffix}",
                                dir=final.parent)
    os.close(fd)
    return Path(name)


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(final: Path) -> int:
    """The mode a plain ``open(final, "w")`` would leave: an existing file keeps its own, a new
    one gets ``0o666 & ~umask`` (``mkstemp`` creates its file 0600)."""
    try:
        return stat.S_IMODE(os.stat(final).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path; on success rename it to ``final``, on any error delete it.

    The file under ``final`` gets the permissions a plain ``open()`` would give it (the umask's
    for a new file, the old file's when it replaces one), not ``mkstemp``'s 0600.

    >>> with atomic_path("out.json") as tmp:   # doctest: +SKIP
    ...     tmp.write_text("{}")
    """
    final = Path(final)
    tmp = temp_path_for(final)
    try:
        yield tmp
        os.chmod(tmp, _final_mode(final))
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def move_into_place(tmp: Path, final: str | Path) -> Path:
    """Rename a finished temporary file (one that a library such as h5py wrote itself) to
    ``final`` with the mode a plain ``open()`` would give it, as :func:`atomic_path` does."""
    final = Path(final)
    os.chmod(tmp, _final_mode(final))
    os.replace(tmp, final)
    return final


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
