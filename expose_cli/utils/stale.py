"""Temporary files left by a killed run (``kill -9``, a power cut), removed by a later run.

:func:`expose_cli.utils.atomic.temp_path_for` names a temporary file ``.<stem>.<PID>-<HOST>.<random>.tmp<ext>``
(HOST: 6 hex digits of the writer's host name hash). A later run that writes into the same folder
removes such a file when it is stale:

* written on this host by a process that no longer runs (its PID is gone), or
* written on another host (a shared filesystem: its PID cannot be checked) and untouched for a day.

A file of a run still going (here, or on another host within the day) is kept, so two runs writing
into one folder never delete each other's work. Names of the older form ``.<stem>.<random>.tmp<ext>``
(no writer recorded) are removed when untouched for an hour. Nothing else is ever removed: only
hidden files of exactly these forms.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from expose_cli.utils.atomic import writer_tag

#: ``.<stem>.<pid>-<host>.<random>.tmp<ext>``: what ``temp_path_for`` writes (mkstemp: 8 of [a-z0-9_]).
TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.[a-z0-9_]{8}\.tmp(\.[^./]+)?$")
#: The older form, without the writer.
OLD_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^./]+)?$")
OTHER_HOST_AGE_S = 24 * 3600.0
OLD_FORM_AGE_S = 3600.0


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process (or cannot tell): keep its file
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether ``path`` is a temporary file of ours whose writer is gone (rules in the module doc)."""
    match = TEMP_NAME.match(path.name)
    old = None if match else OLD_TEMP_NAME.match(path.name)
    if match is None and old is None:
        return False
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    if old is not None:
        return age > OLD_FORM_AGE_S
    if match["host"] != writer_tag().split("-", 1)[1]:
        return age > OTHER_HOST_AGE_S
    return not _alive(int(match["pid"]))


def remove_stale_temps(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete the stale temporary files in ``folder`` (and below it with ``recursive``); returns them.
    A folder that does not exist, or an entry that cannot be read or removed, is passed over."""
    removed: list[Path] = []
    pending = [Path(folder)]
    while pending:
        current = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if recursive and entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.name.startswith(".") and ".tmp" in entry.name and is_stale(Path(entry.path)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return sorted(removed)
