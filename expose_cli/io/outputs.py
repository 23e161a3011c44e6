"""Output paths checked before any work: a long run must not fail at its last step because its
result file cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

from expose_cli.errors import ExposeError


def check_writable(path: str | Path, what: str) -> None:
    """Refuse an output ``path`` that cannot be written (one line naming it, exit 2): a folder under
    that name, a parent that is a file, or a folder without write permission. Missing folders are
    fine (they are made when the file is written)."""
    path = Path(path)
    if path.is_dir():
        raise ExposeError(f"{what} is a folder, not a file", path=path, exit_code=2, hint="give a file name")
    parent = path.parent
    while not parent.exists():  # the nearest folder that exists decides
        parent = parent.parent
    if not parent.is_dir():
        raise ExposeError(f"cannot write {what}: {parent} is a file, not a folder", path=path, exit_code=2,
                          hint="choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExposeError(f"cannot write {what}: no write permission in {parent}", path=path, exit_code=2,
                          hint="choose a folder you can write to")
